//! `--persist sqlite|postgres`: counter grains whose counts survive the
//! kill. Each increment is an event stored (conditionally on its index)
//! before the grain answers; a grain activated again elsewhere recovers its
//! snapshot and events first, so its count continues. At the end the
//! orchestrator reads every journal back and compares it with the
//! increments the client saw acknowledged.
//!
//! Requests carry an id and a grain remembers the last ones it applied, so
//! a request retried by the cluster (its answer was lost with the killed
//! member, or came too late) is answered again without counting twice.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use protoactor_actor::prelude::*;
use protoactor_cluster::GrainContext;
use protoactor_persistence::{EventSourced, Journal, PostgresProvider, Provider, SnapshotPolicy, SqliteProvider};
use serde::{Deserialize, Serialize};

use crate::{CountReply, Increment};

/// The store behind `--persist`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A SQLite file in a temporary directory (no server).
    Sqlite,
    /// PostgreSQL: `CLUSTER_DEMO_POSTGRES` names a server, or the demo starts one.
    Postgres,
}

/// Where the members store: `sqlite:<path>` or `postgres:<connection string>`,
/// handed to each member as `--store <spec>`.
static MEMBER_ARGS: OnceLock<Vec<String>> = OnceLock::new();

/// The extra arguments of every member process (none without `--persist`).
pub(crate) fn member_args() -> &'static [String] {
    MEMBER_ARGS.get().map(Vec::as_slice).unwrap_or(&[])
}

/// The store of one demo run: a fresh SQLite file, or a throwaway
/// PostgreSQL server (started with the testkit) unless
/// `CLUSTER_DEMO_POSTGRES` names one.
pub(crate) struct Store {
    pub(crate) spec: String,
    pub(crate) description: String,
    sqlite_file: Option<PathBuf>,
    _postgres: Option<protoactor_testkit::postgres::PostgresServer>,
}

impl Store {
    pub(crate) async fn prepare(kind: Kind) -> Result<Store, String> {
        let store = match kind {
            Kind::Sqlite => {
                let path = std::env::temp_dir().join(format!("cluster-demo-{}.db", std::process::id()));
                let _ = std::fs::remove_file(&path);
                Store {
                    spec: format!("sqlite:{}", path.display()),
                    description: format!("SQLite file {} (shared by the member processes)", path.display()),
                    sqlite_file: Some(path),
                    _postgres: None,
                }
            }
            Kind::Postgres => match std::env::var("CLUSTER_DEMO_POSTGRES") {
                Ok(conn) => Store {
                    spec: format!("postgres:{conn}"),
                    description: "PostgreSQL from CLUSTER_DEMO_POSTGRES".into(),
                    sqlite_file: None,
                    _postgres: None,
                },
                Err(_) => {
                    let server = tokio::task::spawn_blocking(protoactor_testkit::postgres::PostgresServer::start)
                        .await
                        .map_err(|e| e.to_string())??;
                    Store {
                        spec: format!("postgres:{}", server.connection_string()),
                        description: format!("PostgreSQL started for this run on 127.0.0.1:{}", server.port()),
                        sqlite_file: None,
                        _postgres: Some(server),
                    }
                }
            },
        };
        // Opening it here creates the schema once, before the members race to.
        provider(&store.spec).await?;
        let _ = MEMBER_ARGS.set(vec!["--store".into(), store.spec.clone()]);
        Ok(store)
    }

    /// Reads every grain's journal back: the count it recovers to must equal
    /// the increments the client saw acknowledged. Returns the summary row
    /// and whether it passed.
    pub(crate) async fn verify(&self, acknowledged: &HashMap<String, u64>) -> (String, bool) {
        let provider = match provider(&self.spec).await {
            Ok(p) => p,
            Err(e) => return (format!("cannot open the store to check: {e}"), false),
        };
        let (mut equal, mut lost, mut extra, mut first_bad) = (0u64, 0u64, 0u64, None);
        for (identity, acked) in acknowledged {
            let recovered =
                match Journal::<Count>::recover(provider.clone(), journal_id(identity), SnapshotPolicy::none()).await {
                    Ok(j) => j.state().count,
                    Err(e) => return (format!("cannot recover {identity}: {e}"), false),
                };
            if recovered == *acked {
                equal += 1;
            } else {
                if recovered < *acked {
                    lost += 1
                } else {
                    extra += 1
                }
                first_bad.get_or_insert(format!("{identity}: {acked} acknowledged, {recovered} recovered"));
            }
        }
        let pass = lost == 0 && extra == 0;
        let mut row = format!("{equal} of {} grains recover exactly their acknowledged increments", acknowledged.len());
        if !pass {
            row.push_str(&format!("; {lost} lost some, {extra} counted more ({})", first_bad.unwrap_or_default()));
        }
        (row, pass)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

/// Opens the provider a `--store` spec names.
pub(crate) async fn provider(spec: &str) -> Result<Arc<dyn Provider>, String> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        Ok(Arc::new(SqliteProvider::open(path).await.map_err(|e| e.to_string())?))
    } else if let Some(conn) = spec.strip_prefix("postgres:") {
        Ok(Arc::new(PostgresProvider::connect(conn).await.map_err(|e| e.to_string())?))
    } else {
        Err(format!("--store `{spec}`: expected sqlite:<path> or postgres:<connection string>"))
    }
}

fn journal_id(identity: &str) -> String {
    format!("counter/{identity}")
}

/// Request ids a grain remembers, to answer a retried request again
/// without counting it twice.
const REMEMBERED: usize = 64;

/// A counter grain's persisted state.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct Count {
    count: u64,
    recent: VecDeque<u64>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Incremented {
    request: u64,
}

impl EventSourced for Count {
    type Event = Incremented;
    fn apply(&mut self, event: &Incremented) {
        self.count += 1;
        self.recent.push_back(event.request);
        if self.recent.len() > REMEMBERED {
            self.recent.pop_front();
        }
    }
}

/// The persisted counter grain.
pub(crate) struct PersistentCounter {
    provider: Arc<dyn Provider>,
    journal: Option<Journal<Count>>,
}

impl PersistentCounter {
    pub(crate) fn props(provider: Arc<dyn Provider>) -> Props {
        Props::from_producer(move || PersistentCounter { provider: provider.clone(), journal: None })
    }
}

impl Actor for PersistentCounter {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            let identity = ctx.cluster_identity().map(|i| i.identity.clone()).unwrap_or_default();
            // A snapshot every 100 increments and on passivation keeps recovery short.
            let policy = SnapshotPolicy::every(100).and_on_stop();
            self.journal = Some(Journal::recover_in(ctx, self.provider.clone(), journal_id(&identity), policy).await?);
        } else if let Some(Increment { request }) = ctx.message::<Increment>() {
            let request = *request;
            let journal = self.journal.as_mut().ok_or_else(|| ActorError::msg("counter not recovered"))?;
            if !journal.state().recent.contains(&request) {
                journal.persist(Incremented { request }).await?;
            }
            ctx.respond(CountReply { count: journal.state().count, member: ctx.system().address().to_string() });
        } else if ctx.message_is::<Stopping>()
            && let Some(journal) = self.journal.as_mut()
        {
            journal.on_stopping().await?;
        }
        Ok(())
    }
}
