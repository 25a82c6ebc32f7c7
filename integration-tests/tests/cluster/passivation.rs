//! Passivation: a kind with an idle timeout stops grains that receive
//! nothing for that long; the next request activates them afresh.

use std::sync::Arc;
use std::time::Duration;

use protoactor_integration_tests::*;

/// Idle timeout 300 ms. While pinged every 50 ms for a second the grain
/// stays (one activation, count keeps rising). Left alone it stops (its
/// `Stopped` runs), its host forgets it, and the next request — from a
/// node that still caches the old pid — gets a fresh activation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_grain_is_passivated_and_reactivated() {
    init_tracing();
    let activations = Arc::new(Activations::default());
    let kind = echo_kind("idle", &activations).with_idle_timeout(Duration::from_millis(300));
    let tc = TestCluster::start(&[kind]).await;
    let first: Pong = tc.client.request("sleepy", "idle", Ping::default()).await.expect("pong");
    assert_eq!(first.count, 1);
    let host = tc.member_at(&first.address).expect("host member");
    let _: Pong = host.request("sleepy", "idle", Ping::default()).await.expect("pong from host");

    // Timing is the subject here: traffic more frequent than the idle
    // timeout keeps the activation alive.
    for i in 0..20u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let pong: Pong = tc.client.request("sleepy", "idle", Ping::default()).await.expect("pong");
        assert_eq!(pong.count, i + 3, "still the first activation");
    }
    assert_eq!(activations.stopped(), 0, "a busy grain is not passivated");

    assert!(wait_until(Duration::from_secs(5), || activations.stopped() == 1).await, "the idle grain stopped");
    assert!(
        wait_until(Duration::from_secs(2), || host.pid_cache().get("sleepy", "idle").is_none()).await,
        "its host forgot it"
    );
    assert!(tc.client.pid_cache().get("sleepy", "idle").is_some(), "the client still caches the old pid");
    let again: Pong = tc.client.request("sleepy", "idle", Ping::default()).await.expect("pong after passivation");
    assert_eq!(again.count, 1, "a fresh activation");
    assert_eq!(activations.started(), 2);
    tc.shutdown().await;
}

/// The root cause, without the cluster: an actor that stops itself while
/// handling `ReceiveTimeout` (which is delivered on the system-message path)
/// must stop without needing another message to arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_stopping_itself_on_receive_timeout_stops() {
    use protoactor_actor::prelude::*;
    use tokio::sync::mpsc;

    let system = ActorSystem::new();
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let props = Props::from_fn(move |ctx| {
        if ctx.message_is::<Started>() {
            ctx.set_receive_timeout(Duration::from_millis(100));
        } else if ctx.message_is::<ReceiveTimeout>() {
            let _ = tx.send("timeout");
            let me = ctx.self_pid().clone();
            ctx.stop(&me);
        } else if ctx.message_is::<Stopped>() {
            let _ = tx.send("stopped");
        }
        Ok(())
    });
    system.root().spawn(props);
    let first = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.expect("receive timeout fires");
    assert_eq!(first, Some("timeout"));
    let second = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    assert_eq!(second.ok().flatten(), Some("stopped"), "ctx.stop(self) in ReceiveTimeout stops the actor");
    system.shutdown().await;
}
