//! The provider conformance suite against a real PostgreSQL started by the
//! testkit, plus what only a server can show: a restart under load, and
//! racing activations from separate connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use protoactor_persistence::{Error, EventSourced, Journal, PostgresProvider, Provider, SnapshotPolicy};
use protoactor_testkit::postgres::PostgresServer;
use serde::{Deserialize, Serialize};

fn server() -> PostgresServer {
    PostgresServer::start().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    let pg = server();
    let provider = PostgresProvider::connect(pg.connection_string()).await.expect("connect");
    protoactor_testkit::persistence::run_all(Arc::new(provider)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_racing_on_one_journal_exactly_one_wins() {
    let pg = server();
    // Separate providers = separate connections, as two members would have.
    let providers: Vec<PostgresProvider> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(PostgresProvider::connect(pg.connection_string()).await.expect("connect"));
        }
        v
    };
    for round in 0..20u64 {
        let id = format!("race-{round}");
        let tasks: Vec<_> = providers
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (p, id) = (p.clone(), id.clone());
                tokio::spawn(async move { p.append_events(&id, 0, vec![vec![i as u8]]).await })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(()) => wins += 1,
                Err(e) => assert!(e.is_conflict(), "round {round}: a loser gets Conflict, got {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one first append wins");
        assert_eq!(providers[0].get_events(&id, 0).await.expect("read").len(), 1, "round {round}: one event stored");
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Count(u64);

#[derive(Serialize, Deserialize)]
struct Inc;

impl EventSourced for Count {
    type Event = Inc;
    fn apply(&mut self, _: &Inc) {
        self.0 += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restart_under_load_loses_no_acknowledged_event_and_the_provider_reconnects() {
    let mut pg = server();
    // (restarted on a blocking thread below, handed back)
    let provider: Arc<dyn Provider> =
        Arc::new(PostgresProvider::connect(pg.connection_string()).await.expect("connect"));
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (provider, stop, acknowledged, failures) =
            (provider.clone(), stop.clone(), acknowledged.clone(), failures.clone());
        writers.push(tokio::spawn(async move {
            let id = format!("load-{w}");
            let mut acked = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // An actor whose write failed is restarted by its supervisor:
                // it recovers from the store and carries on.
                let mut journal =
                    match Journal::<Count>::recover(provider.clone(), id.clone(), SnapshotPolicy::every(50)).await {
                        Ok(j) => j,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    };
                assert!(
                    journal.state().0 >= acked,
                    "writer {w}: recovered {} < acknowledged {acked}",
                    journal.state().0
                );
                while !stop.load(Ordering::Relaxed) {
                    match journal.persist(Inc).await {
                        Ok(()) => {
                            acked += 1;
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            assert!(matches!(e, Error::Store(_)), "writer {w}: a store failure, got {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
            acked
        }));
    }
    let wait_for = |target: u64| {
        let acknowledged = acknowledged.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acknowledged.load(Ordering::Relaxed) < target {
                assert!(Instant::now() < deadline, "writes did not reach {target}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(200).await;
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart().expect("restart postgres");
        pg
    })
    .await
    .expect("restart task");
    let after_restart = acknowledged.load(Ordering::Relaxed);
    wait_for(after_restart + 200).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.push(w.await.expect("writer"));
    }
    assert!(failures.load(Ordering::Relaxed) > 0, "the restart was seen by the writers");
    for (w, acked) in acked.into_iter().enumerate() {
        let recovered = Journal::<Count>::recover(provider.clone(), format!("load-{w}"), SnapshotPolicy::none())
            .await
            .expect("recover after the load");
        // An unacknowledged write may have landed too (its answer was lost).
        assert!(recovered.state().0 >= acked, "writer {w}: recovered {} < acknowledged {acked}", recovered.state().0);
        assert!(recovered.state().0 <= acked + 1, "writer {w}: at most the one unanswered write extra");
    }
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_newer_schema_version() {
    let pg = server();
    let provider = PostgresProvider::connect(pg.connection_string()).await.expect("connect");
    let (client, conn) = tokio_postgres_connect(&pg).await;
    client.batch_execute("UPDATE protoactor_schema SET version = 99").await.expect("bump");
    drop(client);
    conn.abort();
    drop(provider);
    let err = PostgresProvider::connect(pg.connection_string()).await.expect_err("newer schema");
    assert!(matches!(err, Error::SchemaVersion { found: 99, supported: 1 }), "got {err}");
}

async fn tokio_postgres_connect(pg: &PostgresServer) -> (tokio_postgres::Client, tokio::task::JoinHandle<()>) {
    let (client, connection) =
        tokio_postgres::connect(&pg.connection_string(), tokio_postgres::NoTls).await.expect("connect directly");
    (
        client,
        tokio::spawn(async move {
            let _ = connection.await;
        }),
    )
}
