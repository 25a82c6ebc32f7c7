//! [`ConsulClient`]: the few Consul HTTP API calls the provider needs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::{ConsulConfig, consul_duration};

/// A service registration (`PUT /v1/agent/service/register`), in Consul's
/// field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRegistration {
    /// Unique on the agent.
    #[serde(rename = "ID")]
    pub id: String,
    /// The service name (shared by all members of a cluster).
    pub name: String,
    /// Tags: the member's kinds.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The member's remoting host.
    pub address: String,
    /// The member's remoting port.
    pub port: u16,
    /// Metadata: member id and cluster name.
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// The TTL check.
    pub check: TtlCheck,
}

/// A TTL check embedded in a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlCheck {
    /// The check id (`service:<service id>`).
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// A readable name.
    pub name: String,
    /// Consul duration, e.g. `10s`.
    #[serde(rename = "TTL")]
    pub ttl: String,
    /// Initial status: `passing`, so the member counts at once.
    pub status: String,
    /// Consul duration after which a critical service is removed.
    pub deregister_critical_service_after: String,
}

/// One entry of `GET /v1/health/service/:service`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthEntry {
    /// The node the service is on.
    pub node: Node,
    /// The service instance.
    pub service: AgentService,
    /// Its checks (node checks included).
    #[serde(default)]
    pub checks: Vec<HealthCheck>,
}

/// The node part of a [`HealthEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    /// Node name.
    pub node: String,
    /// Node address, used when the service has none.
    pub address: String,
    /// Its datacenter.
    #[serde(default)]
    pub datacenter: String,
}

/// The service part of a [`HealthEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentService {
    /// Service id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Service name.
    pub service: String,
    /// Tags (`null` in some answers).
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<String>,
    /// Service address; empty means the node's.
    #[serde(default)]
    pub address: String,
    /// Service port.
    pub port: u16,
    /// Metadata (`null` in some answers).
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: BTreeMap<String, String>,
}

/// A check in a [`HealthEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    /// Check id (`serfHealth` for the node's).
    #[serde(rename = "CheckID")]
    pub check_id: String,
    /// `passing`, `warning` or `critical`.
    pub status: String,
    /// The service it belongs to; empty for node checks.
    #[serde(rename = "ServiceID", default)]
    pub service_id: String,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// No connection or no answer in time.
    Unreachable(String),
    /// Consul refused the token (HTTP 403).
    Denied(String),
    /// Consul does not know the check or service (HTTP 404): the agent lost
    /// our registration.
    NotFound(String),
    /// Any other answer.
    Failed {
        /// HTTP status.
        status: u16,
        /// Consul's text.
        body: String,
    },
}

