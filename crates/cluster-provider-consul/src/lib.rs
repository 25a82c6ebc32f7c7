//! # protoactor-cluster-provider-consul
//!
//! Cluster membership on [Consul](https://www.consul.io). Each member
//! registers a service instance on its local agent: service name = the
//! cluster name (or [`with_service_name`](ConsulConfig::with_service_name)),
//! address and port = its remoting address, tags = the kinds it hosts,
//! metadata = its member id and cluster name, and a TTL health check that it
//! passes every TTL/3. Every member and client watches the service's
//! passing instances with blocking queries and hands the full member set to
//! the cluster's member list on every answer that changed it.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, Kind};
//! use protoactor_cluster_provider_consul::{ConsulConfig, ConsulProvider};
//! use protoactor_identity_lookup_partition::PartitionIdentityLookup;
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! let provider = ConsulProvider::new(
//!     ConsulConfig::new("http://127.0.0.1:8500").with_ttl(Duration::from_secs(10)),
//! );
//! let echo = Props::from_fn(|ctx| {
//!     if let Some(n) = ctx.message::<u64>() {
//!         ctx.respond(*n);
//!     }
//!     Ok(())
//! });
//! let system = ActorSystem::new();
//! let config = ClusterConfig::new("demo", provider.clone(), PartitionIdentityLookup::new())
//!     .with_kind(Kind::new("echo", echo));
//! let cluster = Cluster::new(&system, config)?;
//! cluster.start_member().await?; // fails within the request timeout if the agent is unreachable
//! println!("registered as {:?}", provider.service_id());
//! cluster.shutdown(true).await; // deregisters: the others see this member leave at once
//! # Ok(()) }
//! ```
//!
//! ## Options ([`ConsulConfig`])
//!
//! | setting | default | meaning |
//! |---|---|---|
//! | [`new(address)`](ConsulConfig::new) / [`from_env`](ConsulConfig::from_env) | `http://127.0.0.1:8500` | the agent (`CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`) |
//! | [`with_token`](ConsulConfig::with_token) | none | ACL token (`X-Consul-Token`) |
//! | [`with_datacenter`](ConsulConfig::with_datacenter) | the agent's | datacenter whose members are watched |
//! | [`with_service_name`](ConsulConfig::with_service_name) | cluster name | the Consul service members register under |
//! | [`with_ttl`](ConsulConfig::with_ttl) | 10 s | check TTL; passed every TTL/3 |
//! | [`with_deregister_critical_after`](ConsulConfig::with_deregister_critical_after) | 60 s | Consul removes a member critical this long |
//! | [`with_blocking_wait`](ConsulConfig::with_blocking_wait) | 30 s | longest wait of one blocking query (±10 % jitter) |
//! | [`with_request_timeout`](ConsulConfig::with_request_timeout) | 5 s | bound on start-up and on every other call |
//! | [`with_max_retry_interval`](ConsulConfig::with_max_retry_interval) | 5 s | longest pause between attempts while Consul is away |
//!
//! ## Rules
//!
//! * Starting registers (for a member) and lists the members; an
//!   unreachable agent, a refused token or an unknown datacenter make
//!   `start_member` fail with an error naming the agent.
//! * A member whose process died stops passing its check: it goes critical
//!   after the TTL, drops out of the passing instances (the others see it
//!   leave and block its id), and Consul deregisters it after the
//!   deregister-critical window. A graceful shutdown deregisters at once.
//! * Watching follows Consul's rules for blocking-query clients: the index
//!   starts over when it goes backwards, a 0 index never makes a tight
//!   loop, and the wait is jittered so members do not query in step.
//! * While Consul is unreachable nothing is reported: the cluster keeps its
//!   last topology. Calls are retried with backoff (100 ms doubling up to
//!   the retry interval) and logged once when Consul goes away and once when
//!   it is back. If the agent lost this member's registration (it answers
//!   404 for the check), the member registers again.
//! * A client ([`Cluster::start_client`](protoactor_cluster::Cluster::start_client))
//!   watches without registering.
//! * HTTPS to the agent needs the crate's `tls` feature (rustls).

mod client;
mod config;
mod provider;

pub use client::{
    AgentService, CallError, ConsulClient, HealthAnswer, HealthCheck, HealthEntry, Node, ServiceRegistration, TtlCheck,
    jittered, next_index,
};
pub use config::{ConsulConfig, DEFAULT_ADDRESS};
pub use provider::{ConsulProvider, META_CLUSTER, META_MEMBER_ID};
