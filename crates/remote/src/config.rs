//! [`RemoteConfig`]: where to listen, which types and kinds to serve, and the
//! endpoint limits.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use protoactor_actor::Props;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::serialization::Serialization;

/// Settings of a [`Remote`](crate::Remote).
#[derive(Clone)]
pub struct RemoteConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) advertised_host: Option<String>,
    pub(crate) serialization: Serialization,
    pub(crate) kinds: HashMap<String, Props>,
    pub(crate) batch_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) endpoint_queue_size: usize,
    pub(crate) max_retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) terminated_address_block: Duration,
    pub(crate) blocked_members: Vec<String>,
}

impl fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("advertised_host", &self.advertised_host)
            .field("serialization", &self.serialization)
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field("batch_size", &self.batch_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("endpoint_queue_size", &self.endpoint_queue_size)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

impl RemoteConfig {
    /// Listen on `host:port` (port 0 picks a free one; the bound address
    /// becomes the system's address).
    pub fn bind(host: impl Into<String>, port: u16) -> Self {
        RemoteConfig {
            host: host.into(),
            port,
            advertised_host: None,
            serialization: Serialization::new(),
            kinds: HashMap::new(),
            batch_size: 1000,
            max_frame_size: 4 * 1024 * 1024,
            endpoint_queue_size: 1_000_000,
            max_retries: 3,
            retry_backoff: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(5),
            terminated_address_block: Duration::from_secs(3),
            blocked_members: Vec::new(),
        }
    }

    /// The host other systems should use to reach this one (behind NAT or in
    /// containers), instead of the bound host.
    pub fn with_advertised_host(mut self, host: impl Into<String>) -> Self {
        self.advertised_host = Some(host.into());
        self
    }

    /// Allows a prost message type to cross the wire, by its protobuf name.
    pub fn with_protobuf<T>(mut self) -> Self
    where
        T: prost::Message + prost::Name + Default + Send + 'static,
    {
        self.serialization.register_protobuf::<T>();
        self
    }

    /// Allows a serde type to cross the wire as JSON under `name` (the same
    /// name on every system).
    pub fn with_json<T>(mut self, name: &str) -> Self
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        self.serialization.register_json::<T>(name);
        self
    }

    /// Uses a prepared registry (adds to what is registered already).
    pub fn with_serialization(mut self, serialization: Serialization) -> Self {
        self.serialization = serialization;
        self
    }

    /// Lets other systems spawn `props` here by the kind name.
    pub fn with_kind(mut self, kind: impl Into<String>, props: Props) -> Self {
        self.kinds.insert(kind.into(), props);
        self
    }

    /// Maximum messages per batch on the wire (default 1000).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Maximum size of one frame (default 4 MiB). Batches are split to stay
    /// under it; a single larger message is refused at the sender.
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes.max(1024);
        self
    }

    /// Messages an endpoint queues while (re)connecting (default 1,000,000).
    /// When full, further messages go to dead letters (requests fail at once).
    pub fn with_endpoint_queue_size(mut self, messages: usize) -> Self {
        self.endpoint_queue_size = messages.max(1);
        self
    }

    /// Failed connection attempts in a row before an endpoint is terminated
    /// (default 3), and the first backoff (default 100 ms, doubling, with jitter).
    pub fn with_retries(mut self, max_retries: u32, backoff: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_backoff = backoff;
        self
    }

    /// How long a connection attempt may take (default 5 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// After an endpoint is terminated, sends to that address go to dead
    /// letters for this long before a new connection is tried (default 3 s).
    pub fn with_terminated_address_block(mut self, duration: Duration) -> Self {
        self.terminated_address_block = duration;
        self
    }

    /// System ids whose connections are refused.
    pub fn with_blocked_members(mut self, member_ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.blocked_members.extend(member_ids.into_iter().map(Into::into));
        self
    }
}
