//! TLS between systems: certificates are made at test time (rcgen) for
//! `localhost` and `127.0.0.1`, so the loopback addresses verify.

use std::time::Duration;

use protoactor_actor::DeliveryFailureKind;
use protoactor_actor::prelude::*;
use protoactor_remote::{EndpointTerminated, Remote, RemoteConfig, TlsConfig};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::sync::mpsc;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Ping(u32);
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Pong(u32);

struct Echo;
impl Actor for Echo {
    async fn receive(&mut self, ctx: &mut Context) -> ActorResult {
        if let Some(Ping(n)) = ctx.message::<Ping>() {
            ctx.respond(Pong(*n));
        }
        Ok(())
    }
}

/// A certificate authority that signs node certificates.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A node's certificate and key, both PEM.
struct Node {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate valid for both serving and connecting under `names`.
    fn node(&self, names: &[&str]) -> Node {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("node params");
        params.distinguished_name.push(DnType::CommonName, "protoactor node");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("node key");
        let cert = params.signed_by(&key, &self.cert, &self.key).expect("sign node");
        Node { cert: cert.pem(), key: key.serialize_pem() }
    }

    fn loopback_node(&self) -> Node {
        self.node(&["localhost", "127.0.0.1"])
    }
}

/// `node`'s identity, trusting `trusted`'s certificates.
fn tls(node: &Node, trusted: &Ca) -> TlsConfig {
    TlsConfig::new(&node.cert, &node.key, trusted.pem()).expect("valid TLS material")
}

/// Fails fast so refusals surface in well under the request timeout.
fn config() -> RemoteConfig {
    RemoteConfig::bind("127.0.0.1", 0)
        .with_json::<Ping>("test.Ping")
        .with_json::<Pong>("test.Pong")
        .with_retries(1, Duration::from_millis(10))
        .with_connect_timeout(Duration::from_secs(2))
}

/// A started system with an `echo` actor; returns the echo's pid as others reach it.
async fn node_with_echo(config: RemoteConfig) -> (ActorSystem, Remote, Pid) {
    let system = ActorSystem::new();
    let remote = Remote::new(&system, config);
    let address = remote.start().await.expect("start");
    system.root().spawn_named(Props::from_producer(|| Echo), "echo").expect("spawn echo");
    (system, remote, Pid::new(address.as_str(), "echo"))
}

async fn started(config: RemoteConfig) -> (ActorSystem, Remote) {
    let system = ActorSystem::new();
    let remote = Remote::new(&system, config);
    remote.start().await.expect("start");
    (system, remote)
}

async fn assert_round_trips(from: &ActorSystem, echo: &Pid) {
    for i in 0..20 {
        let pong: Pong =
            from.root().request_future(echo, Ping(i), Duration::from_secs(10)).await.expect("pong over TLS");
        assert_eq!(pong, Pong(i));
    }
}

