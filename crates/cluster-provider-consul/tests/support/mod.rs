//! A fake Consul agent (and its servers) for the tests: the HTTP endpoints
//! the provider uses, with Consul's documented semantics.
//!
//! * `PUT /v1/agent/service/register`: a service with an embedded TTL check
//!   (initial status from `Check.Status`, critical if absent, as Consul).
//! * `PUT /v1/agent/check/pass/:id`: passes a TTL check; 404 for an unknown one.
//! * `PUT /v1/agent/service/deregister/:id`: 404 for an unknown service.
//! * `GET /v1/health/service/:name`: `passing`, `dc`, `index`, `wait`; a
//!   blocking query (index > 0) holds until the index moves past it or the
//!   wait (at most 10 min, plus up to wait/16 jitter) expires; answers carry
//!   `X-Consul-Index`, `X-Consul-KnownLeader` and `X-Consul-LastContact`.
//! * TTL checks not passed within their TTL go critical; a service critical
//!   for its `DeregisterCriticalServiceAfter` is removed. Consul's own reaper
//!   runs every 30 s with a one-minute floor; this one honours the value
//!   given, checking every 20 ms, so tests can use short windows.
//! * ACLs: with a token configured, requests without it get 403
//!   `Permission denied`, with another one 403 `ACL not found`.
//! * An unknown `dc` gets 500 `No path to datacenter`.
//! * [`FakeConsul::stop`] closes the port and every open connection (a dead
//!   agent); [`FakeConsul::start`] opens the same port again with the state
//!   kept, TTL timers restarted (as an agent reloading its persisted checks).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const NODE: &str = "fake-node";
pub const NODE_ADDRESS: &str = "127.0.0.1";
pub const DATACENTER: &str = "dc1";

struct Service {
    /// The registration as sent (Consul field names).
    id: String,
    name: String,
    tags: Vec<String>,
    address: String,
    port: u16,
    meta: BTreeMap<String, String>,
    check_id: String,
    check_name: String,
    ttl: Duration,
    deregister_after: Option<Duration>,
    status: String,
    expires: Instant,
    critical_since: Option<Instant>,
    create_index: u64,
    modify_index: u64,
}

struct Data {
    index: u64,
    services: BTreeMap<String, Service>,
}

struct Shared {
    data: Mutex<Data>,
    index: watch::Sender<u64>,
    token: Option<String>,
    /// Every request seen: (method, path, index query param).
    log: Mutex<Vec<(String, String, Option<u64>)>>,
}

impl Shared {
    fn bump(&self, data: &mut Data) -> u64 {
        data.index += 1;
        self.index.send_replace(data.index);
        data.index
    }

