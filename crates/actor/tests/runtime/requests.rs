//! `request_future` outcomes: typed responses, timeout, wrong type, any type,
//! and correct correlation under concurrency.

use crate::common;

use std::time::{Duration, Instant};

use common::WAIT;
use protoactor_actor::{ActorSystem, ActorSystemConfig, AnyMessage, Context, Error, Pid, Props};

/// Answers `u32` requests with `n * 2`, "text" with a `String`, ignores "silence".
fn answering(system: &ActorSystem) -> Pid {
    system.root().spawn(Props::from_fn(|ctx: &mut Context| {
        if let Some(n) = ctx.message::<u32>() {
            ctx.respond(u64::from(*n) * 2);
        } else if ctx.message::<&'static str>() == Some(&"text") {
            ctx.respond(String::from("some text"));
        }
        Ok(())
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_within_the_timeout_is_a_timeout_error() {
    let system = ActorSystem::new();
    let pid = answering(&system);
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let result = system.root().request_future::<u64, _>(&pid, "silence", timeout).await;
    let elapsed = started.elapsed();
    match result {
        Err(Error::Timeout { target, after }) => {
            assert_eq!(target, pid);
            assert_eq!(after, timeout);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_of_another_type_is_unexpected_response() {
    let system = ActorSystem::new();
    let pid = answering(&system);
    let result = system.root().request_future::<u64, _>(&pid, "text", WAIT).await;
    match result {
        Err(Error::UnexpectedResponse { expected, actual }) => {
            assert_eq!(expected, std::any::type_name::<u64>());
            assert_eq!(actual, std::any::type_name::<String>());
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_box_message_accepts_any_type() {
    let system = ActorSystem::new();
    let pid = answering(&system);
    let text: AnyMessage = system.root().request_future(&pid, "text", WAIT).await.expect("any type is accepted");
    assert_eq!(text.downcast::<String>().expect("the response is a String"), "some text");
    let number: AnyMessage = system.root().request_future(&pid, 21u32, WAIT).await.expect("any type is accepted");
    assert_eq!(number.downcast::<u64>().expect("the response is a u64"), 42);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_answer() {
    let system = ActorSystem::new();
    let pids: Vec<Pid> = (0..4).map(|_| answering(&system)).collect();
    let mut tasks = Vec::new();
    for n in 0..200u32 {
        let pid = pids[n as usize % pids.len()].clone();
        let root = system.root();
        tasks.push(tokio::spawn(async move { (n, root.request_future::<u64, _>(&pid, n, WAIT).await) }));
    }
    for task in tasks {
        let (n, answer) = task.await.expect("request task");
        assert_eq!(answer.expect("answered"), u64::from(n) * 2);
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_request_future_does_not_disturb_later_requests() {
    let system = ActorSystem::new();
    let pid = answering(&system);
    // Abandoned before its answer arrives: the answer must not leak into the next one.
    drop(system.root().request_future::<u64, _>(&pid, 1u32, WAIT));
    let answer: u64 = system.root().request_future(&pid, 5u32, WAIT).await.expect("answered");
    assert_eq!(answer, 10);
    system.shutdown().await;
}

/// Requests awaited in `block_on` (where the system keeps the waiting thread
/// busy for a short while, see `ActorSystemConfig::with_request_spin`) get
/// their replies whether these come within the busy wait, after it (the
/// thread then parks and must still be woken), or never (timeout), with the
/// busy wait on and off: fast and slow replies alternate so that the wait's
/// hits, misses and back-off all occur.
#[test]
fn requests_from_block_on_get_fast_and_slow_replies_with_the_busy_wait_on_and_off() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    for spin in [ActorSystemConfig::default().request_spin(), Duration::from_millis(2), Duration::ZERO] {
        rt.block_on(async {
            let system = ActorSystem::with_config(ActorSystemConfig::default().with_request_spin(spin));
            let fast = answering(&system);
            // Answers from a task after 5 ms: later than any bound above.
            let slow = system.root().spawn(Props::from_fn(|ctx: &mut Context| {
                if let (Some(n), Some(to)) = (ctx.message::<u32>().copied(), ctx.sender().cloned()) {
                    let root = ctx.system().root();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        root.send(&to, u64::from(n) + 1);
                    });
                }
                Ok(())
            }));
            for n in 0..300u32 {
                let answer: u64 = system.root().request_future(&fast, n, WAIT).await.expect("fast reply");
                assert_eq!(answer, u64::from(n) * 2, "spin {spin:?}");
                if n % 10 == 0 {
                    let answer: u64 = system.root().request_future(&slow, n, WAIT).await.expect("slow reply");
                    assert_eq!(answer, u64::from(n) + 1, "spin {spin:?}");
                }
            }
            let timeout = Duration::from_millis(50);
            let mut reply = system.response_future::<u64>();
            assert!(matches!(reply.wait(timeout).await, Err(Error::Timeout { .. })), "spin {spin:?}");
            system.root().request(&fast, 7u32, reply.pid());
            assert_eq!(reply.wait(WAIT).await.expect("reply after a timed-out wait"), 14, "spin {spin:?}");
            system.shutdown().await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_future_after_its_final_outcome_reports_dead_letter() {
    let system = ActorSystem::new();
    let pid = answering(&system);
    let mut reply = system.response_future::<u64>();
    system.root().request(&pid, 4u32, reply.pid());
    assert_eq!(reply.wait(WAIT).await.expect("the reply"), 8);
    assert!(
        matches!(reply.wait(Duration::from_millis(10)).await, Err(Error::DeadLetter { .. })),
        "a second wait after the reply"
    );
    system.shutdown().await;
}
