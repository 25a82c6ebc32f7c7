//! The SQLite provider: the embedded default (SQLite is compiled in).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::Error;
use crate::provider::{Event, Provider, Snapshot};

/// The schema version this build writes and understands.
pub const SQLITE_SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS protoactor_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS protoactor_journals (
    actor_id TEXT PRIMARY KEY,
    next_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS protoactor_events (
    actor_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (actor_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS protoactor_snapshots (
    actor_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (actor_id, idx)
) WITHOUT ROWID;
";

/// Journals and snapshots in a SQLite database file. Several processes may
/// share one file (SQLite locks it); within a process, share one provider.
/// Writes are transactions in WAL mode, so a killed process loses nothing
/// it acknowledged and leaves nothing half-written.
///
/// ```
/// use protoactor_persistence::{Provider, SqliteProvider};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), protoactor_persistence::Error> {
/// let provider = SqliteProvider::open_in_memory().await?;
/// provider.append_events("a", 0, vec![b"x".to_vec()]).await?;
/// assert_eq!(provider.get_events("a", 0).await?[0].payload, b"x");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteProvider {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteProvider {
    /// Opens (creating if needed) the database at `path` and its schema.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        blocking(move || {
            let conn = Connection::open(&path)
                .map_err(|e| Error::Store(format!("cannot open SQLite database {}: {e}", path.display())))?;
            Self::init(conn)
        })
        .await
    }

    /// A private in-memory database (for tests).
    pub async fn open_in_memory() -> Result<Self, Error> {
        blocking(|| Self::init(Connection::open_in_memory().map_err(store)?)).await
    }

    fn init(mut conn: Connection) -> Result<Self, Error> {
        conn.busy_timeout(BUSY_WAIT).map_err(store)?;
        // WAL + NORMAL: a committed transaction survives the process being
        // killed; only an OS crash may lose the last ones.
        when_free(|| conn.pragma_update(None, "journal_mode", "WAL")).map_err(store)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(store)?;
        let found = when_free(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            let found: Option<i64> = tx.query_row("SELECT MAX(version) FROM protoactor_schema", [], |r| r.get(0))?;
            if found.is_none() {
                tx.execute("INSERT INTO protoactor_schema (version) VALUES (?1)", [SQLITE_SCHEMA_VERSION])?;
            }
            tx.commit()?;
            Ok(found)
        })
        .map_err(store)?;
        if let Some(v) = found.filter(|v| *v > SQLITE_SCHEMA_VERSION) {
            return Err(Error::SchemaVersion { found: v, supported: SQLITE_SCHEMA_VERSION });
        }
        Ok(SqliteProvider { conn: Arc::new(Mutex::new(conn)) })
    }

    fn run<'a, T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> BoxFuture<'a, Result<T, Error>> {
        let conn = self.conn.clone();
        blocking(move || f(&mut conn.lock())).boxed()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Store(format!("SQLite task failed: {e}")))?
}

/// How long a connection waits for another that holds the database.
const BUSY_WAIT: Duration = Duration::from_secs(10);

/// Runs `f` again while SQLite answers "database is locked", for up to
/// [`BUSY_WAIT`]. Switching a file to WAL, and a write transaction begun
/// while another connection sets up the same file, can fail at once without
/// consulting the busy timeout (SQLite's deadlock avoidance): members that
/// open one shared file together hit it.
fn when_free<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn store(e: rusqlite::Error) -> Error {
    Error::Store(format!("SQLite: {e}"))
}

fn index(i: i64) -> u64 {
    u64::try_from(i).unwrap_or(0)
}

fn db_index(i: u64) -> Result<i64, Error> {
    i64::try_from(i).map_err(|_| Error::InvalidArgument(format!("index {i} is larger than SQLite can store")))
}

