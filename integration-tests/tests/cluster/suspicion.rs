//! Fast failure suspicion. A member process killed with SIGKILL refuses
//! connections: the survivors suspect it, agree by gossip and block it, and a
//! client follows, while the provider still lists it (it never notices a
//! crash here). A live member that one member suspects is not removed.
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protoactor_cluster::gossip::keys;
use protoactor_cluster::proto::MemberSuspicions;
use protoactor_cluster::{Cluster, ClusterTopology, SuspicionEvent};
use protoactor_integration_tests::churn::dir_provider::{DirProvider, read_members_checked};
use protoactor_integration_tests::churn::{config_with, identities, request_all, sample, shutdown_all};
use protoactor_integration_tests::member_process::{MemberProcess, Via};
use protoactor_integration_tests::*;
use protoactor_remote::EndpointUnreachable;
use tokio::sync::mpsc;

/// Far longer than suspicion needs; only a broken detector gets near it.
const DEADLINE: Duration = Duration::from_secs(20);
const HANG: Duration = Duration::from_secs(20);

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("protoactor-suspicion-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary member directory");
    dir
}

/// Every suspicion event published on `cluster`'s event stream.
fn suspicion_events(cluster: &Cluster) -> (protoactor_actor::Subscription, mpsc::UnboundedReceiver<SuspicionEvent>) {
    cluster.system().event_stream().subscribe_channel::<SuspicionEvent>()
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut all = Vec::new();
    while let Ok(e) = rx.try_recv() {
        all.push(e);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_process_is_removed_by_suspicion_while_the_provider_still_lists_it() {
    init_tracing();
    let dir = temp_dir();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    // The provider never drops a dead process, and the heartbeat expiry is
    // off: only suspicion can remove the killed member.
    let config = |kinds: &[protoactor_cluster::Kind]| {
        config_with(DirProvider::new(&dir).without_liveness_check(), kinds).with_heartbeat_expiration(None)
    };
    let mut victim = MemberProcess::start(env!("CARGO_BIN_EXE_cluster_member"), Via::Dir(&dir), 1).await;
    let a = start_member(config(&kinds)).await;
    let b = start_member(config(&kinds)).await;
    let client = start_client(config(&[])).await;
    assert!(wait_members(&[&a, &b, &client], 3).await, "everyone sees the three members");

    // The client talks to every member (grains live on all three).
    let ids = identities("suspect", 60);
    let warm = request_all(&client, "echo", &ids, 20, HANG).await;
    assert!(warm.errors.is_empty() && warm.hung.is_empty(), "activation: {}", sample(&warm.errors));
    assert!(warm.last.values().any(|p| p.address == victim.address), "the victim hosts grains");

    let (_sa, mut a_events) = suspicion_events(&a);
    let (_sb, mut b_events) = suspicion_events(&b);
    let (_sc, mut client_events) = suspicion_events(&client);
    let mut a_topology = a.member_list().events();
    victim.kill().await;

    let gone = |c: &Cluster| !c.member_list().contains(&victim.id) && c.member_list().is_blocked(&victim.id);
    assert!(
        wait_until(DEADLINE, || gone(&a) && gone(&b) && gone(&client)).await,
        "the killed member is blocked by both survivors and the client within {DEADLINE:?}"
    );
    let listed = read_members_checked(&dir, false).expect("the member directory is readable");
    assert!(
        listed.iter().any(|m| m.id == victim.id),
        "the provider still lists the killed member: only suspicion removed it"
    );

    // Both survivors voted; one or both counted the votes and blocked it
    // (the other may have adopted the block by gossip first).
    let survivors = {
        let mut ids = vec![a.id().to_string(), b.id().to_string()];
        ids.sort();
        ids
    };
    let a_seen = drain(&mut a_events);
    let b_seen = drain(&mut b_events);
    for (who, seen) in [("a", &a_seen), ("b", &b_seen)] {
        assert!(
            seen.iter().any(|e| matches!(e, SuspicionEvent::Suspected { member, .. } if *member == victim.id)),
            "survivor {who} suspected the victim itself: {seen:?}"
        );
    }
    let confirmations: Vec<&Vec<String>> = a_seen
        .iter()
        .chain(&b_seen)
        .filter_map(|e| match e {
            SuspicionEvent::Confirmed { member, voters } if *member == victim.id => Some(voters),
            _ => None,
        })
        .collect();
    assert!(!confirmations.is_empty(), "a survivor confirmed the suspicion: {a_seen:?} {b_seen:?}");
    assert!(confirmations.iter().all(|v| **v == survivors), "both survivors' votes counted: {confirmations:?}");
    let client_seen = drain(&mut client_events);
    assert!(
        !client_seen.iter().any(|e| matches!(e, SuspicionEvent::Confirmed { .. })),
        "a client never confirms (it does not vote): {client_seen:?}"
    );

    // Survivor a's topology events: the victim left as a blocked member.
    let mut left_blocked = false;
    while let Ok(ClusterTopology { left, blocked, .. }) = a_topology.try_recv() {
        left_blocked |= left.iter().any(|m| m.id == victim.id) && blocked.contains(&victim.id);
    }
    assert!(left_blocked, "survivor a saw the victim leave, blocked");

    // Its grains answer again from the survivors.
    let live = [a.address().to_string(), b.address().to_string()];
    let after = request_all(&client, "echo", &ids, 20, HANG).await;
    assert!(after.errors.is_empty() && after.hung.is_empty(), "after the block: {}", sample(&after.errors));
    assert!(after.last.values().all(|p| live.contains(&p.address)), "every grain lives on a survivor");

    shutdown_all([client, a, b]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_member_that_one_member_suspects_is_not_removed() {
    init_tracing();
    let agent = protoactor_cluster::InMemoryAgent::new();
    let activations = Arc::new(Activations::default());
    let kinds = [echo_kind("echo", &activations)];
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(start_member(test_config(&agent, &kinds).with_heartbeat_expiration(None)).await);
    }
    let refs: Vec<&Cluster> = members.iter().collect();
    assert!(wait_members(&refs, 3).await, "three members");
    let (a, b, x) = (&members[0], &members[1], &members[2]);
    let mut topology_events: Vec<_> = members.iter().map(|m| m.member_list().events()).collect();
    let (_sa, mut a_events) = suspicion_events(a);
    let (_sb, mut b_events) = suspicion_events(b);

    // Member a "sees" x's address refuse connections, again and again,
    // while x is alive and b and x reach each other.
    let injecting = {
        let (system, address) = (a.system().clone(), x.address().to_string());
        tokio::spawn(async move {
            loop {
                system
                    .event_stream()
                    .publish(EndpointUnreachable { address: address.clone(), reason: "injected".into() });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let a_votes_for_x_at_b = || {
        b.gossip()
            .get_state::<MemberSuspicions>(keys::SUSPECTS)
            .get(a.id())
            .is_some_and(|v| v.member_ids.iter().any(|id| id == x.id()))
    };
    let mut b_seen = Vec::new();
    let mut a_seen = Vec::new();
    let b_probed_x = wait_until(DEADLINE, || {
        b_seen.extend(drain(&mut b_events));
        a_seen.extend(drain(&mut a_events));
        let probed = b_seen.iter().any(|e| matches!(e, SuspicionEvent::ProbeAnswered { member } if member == x.id()));
        (probed && a_votes_for_x_at_b()) || members.iter().any(|m| m.member_list().is_blocked(x.id()))
    })
    .await;
    injecting.abort();
    for m in &members {
        assert!(!m.member_list().is_blocked(x.id()), "one member's suspicion removed the live member x");
    }
    assert!(
        a_seen.iter().any(|e| matches!(e, SuspicionEvent::Suspected { member, .. } if member == x.id())),
        "a suspected x: {a_seen:?}"
    );
    assert!(b_probed_x, "b saw a's vote against x and probed x, which answered: {b_seen:?}");
    // With the injection over, a's own probes find x alive: the vote goes.
    assert!(wait_until(DEADLINE, || !a_votes_for_x_at_b()).await, "a withdrew its vote and b learnt it");

    for (m, events) in members.iter().zip(&mut topology_events) {
        assert!(m.member_list().contains(x.id()) && !m.member_list().is_blocked(x.id()), "x is still a member");
        for e in drain(events) {
            assert!(
                !e.left.iter().any(|l| l.id == x.id()) && !e.blocked.iter().any(|id| id == x.id()),
                "x was never removed nor blocked: {e:?}"
            );
        }
    }
    for e in a_seen.iter().chain(&b_seen).chain(&drain(&mut a_events)).chain(&drain(&mut b_events)) {
        assert!(!matches!(e, SuspicionEvent::Confirmed { .. }), "one member's view confirmed nothing: {e:?}");
    }
    // x keeps serving.
    let pongs = request_all(a, "echo", &identities("alive", 30), 10, HANG).await;
    assert!(pongs.errors.is_empty() && pongs.hung.is_empty(), "{}", sample(&pongs.errors));
    assert!(pongs.last.values().any(|p| p.address == x.address().to_string()), "x still hosts grains");
    shutdown_all(members).await;
}
