//! Shared helpers of the remote integration tests: systems with remoting on
//! loopback, the test message types (registered on every system), and a few
//! actors that report what they see through channels.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use protoactor_actor::prelude::*;
use protoactor_actor::proto::{Touch, Touched};
use protoactor_actor::{MessageHeader, TerminatedReason};
use protoactor_remote::{Remote, RemoteConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// How long any single awaited event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A request that should be answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping(pub u64);

/// The answer to [`Ping`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong(pub u64);

/// A payload of a chosen size; echoed back as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text(pub String);

/// One message of a numbered stream from one sender.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Seq {
    /// Which stream.
    pub from: u32,
    /// Position in that stream.
    pub n: u64,
}

/// A marker used to prove ordering ("nothing came before this").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Marker(pub u32);

/// Asks the receiver who it is and which sender it saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAreYou(pub u64);

/// The answer to [`WhoAreYou`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The question's number.
    pub n: u64,
    /// The responder's pid, `address/id`.
    pub responder: String,
    /// The sender the responder saw, `address/id`.
    pub sender: Option<String>,
}

/// Asks the receiver for the headers of this message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetHeaders;

/// The answer to [`GetHeaders`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderList(pub Vec<(String, String)>);

/// A protobuf message (prost), registered by its full name `test.ProtoPing`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoPing {
    /// A number.
    #[prost(uint64, tag = "1")]
    pub n: u64,
    /// Some text.
    #[prost(string, tag = "2")]
    pub note: String,
    /// Raw bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub payload: Vec<u8>,
    /// A repeated field.
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
}

impl prost::Name for ProtoPing {
    const NAME: &'static str = "ProtoPing";
    const PACKAGE: &'static str = "test";
}

/// A binary payload, registered without `prost::Name` under an explicit name.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BinaryMessage {
    /// The bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub payload: Vec<u8>,
}

/// The wire name of [`BinaryMessage`].
pub const BINARY_MESSAGE: &str = "test.BinaryMessage";

/// A config on `127.0.0.1:port` with every test type and the `echo` kind.
pub fn config_on(port: u16) -> RemoteConfig {
    RemoteConfig::bind("127.0.0.1", port)
        .with_serialization(registry())
        .with_kind("echo", Props::from_producer(|| Echo))
}

/// [`config_on`] with a free port.
pub fn config() -> RemoteConfig {
    config_on(0)
}

/// Every test type: JSON ones by name, prost ones by full name or by an
/// explicit name (types without `prost::Name`).
pub fn registry() -> protoactor_remote::Serialization {
    let mut s = protoactor_remote::Serialization::new();
    s.register_json::<Ping>("test.Ping");
    s.register_json::<Pong>("test.Pong");
    s.register_json::<Text>("test.Text");
    s.register_json::<Seq>("test.Seq");
    s.register_json::<Marker>("test.Marker");
    s.register_json::<WhoAreYou>("test.WhoAreYou");
    s.register_json::<Identity>("test.Identity");
    s.register_json::<GetHeaders>("test.GetHeaders");
    s.register_json::<HeaderList>("test.HeaderList");
    s.register_protobuf::<ProtoPing>();
    s.register_protobuf_named::<BinaryMessage>(BINARY_MESSAGE);
    s.register_protobuf_named::<Touch>("actor.Touch");
    s.register_protobuf_named::<Touched>("actor.Touched");
    s
}

/// One actor system with remoting started.
#[derive(Debug)]
pub struct Node {
    /// The actor system.
    pub system: ActorSystem,
    /// Its remoting.
    pub remote: Remote,
    /// Its bound address, `127.0.0.1:port`.
    pub address: String,
}

impl Node {
    /// A new system with remoting started under `config`.
    pub async fn start(config: RemoteConfig) -> Node {
        Node::start_with(ActorSystem::new(), config).await
    }

    /// Starts remoting for an existing system (whose id must be known first).
    pub async fn start_with(system: ActorSystem, config: RemoteConfig) -> Node {
        let remote = Remote::new(&system, config);
        let address = remote.start().await.expect("remoting starts on a free loopback port");
        Node { system, remote, address }
    }

    /// The port this system listens on.
    pub fn port(&self) -> u16 {
        self.address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("address ends with a port")
    }

    /// A pid for `id` on this system, as another system would name it.
    pub fn pid(&self, id: &str) -> Pid {
        Pid::new(self.address.as_str(), id)
    }

    /// Spawns an [`Echo`] named `name`.
    pub fn echo(&self, name: &str) -> Pid {
        self.system.root().spawn_named(Props::from_producer(|| Echo), name).expect("echo name is free")
    }

    /// Spawns a [`recorder`] named `name`; returns its pid and what it records.
    pub fn recorder(&self, name: &str) -> (Pid, mpsc::UnboundedReceiver<Seen>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pid = self.system.root().spawn_named(recorder(tx), name).expect("recorder name is free");
        (pid, rx)
    }

    /// Stops remoting, then the system.
    pub async fn stop(&self) {
        self.remote.shutdown(true).await;
        self.system.shutdown().await;
    }
}

/// Two systems with the default test config.
pub async fn pair() -> (Node, Node) {
    (Node::start(config()).await, Node::start(config()).await)
}

/// Three systems with the default test config.
pub async fn trio() -> (Node, Node, Node) {
    (Node::start(config()).await, Node::start(config()).await, Node::start(config()).await)
}

