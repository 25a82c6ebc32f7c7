//! [`ConsulConfig`]: where the agent is and how members register.

use std::fmt;
use std::time::Duration;

use protoactor_cluster::Error;

/// The agent address used when none is given (Consul's default HTTP port).
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";

/// How the provider talks to Consul. Every setting has a default; see the
/// table in the [crate docs](crate).
#[derive(Clone)]
pub struct ConsulConfig {
    pub(crate) address: String,
    pub(crate) token: Option<String>,
    pub(crate) datacenter: Option<String>,
    pub(crate) service_name: Option<String>,
    pub(crate) ttl: Duration,
    pub(crate) deregister_critical_after: Duration,
    pub(crate) blocking_wait: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) retry_max: Duration,
}

impl fmt::Debug for ConsulConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("datacenter", &self.datacenter)
            .field("service_name", &self.service_name)
            .field("ttl", &self.ttl)
            .field("deregister_critical_after", &self.deregister_critical_after)
            .field("blocking_wait", &self.blocking_wait)
            .field("request_timeout", &self.request_timeout)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

impl Default for ConsulConfig {
    fn default() -> Self {
        Self::new(DEFAULT_ADDRESS)
    }
}

impl ConsulConfig {
    /// Talks to the agent at `address` (`http://host:port`).
    pub fn new(address: impl Into<String>) -> Self {
        ConsulConfig {
            address: address.into().trim_end_matches('/').to_string(),
            token: None,
            datacenter: None,
            service_name: None,
            ttl: Duration::from_secs(10),
            deregister_critical_after: Duration::from_secs(60),
            blocking_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            retry_max: Duration::from_secs(5),
        }
    }

    /// From the environment variables Consul's own tools read:
    /// `CONSUL_HTTP_ADDR` (`host:port` or a URL; default
    /// [`DEFAULT_ADDRESS`]) and `CONSUL_HTTP_TOKEN`.
    pub fn from_env() -> Self {
        let address = std::env::var("CONSUL_HTTP_ADDR").ok().filter(|a| !a.is_empty());
        let address = match address {
            Some(a) if a.contains("://") => a,
            Some(a) => format!("http://{a}"),
            None => DEFAULT_ADDRESS.to_string(),
        };
        let mut config = Self::new(address);
        config.token = std::env::var("CONSUL_HTTP_TOKEN").ok().filter(|t| !t.is_empty());
        config
    }

    /// The ACL token sent with every request (`X-Consul-Token`). It needs
    /// `service:write` on the service name and `node:read`/`service:read`
    /// to watch it.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The datacenter whose members are watched (default: the agent's).
    /// Registration always goes to the local agent.
    pub fn with_datacenter(mut self, datacenter: impl Into<String>) -> Self {
        self.datacenter = Some(datacenter.into());
        self
    }

    /// The Consul service the members register under (default: the
    /// cluster name). Members of one cluster must use the same name.
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The TTL of each member's health check (default 10 s, at least 1 s).
    /// The member passes it every TTL/3; a member that stops doing so goes
    /// critical after the TTL and leaves the cluster.
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a critical member stays registered before Consul removes it
    /// (`DeregisterCriticalServiceAfter`, default 60 s; Consul enforces at
    /// least one minute and reaps every 30 s).
    pub fn with_deregister_critical_after(mut self, after: Duration) -> Self {
        self.deregister_critical_after = after;
        self
    }

    /// How long one blocking query may wait for a change (default 30 s,
    /// at most 10 min); each query waits this ±10 %.
    pub fn with_blocking_wait(mut self, wait: Duration) -> Self {
        self.blocking_wait = wait;
        self
    }

    /// Bound on each call that is not a blocking query, and on starting
    /// (default 5 s).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The longest pause between attempts while Consul is unreachable
    /// (default 5 s; pauses start at 100 ms and double).
    pub fn with_max_retry_interval(mut self, interval: Duration) -> Self {
        self.retry_max = interval.max(Duration::from_millis(100));
        self
    }

    /// The agent address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The check TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How often the TTL check is passed: a third of the TTL.
    pub fn pass_interval(&self) -> Duration {
        self.ttl / 3
    }

    /// The service name for cluster `cluster`.
    pub fn service_name(&self, cluster: &str) -> String {
        self.service_name.clone().unwrap_or_else(|| cluster.to_string())
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !(self.address.starts_with("http://") || self.address.starts_with("https://")) {
            return Err(Error::Config(format!(
                "consul: the address `{}` must start with http:// or https://",
                self.address
            )));
        }
        if self.address.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(Error::Config(format!(
                "consul: `{}` is HTTPS, but protoactor-cluster-provider-consul was built without its `tls` feature",
                self.address
            )));
        }
        if self.ttl < Duration::from_secs(1) {
            return Err(Error::Config(format!("consul: the check TTL {:?} is below 1 s", self.ttl)));
        }
        if self.blocking_wait.is_zero() || self.blocking_wait > Duration::from_secs(600) {
            return Err(Error::Config(format!(
                "consul: the blocking wait {:?} must be above 0 and at most 10 min",
                self.blocking_wait
            )));
        }
        Ok(())
    }
}

/// Consul's duration syntax: `1500ms`, `10s`, `2m`.
pub(crate) fn consul_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_consul_syntax() {
        assert_eq!(consul_duration(Duration::from_secs(10)), "10s");
        assert_eq!(consul_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(consul_duration(Duration::ZERO), "1ms");
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let e = ConsulConfig::new("127.0.0.1:8500").validate().expect_err("no scheme");
        assert!(e.to_string().contains("http://"), "{e}");
        let e = ConsulConfig::default().with_ttl(Duration::from_millis(10)).validate().expect_err("ttl");
        assert!(e.to_string().contains("TTL"), "{e}");
        assert!(ConsulConfig::default().validate().is_ok());
    }

    #[test]
    fn the_token_is_not_printed() {
        let text = format!("{:?}", ConsulConfig::default().with_token("secret-token"));
        assert!(!text.contains("secret-token"), "{text}");
    }
}
