//! The conformance suite every persistence provider runs (feature
//! `persistence`): one call, [`run_all`], from a provider crate's tests.
//!
//! Each check uses its own actor ids (with a random prefix), so the suite
//! can run against a database that other tests use too.

use std::sync::Arc;

use protoactor_persistence::{Error, EventSourced, Journal, PersistentState, Provider, Snapshot, SnapshotPolicy};
use serde::{Deserialize, Serialize};

/// Runs every check against `provider`, panicking with a message naming
/// the first one that fails.
pub async fn run_all(provider: Arc<dyn Provider>) {
    let prefix = format!("conf-{:08x}", fastrand::u32(..));
    ordering(&provider, &prefix).await;
    conditional_append(&provider, &prefix).await;
    snapshot_and_tail_recovery(&provider, &prefix).await;
    deletes(&provider, &prefix).await;
    large_events(&provider, &prefix).await;
    concurrent_actors(&provider, &prefix).await;
    racing_writers(&provider, &prefix).await;
    plain_state(&provider, &prefix).await;
}

fn payload(i: u64) -> Vec<u8> {
    format!("event-{i}").into_bytes()
}

/// Events come back in index order, from any start index, per actor.
pub async fn ordering(provider: &Arc<dyn Provider>, prefix: &str) {
    let a = format!("{prefix}-ordering-a");
    let b = format!("{prefix}-ordering-b");
    assert!(provider.get_events(&a, 0).await.expect("read").is_empty(), "ordering: a new journal is empty");
    assert!(provider.get_snapshot(&a).await.expect("read").is_none(), "ordering: a new journal has no snapshot");
    let mut next = 0;
    for batch in [1u64, 3, 1, 5] {
        let payloads = (next..next + batch).map(payload).collect();
        provider.append_events(&a, next, payloads).await.expect("ordering: append at the expected index");
        next += batch;
    }
    provider.append_events(&b, 0, vec![b"other".to_vec()]).await.expect("ordering: append to b");
    let events = provider.get_events(&a, 0).await.expect("read");
    let indexes: Vec<u64> = events.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (0..next).collect::<Vec<_>>(), "ordering: indexes 0.. in order, no other actor's events");
    for e in &events {
        assert_eq!(e.payload, payload(e.index), "ordering: payload of event {}", e.index);
    }
    let tail = provider.get_events(&a, 7).await.expect("read");
    assert_eq!(tail.iter().map(|e| e.index).collect::<Vec<_>>(), vec![7, 8, 9], "ordering: read from index 7");
    assert!(provider.get_events(&a, next).await.expect("read").is_empty(), "ordering: read past the end");
}

/// An append at a taken (or skipped) index is a conflict and writes nothing.
pub async fn conditional_append(provider: &Arc<dyn Provider>, prefix: &str) {
    let a = format!("{prefix}-conflict");
    provider.append_events(&a, 0, vec![payload(0), payload(1)]).await.expect("conflict: first append");
    for (expected, what) in [(0, "taken index"), (1, "index inside the last append"), (5, "index past the end")] {
        let err = provider
            .append_events(&a, expected, vec![b"intruder".to_vec(), b"intruder".to_vec()])
            .await
            .expect_err(what);
        assert!(matches!(err, Error::Conflict { .. }), "conflict: {what} gives Conflict, got {err}");
    }
    let events = provider.get_events(&a, 0).await.expect("read");
    assert_eq!(events.len(), 2, "conflict: nothing written by the failed appends");
    assert!(events.iter().all(|e| e.payload != b"intruder"), "conflict: nothing overwritten");
    provider.append_events(&a, 2, vec![payload(2)]).await.expect("conflict: the right index still works");
    // Deleting events does not free their indexes for a stale writer.
    provider.delete_events(&a, 2).await.expect("delete");
    let err = provider.append_events(&a, 1, vec![b"stale".to_vec()]).await.expect_err("stale writer after delete");
    assert!(err.is_conflict(), "conflict: a stale writer cannot refill deleted indexes, got {err}");
    assert!(provider.get_events(&a, 0).await.expect("read").is_empty(), "conflict: no stale event stored");
    provider.append_events(&a, 3, vec![payload(3)]).await.expect("conflict: next index after delete");
}

