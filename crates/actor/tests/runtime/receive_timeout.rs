//! Receive timeout: fires after idling, is reset by ordinary messages but not
//! by ones marked `not_influencing_receive_timeout`, and can be cancelled.
//!
//! Timing is the subject here, so the tests sleep between sends; margins are
//! wide because the CI machine has two busy cores.

use crate::common;

use std::time::Duration;

use common::{Seen, WAIT, assert_nothing_within, recv_until, recv_within, seen};
use protoactor_actor::{ActorSystem, Context, Envelope, Pid, Props, Started};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::time::{Instant, sleep};

/// Sets `timeout` on start and reports every message with its arrival time.
/// "cancel" cancels, "zero" sets a zero timeout, "rearm" sets it again,
/// "query" answers with the current setting.
fn timed(timeout: Duration, tx: UnboundedSender<(Seen, Instant)>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            ctx.set_receive_timeout(timeout);
        }
        match ctx.message::<&'static str>() {
            Some(&"cancel") => ctx.cancel_receive_timeout(),
            Some(&"zero") => ctx.set_receive_timeout(Duration::ZERO),
            Some(&"rearm") => ctx.set_receive_timeout(timeout),
            Some(&"query") => ctx.respond(ctx.receive_timeout()),
            _ => {}
        }
        let _ = tx.send((seen(ctx), Instant::now()));
        Ok(())
    })
}

fn spawn_timed(system: &ActorSystem, timeout: Duration) -> (Pid, UnboundedReceiver<(Seen, Instant)>) {
    let (tx, rx) = unbounded_channel();
    (system.root().spawn(timed(timeout, tx)), rx)
}

