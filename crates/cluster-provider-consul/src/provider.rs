//! [`ConsulProvider`]: register as an agent service with a TTL check, pass
//! it, watch the healthy instances with blocking queries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use protoactor_cluster::{
    ClusterHandle, ClusterProvider, Error, Member, ProviderTasks, Retry, StartOnce, TopologyReporter,
};
use tokio::time::Instant;

use crate::client::{CallError, ConsulClient, HealthEntry, ServiceRegistration, TtlCheck, jittered, next_index};
use crate::config::{ConsulConfig, consul_duration};

/// Service metadata key holding the member id.
pub const META_MEMBER_ID: &str = "protoactor-member-id";
/// Service metadata key holding the cluster name.
pub const META_CLUSTER: &str = "protoactor-cluster";

/// The first pause after a failed call.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Blocking queries are at least this far apart, whatever Consul answers
/// (an index that keeps resetting must not become a tight loop).
const MIN_QUERY_SPACING: Duration = Duration::from_millis(50);

/// Membership on Consul: each member registers a service instance
/// `<service>-<member id>` with a TTL check on its local agent and passes
/// the check every TTL/3; every member and client watches the service's
/// passing instances with blocking queries. See the [crate docs](crate).
///
/// Cheap to clone; clones are the same provider. One provider serves one
/// member or client, once.
#[derive(Clone)]
pub struct ConsulProvider {
    inner: Arc<Inner>,
}

struct Inner {
    config: ConsulConfig,
    once: StartOnce,
    tasks: ProviderTasks,
    /// Set while registered: the client and our service id, to deregister.
    registered: Mutex<Option<(ConsulClient, String)>>,
}

impl fmt::Debug for ConsulProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulProvider")
            .field("config", &self.inner.config)
            .field("service_id", &self.service_id())
            .finish()
    }
}

impl ConsulProvider {
    /// A provider talking to Consul as `config` says.
    pub fn new(config: ConsulConfig) -> Self {
        ConsulProvider {
            inner: Arc::new(Inner {
                config,
                once: StartOnce::new("ConsulProvider"),
                tasks: ProviderTasks::new(),
                registered: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ConsulConfig {
        &self.inner.config
    }

    /// This member's Consul service id, while registered.
    pub fn service_id(&self) -> Option<String> {
        self.inner.registered.lock().as_ref().map(|(_, id)| id.clone())
    }

    fn fail(&self, what: &str, e: &CallError) -> Error {
        Error::Provider(format!("consul at {}: {what} failed: {e}", self.inner.config.address))
    }

    async fn start(&self, cluster: &ClusterHandle, member: bool) -> Result<(), Error> {
        let inner = &self.inner;
        inner.once.start()?;
        let config = &inner.config;
        config.validate()?;
        let client = ConsulClient::new(config)?;
        let service = config.service_name(cluster.name());
        let mut reporter = TopologyReporter::new(cluster, "consul", member);
        if let Some(me) = reporter.me() {
            let registration = registration(config, &service, cluster.name(), me);
            client.register(&registration).await.map_err(|e| self.fail("registering this member", &e))?;
            tracing::info!(
                cluster = %cluster.name(), service = %service, id = %registration.id, ttl = ?config.ttl,
                "registered in consul"
            );
            *inner.registered.lock() = Some((client.clone(), registration.id.clone()));
            let heartbeat = heartbeat(client.clone(), registration, config.clone(), cluster.name().to_string());
            inner.tasks.spawn(cluster, heartbeat);
        }
        let first = match client.healthy(&service, 0, config.blocking_wait).await {
            Ok(answer) => answer,
            Err(e) => {
                inner.tasks.stop().await;
                return Err(self.fail("listing the members", &e));
            }
        };
        reporter.report(members(cluster.name(), &first.entries));
        let watch = Watch {
            client,
            service,
            config: config.clone(),
            retry: Retry::new("consul", cluster.name(), FIRST_RETRY, config.retry_max),
            reporter,
            index: next_index(0, first.index),
        };
        inner.tasks.spawn(cluster, watch.run());
        Ok(())
    }
}

/// What this member registers: tags = kinds, meta = member id and cluster.
fn registration(config: &ConsulConfig, service: &str, cluster: &str, me: &Member) -> ServiceRegistration {
    let id = format!("{service}-{}", me.id);
    let meta =
        BTreeMap::from([(META_MEMBER_ID.to_string(), me.id.clone()), (META_CLUSTER.to_string(), cluster.into())]);
    ServiceRegistration {
        check: TtlCheck {
            check_id: format!("service:{id}"),
            name: format!("protoactor member {}", me.id),
            ttl: consul_duration(config.ttl),
            status: "passing".into(),
            deregister_critical_service_after: consul_duration(config.deregister_critical_after),
        },
        id,
        name: service.to_string(),
        tags: me.kinds.clone(),
        address: me.host.clone(),
        port: u16::try_from(me.port).unwrap_or(0),
        meta,
    }
}

/// The members of `cluster` among `entries` (Consul filtered them to
/// passing ones). Instances of the service that are not ours are skipped.
pub(crate) fn members(cluster: &str, entries: &[HealthEntry]) -> Vec<Member> {
    let mut out = Vec::new();
    for entry in entries {
        let service = &entry.service;
        let (Some(id), Some(their_cluster)) = (service.meta.get(META_MEMBER_ID), service.meta.get(META_CLUSTER)) else {
            tracing::debug!(service = %service.id, "consul instance without protoactor metadata; ignoring it");
            continue;
        };
        if their_cluster != cluster {
            tracing::debug!(service = %service.id, %their_cluster, "consul instance of another cluster; ignoring it");
            continue;
        }
        // Consul's rule: an instance without an address is at its node's.
        let host = if service.address.is_empty() { &entry.node.address } else { &service.address };
        out.push(Member::new(host.clone(), service.port, id.clone(), service.tags.clone()));
    }
    out
}

/// Passes the TTL check every TTL/3; registers again if the agent lost the
/// registration (it answers 404 for the check).
async fn heartbeat(client: ConsulClient, registration: ServiceRegistration, config: ConsulConfig, cluster: String) {
    let mut retry = Retry::new("consul", cluster, FIRST_RETRY, config.retry_max.min(config.pass_interval()));
    let check_id = registration.check.check_id.clone();
    let mut pause = config.pass_interval();
    loop {
        tokio::time::sleep(pause).await;
        let result = match client.pass(&check_id).await {
            Err(CallError::NotFound(why)) => {
                tracing::warn!(check = %check_id, %why, "the consul agent lost this member's check; registering again");
                client.register(&registration).await
            }
            other => other,
        };
        match result {
            Ok(()) => {
                retry.succeeded();
                pause = config.pass_interval();
            }
            Err(e) => {
                retry.failed(format!("passing the TTL check {check_id}: {e}")).await;
                pause = Duration::ZERO;
            }
        }
    }
}

/// Blocking queries on the service's passing instances, reporting each
/// answer's full member set.
struct Watch {
    client: ConsulClient,
    service: String,
    config: ConsulConfig,
    retry: Retry,
    reporter: TopologyReporter,
    index: u64,
}

impl Watch {
    async fn run(mut self) {
        loop {
            if self.reporter.is_stopping() {
                return;
            }
            let started = Instant::now();
            let wait = jittered(self.config.blocking_wait);
            match self.client.healthy(&self.service, self.index, wait).await {
                Ok(answer) => {
                    self.retry.succeeded();
                    let next = next_index(self.index, answer.index);
                    if next == 0 {
                        tracing::info!(
                            from = self.index,
                            to = answer.index,
                            "consul index went backwards; reading again"
                        );
                    }
                    self.index = next;
                    let members = members(self.reporter.cluster(), &answer.entries);
                    self.reporter.report(members);
                }
                // Nothing is reported: the cluster keeps its last topology.
                Err(e) => self.retry.failed(format!("watching `{}`: {e}", self.service)).await,
            }
            tokio::time::sleep_until(started + MIN_QUERY_SPACING).await;
        }
    }
}

impl ClusterProvider for ConsulProvider {
    /// Registers this member's service and TTL check, lists the healthy
    /// members and starts passing the check and watching. Fails if the
    /// agent cannot be reached or refuses the token.
    fn start_member<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, true))
    }

    /// Lists the healthy members and watches them without registering.
    fn start_client<'a>(&'a self, cluster: &'a ClusterHandle) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.start(cluster, false))
    }

