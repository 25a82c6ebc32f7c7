//! Supervision: what a parent does when a child fails.
//!
//! A failing actor suspends its mailbox and reports a [`Failure`] to its
//! parent; the parent's [`SupervisorStrategy`] picks a [`Directive`] and
//! applies it. Strategies: [`OneForOneStrategy`] (the default: restart up to
//! 10 times within 10 s, then stop), [`AllForOneStrategy`],
//! [`ExponentialBackoffStrategy`] and [`AlwaysRestartStrategy`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::ActorError;
use crate::message::{Failure, SystemMessage};
use crate::pid::Pid;
use crate::system::ActorSystem;

/// What to do with a failed child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Directive {
    /// Keep the actor and its state; continue with the next message.
    Resume,
    /// Replace the actor with a fresh instance from its producer.
    Restart,
    /// Stop the actor.
    Stop,
    /// Fail the supervisor itself, handing the decision to its own parent.
    Escalate,
}

/// Published on the event stream each time a supervisor handles a failure.
#[derive(Debug, Clone)]
pub struct SupervisorEvent {
    /// The failed actor.
    pub child: Pid,
    /// Why it failed.
    pub reason: ActorError,
    /// What the supervisor decided.
    pub directive: Directive,
}

/// Failure timestamps of one actor, used to enforce restart limits.
#[derive(Debug, Default, Clone)]
pub struct RestartStatistics {
    failures: Vec<Instant>,
}

impl RestartStatistics {
    /// Records a failure now.
    pub fn fail(&mut self) {
        // Keep the history bounded: only recent failures matter for any window.
        if self.failures.len() >= 1024 {
            self.failures.drain(..512);
        }
        self.failures.push(Instant::now());
    }

    /// Forgets all failures.
    pub fn reset(&mut self) {
        self.failures.clear();
    }

    /// All recorded failures.
    pub fn failure_count(&self) -> usize {
        self.failures.len()
    }

    /// Failures within the last `within`.
    pub fn failures_within(&self, within: Duration) -> usize {
        let now = Instant::now();
        self.failures.iter().filter(|t| now.duration_since(**t) < within).count()
    }

    /// When the last failure happened.
    pub fn last_failure(&self) -> Option<Instant> {
        self.failures.last().copied()
    }
}

/// What a strategy can do to the supervisor and its children.
pub trait Supervisor {
    /// The supervisor's children.
    fn children(&self) -> Vec<Pid>;
    /// Restarts the given children.
    fn restart_children(&self, pids: &[Pid]);
    /// Stops the given children.
    fn stop_children(&self, pids: &[Pid]);
    /// Resumes the given (suspended) children.
    fn resume_children(&self, pids: &[Pid]);
    /// Fails the supervisor itself with the child's reason.
    fn escalate_failure(&self, failure: &Failure);
    /// The actor system.
    fn system(&self) -> &ActorSystem;
}

/// Decides and applies a directive for a failed child.
pub trait SupervisorStrategy: Send + Sync + 'static {
    /// Handles `failure` of one of `supervisor`'s children.
    fn handle_failure(&self, supervisor: &dyn Supervisor, failure: &Failure);
}

impl fmt::Debug for dyn SupervisorStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SupervisorStrategy")
    }
}

/// Picks a directive from the failed child and the reason.
pub type Decider = Arc<dyn Fn(&Pid, &ActorError) -> Directive + Send + Sync>;

fn always_restart_decider() -> Decider {
    Arc::new(|_, _| Directive::Restart)
}

fn publish(supervisor: &dyn Supervisor, child: &Pid, reason: &ActorError, directive: Directive) {
    tracing::debug!(%child, %reason, ?directive, "supervisor handled failure");
    supervisor.system().event_stream().publish(SupervisorEvent {
        child: child.clone(),
        reason: reason.clone(),
        directive,
    });
}

/// True when one more restart fits within the limits; records the failure.
fn restart_permitted(failure: &Failure, max_retries: u32, within: Duration) -> bool {
    if max_retries == 0 {
        return false;
    }
    let mut stats = failure.stats.lock();
    stats.fail();
    if within.is_zero() {
        return stats.failure_count() <= max_retries as usize;
    }
    if stats.failures_within(within) > max_retries as usize {
        stats.reset();
        return false;
    }
    true
}

fn apply(
    supervisor: &dyn Supervisor,
    failure: &Failure,
    directive: Directive,
    targets: &[Pid],
    limits: (u32, Duration),
) {
    let directive = match directive {
        Directive::Restart if !restart_permitted(failure, limits.0, limits.1) => Directive::Stop,
        d => d,
    };
    publish(supervisor, &failure.who, &failure.reason, directive);
    match directive {
        Directive::Resume => supervisor.resume_children(std::slice::from_ref(&failure.who)),
        Directive::Restart => supervisor.restart_children(targets),
        Directive::Stop => supervisor.stop_children(targets),
        Directive::Escalate => supervisor.escalate_failure(failure),
    }
}

/// Applies the directive to the failed child only. Restarts beyond
/// `max_retries` within `within` turn into a stop.
#[derive(Clone)]
pub struct OneForOneStrategy {
    max_retries: u32,
    within: Duration,
    decider: Decider,
}

