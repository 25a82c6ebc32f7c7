//! Opening a ZooKeeper session, registering in it, closing it.

use std::time::Duration;

use protoactor_cluster::Error;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, SessionState};

use crate::config::ZkConfig;
use crate::info::NODE_PREFIX;

/// ACLs for what we create: with credentials, only their holder may touch
/// it; without, anyone.
fn acls(config: &ZkConfig) -> Acls<'static> {
    if config.auth.is_some() { Acls::creator_all() } else { Acls::anyone_all() }
}

fn dir_options(config: &ZkConfig) -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(acls(config))
}

/// Explains a ZooKeeper error for an operator.
pub(crate) fn explain(config: &ZkConfig, doing: &str, e: &zookeeper_client::Error) -> Error {
    let hint = match e {
        zookeeper_client::Error::NoAuth => {
            "; not authorized: the znodes belong to other credentials (check ZkConfig::with_auth)"
        }
        zookeeper_client::Error::AuthFailed => "; authentication failed (check ZkConfig::with_auth)",
        zookeeper_client::Error::NoHosts | zookeeper_client::Error::Timeout => {
            "; check the connect string and that ZooKeeper is running"
        }
        _ => "",
    };
    Error::Provider(format!("zookeeper `{}`: {doing}: {e}{hint}", config.connect))
}

/// Opens a session and creates `dir` (and the chroot) if missing. The
/// session is detached: dropping the client does not close it, so a member
/// that stops without [`close`] leaves its znode to session expiry, as a
/// crashed process would.
pub(crate) async fn connect(config: &ZkConfig, dir: &str) -> Result<Client, Error> {
    let mut connector = Client::connector().with_session_timeout(config.session_timeout).with_detached();
    if let Some((user, password)) = &config.auth {
        connector = connector.with_auth("digest", format!("{user}:{password}").as_bytes());
    }
    let timeout = config.connect_timeout;
    let client = match tokio::time::timeout(timeout, connector.connect(&config.connect)).await {
        Err(_) => {
            return Err(Error::Provider(format!(
                "zookeeper `{}`: no session within {timeout:?}; check the connect string and that ZooKeeper is running",
                config.connect
            )));
        }
        Ok(Err(e)) => return Err(explain(config, "cannot open a session", &e)),
        Ok(Ok(client)) => client,
    };
    let options = dir_options(config);
    let client = match &config.chroot {
        None => client,
        Some(chroot) => {
            if chroot != "/" {
                bounded(config, client.mkdir(chroot, &options))
                    .await
                    .map_err(|e| explain(config, &format!("cannot create the chroot `{chroot}`"), &e))?;
            }
            client
                .chroot(chroot.as_str())
                .map_err(|_| Error::Config(format!("zookeeper: the chroot `{chroot}` is not a valid znode path")))?
        }
    };
    bounded(config, client.mkdir(dir, &options))
        .await
        .map_err(|e| explain(config, &format!("cannot create `{dir}`"), &e))?;
    Ok(client)
}

/// Creates this member's ephemeral sequential znode under `dir`; returns its
/// full path.
pub(crate) async fn register(config: &ZkConfig, client: &Client, dir: &str, data: &[u8]) -> Result<String, Error> {
    let prefix = format!("{dir}/{NODE_PREFIX}");
    let options = CreateMode::EphemeralSequential.with_acls(acls(config));
    let (_, sequence) = bounded(config, client.create(&prefix, data, &options))
        .await
        .map_err(|e| explain(config, &format!("cannot register under `{dir}`"), &e))?;
    Ok(format!("{prefix}{sequence}"))
}

/// Deletes `node` now (if given) and closes the session, so the cluster sees
/// this member leave at once. Best effort, bounded by the session timeout.
pub(crate) async fn close(config: &ZkConfig, client: Client, node: Option<&str>) {
    if let Some(node) = node {
        match bounded(config, client.delete(node, None)).await {
            Ok(()) | Err(zookeeper_client::Error::NoNode) => tracing::debug!(%node, "deregistered"),
            Err(e) => tracing::warn!(%node, error = %e, "could not delete the member znode; it goes at session expiry"),
        }
    }
    // The session is detached, so dropping the client would leave it open
    // until it expires: attach to it once more without detaching and let
    // that client's drop send CloseSession.
    let session = client.session().clone();
    drop(client);
    let attach = Client::connector().with_session_timeout(config.session_timeout).with_session(session);
    let Ok(Ok(closer)) = tokio::time::timeout(config.session_timeout, attach.connect(&config.connect)).await else {
        return;
    };
    let mut state = closer.state_watcher();
    drop(closer);
    let _ =
        tokio::time::timeout(config.session_timeout, async { while !state.changed().await.is_terminated() {} }).await;
}

/// Bounds one request by the session timeout: the client itself waits for
/// a reconnect indefinitely.
pub(crate) async fn bounded<T>(
    config: &ZkConfig,
    request: impl Future<Output = Result<T, zookeeper_client::Error>>,
) -> Result<T, zookeeper_client::Error> {
    let limit = config.session_timeout.max(Duration::from_secs(1)) * 2;
    tokio::time::timeout(limit, request).await.unwrap_or(Err(zookeeper_client::Error::Timeout))
}

/// True once a session can no longer be used.
pub(crate) fn is_dead(client: &Client) -> bool {
    matches!(client.state(), SessionState::Expired | SessionState::Closed | SessionState::AuthFailed)
}
