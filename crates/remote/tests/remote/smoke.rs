//! Two systems in one process over loopback: the basic paths work end to end.

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_remote::{Remote, RemoteConfig};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Ping(u32);
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Pong(u32);

fn config() -> RemoteConfig {
    RemoteConfig::bind("127.0.0.1", 0).with_json::<Ping>("test.Ping").with_json::<Pong>("test.Pong")
}

struct Echo;
impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Ping(n)) = ctx.message::<Ping>() {
            ctx.respond(Pong(*n));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_across_two_systems() {
    let a = ActorSystem::new();
    let b = ActorSystem::new();
    let ra = Remote::new(&a, config());
    let rb = Remote::new(&b, config().with_kind("echo", Props::from_producer(|| Echo)));
    ra.start().await.expect("start a");
    let b_address = rb.start().await.expect("start b");

    let echo = b.root().spawn_named(Props::from_producer(|| Echo), "echo").expect("spawn echo");
    let remote_echo = Pid::new(b_address.as_str(), echo.id());
    for i in 0..100 {
        let pong: Pong = a.root().request_future(&remote_echo, Ping(i), Duration::from_secs(5)).await.expect("pong");
        assert_eq!(pong, Pong(i));
    }

    let spawned = ra.spawn(&b_address, "echo", Duration::from_secs(5)).await.expect("remote spawn");
    let pong: Pong = a.root().request_future(&spawned, Ping(7), Duration::from_secs(5)).await.expect("pong");
    assert_eq!(pong, Pong(7));

    let unknown = ra.spawn(&b_address, "nope", Duration::from_secs(5)).await;
    assert!(matches!(unknown, Err(protoactor_remote::Error::UnknownKind { .. })), "{unknown:?}");

    // An unregistered type fails at the sender with a clear reason.
    let err = a.root().request_future::<Pong, _>(&remote_echo, 5u64, Duration::from_secs(5)).await.expect_err("u64");
    assert!(err.to_string().contains("not registered"), "{err}");

    ra.shutdown(true).await;
    rb.shutdown(true).await;
}