impl CallError {
    /// True if Consul could not be reached (as opposed to answering with an error).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, CallError::Unreachable(_))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable(why) => write!(f, "{why}; is the Consul agent running and reachable there?"),
            CallError::Denied(body) => {
                write!(f, "permission denied ({body}); check the ACL token (ConsulConfig::with_token)")
            }
            CallError::NotFound(body) => write!(f, "not found ({body})"),
            CallError::Failed { status, body } if body.contains("No path to datacenter") => {
                write!(f, "HTTP {status}: {body}; check ConsulConfig::with_datacenter")
            }
            CallError::Failed { status, body } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

/// The answer to a (blocking) health query.
#[derive(Debug, Clone)]
pub struct HealthAnswer {
    /// The entries.
    pub entries: Vec<HealthEntry>,
    /// `X-Consul-Index` (0 if missing).
    pub index: u64,
}

/// A small async client for Consul's HTTP API: agent service registration,
/// TTL check updates and health queries.
#[derive(Debug, Clone)]
pub struct ConsulClient {
    http: reqwest::Client,
    config: ConsulConfig,
}

impl ConsulClient {
    /// A client for `config`'s agent.
    pub fn new(config: &ConsulConfig) -> Result<Self, protoactor_cluster::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.request_timeout)
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| protoactor_cluster::Error::Provider(format!("consul: cannot create the HTTP client: {e}")))?;
        Ok(ConsulClient { http, config: config.clone() })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.address)
    }

    fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.with_token(self.http.put(self.url(path)).timeout(self.config.request_timeout))
    }

    fn with_token(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.token {
            Some(token) => request.header("X-Consul-Token", token),
            None => request,
        }
    }

    /// Registers (or replaces) a service with its TTL check on the agent.
    pub async fn register(&self, registration: &ServiceRegistration) -> Result<(), CallError> {
        let request = self.put("/v1/agent/service/register").json(registration);
        check(send(request).await?).await.map(drop)
    }

    /// Passes the TTL check `check_id` (its TTL starts again).
    pub async fn pass(&self, check_id: &str) -> Result<(), CallError> {
        let request = self.put(&format!("/v1/agent/check/pass/{check_id}"));
        check(send(request).await?).await.map(drop)
    }

    /// Removes the service `service_id` from the agent.
    pub async fn deregister(&self, service_id: &str) -> Result<(), CallError> {
        let request = self.put(&format!("/v1/agent/service/deregister/{service_id}"));
        check(send(request).await?).await.map(drop)
    }

    /// The passing instances of `service`. With `index` > 0 this is a
    /// blocking query: Consul answers once its index moves past `index`, or
    /// after `wait` (plus up to wait/16 of its own jitter).
    pub async fn healthy(&self, service: &str, index: u64, wait: Duration) -> Result<HealthAnswer, CallError> {
        let mut query: Vec<(&str, String)> = vec![("passing", "true".into())];
        if let Some(dc) = &self.config.datacenter {
            query.push(("dc", dc.clone()));
        }
        let timeout = if index > 0 {
            query.push(("index", index.to_string()));
            query.push(("wait", consul_duration(wait)));
            wait + wait / 16 + self.config.request_timeout
        } else {
            self.config.request_timeout
        };
        let request = self
            .with_token(self.http.get(self.url(&format!("/v1/health/service/{service}"))))
            .query(&query)
            .timeout(timeout);
        let response = check(send(request).await?).await?;
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = response.bytes().await.map_err(|e| CallError::Unreachable(describe(&e)))?;
        let entries = serde_json::from_slice(&body)
            .map_err(|e| CallError::Failed { status: 200, body: format!("not a health answer: {e}") })?;
        Ok(HealthAnswer { entries, index })
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
    request.send().await.map_err(|e| CallError::Unreachable(describe(&e)))
}

async fn check(response: reqwest::Response) -> Result<reqwest::Response, CallError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default().trim().chars().take(300).collect::<String>();
    Err(match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => CallError::Denied(body),
        StatusCode::NOT_FOUND => CallError::NotFound(body),
        _ => CallError::Failed { status: status.as_u16(), body },
    })
}

/// reqwest's message with its causes (the top one omits "connection refused").
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut text = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Where the next blocking query starts, following Consul's rules for
/// blocking-query clients: start over (0, an immediate full read) when the
/// index went backwards, and never block on 0 once a query answered.
pub fn next_index(previous: u64, answered: u64) -> u64 {
    if answered < previous { 0 } else { answered.max(1) }
}

/// The wait of the next blocking query: `wait` ±10 %, so members that
/// started together do not all ask at once.
pub fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(0.9 + fastrand::f64() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_resets_when_it_goes_backwards_and_never_stays_zero() {
        assert_eq!(next_index(0, 7), 7);
        assert_eq!(next_index(7, 9), 9);
        assert_eq!(next_index(9, 9), 9);
        assert_eq!(next_index(9, 3), 0, "backwards: start over");
        assert_eq!(next_index(5, 0), 0, "backwards to 0: start over");
        assert_eq!(next_index(0, 0), 1, "0 would never block");
    }

    #[test]
    fn the_wait_is_jittered_within_ten_percent() {
        for _ in 0..100 {
            let w = jittered(Duration::from_secs(10));
            assert!(w >= Duration::from_secs(9) && w <= Duration::from_secs(11), "{w:?}");
        }
    }
}
