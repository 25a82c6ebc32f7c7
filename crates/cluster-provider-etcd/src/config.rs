//! [`EtcdConfig`]: where etcd is, how to log in, and the lease timing.

use std::fmt;
use std::time::Duration;

use protoactor_cluster::Error;

/// The key prefix members register under unless told otherwise.
pub const DEFAULT_PREFIX: &str = "/protoactor";

/// TLS material for `https://` endpoints, as PEM text.
#[derive(Clone, Default)]
pub struct EtcdTls {
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) identity: Option<(Vec<u8>, Vec<u8>)>,
    pub(crate) domain: Option<String>,
}

impl fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_identity", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish()
    }
}

impl EtcdTls {
    /// Trusts the server certificates signed by the CA in `ca_pem`. There
    /// are no built-in roots: without a CA no server certificate validates.
    pub fn new(ca_pem: impl Into<Vec<u8>>) -> Self {
        EtcdTls { ca_pem: Some(ca_pem.into()), identity: None, domain: None }
    }

    /// Presents a client certificate (for etcd's `--client-cert-auth`).
    pub fn with_client_identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// Checks the server certificate against `domain` instead of the
    /// endpoint's host name.
    pub fn with_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    pub(crate) fn to_options(&self) -> etcd_client::TlsOptions {
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca_pem {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        tls
    }
}

/// How an [`EtcdProvider`](crate::EtcdProvider) reaches etcd and keeps its
/// registration alive.
///
/// ```
/// use std::time::Duration;
/// use protoactor_cluster_provider_etcd::EtcdConfig;
///
/// let config = EtcdConfig::new(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
///     .with_prefix("/shop")
///     .with_ttl(Duration::from_secs(6))
///     .with_user("member", "secret")
///     .with_connect_timeout(Duration::from_secs(3));
/// assert_eq!(config.member_key("orders", "m-1"), "/shop/orders/m-1");
/// assert_eq!(config.keep_alive_interval(), Duration::from_secs(2));
/// ```
#[derive(Clone)]
pub struct EtcdConfig {
    pub(crate) endpoints: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) ttl: Duration,
    pub(crate) user: Option<(String, String)>,
    pub(crate) tls: Option<EtcdTls>,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry_max: Duration,
}

impl fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

impl EtcdConfig {
    /// Talks to the etcd cluster at `endpoints` (`http://host:port`,
    /// `https://host:port` with [`with_tls`](Self::with_tls), or a bare
    /// `host:port`).
    ///
    /// Defaults: prefix [`DEFAULT_PREFIX`], a 10 s lease TTL, no
    /// authentication, plain HTTP, 5 s to connect.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(|e| e.into().trim().to_string()).collect(),
            prefix: DEFAULT_PREFIX.to_string(),
            ttl: Duration::from_secs(10),
            user: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            retry_max: Duration::from_secs(2),
        }
    }

    /// Registers under `<prefix>/<cluster>/<member-id>` (default
    /// [`DEFAULT_PREFIX`]; a trailing `/` is dropped).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_end_matches('/').to_string();
        self
    }

    /// The lease TTL: a member whose process died leaves this long after
    /// its last keep-alive (default 10 s; whole seconds, at least 1 s).
    /// Keep-alives go out every third of it.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Duration::from_secs(ttl.as_secs_f64().ceil().max(1.0) as u64);
        self
    }

    /// Logs in as `user` (etcd's `--auth` users and roles); the user needs
    /// read-write access to the prefix.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// Talks TLS to `https://` endpoints (bare `host:port` endpoints too).
    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How long starting may wait for etcd (connecting, logging in,
    /// registering); also the bound on each later call (default 5 s,
    /// at least 100 ms).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(100));
        self
    }

    /// The longest pause between two attempts to reach etcd again after it
    /// failed (default 2 s; the pauses start at 100 ms and double).
    pub fn with_max_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_max = interval.max(Duration::from_millis(100));
        self
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Time between two keep-alives: a third of the TTL.
    pub fn keep_alive_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The key under which `member_id` of `cluster` registers.
    pub fn member_key(&self, cluster: &str, member_id: &str) -> String {
        format!("{}{member_id}", self.cluster_prefix(cluster))
    }

    /// The prefix watched for `cluster`: `<prefix>/<cluster>/`.
    pub fn cluster_prefix(&self, cluster: &str) -> String {
        format!("{}/{cluster}/", self.prefix)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.endpoints.is_empty() || self.endpoints.iter().any(String::is_empty) {
            return Err(Error::Config("etcd: no endpoints; give at least one, e.g. http://127.0.0.1:2379".into()));
        }
        if self.tls.is_none()
            && let Some(e) = self.endpoints.iter().find(|e| e.starts_with("https://"))
        {
            return Err(Error::Config(format!("etcd endpoint `{e}` is https: configure EtcdConfig::with_tls")));
        }
        if self.tls.is_some()
            && let Some(e) = self.endpoints.iter().find(|e| e.starts_with("http://"))
        {
            return Err(Error::Config(format!(
                "etcd endpoint `{e}` is plain http but TLS is configured: write it as https://"
            )));
        }
        Ok(())
    }

    pub(crate) fn connect_options(&self) -> etcd_client::ConnectOptions {
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            // Notices a dead server on an idle stream (watch, keep-alive) within a few seconds.
            .with_keep_alive(Duration::from_secs(2), self.connect_timeout.min(Duration::from_secs(3)))
            .with_keep_alive_while_idle(true);
        if let Some((user, password)) = &self.user {
            options = options.with_user(user.clone(), password.clone()).with_auto_token_refresh(true);
        }
        if let Some(tls) = &self.tls {
            options = options.with_tls(tls.to_options());
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_limits() {
        let config = EtcdConfig::new([" http://a:2379 "]).with_prefix("/p/").with_ttl(Duration::from_millis(1500));
        assert_eq!(config.endpoints(), ["http://a:2379"]);
        assert_eq!(config.cluster_prefix("c"), "/p/c/");
        assert_eq!(config.member_key("c", "id"), "/p/c/id");
        assert_eq!(config.ttl(), Duration::from_secs(2), "rounded up to whole seconds");
        assert_eq!(EtcdConfig::new(["x"]).with_ttl(Duration::ZERO).ttl(), Duration::from_secs(1));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(EtcdConfig::new(Vec::<String>::new()).validate().is_err());
        assert!(EtcdConfig::new(["https://a:2379"]).validate().is_err(), "https without TLS");
        let tls = EtcdConfig::new(["http://a:2379"]).with_tls(EtcdTls::new("ca"));
        assert!(tls.validate().is_err(), "http with TLS");
        let debug = format!("{:?}", EtcdConfig::new(["a:1"]).with_user("u", "secret-pw"));
        assert!(!debug.contains("secret-pw"), "{debug}");
    }
}
