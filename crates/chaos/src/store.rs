//! `--persist sqlite|postgres`: where persisted counters live. The tool
//! prepares the store (a fresh SQLite file, or a throwaway PostgreSQL server
//! started with the testkit unless `PROTOACTOR_CHAOS_POSTGRES` names one),
//! hands its spec to every member (`--store sqlite:<path>` or
//! `--store postgres:<connection string>`), can restart the server under
//! load (`--faults store`), and reads every journal back at the end.

use std::path::Path;
use std::sync::Arc;

use protoactor_persistence::{PostgresProvider, Provider, SqliteProvider};
use protoactor_testkit::postgres::PostgresServer;

use crate::Error;
use crate::backend::PersistKind;

/// Opens the provider a `--store` spec names.
pub(crate) async fn provider(spec: &str) -> Result<Arc<dyn Provider>, Error> {
    let failed = |e: protoactor_persistence::Error| Error::Member(format!("cannot open the store `{spec}`: {e}"));
    if let Some(path) = spec.strip_prefix("sqlite:") {
        Ok(Arc::new(SqliteProvider::open(path).await.map_err(failed)?))
    } else if let Some(conn) = spec.strip_prefix("postgres:") {
        Ok(Arc::new(PostgresProvider::connect(conn).await.map_err(failed)?))
    } else {
        Err(Error::Member(format!("--store `{spec}`: expected sqlite:<path> or postgres:<connection string>")))
    }
}

/// The store of one run.
#[derive(Debug)]
pub(crate) struct Store {
    /// What members get as `--store`.
    pub(crate) spec: String,
    /// The server this run started (restartable).
    postgres: Option<PostgresServer>,
}

impl Store {
    /// Prepares the store for `kind` (none for `PersistKind::None`).
    pub(crate) async fn prepare(kind: PersistKind, dir: &Path) -> Result<Option<Store>, Error> {
        let store = match kind {
            PersistKind::None => return Ok(None),
            PersistKind::Sqlite => {
                let path = dir.join("counters.db");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Store { spec: format!("sqlite:{}", path.display()), postgres: None }
            }
            PersistKind::Postgres => match std::env::var("PROTOACTOR_CHAOS_POSTGRES") {
                Ok(conn) => Store { spec: format!("postgres:{conn}"), postgres: None },
                Err(_) => {
                    let server = tokio::task::spawn_blocking(PostgresServer::start)
                        .await
                        .map_err(|e| Error::Member(format!("starting PostgreSQL: {e}")))?
                        .map_err(Error::Member)?;
                    Store { spec: format!("postgres:{}", server.connection_string()), postgres: Some(server) }
                }
            },
        };
        // Opened once here, so the schema exists before the members race to create it.
        provider(&store.spec).await?;
        Ok(Some(store))
    }

    /// True if this run started the server (so it can restart it).
    pub(crate) fn restartable(&self) -> bool {
        self.postgres.is_some()
    }

    /// Restarts the server on the same port and data.
    pub(crate) async fn restart(&mut self) -> Result<(), Error> {
        let Some(mut server) = self.postgres.take() else {
            return Err(Error::Member("only a PostgreSQL started by this run can be restarted".into()));
        };
        let (server, result) = tokio::task::spawn_blocking(move || {
            let result = server.restart();
            (server, result)
        })
        .await
        .map_err(|e| Error::Member(format!("restarting PostgreSQL: {e}")))?;
        self.postgres = Some(server);
        result.map_err(Error::Member)
    }
}

/// The membership provider's server of a run (etcd, ZooKeeper), started
/// with the testkit; none for the automanaged provider.
#[derive(Debug)]
pub(crate) enum ProviderServer {
    /// An etcd server.
    Etcd(protoactor_testkit::etcd::EtcdServer),
    /// A ZooKeeper server.
    Zookeeper(protoactor_testkit::zookeeper::ZooKeeperServer),
}

