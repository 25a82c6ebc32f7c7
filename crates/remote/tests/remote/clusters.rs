//! Cluster names in the handshake: systems talk only within one cluster. A
//! system of another cluster (or a plain system and a cluster member) is
//! refused on both sides as `WrongCluster`, naming both clusters; a peer
//! from before cluster names (it says nothing) is not checked.

use crate::common;

use std::time::Duration;

use common::*;
use protoactor_actor::prelude::*;
use protoactor_actor::{DeliveryFailureKind, Subscription};
use protoactor_remote::proto::remote_message::MessageType;
use protoactor_remote::proto::remoting_client::RemotingClient;
use protoactor_remote::proto::{ConnectRequest, ConnectResponse, RemoteMessage, ServerConnection, connect_request};
use protoactor_remote::{EndpointTerminated, HandshakeRefused};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn in_cluster(name: &str) -> protoactor_remote::RemoteConfig {
    config().with_cluster_name(name).with_retries(1, Duration::from_millis(20))
}

fn refusals(node: &Node) -> (Subscription, mpsc::UnboundedReceiver<HandshakeRefused>) {
    node.system.event_stream().subscribe_channel::<HandshakeRefused>()
}

/// A request from `from` to `to`'s echo fails at once as WrongCluster, with
/// a reason naming both clusters; the endpoint terminates with that kind.
async fn assert_wrong_cluster(from: &Node, to: &Node, theirs: &str, ours: &str) {
    let (_sub, mut ended) = from.system.event_stream().subscribe_channel::<EndpointTerminated>();
    let result = from.system.root().request_future::<Pong, _>(&to.pid("echo"), Ping(1), Duration::from_secs(30)).await;
    match &result {
        Err(Error::DeliveryFailed { kind: DeliveryFailureKind::WrongCluster, reason, .. }) => {
            assert!(reason.contains(theirs) && reason.contains(ours), "names both clusters: {reason}");
            assert!(reason.contains(&*to.remote.address()), "names the peer: {reason}");
        }
        other => panic!("expected WrongCluster, got {other:?}"),
    }
    let event = recv(&mut ended, "EndpointTerminated").await;
    assert_eq!(event.kind, DeliveryFailureKind::WrongCluster, "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systems_of_two_clusters_refuse_each_other_as_wrong_cluster() {
    let blue = Node::start(in_cluster("blue")).await;
    let green = Node::start(in_cluster("green")).await;
    blue.echo("echo");
    green.echo("echo");
    let (_sub, mut refused_by_green) = refusals(&green);
    let (_sub_blue, mut refused_by_blue) = refusals(&blue);

    // blue dials green: green refuses, and blue learns why.
    assert_wrong_cluster(&blue, &green, "`green`", "`blue`").await;
    // The receiver says who connected (and its log line says the same).
    let event = recv(&mut refused_by_green, "HandshakeRefused on green").await;
    assert_eq!(event.kind, DeliveryFailureKind::WrongCluster);
    assert_eq!(event.member_id, blue.system.id());
    assert_eq!(event.address, *blue.remote.address());
    assert!(event.reason.contains("`blue`") && event.reason.contains("`green`"), "{event:?}");

    // And the other way round.
    assert_wrong_cluster(&green, &blue, "`blue`", "`green`").await;
    let event = recv(&mut refused_by_blue, "HandshakeRefused on blue").await;
    assert_eq!(event.member_id, green.system.id());

    // Nothing was delivered either way, and a member of the same cluster is served.
    let teal = Node::start(in_cluster("blue")).await;
    let pong: Pong = teal.system.root().request_future(&blue.pid("echo"), Ping(7), WAIT).await.expect("same cluster");
    assert_eq!(pong, Pong(7));
    for node in [&blue, &green, &teal] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_system_and_a_cluster_member_refuse_each_other() {
    let member = Node::start(in_cluster("blue")).await;
    let plain = Node::start(config().with_retries(1, Duration::from_millis(20))).await;
    member.echo("echo");
    plain.echo("echo");
    assert_wrong_cluster(&plain, &member, "`blue`", "no cluster").await;
    assert_wrong_cluster(&member, &plain, "no cluster", "`blue`").await;
    // Two plain systems talk as always.
    let other = Node::start(config()).await;
    let pong: Pong = other.system.root().request_future(&plain.pid("echo"), Ping(3), WAIT).await.expect("plain");
    assert_eq!(pong, Pong(3));
    for node in [&member, &plain, &other] {
        node.stop().await;
    }
}

/// Opens a stream to `address` and sends a handshake that names `cluster`
/// (`None`: the field is absent, as from a peer before cluster names).
async fn handshake(address: &str, cluster: Option<&str>) -> Result<Option<RemoteMessage>, tonic::Status> {
    let mut client = RemotingClient::connect(format!("http://{address}")).await.expect("connect");
    let (tx, rx) = mpsc::channel(4);
    let hello = ConnectRequest {
        connection_type: Some(connect_request::ConnectionType::ServerConnection(ServerConnection {
            member_id: "hand-made".into(),
            address: "127.0.0.1:1".into(),
            block_list: vec![],
            cluster_name: cluster.map(str::to_string),
        })),
    };
    tx.send(RemoteMessage { message_type: Some(MessageType::ConnectRequest(hello)) }).await.expect("send");
    let mut inbound = client.receive(ReceiverStream::new(rx)).await?.into_inner();
    let first = tokio::time::timeout(WAIT, inbound.message()).await.expect("answered in time")?;
    // A refused handshake ends with a status after the answer.
    match tokio::time::timeout(Duration::from_millis(500), inbound.message()).await {
        Ok(Err(status)) => Err(status),
        _ => Ok(first),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_names_the_cluster_and_a_peer_that_says_nothing_is_not_checked() {
    let member = Node::start(in_cluster("blue")).await;
    let address = member.remote.address().to_string();
    let cluster_of = |m: Option<RemoteMessage>| match m {
        Some(RemoteMessage {
            message_type: Some(MessageType::ConnectResponse(ConnectResponse { cluster_name, .. })),
        }) => cluster_name,
        other => panic!("expected a ConnectResponse, got {other:?}"),
    };
    // The same cluster, and a peer that does not say (wire compatibility): accepted.
    let same = handshake(&address, Some("blue")).await.expect("accepted");
    assert_eq!(cluster_of(same).as_deref(), Some("blue"));
    let silent = handshake(&address, None).await.expect("accepted");
    assert_eq!(cluster_of(silent).as_deref(), Some("blue"));
    // Another cluster: the answer names ours, then the stream ends with a status
    // that a peer which does not read the name still understands.
    let status = handshake(&address, Some("green")).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("`green`") && status.message().contains("`blue`"), "{status:?}");
    member.stop().await;
}
