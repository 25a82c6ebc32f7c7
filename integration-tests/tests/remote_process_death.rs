//! Peers in separate OS processes (`remote-test-peer`): kill -9 one while
//! requests are in flight, then restart it at the same port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use protoactor_actor::TerminatedReason;
use protoactor_actor::prelude::*;
use protoactor_remote::{EndpointTerminated, EndpointUnreachable, Remote, RemoteConfig};
use tokio::sync::mpsc;
use tokio::time::timeout;

use protoactor_integration_tests::peer_protocol::{self, Ping, Pong};

const PEER_BINARY: &str = env!("CARGO_BIN_EXE_remote-test-peer");

/// A `remote-test-peer` process, killed on drop so a failing test leaves none behind.
struct Peer {
    child: Child,
    address: String,
}

impl Peer {
    /// Starts a peer on `port` (0: any free port) and waits for its `READY` line.
    async fn start(port: u16) -> Peer {
        let mut child = Command::new(PEER_BINARY)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start remote-test-peer");
        let address = peer_protocol::wait_ready(&mut child).await.expect("the peer is ready");
        Peer { child, address }
    }

    fn port(&self) -> u16 {
        let (_, port) = self.address.rsplit_once(':').expect("address is host:port");
        port.parse().expect("numeric port")
    }

