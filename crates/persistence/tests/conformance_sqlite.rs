//! The provider conformance suite against SQLite, in memory and in a file.

use std::sync::Arc;

use protoactor_persistence::{Error, Provider, SqliteProvider};
use protoactor_testkit::service::temp_dir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_passes_the_conformance_suite() {
    let provider = SqliteProvider::open_in_memory().await.expect("open");
    protoactor_testkit::persistence::run_all(Arc::new(provider)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_passes_the_conformance_suite_and_keeps_data_across_reopen() {
    let dir = temp_dir("sqlite").expect("temp dir");
    let path = dir.join("journal.db");
    let provider = SqliteProvider::open(&path).await.expect("open");
    protoactor_testkit::persistence::run_all(Arc::new(provider.clone())).await;
    provider.append_events("kept", 0, vec![b"a".to_vec(), b"b".to_vec()]).await.expect("append");
    drop(provider);
    let reopened = SqliteProvider::open(&path).await.expect("reopen");
    assert_eq!(reopened.get_events("kept", 0).await.expect("read").len(), 2, "events survive a reopen");
    assert!(reopened.append_events("kept", 1, vec![b"x".to_vec()]).await.expect_err("stale").is_conflict());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_providers_on_one_file_conflict_instead_of_overwriting() {
    // Two members of one cluster sharing a database file.
    let dir = temp_dir("sqlite-shared").expect("temp dir");
    let path = dir.join("journal.db");
    let a = SqliteProvider::open(&path).await.expect("open a");
    let b = SqliteProvider::open(&path).await.expect("open b");
    a.append_events("grain", 0, vec![b"from a".to_vec()]).await.expect("a writes first");
    let err = b.append_events("grain", 0, vec![b"from b".to_vec()]).await.expect_err("b is stale");
    assert!(err.is_conflict(), "the second writer gets a conflict, got {err}");
    assert_eq!(b.get_events("grain", 0).await.expect("read")[0].payload, b"from a", "nothing overwritten");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_a_newer_schema_version() {
    let dir = temp_dir("sqlite-schema").expect("temp dir");
    let path = dir.join("journal.db");
    drop(SqliteProvider::open(&path).await.expect("create"));
    // Plays a future version of the crate that migrated the schema.
    let conn = rusqlite::Connection::open(&path).expect("open directly");
    conn.execute("UPDATE protoactor_schema SET version = 99", []).expect("bump the version");
    drop(conn);
    let err = SqliteProvider::open(&path).await.expect_err("newer schema");
    assert!(matches!(err, Error::SchemaVersion { found: 99, supported: 1 }), "got {err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_providers_open_one_new_file_at_once() {
    // Members starting together on one shared file: each sets it up (WAL,
    // schema) while the others do.
    for round in 0..10 {
        let dir = temp_dir("sqlite-together").expect("temp dir");
        let path = dir.join("journal.db");
        let opens = (0..8).map(|_| SqliteProvider::open(path.clone()));
        for (i, opened) in futures_util::future::join_all(opens).await.into_iter().enumerate() {
            opened.unwrap_or_else(|e| panic!("round {round}: open {i} failed: {e}"));
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
