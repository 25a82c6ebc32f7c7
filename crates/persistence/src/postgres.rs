//! The PostgreSQL provider (tokio-postgres, no TLS).

use std::fmt;
use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt};
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::error::Error;
use crate::provider::{Event, Provider, Snapshot};

/// The schema version this build writes and understands.
pub const POSTGRES_SCHEMA_VERSION: i64 = 1;

// One transaction under an advisory lock, so members starting together do
// not race on CREATE TABLE.
const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(4242424242);
CREATE TABLE IF NOT EXISTS protoactor_schema (version BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS protoactor_journals (
    actor_id TEXT PRIMARY KEY,
    next_index BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS protoactor_events (
    actor_id TEXT NOT NULL,
    idx BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    PRIMARY KEY (actor_id, idx)
);
CREATE TABLE IF NOT EXISTS protoactor_snapshots (
    actor_id TEXT NOT NULL,
    idx BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    PRIMARY KEY (actor_id, idx)
);
INSERT INTO protoactor_schema (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM protoactor_schema);
COMMIT;
";

// One statement, so it is atomic without a transaction (and the client can
// pipeline it): move the journal's head from $2 to $3 (or create it when $2
// is 0), and insert the events only if the head moved. The primary key on
// (actor_id, idx) stays the last guard.
const APPEND: &str = "
WITH moved AS (
    UPDATE protoactor_journals SET next_index = $3 WHERE actor_id = $1 AND next_index = $2 RETURNING 1
), created AS (
    INSERT INTO protoactor_journals (actor_id, next_index) SELECT $1, $3 WHERE $2 = 0
    ON CONFLICT (actor_id) DO NOTHING RETURNING 1
), head AS (
    SELECT 1 FROM moved UNION ALL SELECT 1 FROM created
)
INSERT INTO protoactor_events (actor_id, idx, payload)
SELECT $1, $2 + t.i - 1, t.p FROM head, unnest($4::bytea[]) WITH ORDINALITY AS t(p, i)
";

/// Journals and snapshots in PostgreSQL. One connection, pipelined, made on
/// first use and again after it breaks (a restarted server costs the
/// requests in flight an [`Error::Store`], not the provider).
///
/// ```no_run
/// use protoactor_persistence::{PostgresProvider, Provider};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), protoactor_persistence::Error> {
/// let provider = PostgresProvider::new("host=127.0.0.1 port=5432 user=postgres dbname=postgres");
/// provider.append_events("a", 0, vec![b"x".to_vec()]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresProvider {
    config: Arc<str>,
    client: Arc<Mutex<Option<Arc<Client>>>>,
}

impl fmt::Debug for PostgresProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection string may hold a password.
        f.debug_struct("PostgresProvider").finish_non_exhaustive()
    }
}

impl PostgresProvider {
    /// A provider for the database at `config` (a libpq-style string,
    /// `host=... port=... user=... dbname=...`, or a `postgresql://` URL).
    /// Connects and creates the schema on first use.
    pub fn new(config: impl Into<String>) -> Self {
        PostgresProvider { config: config.into().into(), client: Arc::new(Mutex::new(None)) }
    }

    /// Like [`new`](Self::new), but connects (and checks the schema) now.
    pub async fn connect(config: impl Into<String>) -> Result<Self, Error> {
        let provider = Self::new(config);
        provider.client().await?;
        Ok(provider)
    }

    async fn client(&self) -> Result<Arc<Client>, Error> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        *slot = None;
        let (client, connection) = tokio_postgres::connect(&self.config, NoTls).await.map_err(store)?;
        let span = tracing::debug_span!("postgres connection");
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(parent: &span, error = %e, "PostgreSQL connection ended");
            }
        });
        client.batch_execute(SCHEMA).await.map_err(store)?;
        let version: i64 =
            client.query_one("SELECT MAX(version) FROM protoactor_schema", &[]).await.map_err(store)?.get(0);
        if version > POSTGRES_SCHEMA_VERSION {
            return Err(Error::SchemaVersion { found: version, supported: POSTGRES_SCHEMA_VERSION });
        }
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }
}

fn store(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::Store(format!("PostgreSQL: {} ({})", db.message(), db.code().code())),
        None => {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            Error::Store(format!("PostgreSQL: {e}{cause}"))
        }
    }
}

fn db_index(i: u64) -> Result<i64, Error> {
    i64::try_from(i).map_err(|_| Error::InvalidArgument(format!("index {i} is larger than PostgreSQL can store")))
}

impl Provider for PostgresProvider {
    fn get_events<'a>(&'a self, actor_id: &'a str, from: u64) -> BoxFuture<'a, Result<Vec<Event>, Error>> {
        async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT idx, payload FROM protoactor_events WHERE actor_id = $1 AND idx >= $2 ORDER BY idx",
                    &[&actor_id, &db_index(from)?],
                )
                .await
                .map_err(store)?;
            Ok(rows
                .iter()
                .map(|r| Event { index: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), payload: r.get(1) })
                .collect())
        }
        .boxed()
    }

    fn get_snapshot<'a>(&'a self, actor_id: &'a str) -> BoxFuture<'a, Result<Option<Snapshot>, Error>> {
        async move {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT idx, payload FROM protoactor_snapshots WHERE actor_id = $1 ORDER BY idx DESC LIMIT 1",
                    &[&actor_id],
                )
                .await
                .map_err(store)?;
            Ok(row.map(|r| Snapshot { index: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0), payload: r.get(1) }))
        }
        .boxed()
    }

    fn append_events<'a>(
        &'a self,
        actor_id: &'a str,
        expected_index: u64,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            if payloads.is_empty() {
                return Ok(());
            }
            let expected = db_index(expected_index)?;
            let next = db_index(expected_index + payloads.len() as u64)?;
            let client = self.client().await?;
            let conflict = || Error::Conflict { actor_id: actor_id.to_string(), index: expected_index };
            match client.execute(APPEND, &[&actor_id, &expected, &next, &payloads]).await {
                Ok(0) => Err(conflict()),
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Err(conflict()),
                Err(e) => Err(store(e)),
            }
        }
        .boxed()
    }

    fn save_snapshot<'a>(&'a self, actor_id: &'a str, snapshot: Snapshot) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO protoactor_snapshots (actor_id, idx, payload) VALUES ($1, $2, $3)
                     ON CONFLICT (actor_id, idx) DO UPDATE SET payload = EXCLUDED.payload",
                    &[&actor_id, &db_index(snapshot.index)?, &snapshot.payload],
                )
                .await
                .map_err(store)?;
            Ok(())
        }
        .boxed()
    }

    fn delete_events<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let client = self.client().await?;
            let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
            client
                .execute("DELETE FROM protoactor_events WHERE actor_id = $1 AND idx <= $2", &[&actor_id, &up_to])
                .await
                .map_err(store)?;
            Ok(())
        }
        .boxed()
    }

    fn delete_snapshots<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let client = self.client().await?;
            let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
            client
                .execute("DELETE FROM protoactor_snapshots WHERE actor_id = $1 AND idx <= $2", &[&actor_id, &up_to])
                .await
                .map_err(store)?;
            Ok(())
        }
        .boxed()
    }
}