impl ProviderServer {
    /// Starts the server `kind` needs; its endpoint is the second value.
    pub(crate) async fn start(kind: crate::ProviderKind) -> Result<Option<(ProviderServer, String)>, Error> {
        let started = tokio::task::spawn_blocking(move || match kind {
            crate::ProviderKind::Automanaged => Ok(None),
            crate::ProviderKind::Etcd => protoactor_testkit::etcd::EtcdServer::start().map(|s| {
                let endpoint = s.endpoint();
                Some((ProviderServer::Etcd(s), endpoint))
            }),
            crate::ProviderKind::Zookeeper => protoactor_testkit::zookeeper::ZooKeeperServer::start().map(|s| {
                let connect = s.connect_string();
                Some((ProviderServer::Zookeeper(s), connect))
            }),
        })
        .await
        .map_err(|e| Error::Member(format!("starting the provider's server: {e}")))?;
        started.map_err(Error::Member)
    }

    /// Restarts the server in `slot` (if any) on the same port and data.
    pub(crate) async fn restart(slot: &mut Option<ProviderServer>) -> Result<(), Error> {
        let Some(mut server) = slot.take() else { return Ok(()) };
        let (server, result) = tokio::task::spawn_blocking(move || {
            let result = match &mut server {
                ProviderServer::Etcd(s) => s.restart(),
                ProviderServer::Zookeeper(s) => s.restart(),
            };
            (server, result)
        })
        .await
        .map_err(|e| Error::Member(format!("restarting the provider's server: {e}")))?;
        *slot = Some(server);
        result.map_err(Error::Member)
    }
}

/// The identity lookup's server of a run (Redis, the MongoDB stand-in),
/// started with the testkit; none for the partition lookup or when
/// `--lookup-url` names one.
#[derive(Debug)]
pub(crate) enum LookupServer {
    /// A Redis server.
    Redis(protoactor_testkit::redis::RedisServer),
    /// The MongoDB stand-in (or the server in `MONGODB_URI`).
    Mongo(protoactor_testkit::mongo::MongoServer),
}

impl LookupServer {
    /// Starts the server `kind` needs; its URL is the second value.
    pub(crate) async fn start(kind: crate::LookupKind) -> Result<Option<(LookupServer, String)>, Error> {
        let started = tokio::task::spawn_blocking(move || match kind {
            crate::LookupKind::Partition => Ok(None),
            crate::LookupKind::Redis => protoactor_testkit::redis::RedisServer::start().map(|s| {
                let url = s.url();
                Some((LookupServer::Redis(s), url))
            }),
            crate::LookupKind::Mongo => protoactor_testkit::mongo::MongoServer::start().map(|s| {
                let uri = s.uri().to_string();
                Some((LookupServer::Mongo(s), uri))
            }),
        })
        .await
        .map_err(|e| Error::Member(format!("starting the lookup's server: {e}")))?;
        started.map_err(Error::Member)
    }

    /// True if this run started the server (so it can restart it).
    pub(crate) fn restartable(&self) -> bool {
        match self {
            LookupServer::Redis(_) => true,
            LookupServer::Mongo(s) => !s.is_external(),
        }
    }

    /// Restarts the server in `slot` (if any): Redis on the same port and
    /// data, the MongoDB stand-in on the same port, empty.
    pub(crate) async fn restart(slot: &mut Option<LookupServer>) -> Result<(), Error> {
        let Some(mut server) = slot.take() else { return Ok(()) };
        let (server, result) = tokio::task::spawn_blocking(move || {
            let result = match &mut server {
                LookupServer::Redis(s) => s.restart(),
                LookupServer::Mongo(s) => s.restart(),
            };
            (server, result)
        })
        .await
        .map_err(|e| Error::Member(format!("restarting the lookup's server: {e}")))?;
        *slot = Some(server);
        result.map_err(Error::Member)
    }
}