/// Answers [`Ping`] with [`Pong`], echoes [`Text`], [`ProtoPing`] and
/// [`BinaryMessage`], answers [`Touch`] with [`Touched`], [`WhoAreYou`] with
/// [`Identity`] and [`GetHeaders`] with [`HeaderList`].
#[derive(Debug)]
pub struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Ping(n)) = ctx.message::<Ping>() {
            ctx.respond(Pong(*n));
        } else if let Some(t) = ctx.message::<Text>() {
            ctx.respond(t.clone());
        } else if let Some(p) = ctx.message::<ProtoPing>() {
            ctx.respond(p.clone());
        } else if let Some(b) = ctx.message::<BinaryMessage>() {
            ctx.respond(b.clone());
        } else if ctx.message_is::<Touch>() {
            ctx.respond(Touched { who: Some(ctx.self_pid().to_proto()) });
        } else if let Some(WhoAreYou(n)) = ctx.message::<WhoAreYou>() {
            let answer =
                Identity { n: *n, responder: ctx.self_pid().to_string(), sender: ctx.sender().map(|s| s.to_string()) };
            ctx.respond(answer);
        } else if ctx.message_is::<GetHeaders>() {
            let headers = ctx
                .header()
                .map(|h| h.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
                .unwrap_or_default();
            ctx.respond(HeaderList(headers));
        }
        Ok(())
    }
}

/// What a [`recorder`] saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The Rust type name of the message.
    pub type_name: &'static str,
    /// Its sender.
    pub sender: Option<Pid>,
    /// Its headers.
    pub header: Option<MessageHeader>,
    /// The message, for the types tests look into.
    pub body: Body,
}

/// The content of a recorded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A [`Ping`].
    Ping(u64),
    /// A [`Seq`].
    Seq(Seq),
    /// A [`Marker`].
    Marker(u32),
    /// A [`Text`]'s length.
    TextLen(usize),
    /// A [`Terminated`].
    Terminated(Terminated),
    /// [`Started`].
    Started,
    /// [`Stopped`].
    Stopped,
    /// Anything else.
    Other,
}

/// An actor that reports every message (and its start, stop and watch
/// notifications) to `tx`, answers [`Ping`] with [`Pong`], and watches /
/// unwatches the pid in a [`WatchCmd`] / [`UnwatchCmd`] before acking it.
pub fn recorder(tx: mpsc::UnboundedSender<Seen>) -> Props {
    Props::from_fn(move |ctx: &mut Context| {
        if let Some(WatchCmd(pid)) = ctx.message::<WatchCmd>() {
            ctx.watch(pid);
            ctx.respond(Ack);
            return Ok(());
        }
        if let Some(UnwatchCmd(pid)) = ctx.message::<UnwatchCmd>() {
            ctx.unwatch(pid);
            ctx.respond(Ack);
            return Ok(());
        }
        let body = if let Some(Ping(n)) = ctx.message::<Ping>() {
            ctx.respond(Pong(*n));
            Body::Ping(*n)
        } else if let Some(s) = ctx.message::<Seq>() {
            Body::Seq(*s)
        } else if let Some(Marker(m)) = ctx.message::<Marker>() {
            Body::Marker(*m)
        } else if let Some(Text(t)) = ctx.message::<Text>() {
            Body::TextLen(t.len())
        } else if let Some(t) = ctx.message::<Terminated>() {
            Body::Terminated(t.clone())
        } else if ctx.message_is::<Started>() {
            Body::Started
        } else if ctx.message_is::<Stopped>() {
            Body::Stopped
        } else {
            Body::Other
        };
        let _ = tx.send(Seen {
            type_name: ctx.message_type_name(),
            sender: ctx.sender().cloned(),
            header: ctx.header().cloned(),
            body,
        });
        Ok(())
    })
}

/// Local command to a [`recorder`]: watch this pid, then answer [`Ack`].
#[derive(Debug, Clone)]
pub struct WatchCmd(pub Pid);

/// Local command to a [`recorder`]: unwatch this pid, then answer [`Ack`].
#[derive(Debug, Clone)]
pub struct UnwatchCmd(pub Pid);

/// The answer to local commands.
#[derive(Debug, Clone, Copy)]
pub struct Ack;

/// The next recorded message whose body is not a lifecycle message, within [`WAIT`].
pub async fn next_seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    loop {
        let seen = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("a message arrives in time")
            .expect("the recorder is alive");
        if !matches!(seen.body, Body::Started) {
            return seen;
        }
    }
}

/// Waits for the next item of `rx` within [`WAIT`].
pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(v)) => v,
        Ok(None) => panic!("channel closed while waiting for {what}"),
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Waits for the next item of `rx` that matches `pick`, within [`WAIT`].
pub async fn recv_matching<T, R>(
    rx: &mut mpsc::UnboundedReceiver<T>,
    what: &str,
    mut pick: impl FnMut(T) -> Option<R>,
) -> R {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(v)) => {
                if let Some(r) = pick(v) {
                    return r;
                }
            }
            Ok(None) => panic!("channel closed while waiting for {what}"),
            Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
        }
    }
}

/// Watches `target` from the recorder `watcher`, then makes sure the watch is
/// in place on the remote side: a request to `target` sent after the watch
/// travels behind it on the same stream, and the target handles system
/// messages before user messages, so its answer proves the watch arrived.
pub async fn watch_and_sync(system: &ActorSystem, watcher: &Pid, target: &Pid) {
    let _: Ack = system
        .root()
        .request_future(watcher, WatchCmd(target.clone()), WAIT)
        .await
        .expect("watcher acks the watch command");
    let _: Pong = system.root().request_future(target, Ping(0), WAIT).await.expect("watched actor answers");
}

/// The terminated reason of a recorded message, if it is a `Terminated`.
pub fn terminated(seen: &Seen) -> Option<(Pid, TerminatedReason)> {
    match &seen.body {
        Body::Terminated(t) => Some((t.who.clone(), t.why)),
        _ => None,
    }
}