    fn authorize(&self, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<(), Box<Response>> {
        let Some(want) = &self.token else { return Ok(()) };
        let given = headers
            .get("X-Consul-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| query.get("token").cloned());
        match given {
            Some(t) if &t == want => Ok(()),
            Some(_) => Err(Box::new((StatusCode::FORBIDDEN, "ACL not found").into_response())),
            None => Err(Box::new((StatusCode::FORBIDDEN, "Permission denied").into_response())),
        }
    }
}

/// A fake Consul agent on a loopback port.
pub struct FakeConsul {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: Mutex<Option<Running>>,
    reaper: JoinHandle<()>,
}

struct Running {
    server: JoinHandle<()>,
    /// Duplicates of every accepted socket, to cut them at stop.
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl FakeConsul {
    /// A fake agent without ACLs.
    pub async fn start_new() -> Arc<FakeConsul> {
        Self::with_token(None).await
    }

    /// A fake agent that requires `token` (if given) on every request.
    pub async fn with_token(token: Option<&str>) -> Arc<FakeConsul> {
        let (index, _) = watch::channel(1);
        let shared = Arc::new(Shared {
            data: Mutex::new(Data { index: 1, services: BTreeMap::new() }),
            index,
            token: token.map(str::to_string),
            log: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake consul");
        let address = listener.local_addr().expect("address");
        let reaper = tokio::spawn(reap(shared.clone()));
        let fake = FakeConsul { shared, address, server: Mutex::new(None), reaper };
        fake.serve(listener);
        Arc::new(fake)
    }

    /// `http://127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The current index.
    pub fn index(&self) -> u64 {
        self.shared.data.lock().index
    }

    /// Sets the index back (as after a server snapshot restore); returns it.
    pub fn set_index(&self, index: u64) -> u64 {
        let mut data = self.shared.data.lock();
        data.index = index;
        self.shared.index.send_replace(index);
        index
    }

    /// Registered service ids with their check status.
    pub fn services(&self) -> Vec<(String, String)> {
        self.shared.data.lock().services.values().map(|s| (s.id.clone(), s.status.clone())).collect()
    }

    /// The `index` query parameters of the health queries seen so far.
    pub fn health_query_indexes(&self) -> Vec<Option<u64>> {
        self.shared
            .log
            .lock()
            .iter()
            .filter(|(m, p, _)| m == "GET" && p.starts_with("/v1/health/service/"))
            .map(|(_, _, i)| *i)
            .collect()
    }

    /// Closes the port and every open connection.
    pub fn stop(&self) {
        if let Some(running) = self.server.lock().take() {
            running.server.abort();
            for c in running.connections.lock().drain(..) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Serves again on the same port, state kept, TTL timers restarted.
    pub async fn start(&self) {
        let listener = TcpListener::bind(self.address).await.expect("bind the same port again");
        {
            let mut data = self.shared.data.lock();
            let now = Instant::now();
            for s in data.services.values_mut() {
                s.expires = now + s.ttl;
            }
        }
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let connections: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let listener = Tracking { listener, connections: connections.clone() };
        let app = router(self.shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock() = Some(Running { server, connections });
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.stop();
        self.reaper.abort();
    }
}

/// A listener that keeps a duplicate of every accepted socket: shutting
/// the duplicate down cuts the connection (a dead agent drops its
/// keep-alive connections and in-flight blocking queries).
struct Tracking {
    listener: TcpListener,
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl axum::serve::Listener for Tracking {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.listener.accept().await else { continue };
            let Ok(std) = stream.into_std() else { continue };
            let Ok(duplicate) = std.try_clone() else { continue };
            let Ok(stream) = TcpStream::from_std(std) else { continue };
            self.connections.lock().push(duplicate);
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// TTL expiry and the deregister-critical reaper.
async fn reap(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut data = shared.data.lock();
        let mut changed = false;
        for s in data.services.values_mut() {
            if s.status != "critical" && now >= s.expires {
                s.status = "critical".into();
                s.critical_since = Some(now);
                changed = true;
            }
        }
        let before = data.services.len();
        data.services.retain(|_, s| match (s.critical_since, s.deregister_after) {
            (Some(since), Some(after)) => now.duration_since(since) < after,
            _ => true,
        });
        if changed || data.services.len() != before {
            let index = shared.bump(&mut data);
            for s in data.services.values_mut() {
                if s.critical_since == Some(now) {
                    s.modify_index = index;
                }
            }
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/agent/service/register", put(register))
        .route("/v1/agent/service/deregister/{id}", put(deregister))
        .route("/v1/agent/check/pass/{id}", put(pass))
        .route("/v1/health/service/{name}", get(health))
        .with_state(shared)
}

/// Consul's duration syntax: a number and a unit (ns, us, ms, s, m, h), possibly several.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds = match unit {
            "ns" => number / 1e9,
            "us" | "µs" => number / 1e6,
            "ms" => number / 1e3,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(seconds);
    }
    Some(total)
}

fn bad_request(text: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, text.into()).into_response()
}

fn log(shared: &Shared, method: &str, path: String, index: Option<u64>) {
    shared.log.lock().push((method.to_string(), path, index));
}

async fn register(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    log(&shared, "PUT", "/v1/agent/service/register".into(), None);
    if let Err(denied) = shared.authorize(&headers, &query) {
        return *denied;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("Request decode failed: invalid JSON");
    };
    let Some(name) = body["Name"].as_str().filter(|n| !n.is_empty()) else {
        return bad_request("Missing service name");
    };
    let id = body["ID"].as_str().filter(|i| !i.is_empty()).unwrap_or(name).to_string();
    let check = &body["Check"];
    let Some(ttl) = check["TTL"].as_str() else {
        return bad_request("this fake supports TTL checks only");
    };
    let Some(ttl) = parse_duration(ttl) else {
        return bad_request(format!("Request decode failed: time: invalid duration {ttl:?}"));
    };
    let deregister_after = match check["DeregisterCriticalServiceAfter"].as_str() {
        Some(text) => match parse_duration(text) {
            Some(d) => Some(d),
            None => return bad_request(format!("Request decode failed: time: invalid duration {text:?}")),
        },
        None => None,
    };
    let status = check["Status"].as_str().unwrap_or("critical").to_string();
    if !["passing", "warning", "critical"].contains(&status.as_str()) {
        return bad_request(format!("Invalid check status: {status:?}"));
    }
    let tags = body["Tags"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect());
    let meta = body["Meta"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect());
    let now = Instant::now();
    let mut data = shared.data.lock();
    let index = shared.bump(&mut data);
    let create_index = data.services.get(&id).map_or(index, |s| s.create_index);
    let service = Service {
        id: id.clone(),
        name: name.to_string(),
        tags: tags.unwrap_or_default(),
        address: body["Address"].as_str().unwrap_or("").to_string(),
        port: body["Port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        meta: meta.unwrap_or_default(),
        check_id: check["CheckID"].as_str().map_or_else(|| format!("service:{id}"), str::to_string),
        check_name: check["Name"].as_str().map_or_else(|| format!("Service '{name}' check"), str::to_string),
        ttl,
        deregister_after,
        critical_since: (status == "critical").then_some(now),
        status,
        expires: now + ttl,
        create_index,
        modify_index: index,
    };
    data.services.insert(id, service);
    StatusCode::OK.into_response()
}

async fn deregister(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    log(&shared, "PUT", format!("/v1/agent/service/deregister/{id}"), None);
    if let Err(denied) = shared.authorize(&headers, &query) {
        return *denied;
    }
    let mut data = shared.data.lock();
    if data.services.remove(&id).is_none() {
        return (
            StatusCode::NOT_FOUND,
            format!("Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."),
        )
            .into_response();
    }
    shared.bump(&mut data);
    StatusCode::OK.into_response()
}

async fn pass(
    State(shared): State<Arc<Shared>>,
    Path(check_id): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    log(&shared, "PUT", format!("/v1/agent/check/pass/{check_id}"), None);
    if let Err(denied) = shared.authorize(&headers, &query) {
        return *denied;
    }
    let mut data = shared.data.lock();
    let now = Instant::now();
    let Some(service) = data.services.values_mut().find(|s| s.check_id == check_id) else {
        return (
            StatusCode::NOT_FOUND,
            format!("Unknown check ID {check_id:?}. Ensure that the check ID is passed, not the check name."),
        )
            .into_response();
    };
    service.expires = now + service.ttl;
    let was = std::mem::replace(&mut service.status, "passing".into());
    service.critical_since = None;
    if was != "passing" {
        let id = service.id.clone();
        let index = shared.bump(&mut data);
        if let Some(s) = data.services.get_mut(&id) {
            s.modify_index = index;
        }
    }
    StatusCode::OK.into_response()
}

async fn health(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let index = match query.get("index").map(|i| i.parse::<u64>()) {
        None => None,
        Some(Ok(i)) => Some(i),
        Some(Err(_)) => return bad_request("Invalid index"),
    };
    log(&shared, "GET", format!("/v1/health/service/{name}"), index);
    if let Err(denied) = shared.authorize(&headers, &query) {
        return *denied;
    }
    if let Some(dc) = query.get("dc")
        && dc != DATACENTER
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter").into_response();
    }
    let wait = match query.get("wait").map(|w| parse_duration(w)) {
        None => Duration::from_secs(300),
        Some(Some(w)) => w.min(Duration::from_secs(600)),
        Some(None) => return bad_request("Invalid wait time"),
    };
    // Consul's `passing` is a flag: present (with any value but false) means on.
    let passing = query.get("passing").is_some_and(|v| v != "false" && v != "0");
    if let Some(index) = index.filter(|i| *i > 0) {
        let mut rx = shared.index.subscribe();
        let jitter = wait.mul_f64(fastrand_f64() / 16.0);
        let deadline = Instant::now() + wait + jitter;
        while *rx.borrow_and_update() <= index {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    let data = shared.data.lock();
    let entries: Vec<Value> =
        data.services.values().filter(|s| s.name == name && (!passing || s.status == "passing")).map(entry).collect();
    let mut response = axum::Json(Value::Array(entries)).into_response();
    let headers = response.headers_mut();
    headers.insert("X-Consul-Index", HeaderValue::from(data.index));
    headers.insert("X-Consul-KnownLeader", HeaderValue::from_static("true"));
    headers.insert("X-Consul-LastContact", HeaderValue::from_static("0"));
    response
}

fn fastrand_f64() -> f64 {
    // No rand dependency: the clock's low bits are random enough for jitter.
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

/// One health entry, in the shape of Consul's `/v1/health/service` answer.
fn entry(s: &Service) -> Value {
    json!({
        "Node": {
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Node": NODE,
            "Address": NODE_ADDRESS,
            "Datacenter": DATACENTER,
            "TaggedAddresses": {"lan": NODE_ADDRESS, "wan": NODE_ADDRESS},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 1,
            "ModifyIndex": 1
        },
        "Service": {
            "ID": s.id,
            "Service": s.name,
            "Tags": s.tags,
            "Address": s.address,
            "TaggedAddresses": {
                "lan_ipv4": {"Address": s.address, "Port": s.port},
                "wan_ipv4": {"Address": s.address, "Port": s.port}
            },
            "Meta": s.meta,
            "Port": s.port,
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": false,
            "Namespace": "default",
            "CreateIndex": s.create_index,
            "ModifyIndex": s.modify_index
        },
        "Checks": [
            {
                "Node": NODE,
                "CheckID": "serfHealth",
                "Name": "Serf Health Status",
                "Status": "passing",
                "Notes": "",
                "Output": "Agent alive and reachable",
                "ServiceID": "",
                "ServiceName": "",
                "ServiceTags": [],
                "Type": "",
                "Namespace": "default",
                "CreateIndex": 1,
                "ModifyIndex": 1
            },
            {
                "Node": NODE,
                "CheckID": s.check_id,
                "Name": s.check_name,
                "Status": s.status,
                "Notes": "",
                "Output": "",
                "ServiceID": s.id,
                "ServiceName": s.name,
                "ServiceTags": s.tags,
                "Type": "ttl",
                "Namespace": "default",
                "CreateIndex": s.create_index,
                "ModifyIndex": s.modify_index
            }
        ]
    })
}