    /// kill -9, and reap it.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the peer");
        self.child.wait().expect("reap the peer");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client side: gives up on a dead address after two failed reconnects,
/// and blocks it only briefly so a restarted peer is reached soon.
async fn client() -> (ActorSystem, Remote) {
    let system = ActorSystem::new();
    let config = peer_protocol::register(RemoteConfig::bind("127.0.0.1", 0))
        .with_retries(2, Duration::from_millis(100))
        .with_terminated_address_block(Duration::from_millis(200));
    let remote = Remote::new(&system, config);
    remote.start().await.expect("start the client's remoting");
    (system, remote)
}

async fn stop_client(system: ActorSystem, remote: Remote) {
    timeout(Duration::from_secs(15), remote.shutdown(true)).await.expect("remoting shuts down");
    timeout(Duration::from_secs(15), system.shutdown()).await.expect("the system shuts down");
}

/// Asks a watcher whether it has watched its target (it does so on `Started`).
#[derive(Debug, Clone, Copy)]
struct Watching;

/// Watches `target` and reports every `Terminated` it gets.
fn watcher(target: Pid, events: mpsc::UnboundedSender<Terminated>) -> Props {
    Props::from_fn(move |ctx| {
        if ctx.message_is::<Started>() {
            ctx.watch(&target);
        } else if let Some(t) = ctx.message::<Terminated>() {
            let _ = events.send(t.clone());
        } else if ctx.message_is::<Watching>() {
            ctx.respond(Watching);
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_peer_fails_pending_requests_and_tells_watchers() {
    let mut peer = Peer::start(0).await;
    let (system, remote) = client().await;
    let root = system.root();
    let (_subscription, mut endpoint_terminated) = system.event_stream().subscribe_channel::<EndpointTerminated>();
    let echo = Pid::new(peer.address.as_str(), "echo");

    let pong: Pong =
        root.request_future(&echo, Ping { n: 0, delay_ms: 0 }, Duration::from_secs(10)).await.expect("peer answers");
    assert_eq!(pong, Pong(0));

    let (watch_tx, mut watch_events) = mpsc::unbounded_channel();
    let watcher = root.spawn(watcher(echo.clone(), watch_tx));
    root.request_future::<Watching, _>(&watcher, Watching, Duration::from_secs(5)).await.expect("watcher started");

    // Answered after 20 s, long after the kill below: none of them can succeed.
    let timeout_each = Duration::from_secs(30);
    let pending: Vec<_> =
        (1..=200).map(|n| root.request_future::<Pong, _>(&echo, Ping { n, delay_ms: 20_000 }, timeout_each)).collect();
    // The echo takes messages in order, so this answer means all 200 are in flight at the peer.
    let pong: Pong = root
        .request_future(&echo, Ping { n: 1_000, delay_ms: 0 }, Duration::from_secs(10))
        .await
        .expect("peer answers a fast ping behind the slow ones");
    assert_eq!(pong, Pong(1_000));

    peer.kill();
    let killed = Instant::now();

    let results = timeout(Duration::from_secs(10), join_all(pending))
        .await
        .expect("every pending request fails within 10 s, far below its 30 s timeout");
    let failed_after = killed.elapsed();
    for (i, result) in results.iter().enumerate() {
        assert!(
            matches!(
                result,
                Err(Error::DeliveryFailed { kind: protoactor_actor::DeliveryFailureKind::EndpointGone, .. })
            ),
            "request {}: {result:?}",
            i + 1
        );
    }
    eprintln!("200 pending requests failed {failed_after:?} after the kill");

    let terminated = timeout(Duration::from_secs(10), watch_events.recv())
        .await
        .expect("the watcher is told within 10 s")
        .expect("the watcher is alive");
    assert_eq!(terminated.who, echo);
    assert_eq!(terminated.why, TerminatedReason::AddressTerminated);

    let event = timeout(Duration::from_secs(10), endpoint_terminated.recv())
        .await
        .expect("EndpointTerminated is published within 10 s")
        .expect("subscription open");
    assert_eq!(event.address, peer.address);

    // With the peer still gone, a new request fails fast too (blocked address,
    // or a fresh endpoint that gives up after its retries), not by timeout:
    // DeadLetter, where a timeout would be Error::Timeout.
    let late = root.request_future::<Pong, _>(&echo, Ping { n: 2_000, delay_ms: 0 }, timeout_each).await;
    assert!(
        matches!(late, Err(Error::DeliveryFailed { kind: protoactor_actor::DeliveryFailureKind::EndpointGone, .. })),
        "{late:?}"
    );

    stop_client(system, remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_peer_at_the_same_port_is_reconnected() {
    let mut peer = Peer::start(0).await;
    let (system, remote) = client().await;
    let root = system.root();
    let (_subscription, mut endpoint_terminated) = system.event_stream().subscribe_channel::<EndpointTerminated>();
    let echo = Pid::new(peer.address.as_str(), "echo");

    let pong: Pong =
        root.request_future(&echo, Ping { n: 1, delay_ms: 0 }, Duration::from_secs(10)).await.expect("peer answers");
    assert_eq!(pong, Pong(1));

    peer.kill();
    let event = timeout(Duration::from_secs(10), endpoint_terminated.recv())
        .await
        .expect("EndpointTerminated is published within 10 s")
        .expect("subscription open");
    assert_eq!(event.address, peer.address);

    let restarted = Peer::start(peer.port()).await;
    assert_eq!(restarted.address, peer.address, "the new peer listens at the old address");

    // Requests fail fast while the address is blocked and until the new
    // connection is up; then they are answered again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match root.request_future::<Pong, _>(&echo, Ping { n: 2, delay_ms: 0 }, Duration::from_secs(2)).await {
            Ok(pong) => {
                assert_eq!(pong, Pong(2));
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "the restarted peer did not answer in 20 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("the restarted peer answered after {attempts} attempt(s)");

    for n in 3..103 {
        let pong: Pong = root
            .request_future(&echo, Ping { n, delay_ms: 0 }, Duration::from_secs(10))
            .await
            .expect("traffic to the restarted peer keeps flowing");
        assert_eq!(pong, Pong(n));
    }

    stop_client(system, remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_peer_is_reported_unreachable_without_waiting_out_the_reconnect_backoff() {
    let mut peer = Peer::start(0).await;
    let system = ActorSystem::new();
    // A backoff far longer than the wait below: only the immediate redial
    // of a long-lived connection can see the refusal in time.
    let config = peer_protocol::register(RemoteConfig::bind("127.0.0.1", 0)).with_retries(3, Duration::from_secs(60));
    let remote = Remote::new(&system, config);
    remote.start().await.expect("start the client's remoting");
    let (_subscription, mut unreachable) = system.event_stream().subscribe_channel::<EndpointUnreachable>();
    let echo = Pid::new(peer.address.as_str(), "echo");
    let pong: Pong = system
        .root()
        .request_future(&echo, Ping { n: 1, delay_ms: 0 }, Duration::from_secs(10))
        .await
        .expect("peer answers");
    assert_eq!(pong, Pong(1));
    // The scenario, not synchronisation: a connection older than a second.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    peer.kill();
    let event = timeout(Duration::from_secs(15), unreachable.recv())
        .await
        .expect("the refusal is reported within 15 s, not after the 60 s backoff")
        .expect("subscription open");
    assert_eq!(event.address, peer.address);
    stop_client(system, remote).await;
}
