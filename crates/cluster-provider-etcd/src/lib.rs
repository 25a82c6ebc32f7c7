//! # protoactor-cluster-provider-etcd
//!
//! Cluster membership on [etcd](https://etcd.io) (v3 API, etcd 3.4 or
//! newer). Each member writes its [`MemberInfo`] (id, remoting host and
//! port, kinds, cluster name) as JSON under `<prefix>/<cluster>/<member-id>`,
//! bound to a lease with a TTL that it keeps alive. Every member and client
//! lists `<prefix>/<cluster>/`, watches it from the revision it listed, and
//! hands the full member set to the cluster's member list on every change.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_actor::prelude::*;
//! use protoactor_cluster::{Cluster, ClusterConfig, Kind};
//! use protoactor_cluster_provider_etcd::{EtcdConfig, EtcdProvider};
//! use protoactor_identity_lookup_partition::PartitionIdentityLookup;
//!
//! # async fn demo() -> Result<(), protoactor_cluster::Error> {
//! let provider = EtcdProvider::new(
//!     EtcdConfig::new(["http://127.0.0.1:2379"]).with_prefix("/protoactor").with_ttl(Duration::from_secs(6)),
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
//! cluster.start_member().await?; // fails within the connect timeout if etcd is unreachable
//! println!("registered with lease {:?}", provider.lease_id());
//! cluster.shutdown(true).await; // revokes the lease: the others see this member leave at once
//! # Ok(()) }
//! ```
//!
//! ## Rules
//!
//! * Starting connects, grants the lease, writes the key and lists the
//!   prefix, all within the [connect timeout](EtcdConfig::with_connect_timeout);
//!   an unreachable etcd, wrong credentials or a bad TLS setup make
//!   `start_member` fail with an error naming the endpoints.
//! * The lease is renewed every [TTL](EtcdConfig::with_ttl)/3. A member
//!   whose process died leaves when its lease expires, at most one TTL
//!   after its last renewal; a graceful shutdown revokes the lease, so it
//!   leaves at once. An ungraceful one just stops renewing.
//! * Keys of other clusters live under other prefixes and are never read;
//!   a value under ours that is not a member of this cluster is ignored
//!   with a warning.
//! * While etcd is unreachable nothing is reported: the cluster keeps its
//!   last known topology. The watch resumes from the revision after the
//!   last one it applied (a full re-list if etcd compacted that revision
//!   meanwhile), and keep-alives resume on the same lease; etcd extends
//!   leases when it restarts, so nobody is dropped by a short outage.
//! * A lost lease (expired while this member could not renew it, or
//!   revoked by someone else) is granted anew and the key written again.
//!   The other members saw the key go and treated it as a leave, and the
//!   cluster blocks a member id that left; the member keeps listing itself.
//! * A client ([`Cluster::start_client`](protoactor_cluster::Cluster::start_client))
//!   watches without registering.
//!
//! ## Security
//!
//! Anyone who can write under the prefix can add or remove members. Use
//! etcd's authentication ([`with_user`](EtcdConfig::with_user); the user
//! needs read-write access to the prefix) and TLS
//! ([`with_tls`](EtcdConfig::with_tls) with `https://` endpoints; there are
//! no built-in trust roots, give the CA).

#![forbid(unsafe_code)]
mod config;
mod etcd;
mod member_info;
mod provider;

pub use config::{DEFAULT_PREFIX, EtcdConfig, EtcdTls};
pub use member_info::MemberInfo;
pub use provider::EtcdProvider;
