//! The pieces every [`ClusterProvider`](crate::ClusterProvider) needs that
//! have nothing to do with its backend, so a provider crate holds only the
//! code that talks to its registry:
//!
//! * [`StartOnce`]: one provider serves one member or client, once.
//! * [`TopologyReporter`]: hands the full member set to the member list when
//!   it changed (this member always included), logs the change, and stays
//!   quiet while the system stops.
//! * [`Retry`]: bounded, jittered backoff between attempts to reach the
//!   backend, logging once when it goes away and once when it is back.
//! * [`ProviderTasks`]: the background tasks to stop at shutdown.
//!
//! ```
//! use std::time::Duration;
//! use protoactor_cluster::{Retry, StartOnce};
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! let once = StartOnce::new("MyProvider");
//! once.start()?;
//! assert!(once.start().is_err(), "a second start is refused");
//!
//! let mut retry = Retry::new("my-registry", "demo", Duration::from_millis(10), Duration::from_millis(50));
//! retry.failed("connection refused").await; // warns once, then waits ~10 ms
//! retry.succeeded(); // logs that the backend is back
//! assert_eq!(retry.failures(), 0);
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use protoactor_actor::ActorSystem;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::handle::ClusterHandle;
use crate::member::Member;
use crate::member_list::MemberList;

/// Refuses a second start: a provider holds one registration and one watch.
#[derive(Debug)]
pub struct StartOnce {
    what: &'static str,
    started: AtomicBool,
}

impl StartOnce {
    /// A guard for the provider type named `what` (used in the error).
    pub const fn new(what: &'static str) -> Self {
        StartOnce { what, started: AtomicBool::new(false) }
    }

    /// Ok the first time; an [`Error::Provider`] after.
    pub fn start(&self) -> Result<(), Error> {
        if self.started.swap(true, Ordering::AcqRel) {
            return Err(Error::Provider(format!(
                "this {} was started already; give each member or client its own",
                self.what
            )));
        }
        Ok(())
    }

    /// True once started.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }
}

/// Reports full member sets to the [`MemberList`]: adds this member (for a
/// member, not a client), drops duplicate ids (first one wins), sorts by id,
/// and reports only when the set differs from the last one reported.
///
/// It never reports while the actor system stops, and it reports nothing
/// it was not given: when the backend is away, simply do not call
/// [`report`](Self::report), and the cluster keeps its last topology.
pub struct TopologyReporter {
    list: MemberList,
    system: ActorSystem,
    cluster: String,
    backend: &'static str,
    me: Option<Member>,
    reported: Option<Vec<Member>>,
}

impl fmt::Debug for TopologyReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopologyReporter")
            .field("cluster", &self.cluster)
            .field("backend", &self.backend)
            .field("me", &self.me.as_ref().map(|m| m.id.as_str()))
            .field("reported", &self.reported.as_ref().map(Vec::len))
            .finish()
    }
}

impl TopologyReporter {
    /// A reporter for `cluster`'s member list; `member` says whether this
    /// member is registered (and so always reported) or a client.
    /// `backend` names the source in logs ("etcd", "consul", ...).
    pub fn new(cluster: &ClusterHandle, backend: &'static str, member: bool) -> Self {
        TopologyReporter {
            list: cluster.member_list().clone(),
            system: cluster.system().clone(),
            cluster: cluster.name().to_string(),
            backend,
            me: member.then(|| cluster.self_member()),
            reported: None,
        }
    }

    /// This member, if registered.
    pub fn me(&self) -> Option<&Member> {
        self.me.as_ref()
    }

    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The last set reported, sorted by id.
    pub fn last(&self) -> Option<&[Member]> {
        self.reported.as_deref()
    }

    /// True once the actor system stops: watch loops may end.
    pub fn is_stopping(&self) -> bool {
        self.system.is_shutting_down()
    }

    /// Reports `members` (the backend's full view) if it changed; returns
    /// true if it was handed to the member list.
    pub fn report(&mut self, members: impl IntoIterator<Item = Member>) -> bool {
        let mut set: Vec<Member> = Vec::new();
        for m in members.into_iter().chain(self.me.clone()) {
            if !set.iter().any(|s| s.id == m.id) {
                set.push(m);
            }
        }
        set.sort_by(|a, b| a.id.cmp(&b.id));
        if self.reported.as_ref() == Some(&set) || self.system.is_shutting_down() {
            return false;
        }
        tracing::info!(
            cluster = %self.cluster,
            backend = self.backend,
            members = set.len(),
            ids = ?set.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            "topology changed"
        );
        self.list.update_cluster_topology(set.clone());
        self.reported = Some(set);
        true
    }
}

/// Jittered exponential backoff between attempts to reach a backend, with
/// one log line per change of state: a warning when it starts failing, an
/// info line when it answers again, debug lines in between.
#[derive(Debug)]
pub struct Retry {
    backend: &'static str,
    cluster: String,
    first: Duration,
    next: Duration,
    max: Duration,
    failures: u32,
}

impl Retry {
    /// Pauses start at `first` and double up to `max` (each ±20 %).
    pub fn new(backend: &'static str, cluster: impl Into<String>, first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Retry { backend, cluster: cluster.into(), first, next: first, max, failures: 0 }
    }

    /// Failed attempts in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// True while failing.
    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// Records a failed attempt (logging it once per outage) and waits
    /// before the next.
    pub async fn failed(&mut self, why: impl fmt::Display + Send) {
        if self.failures == 0 {
            tracing::warn!(
                cluster = %self.cluster, backend = self.backend, %why,
                "cannot reach the membership backend; keeping the last known topology and retrying"
            );
        } else {
            tracing::debug!(cluster = %self.cluster, backend = self.backend, %why, failures = self.failures + 1, "still unreachable");
        }
        self.failures = self.failures.saturating_add(1);
        let pause = self.next.mul_f64(0.8 + fastrand::f64() * 0.4);
        self.next = (self.next * 2).min(self.max);
        tokio::time::sleep(pause).await;
    }

    /// Records a successful attempt: logs the recovery once and resets the pause.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(cluster = %self.cluster, backend = self.backend, failures = self.failures, "membership backend answers again");
        }
        self.failures = 0;
        self.next = self.first;
    }
}

/// The background tasks of a started provider, aborted at shutdown.
#[derive(Debug, Default)]
pub struct ProviderTasks {
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ProviderTasks {
    /// No tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` on the cluster's runtime until [`stop`](Self::stop).
    pub fn spawn(&self, cluster: &ClusterHandle, task: impl Future<Output = ()> + Send + 'static) {
        let handle = cluster.system().runtime().spawn(task);
        self.tasks.lock().push(handle);
    }

    /// Aborts every task and waits until they ended; false if none ran.
    pub async fn stop(&self) -> bool {
        let tasks: Vec<_> = self.tasks.lock().drain(..).collect();
        let any = !tasks.is_empty();
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        any
    }
}
