//! Middleware: receiver chains (every message, order, short-circuit),
//! sender chains (headers), spawn chains (observe, reject, alter).

use std::any::type_name;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protoactor_actor::middleware::{
    ReceiveNext, ReceiverMiddleware, SendNext, SenderMiddleware, SpawnMiddleware, SpawnNext,
};
use protoactor_actor::prelude::*;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

type Shared = Arc<Mutex<Vec<String>>>;

struct Hello;
struct Secret;
struct Ping;

/// Records the type of every message it passes on.
struct Record(Shared);

impl ReceiverMiddleware for Record {
    fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult> {
        Box::pin(async move {
            self.0.lock().push(ctx.message_type_name().to_string());
            next.run(ctx).await
        })
    }
}

/// Swallows `Secret` without calling the rest of the chain.
struct DropSecrets;

impl ReceiverMiddleware for DropSecrets {
    fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult> {
        Box::pin(async move {
            if ctx.message_is::<Secret>() {
                return Ok(());
            }
            next.run(ctx).await
        })
    }
}

/// Logs entering and leaving around the rest of the chain.
struct Layer(&'static str, Shared);

impl ReceiverMiddleware for Layer {
    fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult> {
        Box::pin(async move {
            let only_hello = ctx.message_is::<Hello>();
            if only_hello {
                self.1.lock().push(format!("{} in", self.0));
            }
            let result = next.run(ctx).await;
            if only_hello {
                self.1.lock().push(format!("{} out", self.0));
            }
            result
        })
    }
}

/// An actor that logs the messages that reach it and answers `Ping`.
fn logging_actor(seen: Shared) -> Props {
    Props::from_fn(move |ctx| {
        seen.lock().push(format!("actor {}", ctx.message_type_name()));
        if ctx.message_is::<Ping>() {
            ctx.respond(());
        }
        Ok(())
    })
}

async fn ping(root: &RootContext, pid: &Pid) {
    root.request_future::<(), _>(pid, Ping, WAIT).await.expect("ping answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_middleware_sees_every_message() {
    let system = ActorSystem::new();
    let root = system.root();
    let seen: Shared = Default::default();
    let pid = root.spawn(logging_actor(Default::default()).with_receiver_middleware(Record(seen.clone())));
    root.send(&pid, Hello);
    root.send(&pid, Secret);
    ping(&root, &pid).await;
    root.stop_future(&pid).await;

    let expected: Vec<String> = [
        type_name::<Started>(),
        type_name::<Hello>(),
        type_name::<Secret>(),
        type_name::<Ping>(),
        type_name::<Stopping>(),
        type_name::<Stopped>(),
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(*seen.lock(), expected);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_middleware_can_short_circuit() {
    let system = ActorSystem::new();
    let root = system.root();
    let actor_saw: Shared = Default::default();
    let pid = root.spawn(logging_actor(actor_saw.clone()).with_receiver_middleware(DropSecrets));
    root.send(&pid, Secret);
    root.send(&pid, Hello);
    root.send(&pid, Secret);
    ping(&root, &pid).await;

    let saw = actor_saw.lock().clone();
    assert_eq!(
        saw,
        [type_name::<Started>(), type_name::<Hello>(), type_name::<Ping>()].map(|t| format!("actor {t}")).to_vec(),
        "Secret never reached the actor"
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_middleware_first_added_is_outermost() {
    let system = ActorSystem::new();
    let root = system.root();
    let log: Shared = Default::default();
    let actor_log = log.clone();
    let actor = Props::from_fn(move |ctx| {
        if ctx.message_is::<Hello>() {
            actor_log.lock().push("actor".into());
        } else if ctx.message_is::<Ping>() {
            ctx.respond(());
        }
        Ok(())
    });
    let pid = root.spawn(
        actor
            .with_receiver_middleware(Layer("first", log.clone()))
            .with_receiver_middleware(Layer("second", log.clone()))
            .with_receiver_middleware(Layer("third", log.clone())),
    );
    root.send(&pid, Hello);
    ping(&root, &pid).await;
    assert_eq!(
        *log.lock(),
        ["first in", "second in", "third in", "actor", "third out", "second out", "first out"]
            .map(String::from)
            .to_vec()
    );
    system.shutdown().await;
}

/// Tags every outgoing message with a header naming the sender.
struct Tag(&'static str);

impl SenderMiddleware for Tag {
    fn send(&self, target: &Pid, envelope: Envelope, next: SendNext<'_>) {
        let mut header = envelope.header().cloned().unwrap_or_default();
        header.set("tag", self.0);
        header.set("from", next.sender().map(|p| p.id().to_string()).unwrap_or_else(|| "root".into()));
        next.send(target, envelope.with_header(header));
    }
}

struct Relay(Pid);

/// The `tag` and `from` headers of one received message.
type Seen = (Option<String>, Option<String>);

/// Reports the headers of every `Hello` it receives.
fn header_reader(root: &RootContext) -> (Pid, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pid = root.spawn(Props::from_fn(move |ctx| {
        if ctx.message_is::<Hello>() {
            let h = ctx.header();
            let _ = tx.send((
                h.and_then(|h| h.get("tag")).map(String::from),
                h.and_then(|h| h.get("from")).map(String::from),
            ));
        }
        Ok(())
    }));
    (pid, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_middleware_adds_headers_the_receiver_sees() {
    let system = ActorSystem::new();
    let root = system.root();
    let (reader, mut rx) = header_reader(&root);
    let relay = root
        .spawn_named(
            Props::from_fn(|ctx| {
                if let Some(Relay(target)) = ctx.message::<Relay>() {
                    ctx.send(target, Hello);
                }
                Ok(())
            })
            .with_sender_middleware(Tag("from-actor")),
            "relay",
        )
        .expect("spawn relay");

    root.send(&relay, Relay(reader.clone()));
    let got = tokio::time::timeout(WAIT, rx.recv()).await.expect("hello arrives").expect("open");
    assert_eq!(got, (Some("from-actor".into()), Some("relay".into())));

    // Without middleware nothing is added.
    root.send(&reader, Hello);
    let got = tokio::time::timeout(WAIT, rx.recv()).await.expect("hello arrives").expect("open");
    assert_eq!(got, (None, None));

    // A root context with sender middleware.
    root.clone().with_sender_middleware(Tag("from-root")).send(&reader, Hello);
    let got = tokio::time::timeout(WAIT, rx.recv()).await.expect("hello arrives").expect("open");
    assert_eq!(got, (Some("from-root".into()), Some("root".into())));
    system.shutdown().await;
}

/// Records spawns; rejects ids containing "forbidden"; renames and wraps ids
/// containing "alter".
struct Gate(Shared);

/// Answers `Ping` itself with "wrapped" (installed by [`Gate`] on altered spawns).
struct AnswerPing;

impl ReceiverMiddleware for AnswerPing {
    fn receive<'a>(&'a self, ctx: &'a mut Context, next: ReceiveNext<'a>) -> BoxFuture<'a, ActorResult> {
        Box::pin(async move {
            if ctx.message_is::<Ping>() {
                ctx.respond("wrapped");
                return Ok(());
            }
            next.run(ctx).await
        })
    }
}

impl SpawnMiddleware for Gate {
    fn spawn(&self, id: &str, props: &Props, parent: Option<&Pid>, next: SpawnNext<'_>) -> Result<Pid, Error> {
        let parent_id = parent.map(|p| p.id().to_string()).unwrap_or_else(|| "-".into());
        self.0.lock().push(format!("{id} parent={parent_id}"));
        if id.contains("forbidden") {
            return Err(Error::InvalidConfig(format!("spawning {id} is not allowed")));
        }
        if id.contains("alter") {
            let altered = props.clone().with_receiver_middleware(AnswerPing);
            return next.spawn(&format!("{id}-altered"), &altered, parent);
        }
        next.spawn(id, props, parent)
    }
}

fn plain_actor() -> Props {
    Props::from_fn(|ctx| {
        if ctx.message_is::<Ping>() {
            ctx.respond("plain");
        }
        Ok(())
    })
}

struct SpawnChild(&'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_middleware_is_called_and_can_reject_or_alter() {
    let system = ActorSystem::new();
    let root = system.root();
    let calls: Shared = Default::default();
    let gated = plain_actor().with_spawn_middleware(Gate(calls.clone()));

    let ok = root.spawn_named(gated.clone(), "ok").expect("allowed spawn");
    assert_eq!(ok.id(), "ok");
    assert_eq!(root.request_future::<&str, _>(&ok, Ping, WAIT).await.expect("ping"), "plain");

    let rejected = root.spawn_named(gated.clone(), "forbidden");
    assert!(matches!(rejected, Err(Error::InvalidConfig(_))), "{rejected:?}");
    root.spawn_named(plain_actor(), "forbidden").expect("the rejected spawn registered nothing");

    let altered = root.spawn_named(gated.clone(), "alter").expect("altered spawn");
    assert_eq!(altered.id(), "alter-altered");
    assert_eq!(root.request_future::<&str, _>(&altered, Ping, WAIT).await.expect("ping"), "wrapped");

    // Child spawns with the same props go through the gate too, with the parent given.
    let child_props = gated.clone();
    let parent = root
        .spawn_named(
            Props::from_fn(move |ctx| {
                if let Some(SpawnChild(name)) = ctx.message::<SpawnChild>() {
                    let result = ctx.spawn_named(child_props.clone(), name).map(|p| p.id().to_string());
                    ctx.respond(result.map_err(|e| e.to_string()));
                }
                Ok(())
            }),
            "parent",
        )
        .expect("spawn parent");
    let child = root
        .request_future::<Result<String, String>, _>(&parent, SpawnChild("kid"), WAIT)
        .await
        .expect("parent answers");
    assert_eq!(child, Ok("parent/kid".to_string()));
    let forbidden_child = root
        .request_future::<Result<String, String>, _>(&parent, SpawnChild("forbidden-kid"), WAIT)
        .await
        .expect("parent answers");
    assert!(forbidden_child.is_err(), "{forbidden_child:?}");

    let calls = calls.lock().clone();
    assert_eq!(calls[0], "ok parent=-");
    assert_eq!(calls[1], "forbidden parent=-");
    assert!(calls.contains(&"alter parent=-".to_string()), "{calls:?}");
    assert!(calls.contains(&"parent/kid parent=parent".to_string()), "{calls:?}");
    assert!(calls.contains(&"parent/forbidden-kid parent=parent".to_string()), "{calls:?}");
    system.shutdown().await;
}
