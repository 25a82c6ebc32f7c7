//! Ordered delivery fixtures: an aggregator grain that checks per-sender
//! sequence numbers, and plain sender actors that stream numbered messages
//! to it through the cluster.

use std::collections::HashMap;
use std::sync::Arc;

use protoactor_actor::prelude::*;
use protoactor_cluster::{Cluster, Kind};

use crate::{Activations, test_message_name};

/// Message `seq` (0-based) of sender `sender`, fire-and-forget to the aggregator.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Seq {
    /// The sender's name.
    #[prost(string, tag = "1")]
    pub sender: String,
    /// Its sequence number, from 0.
    #[prost(uint64, tag = "2")]
    pub seq: u64,
}
test_message_name!(Seq);

/// Asks the aggregator for its [`AggregatorStats`], as seen by `sender`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct GetStats {
    /// Whose count goes into `from_sender` (may be empty).
    #[prost(string, tag = "1")]
    pub sender: String,
}
test_message_name!(GetStats);

/// What the aggregator has received.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AggregatorStats {
    /// Messages received in total.
    #[prost(uint64, tag = "1")]
    pub total: u64,
    /// Messages whose number was not the previous one from that sender plus one.
    #[prost(uint64, tag = "2")]
    pub out_of_order: u64,
    /// Distinct senders seen.
    #[prost(uint64, tag = "3")]
    pub senders: u64,
    /// Messages received from the sender named in [`GetStats`].
    #[prost(uint64, tag = "4")]
    pub from_sender: u64,
}
test_message_name!(AggregatorStats);

#[derive(Default)]
struct Aggregator {
    /// Sender -> (last sequence number, messages received).
    senders: HashMap<String, (u64, u64)>,
    total: u64,
    out_of_order: u64,
    activations: Arc<Activations>,
}

impl Actor for Aggregator {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if ctx.message_is::<Started>() {
            self.activations.record_started();
        } else if ctx.message_is::<Stopped>() {
            self.activations.record_stopped();
        } else if let Some(m) = ctx.message::<Seq>() {
            self.total += 1;
            match self.senders.get_mut(&m.sender) {
                Some((last, n)) => {
                    if m.seq != *last + 1 {
                        self.out_of_order += 1;
                    }
                    *last = m.seq;
                    *n += 1;
                }
                None => {
                    if m.seq != 0 {
                        self.out_of_order += 1;
                    }
                    self.senders.insert(m.sender.clone(), (m.seq, 1));
                }
            }
        } else if let Some(m) = ctx.message::<GetStats>() {
            let stats = AggregatorStats {
                total: self.total,
                out_of_order: self.out_of_order,
                senders: self.senders.len() as u64,
                from_sender: self.senders.get(&m.sender).map_or(0, |(_, n)| *n),
            };
            ctx.respond(stats);
        }
        Ok(())
    }
}

/// A kind `name` of aggregator grains counting into `activations`.
pub fn aggregator_kind(name: &str, activations: &Arc<Activations>) -> Kind {
    let activations = activations.clone();
    Kind::new(name, Props::from_producer(move || Aggregator { activations: activations.clone(), ..Default::default() }))
}

/// Tells a sender actor to stream `count` numbered messages to the
/// aggregator grain `aggregator` of kind `kind`, then ask it how many of
/// them arrived. Answered with [`SendToResult`]. Local only.
#[derive(Debug, Clone)]
pub struct SendTo {
    /// The aggregator's identity.
    pub aggregator: String,
    /// The aggregator's kind.
    pub kind: String,
    /// Messages to send.
    pub count: u64,
}

/// A sender's report.
#[derive(Debug, Clone)]
pub struct SendToResult {
    /// The sender's name.
    pub sender: String,
    /// The aggregator's answer to the `GetStats` sent after the stream.
    pub stats: Result<AggregatorStats, String>,
}

struct Sender {
    name: String,
    cluster: Cluster,
}

impl Actor for Sender {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(job) = ctx.message::<SendTo>().cloned() {
            let stats = self.stream(&job).await;
            ctx.respond(SendToResult { sender: self.name.clone(), stats });
        }
        Ok(())
    }
}

impl Sender {
    /// Fire-and-forget sends (many in flight at once), then a request on the
    /// same path: it arrives after them only if the path keeps order.
    async fn stream(&self, job: &SendTo) -> Result<AggregatorStats, String> {
        for seq in 0..job.count {
            let m = Seq { sender: self.name.clone(), seq };
            self.cluster.send(&job.aggregator, &job.kind, m).await.map_err(|e| e.to_string())?;
        }
        self.cluster
            .request(&job.aggregator, &job.kind, GetStats { sender: self.name.clone() })
            .await
            .map_err(|e| e.to_string())
    }
}

/// Spawns a plain sender actor named `name` on `cluster`'s actor system.
pub fn spawn_sender(cluster: &Cluster, name: &str) -> Pid {
    let (c, n) = (cluster.clone(), name.to_string());
    cluster.system().root().spawn(Props::from_producer(move || Sender { name: n.clone(), cluster: c.clone() }))
}
