//! [`PartitionConfig`].

use std::time::Duration;

/// Settings of the partition identity lookup.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// How long asking an identity owner for a pid may take (default 5 s).
    pub get_pid_timeout: Duration,
    /// Most activations per handover message (default 1000).
    pub handover_chunk_size: usize,
    /// A member that has not answered a handover request in this time is
    /// asked again (default 1 s).
    pub handover_request_timeout: Duration,
    /// A rebalance that has not completed in this time finishes anyway, with
    /// a warning: identities held by unresponsive members may then be
    /// activated a second time (default 10 s).
    pub rebalance_timeout: Duration,
    /// How long a graceful leave waits for local activations to stop (default 10 s).
    pub passivation_timeout: Duration,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            get_pid_timeout: Duration::from_secs(5),
            handover_chunk_size: 1000,
            handover_request_timeout: Duration::from_secs(1),
            rebalance_timeout: Duration::from_secs(10),
            passivation_timeout: Duration::from_secs(10),
        }
    }
}
