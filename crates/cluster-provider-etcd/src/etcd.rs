//! Talking to etcd: connecting, bounded calls, registering, listing, and
//! the error text a person can act on.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions};

use crate::config::EtcdConfig;
use crate::member_info::Registry;

/// Why a call to etcd did not give an answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No answer in time (etcd down, unreachable, or stalled).
    Timeout { what: &'static str, after: Duration },
    /// etcd (or the transport) answered with an error.
    Etcd { what: &'static str, error: etcd_client::Error },
}

impl CallError {
    /// True if the error says our lease no longer exists on the server.
    pub(crate) fn is_lease_lost(&self) -> bool {
        match self {
            CallError::Etcd { error: etcd_client::Error::LeaseKeepAliveError(text), .. } => text.contains("not found"),
            CallError::Etcd { error: etcd_client::Error::GRpcStatus(status), .. } => {
                // etcd: "etcdserver: requested lease not found".
                status.message().contains("lease not found")
            }
            _ => false,
        }
    }

    /// The message, naming `endpoints`.
    pub(crate) fn describe(&self, endpoints: &[String]) -> String {
        match self {
            CallError::Timeout { what, after } => format!(
                "etcd at {endpoints:?}: no answer within {after:?} while {what}; is etcd running and reachable there?"
            ),
            CallError::Etcd { what, error } => format!("etcd at {endpoints:?}: {what} failed: {}", chain(error)),
        }
    }
}

/// `error` with its causes (tonic's top-level message omits "connection refused").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Runs one etcd call, giving up after `after`.
pub(crate) async fn bounded<T>(
    after: Duration,
    what: &'static str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(CallError::Etcd { what, error }),
        Err(_) => Err(CallError::Timeout { what, after }),
    }
}

/// A new client for `config`; logs in when a user is configured. The
/// connection itself is made by the first call.
pub(crate) async fn connect(config: &EtcdConfig) -> Result<Client, CallError> {
    let what = if config.user.is_some() { "connecting and logging in" } else { "connecting" };
    bounded(config.connect_timeout, what, Client::connect(&config.endpoints, Some(config.connect_options()))).await
}

/// Grants a lease and writes `value` under `key` bound to it; returns the lease id.
pub(crate) async fn register(
    client: &mut Client,
    config: &EtcdConfig,
    key: &str,
    value: &[u8],
) -> Result<i64, CallError> {
    let ttl = i64::try_from(config.ttl.as_secs()).unwrap_or(i64::MAX);
    let lease = bounded(config.connect_timeout, "granting a lease", client.lease_grant(ttl, None)).await?.id();
    let put = client.put(key, value, Some(PutOptions::new().with_lease(lease)));
    if let Err(e) = bounded(config.connect_timeout, "writing the member key", put).await {
        // Best effort: an orphan lease would expire after the TTL anyway.
        let _ = bounded(config.connect_timeout, "revoking the unused lease", client.lease_revoke(lease)).await;
        return Err(e);
    }
    Ok(lease)
}

/// Reads every key under `prefix` into `registry` (replacing what it had);
/// returns the revision the list was read at and the ignored keys with why.
pub(crate) async fn list(
    client: &mut Client,
    config: &EtcdConfig,
    cluster: &str,
    prefix: &str,
    registry: &mut Registry,
) -> Result<(i64, Vec<(String, String)>), CallError> {
    let get = client.get(prefix, Some(GetOptions::new().with_prefix()));
    let response = bounded(config.connect_timeout, "listing the members", get).await?;
    let revision = response.header().map_or(0, |h| h.revision());
    registry.clear();
    let mut ignored = Vec::new();
    for kv in response.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        if let Some(why) = registry.put(cluster, &key, kv.value()) {
            ignored.push((key, why));
        }
    }
    Ok((revision, ignored))
}
