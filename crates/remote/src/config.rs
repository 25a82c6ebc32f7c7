//! [`RemoteConfig`]: where to listen, which types and kinds to serve, and the
//! endpoint limits.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use protoactor_actor::Props;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
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
    pub(crate) tls: Option<TlsConfig>,
    pub(crate) max_pending_connections: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_handshake_size: usize,
    pub(crate) cluster_name: String,
    pub(crate) stall_timeout: Duration,
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
            .field("tls", &self.tls)
            .field("max_pending_connections", &self.max_pending_connections)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("cluster_name", &self.cluster_name)
            .field("stall_timeout", &self.stall_timeout)
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
            tls: None,
            max_pending_connections: 64,
            handshake_timeout: Duration::from_secs(5),
            max_handshake_size: 64 * 1024,
            cluster_name: String::new(),
            stall_timeout: Duration::from_secs(10),
        }
    }

    /// The name of the cluster this system belongs to (the cluster crate sets
    /// it; a plain remote system leaves it empty). Both sides of a handshake
    /// compare names and refuse a peer whose name differs, so a request to a
    /// system of another cluster (or a plain system and a cluster member)
    /// fails as [`DeliveryFailureKind::WrongCluster`](protoactor_actor::DeliveryFailureKind::WrongCluster)
    /// instead of reaching it. A plain system that must talk to a cluster's
    /// members takes the cluster's name.
    pub fn with_cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster_name = name.into();
        self
    }

    /// The cluster name (empty for a plain remote system).
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// How long a connection may make no progress once it has shaken hands
    /// (default 10 s): a peer that stops in the middle of a message, stops
    /// taking what we send, or answers no HTTP/2 ping for this long has its
    /// connection closed; the endpoint to it terminates
    /// ([`EndpointTerminated`](crate::EndpointTerminated) says it stalled).
    pub fn with_stall_timeout(mut self, timeout: Duration) -> Self {
        self.stall_timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// The host other systems should use to reach this one (behind NAT or in
    /// containers), instead of the bound host.
    pub fn with_advertised_host(mut self, host: impl Into<String>) -> Self {
        self.advertised_host = Some(host.into());
        self
    }

    /// The registry of message types, for layers (like the cluster) that add
    /// their own before the remote starts.
    pub fn serialization_mut(&mut self) -> &mut Serialization {
        &mut self.serialization
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

    /// How many inbound connections may wait for their handshake at once
    /// (default 64). A connection over the cap is closed as soon as it is
    /// accepted, so that one host cannot exhaust the server's memory or file
    /// descriptors with connections that never say who they are.
    pub fn with_max_pending_connections(mut self, max: usize) -> Self {
        self.max_pending_connections = max.max(1);
        self
    }

    /// How long an inbound connection may take to complete the remoting
    /// handshake (default 5 s), TLS or not: one that has not (idle, stalled,
    /// or sending something else) is closed then.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest first message (the handshake) an inbound stream may
    /// announce (default 64 KiB, room for a block list of about 1,500 member
    /// ids): a stream that announces more is refused before anything is
    /// buffered for it.
    pub fn with_max_handshake_size(mut self, bytes: usize) -> Self {
        self.max_handshake_size = bytes.max(1024);
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

    /// Serves and connects over TLS. Every system that talks to this one must
    /// use TLS too: plain-text peers are refused, and so are peers whose
    /// certificate is not signed by the configured CA.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// TLS settings (rustls) for a [`RemoteConfig`]: this system's identity and
/// the CA its peers' certificates must chain to.
///
/// The certificate is presented both when serving and when connecting, so
/// it should carry the names other systems reach this one by (`localhost`,
/// a DNS name, or an IP address SAN matching the advertised host).
///
/// ```no_run
/// # use protoactor_remote::{RemoteConfig, TlsConfig};
/// # fn demo(cert: &str, key: &str, ca: &str) -> Result<(), protoactor_remote::Error> {
/// let tls = TlsConfig::new(cert, key, ca)?.require_client_auth(true);
/// let config = RemoteConfig::bind("127.0.0.1", 0).with_tls(tls);
/// # let _ = config; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
    require_client_auth: bool,
    domain_name: Option<String>,
    handshake_timeout: Duration,
    /// The connecting side's rustls configuration, built once from the PEM.
    client: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("TlsConfig")
            .field("require_client_auth", &self.require_client_auth)
            .field("domain_name", &self.domain_name)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// This system's certificate chain and private key (PEM; PKCS#8, PKCS#1
    /// or SEC1 key), and the CA certificate(s) (PEM) that peers' certificates
    /// must be signed by.
    ///
    /// Fails with [`Error::Tls`] saying which part is unusable: a missing or
    /// malformed PEM section, or a key that does not match the certificate.
    pub fn new(
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
        ca_pem: impl Into<String>,
    ) -> Result<Self, Error> {
        let tls = TlsConfig {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            ca_pem: ca_pem.into(),
            require_client_auth: false,
            domain_name: None,
            handshake_timeout: Duration::from_secs(10),
            client: None,
        };
        tls.validate()?;
        let client = crate::tls::client_config(&tls.ca_pem, &tls.cert_pem, &tls.key_pem)
            .map_err(|e| Error::Tls(format!("the client side cannot use it: {e}")))?;
        Ok(TlsConfig { client: Some(std::sync::Arc::new(client)), ..tls })
    }

    /// Mutual TLS: the server refuses connections that do not present a
    /// certificate signed by the CA (default: false, only the server is
    /// authenticated).
    pub fn require_client_auth(mut self, required: bool) -> Self {
        self.require_client_auth = required;
        self
    }

    /// How long an accepted connection may take to complete its TLS handshake
    /// before the server drops it (default 10 s), so connections that never
    /// finish cannot pile up.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    pub(crate) fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The name the peer's certificate is verified against (and sent as SNI)
    /// when connecting, instead of the host part of the peer's address.
    pub fn with_domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    fn validate(&self) -> Result<(), Error> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};

        let certs = |what: &str, pem: &str| -> Result<(), Error> {
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                cert.map_err(|e| Error::Tls(format!("{what} PEM is malformed: {}", pem_error(&e))))?;
                found += 1;
            }
            if found == 0 {
                return Err(Error::Tls(format!("{what} PEM has no `BEGIN CERTIFICATE` section")));
            }
            Ok(())
        };
        certs("the certificate", &self.cert_pem)?;
        certs("the CA", &self.ca_pem)?;
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => Error::Tls(
                "the private key PEM has no `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` section"
                    .into(),
            ),
            e => Error::Tls(format!("the private key PEM is malformed: {}", pem_error(&e))),
        })?;
        // Building both sides once reports what the PEM checks cannot see
        // (unparsable DER, a key that does not match the certificate).
        crate::tls::server_config(&self.ca_pem, &self.cert_pem, &self.key_pem, true)
            .map_err(|e| Error::Tls(format!("the server side cannot use it: {e}")))?;
        Ok(())
    }

    /// The server half: our identity, and the CA clients must chain to when required.
    pub(crate) fn server_config(&self) -> Result<std::sync::Arc<rustls::ServerConfig>, Error> {
        crate::tls::server_config(&self.ca_pem, &self.cert_pem, &self.key_pem, self.require_client_auth)
            .map(std::sync::Arc::new)
            .map_err(|e| Error::Tls(format!("the server cannot use the TLS configuration: {e}")))
    }

    /// The client half (see `dial`): the CA the server must chain to, our
    /// identity for mutual TLS, and the name to verify the server as.
    pub(crate) fn client(&self) -> Option<(std::sync::Arc<rustls::ClientConfig>, Option<String>)> {
        self.client.clone().map(|config| (config, self.domain_name.clone()))
    }
}

/// A PEM error with its end marker as text, not bytes.
fn pem_error(error: &rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::MissingSectionEnd { end_marker } => {
            format!("no `-----END {}-----` line", String::from_utf8_lossy(end_marker))
        }
        e => e.to_string(),
    }
}

/// An error and its sources on one line (tonic's transport errors say only
/// "transport error" at the top).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        // Some wrappers print their source themselves.
        let part = e.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}