impl OneForOneStrategy {
    /// Restart on every failure, at most `max_retries` times within `within`
    /// (a zero window counts all failures ever).
    pub fn new(max_retries: u32, within: Duration) -> Self {
        OneForOneStrategy { max_retries, within, decider: always_restart_decider() }
    }

    /// Chooses the directive per failure.
    pub fn with_decider(mut self, decider: impl Fn(&Pid, &ActorError) -> Directive + Send + Sync + 'static) -> Self {
        self.decider = Arc::new(decider);
        self
    }
}

impl Default for OneForOneStrategy {
    fn default() -> Self {
        OneForOneStrategy::new(10, Duration::from_secs(10))
    }
}

impl fmt::Debug for OneForOneStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneForOneStrategy")
            .field("max_retries", &self.max_retries)
            .field("within", &self.within)
            .finish()
    }
}

impl SupervisorStrategy for OneForOneStrategy {
    fn handle_failure(&self, supervisor: &dyn Supervisor, failure: &Failure) {
        let directive = (self.decider)(&failure.who, &failure.reason);
        apply(supervisor, failure, directive, std::slice::from_ref(&failure.who), (self.max_retries, self.within));
    }
}

/// Applies the directive to every child of the supervisor (resume still
/// applies to the failed child only, since only it is suspended).
#[derive(Clone)]
pub struct AllForOneStrategy {
    max_retries: u32,
    within: Duration,
    decider: Decider,
}

impl AllForOneStrategy {
    /// Restart all children on any failure, at most `max_retries` times within `within`.
    pub fn new(max_retries: u32, within: Duration) -> Self {
        AllForOneStrategy { max_retries, within, decider: always_restart_decider() }
    }

    /// Chooses the directive per failure.
    pub fn with_decider(mut self, decider: impl Fn(&Pid, &ActorError) -> Directive + Send + Sync + 'static) -> Self {
        self.decider = Arc::new(decider);
        self
    }
}

impl fmt::Debug for AllForOneStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllForOneStrategy")
            .field("max_retries", &self.max_retries)
            .field("within", &self.within)
            .finish()
    }
}

impl SupervisorStrategy for AllForOneStrategy {
    fn handle_failure(&self, supervisor: &dyn Supervisor, failure: &Failure) {
        let directive = (self.decider)(&failure.who, &failure.reason);
        let children = supervisor.children();
        apply(supervisor, failure, directive, &children, (self.max_retries, self.within));
    }
}

/// Restarts every failed child, without limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysRestartStrategy;

impl SupervisorStrategy for AlwaysRestartStrategy {
    fn handle_failure(&self, supervisor: &dyn Supervisor, failure: &Failure) {
        publish(supervisor, &failure.who, &failure.reason, Directive::Restart);
        supervisor.restart_children(std::slice::from_ref(&failure.who));
    }
}

/// Restarts the failed child after a delay that doubles with each failure
/// (`initial_backoff`, then 2×, 4×, ... up to `max_backoff`, default 1 min),
/// plus up to 500 ms of jitter so a crowd of failing actors does not restart
/// in lockstep. The count resets when no failure happened within
/// `backoff_window`. (Proto.Actor's Go and .NET versions grow the delay
/// linearly despite the name; this one is exponential.)
#[derive(Debug, Clone, Copy)]
pub struct ExponentialBackoffStrategy {
    backoff_window: Duration,
    initial_backoff: Duration,
    max_backoff: Duration,
    jitter: Duration,
}

impl ExponentialBackoffStrategy {
    /// A backoff strategy.
    pub fn new(backoff_window: Duration, initial_backoff: Duration) -> Self {
        ExponentialBackoffStrategy {
            backoff_window,
            initial_backoff,
            max_backoff: Duration::from_secs(60),
            jitter: Duration::from_millis(500),
        }
    }

    /// Caps the delay (default 1 minute).
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// Changes the maximum random jitter added to each delay (default 500 ms).
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before the restart following `failures` failures.
    fn delay(&self, failures: usize) -> Duration {
        let doublings = failures.saturating_sub(1).min(31) as u32;
        let base = self.initial_backoff.saturating_mul(1u32 << doublings).min(self.max_backoff);
        let jitter_ms = self.jitter.as_millis() as u64;
        let noise = if jitter_ms == 0 { Duration::ZERO } else { Duration::from_millis(fastrand::u64(0..jitter_ms)) };
        base + noise
    }
}

impl SupervisorStrategy for ExponentialBackoffStrategy {
    fn handle_failure(&self, supervisor: &dyn Supervisor, failure: &Failure) {
        let failures = {
            let mut stats = failure.stats.lock();
            if let Some(last) = stats.last_failure()
                && last.elapsed() > self.backoff_window
            {
                stats.reset();
            }
            stats.fail();
            stats.failure_count()
        };
        let delay = self.delay(failures);
        publish(supervisor, &failure.who, &failure.reason, Directive::Restart);
        let system = supervisor.system().clone();
        let child = failure.who.clone();
        system.clone().spawn_task(async move {
            tokio::time::sleep(delay).await;
            system.send_system_message(&child, SystemMessage::Restart);
        });
    }
}