async fn next_timeout(rx: &mut UnboundedReceiver<(Seen, Instant)>) -> Vec<(Seen, Instant)> {
    recv_until(rx, WAIT, |(s, _)| *s == Seen::ReceiveTimeout).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_once_after_idling_and_again_after_the_next_message() {
    let system = ActorSystem::new();
    let timeout = Duration::from_millis(300);
    let before_spawn = Instant::now();
    let (pid, mut rx) = spawn_timed(&system, timeout);

    let events = next_timeout(&mut rx).await;
    let (_, fired_at) = events.last().expect("a timeout");
    assert!(*fired_at - before_spawn >= timeout, "fired early: {:?}", *fired_at - before_spawn);
    assert_eq!(events.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), [Seen::Started, Seen::ReceiveTimeout]);

    // Once per idle period: without a new message it must not fire again.
    assert_nothing_within(&mut rx, timeout * 3).await;

    let poked_at = Instant::now();
    system.root().send(&pid, "poke");
    let events = next_timeout(&mut rx).await;
    assert_eq!(events.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), [Seen::msg("poke"), Seen::ReceiveTimeout]);
    let (_, fired_at) = events.last().expect("a timeout");
    assert!(*fired_at - poked_at >= timeout, "fired early after poke: {:?}", *fired_at - poked_at);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_ordinary_messages_keeps_resetting_it() {
    let system = ActorSystem::new();
    let timeout = Duration::from_millis(800);
    let (pid, mut rx) = spawn_timed(&system, timeout);
    // 12 ticks at 100 ms span 1.2 s, well past one timeout, yet each resets it.
    for i in 0..12u32 {
        system.root().send(&pid, i);
        sleep(Duration::from_millis(100)).await;
    }
    let events: Vec<Seen> = next_timeout(&mut rx).await.into_iter().map(|(s, _)| s).collect();
    let mut expected = vec![Seen::Started];
    expected.extend((0..12u32).map(|i| Seen::msg(i.to_string())));
    expected.push(Seen::ReceiveTimeout);
    assert_eq!(events, expected, "the timeout fired during the stream");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_not_influencing_the_timeout_do_not_reset_it() {
    let system = ActorSystem::new();
    let timeout = Duration::from_millis(400);
    let (pid, mut rx) = spawn_timed(&system, timeout);
    // 20 ticks at 100 ms span 2 s, five timeouts' worth.
    for i in 0..20u32 {
        system.root().send_envelope(&pid, Envelope::new(i).not_influencing_receive_timeout());
        sleep(Duration::from_millis(100)).await;
    }
    // A marker that closes the stream (it re-arms the timeout, which is fine).
    system.root().send(&pid, "end");
    let events: Vec<Seen> =
        recv_until(&mut rx, WAIT, |(s, _)| *s == Seen::msg("end")).await.into_iter().map(|(s, _)| s).collect();
    let timeouts: Vec<usize> =
        events.iter().enumerate().filter(|(_, s)| **s == Seen::ReceiveTimeout).map(|(i, _)| i).collect();
    let last_tick = events.iter().position(|s| *s == Seen::msg("19")).expect("all ticks arrive");
    // Exactly one: it fires during the stream and, with nothing influencing
    // it, is not re-armed by the ticks.
    assert_eq!(timeouts.len(), 1, "{events:?}");
    assert!(timeouts[0] < last_tick, "the ticks reset the timeout: {events:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_zero_stop_it_and_setting_again_rearms_it() {
    let system = ActorSystem::new();
    let timeout = Duration::from_millis(300);
    for cancel in ["cancel", "zero"] {
        let (pid, mut rx) = spawn_timed(&system, timeout);
        let before: Option<Duration> = system.root().request_future(&pid, "query", WAIT).await.expect("query");
        assert_eq!(before, Some(timeout));
        system.root().send(&pid, cancel);
        let after: Option<Duration> = system.root().request_future(&pid, "query", WAIT).await.expect("query");
        assert_eq!(after, None, "{cancel}");
        let events = recv_until(&mut rx, WAIT, |(s, _)| *s == Seen::msg(cancel)).await;
        assert!(events.iter().all(|(s, _)| *s != Seen::ReceiveTimeout), "fired before {cancel}: {events:?}");

        // The timer armed at start is now stale; nothing may fire.
        recv_within(&mut rx, WAIT).await; // the second "query"
        assert_nothing_within(&mut rx, timeout * 3).await;

        system.root().send(&pid, "rearm");
        let events = next_timeout(&mut rx).await;
        assert_eq!(events.len(), 2, "{cancel}: {events:?}");
    }
    system.shutdown().await;
}

/// Stopping itself from a receive timeout (idle passivation) stops the actor
/// at once, with no further message to wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_itself_on_timeout_stops_without_another_message() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    let props = Props::from_fn(move |ctx: &mut Context| {
        if ctx.message_is::<Started>() {
            ctx.set_receive_timeout(Duration::from_millis(100));
        }
        if ctx.message_is::<protoactor_actor::ReceiveTimeout>() {
            let me = ctx.self_pid().clone();
            ctx.stop(&me);
        }
        let _ = tx.send((seen(ctx), Instant::now()));
        Ok(())
    });
    let pid = system.root().spawn(props);
    let events = recv_until(&mut rx, WAIT, |(s, _)| *s == Seen::Stopped).await;
    assert!(events.iter().any(|(s, _)| *s == Seen::ReceiveTimeout));
    assert!(!system.is_registered(&pid), "a stopped actor is unregistered");
    system.shutdown().await;
}

/// Stops itself from a `reenter_after` continuation started on `Started`.
struct StopsInReentry(UnboundedSender<(Seen, Instant)>);

impl protoactor_actor::Actor for StopsInReentry {
    async fn receive(&mut self, ctx: &mut Context) -> protoactor_actor::ActorResult {
        if ctx.message_is::<Started>() {
            ctx.reenter_after(async {}, |_: &mut StopsInReentry, ctx: &mut Context, ()| {
                let me = ctx.self_pid().clone();
                ctx.stop(&me);
                Ok(())
            });
        }
        let _ = self.0.send((seen(ctx), Instant::now()));
        Ok(())
    }
}

/// The same from a `reenter_after` continuation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_itself_in_a_reentry_stops_without_another_message() {
    let system = ActorSystem::new();
    let (tx, mut rx) = unbounded_channel();
    system.root().spawn(Props::from_producer(move || StopsInReentry(tx.clone())));
    let events = recv_until(&mut rx, WAIT, |(s, _)| *s == Seen::Stopped).await;
    assert_eq!(events.first().map(|(s, _)| s.clone()), Some(Seen::Started));
    system.shutdown().await;
}
