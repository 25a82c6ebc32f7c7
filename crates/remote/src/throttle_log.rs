//! Keeps per-message warnings from flooding the log when a peer misbehaves.

use std::time::Duration;

use protoactor_actor::{Throttle, Valve};

pub(crate) struct LogThrottle(Throttle);

impl LogThrottle {
    pub(crate) fn new(max: u64, period: Duration) -> Self {
        LogThrottle(Throttle::new(max, period))
    }

    pub(crate) fn allow(&self) -> bool {
        !matches!(self.0.check().0, Valve::Closed)
    }
}