#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Sum {
    total: u64,
    applied: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Add(u64);

impl EventSourced for Sum {
    type Event = Add;
    fn apply(&mut self, event: &Add) {
        self.total += event.0;
        self.applied += 1;
    }
}

/// Recovery loads the newest snapshot and applies only the events after it.
pub async fn snapshot_and_tail_recovery(provider: &Arc<dyn Provider>, prefix: &str) {
    let id = format!("{prefix}-recovery");
    let mut journal = Journal::<Sum>::recover(provider.clone(), id.clone(), SnapshotPolicy::every(10))
        .await
        .expect("recovery: empty journal");
    for i in 1..=25 {
        journal.persist(Add(i)).await.expect("recovery: persist");
    }
    let snapshot = provider.get_snapshot(&id).await.expect("read").expect("recovery: a snapshot every 10 events");
    assert_eq!(snapshot.index, 20, "recovery: the newest snapshot covers events 0..20");
    // Drop the events the snapshot covers: recovery must come from it.
    provider.delete_events(&id, 19).await.expect("recovery: delete covered events");
    let recovered =
        Journal::<Sum>::recover(provider.clone(), id.clone(), SnapshotPolicy::none()).await.expect("recovery: recover");
    assert_eq!(recovered.state().total, (1..=25).sum::<u64>(), "recovery: snapshot + tail gives the full state");
    assert_eq!(recovered.next_index(), 25, "recovery: next index after the tail");
    assert_eq!(recovered.state().applied, 25, "recovery: each event applied exactly once");

    // A snapshot alone (no tail) and a journal alone (no snapshot) recover too.
    let only = format!("{prefix}-recovery-only-snapshot");
    let state = serde_json::to_vec(&Sum { total: 7, applied: 3 }).expect("encode");
    provider.save_snapshot(&only, Snapshot { index: 3, payload: state }).await.expect("save snapshot");
    let recovered = Journal::<Sum>::recover(provider.clone(), only, SnapshotPolicy::none()).await.expect("recover");
    assert_eq!((recovered.state().total, recovered.next_index()), (7, 3), "recovery: snapshot without events");
}

/// Deletes are inclusive, per actor, and leave later items alone.
pub async fn deletes(provider: &Arc<dyn Provider>, prefix: &str) {
    let a = format!("{prefix}-delete-a");
    let b = format!("{prefix}-delete-b");
    provider.append_events(&a, 0, (0..10).map(payload).collect()).await.expect("append");
    provider.append_events(&b, 0, (0..10).map(payload).collect()).await.expect("append");
    for index in [2, 5, 8] {
        provider.save_snapshot(&a, Snapshot { index, payload: payload(index) }).await.expect("save snapshot");
    }
    provider.delete_events(&a, 4).await.expect("delete events");
    provider.delete_events(&a, 4).await.expect("delete events again (idempotent)");
    let left: Vec<u64> = provider.get_events(&a, 0).await.expect("read").iter().map(|e| e.index).collect();
    assert_eq!(left, vec![5, 6, 7, 8, 9], "deletes: events up to 4 inclusive are gone");
    assert_eq!(provider.get_events(&b, 0).await.expect("read").len(), 10, "deletes: other actors untouched");
    provider.delete_snapshots(&a, 5).await.expect("delete snapshots");
    let newest = provider.get_snapshot(&a).await.expect("read").expect("deletes: snapshot 8 is left");
    assert_eq!(newest, Snapshot { index: 8, payload: payload(8) }, "deletes: the newest snapshot survives");
    provider.delete_snapshots(&a, 8).await.expect("delete snapshots");
    assert!(provider.get_snapshot(&a).await.expect("read").is_none(), "deletes: all snapshots gone");
}

/// 1 MiB events and snapshots round-trip byte for byte.
pub async fn large_events(provider: &Arc<dyn Provider>, prefix: &str) {
    let a = format!("{prefix}-large");
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    provider.append_events(&a, 0, vec![big.clone(), big.clone()]).await.expect("large: append 2 x 1 MiB");
    provider.save_snapshot(&a, Snapshot { index: 2, payload: big.clone() }).await.expect("large: 1 MiB snapshot");
    let events = provider.get_events(&a, 0).await.expect("read");
    assert_eq!(events.len(), 2, "large: both events stored");
    assert!(events.iter().all(|e| e.payload == big), "large: events intact");
    assert!(provider.get_snapshot(&a).await.expect("read").is_some_and(|s| s.payload == big), "large: snapshot intact");
}

