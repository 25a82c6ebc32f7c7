//! A counting valve for log spam: lets `max` events through per period and
//! reports how many it held back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the caller should do with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Valve {
    /// Log it.
    Open,
    /// Log it, and say that further ones will be held back this period.
    Closing,
    /// Hold it back.
    Closed,
}

/// Allows `max` events per `period`.
#[derive(Debug)]
pub struct Throttle {
    max: u64,
    period: Duration,
    start: Instant,
    // (period index << 32) | count within that period
    state: AtomicU64,
    dropped: AtomicU64,
}

impl Throttle {
    /// A throttle allowing `max` events per `period`.
    pub fn new(max: u64, period: Duration) -> Self {
        Throttle {
            max: max.max(1),
            period,
            start: Instant::now(),
            state: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Counts one event; the second value is how many were held back in
    /// earlier periods (reported once, with the first event of a new period).
    pub fn check(&self) -> (Valve, u64) {
        let period_ms = self.period.as_millis().max(1) as u64;
        let now_period = (self.start.elapsed().as_millis() as u64 / period_ms) & 0xffff_ffff;
        let mut held_back = 0;
        let count = loop {
            let cur = self.state.load(Ordering::Acquire);
            let (p, c) = (cur >> 32, cur & 0xffff_ffff);
            let next = if p == now_period { (p << 32) | (c + 1).min(0xffff_ffff) } else { (now_period << 32) | 1 };
            if self.state.compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                if p != now_period {
                    held_back = self.dropped.swap(0, Ordering::AcqRel);
                }
                break next & 0xffff_ffff;
            }
        };
        let valve = if count < self.max {
            Valve::Open
        } else if count == self.max {
            Valve::Closing
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            Valve::Closed
        };
        (valve, held_back)
    }
}
