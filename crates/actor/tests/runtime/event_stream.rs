//! The event stream: typed and catch-all subscriptions, unsubscribing,
//! channel subscriptions, and the events the runtime itself publishes.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::prelude::*;
use protoactor_actor::{DeadLetterEvent, LOCAL_ADDRESS};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Alpha(u32);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Beta(&'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_subscription_gets_only_its_type() {
    let system = ActorSystem::new();
    let stream = system.event_stream();
    let alphas = Arc::new(Mutex::new(Vec::new()));
    let sink = alphas.clone();
    let _sub = stream.subscribe::<Alpha>(move |a| sink.lock().push(a.clone()));

    stream.publish(Alpha(1));
    stream.publish(Beta("ignored"));
    stream.publish(7u64);
    stream.publish(Alpha(2));
    assert_eq!(*alphas.lock(), [Alpha(1), Alpha(2)]);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_all_gets_every_event() {
    let system = ActorSystem::new();
    let stream = system.event_stream();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _sub = stream.subscribe_all(move |e: &dyn Any| {
        let text = if let Some(Alpha(n)) = e.downcast_ref::<Alpha>() {
            format!("alpha {n}")
        } else if let Some(Beta(s)) = e.downcast_ref::<Beta>() {
            format!("beta {s}")
        } else {
            "other".to_string()
        };
        sink.lock().push(text);
    });

    stream.publish(Alpha(1));
    stream.publish(Beta("b"));
    stream.publish(7u64);
    assert_eq!(*seen.lock(), ["alpha 1", "beta b", "other"]);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let system = ActorSystem::new();
    let stream = system.event_stream();
    let before = stream.subscription_count();
    let got = Arc::new(Mutex::new(Vec::new()));
    let (typed_sink, all_sink) = (got.clone(), got.clone());
    let typed = stream.subscribe::<Alpha>(move |a| typed_sink.lock().push(format!("typed {}", a.0)));
    let all = stream.subscribe_all(move |e| {
        if let Some(a) = e.downcast_ref::<Alpha>() {
            all_sink.lock().push(format!("all {}", a.0));
        }
    });
    assert_eq!(stream.subscription_count(), before + 2);

    stream.publish(Alpha(1));
    typed.unsubscribe();
    stream.publish(Alpha(2));
    all.unsubscribe();
    stream.publish(Alpha(3));
    assert_eq!(*got.lock(), ["typed 1", "all 1", "all 2"]);
    assert_eq!(stream.subscription_count(), before);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_channel_delivers_clones_in_order() {
    let system = ActorSystem::new();
    let stream = system.event_stream();
    let (sub, mut rx) = stream.subscribe_channel::<Beta>();
    stream.publish(Beta("one"));
    stream.publish(Alpha(0));
    stream.publish(Beta("two"));
    assert_eq!(rx.recv().await, Some(Beta("one")));
    assert_eq!(rx.recv().await, Some(Beta("two")));
    assert!(rx.try_recv().is_err(), "only Beta events");

    sub.unsubscribe();
    stream.publish(Beta("three"));
    // Unsubscribing dropped the sender side, so the channel ends.
    let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("channel closes");
    assert_eq!(end, None);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_may_subscribe_and_unsubscribe_while_publishing() {
    let system = ActorSystem::new();
    let stream = system.event_stream().clone();
    let inner_hits = Arc::new(Mutex::new(0u32));
    let slot: Arc<Mutex<Option<protoactor_actor::Subscription>>> = Default::default();
    let (stream2, hits, slot2) = (stream.clone(), inner_hits.clone(), slot.clone());
    let _outer = stream.subscribe::<Alpha>(move |a| {
        if a.0 == 1 {
            let hits = hits.clone();
            *slot2.lock() = Some(stream2.subscribe::<Beta>(move |_| *hits.lock() += 1));
        } else if let Some(sub) = slot2.lock().take() {
            sub.unsubscribe();
        }
    });

    stream.publish(Alpha(1));
    stream.publish(Beta("counted"));
    stream.publish(Alpha(2));
    stream.publish(Beta("not counted"));
    assert_eq!(*inner_hits.lock(), 1);
    system.shutdown().await;
}

struct Hello;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_published_on_the_stream() {
    let system = ActorSystem::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _sub = system.event_stream().subscribe::<DeadLetterEvent>(move |e| {
        let message: &dyn Any = &*e.message;
        let _ = tx.send((e.pid.id().to_string(), message.is::<Hello>()));
    });
    system.root().send(&Pid::new(LOCAL_ADDRESS, "nobody"), Hello);
    let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("dead letter event").expect("open");
    assert_eq!(got, ("nobody".to_string(), true));
    system.shutdown().await;
}