impl Provider for SqliteProvider {
    fn get_events<'a>(&'a self, actor_id: &'a str, from: u64) -> BoxFuture<'a, Result<Vec<Event>, Error>> {
        let actor_id = actor_id.to_string();
        self.run(move |conn| {
            let from = db_index(from)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT idx, payload FROM protoactor_events WHERE actor_id = ?1 AND idx >= ?2 ORDER BY idx",
                )
                .map_err(store)?;
            let rows = stmt
                .query_map(params![actor_id, from], |r| Ok(Event { index: index(r.get(0)?), payload: r.get(1)? }))
                .map_err(store)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(store)
        })
    }

    fn get_snapshot<'a>(&'a self, actor_id: &'a str) -> BoxFuture<'a, Result<Option<Snapshot>, Error>> {
        let actor_id = actor_id.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT idx, payload FROM protoactor_snapshots WHERE actor_id = ?1 ORDER BY idx DESC LIMIT 1",
            )
            .map_err(store)?
            .query_row([actor_id], |r| Ok(Snapshot { index: index(r.get(0)?), payload: r.get(1)? }))
            .optional()
            .map_err(store)
        })
    }

    fn append_events<'a>(
        &'a self,
        actor_id: &'a str,
        expected_index: u64,
        payloads: Vec<Vec<u8>>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let actor_id = actor_id.to_string();
        self.run(move |conn| {
            if payloads.is_empty() {
                return Ok(());
            }
            let expected = db_index(expected_index)?;
            let next = db_index(expected_index + payloads.len() as u64)?;
            // IMMEDIATE takes the write lock first, so the check and the
            // inserts are one step for every process sharing the file.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(store)?;
            let current: i64 = tx
                .query_row("SELECT next_index FROM protoactor_journals WHERE actor_id = ?1", [&actor_id], |r| r.get(0))
                .optional()
                .map_err(store)?
                .unwrap_or(0);
            if current != expected {
                return Err(Error::Conflict { actor_id, index: expected_index });
            }
            tx.execute(
                "INSERT INTO protoactor_journals (actor_id, next_index) VALUES (?1, ?2)
                 ON CONFLICT (actor_id) DO UPDATE SET next_index = excluded.next_index",
                params![actor_id, next],
            )
            .map_err(store)?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO protoactor_events (actor_id, idx, payload) VALUES (?1, ?2, ?3)")
                    .map_err(store)?;
                for (i, payload) in payloads.iter().enumerate() {
                    match insert.execute(params![actor_id, expected + i as i64, payload]) {
                        Ok(_) => {}
                        // The unique key (actor id, index) is the last guard.
                        Err(rusqlite::Error::SqliteFailure(f, _))
                            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                        {
                            return Err(Error::Conflict { actor_id: actor_id.clone(), index: expected_index });
                        }
                        Err(e) => return Err(store(e)),
                    }
                }
            }
            tx.commit().map_err(store)
        })
    }

    fn save_snapshot<'a>(&'a self, actor_id: &'a str, snapshot: Snapshot) -> BoxFuture<'a, Result<(), Error>> {
        let actor_id = actor_id.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO protoactor_snapshots (actor_id, idx, payload) VALUES (?1, ?2, ?3)",
            )
            .map_err(store)?
            .execute(params![actor_id, db_index(snapshot.index)?, snapshot.payload])
            .map_err(store)?;
            Ok(())
        })
    }

    fn delete_events<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        let actor_id = actor_id.to_string();
        self.run(move |conn| {
            let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
            conn.prepare_cached("DELETE FROM protoactor_events WHERE actor_id = ?1 AND idx <= ?2")
                .map_err(store)?
                .execute(params![actor_id, up_to])
                .map_err(store)?;
            Ok(())
        })
    }

    fn delete_snapshots<'a>(&'a self, actor_id: &'a str, up_to: u64) -> BoxFuture<'a, Result<(), Error>> {
        let actor_id = actor_id.to_string();
        self.run(move |conn| {
            let up_to = i64::try_from(up_to).unwrap_or(i64::MAX);
            conn.prepare_cached("DELETE FROM protoactor_snapshots WHERE actor_id = ?1 AND idx <= ?2")
                .map_err(store)?
                .execute(params![actor_id, up_to])
                .map_err(store)?;
            Ok(())
        })
    }
}