/// Many journals written at once do not interfere.
pub async fn concurrent_actors(provider: &Arc<dyn Provider>, prefix: &str) {
    const ACTORS: u64 = 16;
    const EVENTS: u64 = 40;
    let mut tasks = Vec::new();
    for actor in 0..ACTORS {
        let provider = provider.clone();
        let id = format!("{prefix}-concurrent-{actor}");
        tasks.push(tokio::spawn(async move {
            let mut journal =
                Journal::<Sum>::recover(provider, id, SnapshotPolicy::every(7)).await.expect("concurrent: recover");
            for i in 0..EVENTS {
                journal.persist(Add(actor * 1000 + i)).await.expect("concurrent: persist");
            }
        }));
    }
    for task in tasks {
        task.await.expect("concurrent: task");
    }
    for actor in 0..ACTORS {
        let id = format!("{prefix}-concurrent-{actor}");
        let events = provider.get_events(&id, 0).await.expect("read");
        assert_eq!(events.len() as u64, EVENTS, "concurrent: all events of actor {actor}");
        for (i, e) in events.iter().enumerate() {
            let Add(v) = serde_json::from_slice(&e.payload).expect("decode");
            assert_eq!(v, actor * 1000 + i as u64, "concurrent: actor {actor} event {i} in order, its own");
        }
        let recovered = Journal::<Sum>::recover(provider.clone(), id, SnapshotPolicy::none()).await.expect("recover");
        assert_eq!(recovered.state().applied, EVENTS, "concurrent: actor {actor} recovers all events");
    }
}

/// Writers racing for the same index: exactly one wins, the rest conflict.
pub async fn racing_writers(provider: &Arc<dyn Provider>, prefix: &str) {
    let id = format!("{prefix}-race");
    provider.append_events(&id, 0, vec![payload(0)]).await.expect("race: first event");
    let mut tasks = Vec::new();
    for writer in 0..8u8 {
        let provider = provider.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move { provider.append_events(&id, 1, vec![vec![writer; 16]]).await }));
    }
    let mut winners = Vec::new();
    for (writer, task) in tasks.into_iter().enumerate() {
        match task.await.expect("race: task") {
            Ok(()) => winners.push(writer as u8),
            Err(e) => assert!(e.is_conflict(), "race: a loser gets Conflict, got {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "race: exactly one writer wins");
    let events = provider.get_events(&id, 0).await.expect("read");
    assert_eq!(events.len(), 2, "race: one event at index 1");
    assert_eq!(events[1].payload, vec![winners[0]; 16], "race: the winner's event is the stored one");
}

/// Plain state: load, save, load again; a stale copy cannot overwrite.
pub async fn plain_state(provider: &Arc<dyn Provider>, prefix: &str) {
    let id = format!("{prefix}-state");
    let mut first = PersistentState::<Vec<u32>>::load(provider.clone(), &id).await.expect("state: load empty");
    assert!(first.get().is_empty(), "state: default when nothing saved");
    let mut stale = PersistentState::<Vec<u32>>::load(provider.clone(), &id).await.expect("state: second load");
    for i in 0..5 {
        first.update(|v| v.push(i)).await.expect("state: save");
    }
    let again = PersistentState::<Vec<u32>>::load(provider.clone(), &id).await.expect("state: reload");
    assert_eq!(again.get(), &vec![0, 1, 2, 3, 4], "state: the last saved value loads");
    let err = stale.set(vec![99]).await.expect_err("state: stale save");
    assert!(err.is_conflict(), "state: a stale copy gets Conflict, got {err}");
    let again = PersistentState::<Vec<u32>>::load(provider.clone(), &id).await.expect("state: reload");
    assert_eq!(again.get(), &vec![0, 1, 2, 3, 4], "state: the stale save overwrote nothing");
}
