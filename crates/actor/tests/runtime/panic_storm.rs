//! An actor that panics 10,000 times under load: its siblings keep handling
//! a steady stream, the runtime survives, and the failing actor stays usable.

use std::panic::PanicHookInfo;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_actor::{ActorSystemConfig, AlwaysRestartStrategy, Directive, OneForOneStrategy, SupervisorEvent};

const PANICS: usize = 10_000;
const SIBLINGS: usize = 4;
const TICKS: u64 = 20_000;
const WAIT: Duration = Duration::from_secs(60);
const MARK: &str = "panic-storm";

type Hook = Arc<dyn Fn(&PanicHookInfo<'_>) + Send + Sync>;

/// Serialises the tests that swap the process-wide panic hook.
static HOOK_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Silences panics whose message contains [`MARK`]; puts the previous hook
/// back on drop.
struct QuietPanics {
    previous: Hook,
}

impl QuietPanics {
    fn install() -> Self {
        let previous: Hook = Arc::from(std::panic::take_hook());
        let chained = previous.clone();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !text.contains(MARK) {
                chained(info);
            }
        }));
        QuietPanics { previous }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        let previous = self.previous.clone();
        drop(std::panic::take_hook());
        std::panic::set_hook(Box::new(move |info| previous(info)));
    }
}

struct Boom;
struct Inc;
struct Get;

/// Panics on every `Boom`; counts starts and panics in shared counters so
/// they survive restarts.
struct Stormy {
    starts: Arc<AtomicUsize>,
    panics: Arc<AtomicUsize>,
    count: u64,
}

impl Actor for Stormy {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            self.starts.fetch_add(1, Ordering::Relaxed);
        } else if ctx.message_is::<Boom>() {
            let n = self.panics.fetch_add(1, Ordering::Relaxed);
            panic!("{MARK} #{n}");
        } else if ctx.message_is::<Inc>() {
            self.count += 1;
        } else if ctx.message_is::<Get>() {
            ctx.respond(self.count);
        }
        Ok(())
    }
}

struct Counters {
    starts: Arc<AtomicUsize>,
    panics: Arc<AtomicUsize>,
    directives: Arc<parking_lot::Mutex<Vec<Directive>>>,
}

/// A system with `config`, a recorder of supervisor directives, and the stormy actor.
fn setup(config: ActorSystemConfig) -> (ActorSystem, Pid, Counters, protoactor_actor::Subscription) {
    let system = ActorSystem::with_config(config);
    let counters = Counters { starts: Default::default(), panics: Default::default(), directives: Default::default() };
    let directives = counters.directives.clone();
    let sub = system.event_stream().subscribe::<SupervisorEvent>(move |e| directives.lock().push(e.directive));
    let (starts, panics) = (counters.starts.clone(), counters.panics.clone());
    let stormy = system.root().spawn(Props::from_producer(move || Stormy {
        starts: starts.clone(),
        panics: panics.clone(),
        count: 0,
    }));
    (system, stormy, counters, sub)
}

fn counter() -> Props {
    let mut count = 0u64;
    Props::from_fn(move |ctx| {
        if ctx.message_is::<Inc>() {
            count += 1;
        } else if ctx.message_is::<Get>() {
            ctx.respond(count);
        }
        Ok(())
    })
}

/// Sends `TICKS` increments to each sibling from another task while `storm`
/// runs here; then checks every sibling handled all of them.
async fn under_load(system: &ActorSystem, storm: impl std::future::Future<Output = ()>) {
    let root = system.root();
    let siblings: Vec<Pid> = (0..SIBLINGS).map(|_| root.spawn(counter())).collect();
    let feeder_root = root.clone();
    let feeder_targets = siblings.clone();
    let feeder = tokio::spawn(async move {
        for i in 0..TICKS {
            for pid in &feeder_targets {
                feeder_root.send(pid, Inc);
            }
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    storm.await;
    feeder.await.expect("feeder task");
    for pid in &siblings {
        let n = root.request_future::<u64, _>(pid, Get, WAIT).await.expect("sibling answers");
        assert_eq!(n, TICKS, "sibling {pid} lost messages");
    }
}

async fn fresh_actor_works(system: &ActorSystem) {
    let pid = system.root().spawn(counter());
    system.root().send(&pid, Inc);
    let n = system.root().request_future::<u64, _>(&pid, Get, WAIT).await.expect("new actor answers");
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_restart_survives_ten_thousand_panics() {
    let _serial = HOOK_LOCK.lock().await;
    let _quiet = QuietPanics::install();
    let config = ActorSystemConfig::default().with_guardian_strategy(AlwaysRestartStrategy);
    let (system, stormy, counters, _sub) = setup(config);
    let root = system.root();

    under_load(&system, async {
        for i in 0..PANICS {
            root.send(&stormy, Boom);
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    })
    .await;

    root.send(&stormy, Inc);
    let n = root.request_future::<u64, _>(&stormy, Get, WAIT).await.expect("stormy actor still answers");
    assert_eq!(n, 1, "a fresh instance after the last restart");
    assert_eq!(counters.panics.load(Ordering::Relaxed), PANICS);
    assert_eq!(counters.starts.load(Ordering::Relaxed), PANICS + 1, "one start plus one per restart");
    let directives = counters.directives.lock().clone();
    assert_eq!(directives.len(), PANICS);
    assert!(directives.iter().all(|d| *d == Directive::Restart));
    fresh_actor_works(&system).await;
    system.shutdown().await;
    assert_eq!(system.actor_count(), 0, "everything stopped cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_survives_ten_thousand_panics_and_keeps_state() {
    let _serial = HOOK_LOCK.lock().await;
    let _quiet = QuietPanics::install();
    let config = ActorSystemConfig::default()
        .with_guardian_strategy(OneForOneStrategy::default().with_decider(|_, _| Directive::Resume));
    let (system, stormy, counters, _sub) = setup(config);
    let root = system.root();

    under_load(&system, async {
        for i in 0..PANICS {
            root.send(&stormy, Boom);
            root.send(&stormy, Inc);
            if i % 256 == 0 {
                tokio::task::yield_now().await;
            }
        }
    })
    .await;

    let n = root.request_future::<u64, _>(&stormy, Get, WAIT).await.expect("stormy actor still answers");
    assert_eq!(n, PANICS as u64, "every Inc between the panics was handled by the same instance");
    assert_eq!(counters.panics.load(Ordering::Relaxed), PANICS);
    assert_eq!(counters.starts.load(Ordering::Relaxed), 1, "never restarted");
    let directives = counters.directives.lock().clone();
    assert_eq!(directives.len(), PANICS);
    assert!(directives.iter().all(|d| *d == Directive::Resume));
    fresh_actor_works(&system).await;
    system.shutdown().await;
    assert_eq!(system.actor_count(), 0, "everything stopped cleanly");
}