    /// Stops passing and watching. Graceful: deregisters the service, so
    /// the others see this member leave at once. Otherwise its check goes
    /// critical after the TTL (it leaves then) and Consul removes it after
    /// the deregister-critical window.
    fn shutdown(&self, graceful: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.inner.tasks.stop().await;
            let registered = self.inner.registered.lock().take();
            if let Some((client, service_id)) = registered {
                if graceful {
                    if let Err(e) = client.deregister(&service_id).await {
                        return Err(Error::Provider(format!(
                            "consul at {}: deregistering {service_id} failed: {e}; the member leaves when its check goes critical (TTL {:?})",
                            self.inner.config.address, self.inner.config.ttl
                        )));
                    }
                    tracing::info!(%service_id, "deregistered from consul: left the cluster");
                } else {
                    tracing::info!(%service_id, "consul provider stopped; the check goes critical after its TTL");
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{AgentService, Node};

    fn entry(id: &str, cluster: &str, address: &str) -> HealthEntry {
        HealthEntry {
            node: Node { node: "n1".into(), address: "10.0.0.9".into(), datacenter: "dc1".into() },
            service: AgentService {
                id: format!("svc-{id}"),
                service: "svc".into(),
                tags: vec!["echo".into()],
                address: address.into(),
                port: 4020,
                meta: BTreeMap::from([
                    (META_MEMBER_ID.to_string(), id.to_string()),
                    (META_CLUSTER.to_string(), cluster.to_string()),
                ]),
            },
            checks: Vec::new(),
        }
    }

    #[test]
    fn members_come_from_our_cluster_and_fall_back_to_the_node_address() {
        let mut foreign = entry("x", "shop", "10.0.0.1");
        foreign.service.meta.clear();
        let got = members(
            "shop",
            &[entry("a", "shop", "10.0.0.1"), entry("b", "other", "10.0.0.2"), entry("c", "shop", ""), foreign],
        );
        let ids: Vec<(&str, &str)> = got.iter().map(|m| (m.id.as_str(), m.host.as_str())).collect();
        assert_eq!(ids, [("a", "10.0.0.1"), ("c", "10.0.0.9")]);
        assert_eq!(got[0].kinds, ["echo"]);
        assert_eq!(got[0].port, 4020);
    }

    #[test]
    fn the_registration_carries_kinds_as_tags_and_ids_as_meta() {
        let config = ConsulConfig::default().with_ttl(Duration::from_secs(6));
        let me = Member::new("10.0.0.5", 4020, "m1", vec!["cart".into(), "user".into()]);
        let r = registration(&config, "shop", "shop", &me);
        assert_eq!(r.id, "shop-m1");
        assert_eq!(r.tags, ["cart", "user"]);
        assert_eq!(r.meta[META_MEMBER_ID], "m1");
        assert_eq!(r.meta[META_CLUSTER], "shop");
        assert_eq!(r.check.check_id, "service:shop-m1");
        assert_eq!(r.check.ttl, "6s");
        assert_eq!(r.check.deregister_critical_service_after, "60s");
    }
}