/// A request from `from` to `echo` fails with `kind` (the endpoint gave up:
/// the connection was refused) well before its timeout, and the endpoint is
/// reported terminated with that kind. Returns the termination reason. The
/// kind comes from the error's type (a rustls error, or a TLS record where
/// plain text was expected), never from its text.
async fn assert_refused(from: &ActorSystem, echo: &Pid, kind: DeliveryFailureKind) -> String {
    let (_subscription, mut terminated) = from.event_stream().subscribe_channel::<EndpointTerminated>();
    let result = from.root().request_future::<Pong, _>(echo, Ping(1), Duration::from_secs(30)).await;
    assert!(
        matches!(&result, Err(protoactor_actor::Error::DeliveryFailed { kind: k, .. }) if *k == kind),
        "expected a refusal as {kind:?}, got {result:?}"
    );
    let event = tokio::time::timeout(Duration::from_secs(5), terminated.recv())
        .await
        .expect("EndpointTerminated in time")
        .expect("event stream open");
    assert_eq!(event.address, echo.address());
    assert_eq!(event.kind, kind, "{event:?}");
    event.reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_systems_exchange_requests_both_ways() {
    let ca = Ca::new("test CA");
    let (a, ra, echo_a) = node_with_echo(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    let (b, rb, echo_b) = node_with_echo(config().with_tls(tls(&ca.loopback_node(), &ca))).await;

    assert_round_trips(&a, &echo_b).await;
    assert_round_trips(&b, &echo_a).await;

    // Remote spawn rides the same TLS connections (no kinds are registered, so the answer is UnknownKind).
    let spawned = rb.spawn_named(&ra.address(), "spawned", "echo", Duration::from_secs(5)).await;
    assert!(matches!(spawned, Err(protoactor_remote::Error::UnknownKind { .. })), "{spawned:?}");

    ra.shutdown(true).await;
    rb.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_systems_exchange_requests() {
    let ca = Ca::new("test CA");
    let mutual = |node: &Node| config().with_tls(tls(node, &ca).require_client_auth(true));
    let (a, ra, echo_a) = node_with_echo(mutual(&ca.loopback_node())).await;
    let (b, rb, echo_b) = node_with_echo(mutual(&ca.loopback_node())).await;

    assert_round_trips(&a, &echo_b).await;
    assert_round_trips(&b, &echo_a).await;

    ra.shutdown(true).await;
    rb.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_refuses_a_plain_text_peer_and_keeps_serving() {
    let ca = Ca::new("test CA");
    let (_b, rb, echo_b) = node_with_echo(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    let (plain, rplain) = started(config()).await;

    // The TLS port answers a plain-text client with a TLS alert before it
    // hangs up, so the client knows it is TLS, not a peer that went away.
    let reason = assert_refused(&plain, &echo_b, DeliveryFailureKind::Tls).await;
    assert!(reason.contains("speaks TLS"), "{reason}");

    // The refused peer did not disturb the server: a TLS peer still gets through.
    let (good, rgood) = started(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    assert_round_trips(&good, &echo_b).await;

    rplain.shutdown(false).await;
    rgood.shutdown(true).await;
    rb.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_completes_the_tls_handshake_is_dropped() {
    let ca = Ca::new("test CA");
    let server_tls = tls(&ca.loopback_node(), &ca).with_handshake_timeout(Duration::from_millis(300));
    let (_b, rb, echo_b) = node_with_echo(config().with_tls(server_tls)).await;
    let address = echo_b.address().to_string();
    let silent = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut socket = std::net::TcpStream::connect(&address).expect("TCP connect");
        socket.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        // Sends nothing: the server must hang up, not wait for ever.
        let mut buf = [0u8; 16];
        socket.read(&mut buf)
    });
    let read = silent.await.expect("reader");
    // A hang-up reads 0 bytes or a reset; a server that waited for ever would let the 10 s read timeout expire.
    let hung_up = match &read {
        Ok(n) => *n == 0,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    };
    assert!(hung_up, "the server hung up: {read:?}");
    // And it still serves a real TLS peer.
    let (good, rgood) = started(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    assert_round_trips(&good, &echo_b).await;
    rgood.shutdown(true).await;
    rb.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_refuses_a_plain_text_server() {
    let ca = Ca::new("test CA");
    let (_b, rb, echo_b) = node_with_echo(config()).await;
    let (a, ra) = started(config().with_tls(tls(&ca.loopback_node(), &ca))).await;

    let reason = assert_refused(&a, &echo_b, DeliveryFailureKind::Tls).await;
    assert!(reason.contains("does not speak TLS"), "{reason}");

    ra.shutdown(false).await;
    rb.shutdown(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_a_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    // b is consistent in itself, but its certificate chains to a CA a does not trust.
    let (_b, rb, echo_b) = node_with_echo(config().with_tls(tls(&other.loopback_node(), &other))).await;
    let (a, ra) = started(config().with_tls(tls(&ca.loopback_node(), &ca))).await;

    let reason = assert_refused(&a, &echo_b, DeliveryFailureKind::Tls).await;
    assert!(reason.to_lowercase().contains("certificate"), "the reason should name the certificate: {reason}");

    ra.shutdown(false).await;
    rb.shutdown(true).await;
}

/// A started system with a `recorder` actor that reports every Ping it gets.
async fn node_with_recorder(config: RemoteConfig) -> (Remote, Pid, mpsc::UnboundedReceiver<u32>) {
    let system = ActorSystem::new();
    let remote = Remote::new(&system, config);
    let address = remote.start().await.expect("start");
    let (tx, rx) = mpsc::unbounded_channel();
    let props = Props::from_fn(move |ctx| {
        if let Some(Ping(n)) = ctx.message::<Ping>() {
            let _ = tx.send(*n);
        }
        Ok(())
    });
    system.root().spawn_named(props, "recorder").expect("spawn recorder");
    (remote, Pid::new(address.as_str(), "recorder"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_certificate_from_another_ca() {
    let ca = Ca::new("test CA");
    let other = Ca::new("other CA");
    // The stranger trusts the servers' CA but presents a certificate from another CA.
    // (Replies could not reach it either, since servers do not trust its certificate:
    // only one-way sends show what the server accepted.)
    let stranger = || config().with_tls(tls(&other.loopback_node(), &ca));

    // Control: without client auth, the stranger's messages are accepted.
    let (ropen, open, mut open_got) = node_with_recorder(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    let (a1, ra1) = started(stranger()).await;
    a1.root().send(&open, Ping(3));
    let got = tokio::time::timeout(Duration::from_secs(10), open_got.recv()).await.expect("delivered in time");
    assert_eq!(got, Some(3));

    // With client auth required, the same kind of peer is refused.
    let (rstrict, strict, mut strict_got) =
        node_with_recorder(config().with_tls(tls(&ca.loopback_node(), &ca).require_client_auth(true))).await;
    let (a2, ra2) = started(stranger()).await;
    let reason = assert_refused(&a2, &strict, DeliveryFailureKind::Tls).await;
    assert!(reason.contains("refused the TLS handshake"), "the server's alert, not a hang-up: {reason}");
    assert!(strict_got.try_recv().is_err(), "nothing from the refused peer was delivered");

    // And a peer with a certificate from the right CA is served, both ways.
    let (good, rgood) = started(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    good.root().send(&strict, Ping(4));
    let got = tokio::time::timeout(Duration::from_secs(10), strict_got.recv()).await.expect("delivered in time");
    assert_eq!(got, Some(4));
    let (_echo_system, recho, echo) =
        node_with_echo(config().with_tls(tls(&ca.loopback_node(), &ca).require_client_auth(true))).await;
    assert_round_trips(&good, &echo).await;

    for remote in [ra1, ra2, rgood, ropen, rstrict, recho] {
        remote.shutdown(false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_name_overrides_the_name_verified() {
    let ca = Ca::new("test CA");
    // b's certificate names only a DNS name, not the loopback address it is reached by.
    let (_b, rb, echo_b) = node_with_echo(config().with_tls(tls(&ca.node(&["node-b.test"]), &ca))).await;

    let (a, ra) = started(config().with_tls(tls(&ca.loopback_node(), &ca))).await;
    let reason = assert_refused(&a, &echo_b, DeliveryFailureKind::Tls).await;
    assert!(reason.contains("certificate"), "{reason}");

    let (named, rnamed) =
        started(config().with_tls(tls(&ca.loopback_node(), &ca).with_domain_name("node-b.test"))).await;
    assert_round_trips(&named, &echo_b).await;

    ra.shutdown(false).await;
    rnamed.shutdown(true).await;
    rb.shutdown(true).await;
}

#[test]
fn unusable_pem_is_reported_with_what_is_wrong() {
    let ca = Ca::new("test CA");
    let node = ca.loopback_node();
    let tls_error = |result: Result<TlsConfig, protoactor_remote::Error>| match result {
        Err(protoactor_remote::Error::Tls(message)) => message,
        other => panic!("expected Error::Tls, got {other:?}"),
    };

    let message = tls_error(TlsConfig::new("not a pem", &node.key, ca.pem()));
    assert!(message.contains("certificate") && message.contains("BEGIN CERTIFICATE"), "{message}");

    let message = tls_error(TlsConfig::new(&node.cert, "not a key", ca.pem()));
    assert!(message.contains("private key"), "{message}");

    let message = tls_error(TlsConfig::new(&node.cert, &node.key, ""));
    assert!(message.contains("CA"), "{message}");

    let broken = node.cert.replace("-----END CERTIFICATE-----", "");
    let message = tls_error(TlsConfig::new(broken, &node.key, ca.pem()));
    assert!(message.contains("malformed"), "{message}");

    // Well-formed PEM, but the key belongs to another certificate.
    let other = ca.loopback_node();
    let message = tls_error(TlsConfig::new(&node.cert, &other.key, ca.pem()));
    assert!(message.contains("cannot use it"), "{message}");

    // The key never shows up in debug output.
    let config = TlsConfig::new(&node.cert, &node.key, ca.pem()).expect("valid");
    assert!(!format!("{config:?}").contains("PRIVATE KEY"));
}
