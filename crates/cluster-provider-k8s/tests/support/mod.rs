//! A fake Kubernetes API server (and kubelet) for the tests: the pod
//! endpoints the provider uses, with the API's documented semantics.
//!
//! * `GET /api/v1/namespaces/:ns/pods?labelSelector=`: a `PodList` whose
//!   `metadata.resourceVersion` is the current one (equality selectors).
//! * `...&watch=true&resourceVersion=N`: a stream of JSON lines, one
//!   `ADDED`/`MODIFIED`/`DELETED` event per change after N, as seen through
//!   the selector (a pod that stops matching is `DELETED`, one that starts
//!   matching is `ADDED`), `BOOKMARK`s when `allowWatchBookmarks` is set, and
//!   an `ERROR` event with a `410 Expired` Status when N was compacted away;
//!   the stream ends after `timeoutSeconds`.
//! * `GET`/`PATCH /api/v1/namespaces/:ns/pods/:name`: `PATCH` takes
//!   `application/merge-patch+json` (RFC 7386; others get 415) and bumps the
//!   resourceVersion.
//! * Bearer tokens: with tokens configured, none or an unknown one gets a
//!   401 Status; a read-only token gets 403 on `PATCH`.
//! * A kubelet: every 200 ms it probes each pod's annotated host:port over
//!   TCP (a readiness probe); one success makes the pod Ready, ten
//!   failures in a row make it not Ready.
//! * [`FakeApiServer::stop`] closes the port and every open connection;
//!   [`FakeApiServer::start`] opens the same port again with the state kept.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub const NAMESPACE: &str = "default";
pub const PREFIX: &str = "cluster.proto.actor";
/// How often the kubelet probes, and how many failures make a pod not Ready.
pub const PROBE_PERIOD: Duration = Duration::from_millis(200);
pub const FAILURE_THRESHOLD: u32 = 10;

/// Whether a token may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

struct Change {
    rv: u64,
    namespace: String,
    before: Option<Value>,
    /// The pod after the change (for a deletion: the last state, new rv).
    after: Option<Value>,
    deleted: bool,
}

struct Data {
    rv: u64,
    pods: BTreeMap<(String, String), Value>,
    changes: Vec<Change>,
    /// Watches may resume from this resourceVersion or later.
    oldest: u64,
    failures: HashMap<(String, String), u32>,
}

struct Shared {
    data: Mutex<Data>,
    changed: watch::Sender<u64>,
    /// Bumped by `compact` to end every open watch.
    generation: watch::Sender<u64>,
    tokens: HashMap<String, Access>,
    patches: Mutex<Vec<(String, Value)>>,
}

impl Shared {
    fn commit(&self, data: &mut Data, namespace: &str, name: &str, after: Option<Value>) {
        data.rv += 1;
        let rv = data.rv;
        let key = (namespace.to_string(), name.to_string());
        let deleted = after.is_none();
        let after = after.map(|mut pod| {
            pod["metadata"]["resourceVersion"] = json!(rv.to_string());
            pod
        });
        let before = match &after {
            Some(pod) => data.pods.insert(key, pod.clone()),
            None => data.pods.remove(&key),
        };
        let after = after.or_else(|| {
            before.clone().map(|mut pod| {
                pod["metadata"]["resourceVersion"] = json!(rv.to_string());
                pod
            })
        });
        data.changes.push(Change { rv, namespace: namespace.to_string(), before, after, deleted });
        self.changed.send_replace(rv);
    }

    fn authorize(&self, headers: &HeaderMap, write: bool) -> Result<(), Box<Response>> {
        if self.tokens.is_empty() {
            return Ok(());
        }
        let token =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match token.and_then(|t| self.tokens.get(t)) {
            None => Err(Box::new(status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"))),
            Some(Access::ReadOnly) if write => Err(Box::new(status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "pods is forbidden: User \"system:serviceaccount:default:reader\" cannot patch resource \"pods\" in API group \"\" in the namespace \"default\"",
            ))),
            Some(_) => Ok(()),
        }
    }
}

/// A Kubernetes `Status` answer.
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (code, axum::Json(status_body(code.as_u16(), reason, message))).into_response()
}

/// The fake API server on a loopback port.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    address: SocketAddr,
    server: Mutex<Option<Running>>,
    kubelet: JoinHandle<()>,
    next_pod: Mutex<u32>,
}

struct Running {
    server: JoinHandle<()>,
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl FakeApiServer {
    /// A server without authentication.
    pub async fn start_new() -> Arc<FakeApiServer> {
        Self::with_tokens(&[]).await
    }

    /// A server accepting only `tokens`.
    pub async fn with_tokens(tokens: &[(&str, Access)]) -> Arc<FakeApiServer> {
        let shared = Arc::new(Shared {
            data: Mutex::new(Data {
                rv: 100,
                pods: BTreeMap::new(),
                changes: Vec::new(),
                oldest: 100,
                failures: HashMap::new(),
            }),
            changed: watch::channel(100).0,
            generation: watch::channel(0).0,
            tokens: tokens.iter().map(|(t, a)| (t.to_string(), *a)).collect(),
            patches: Mutex::new(Vec::new()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake API server");
        let address = listener.local_addr().expect("address");
        let kubelet = tokio::spawn(kubelet(shared.clone()));
        let fake = FakeApiServer { shared, address, server: Mutex::new(None), kubelet, next_pod: Mutex::new(0) };
        fake.serve(listener);
        Arc::new(fake)
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A kubeconfig for this server, with `token` if given.
    pub fn kubeconfig(&self, token: Option<&str>) -> String {
        let user = match token {
            Some(t) => format!("    token: {t}\n"),
            None => "    {}\n".to_string(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: {NAMESPACE}\ncurrent-context: fake\nusers:\n- name: tester\n  user:\n{user}",
            self.url()
        )
    }

    /// A kube client for this server, with `token` if given.
    pub async fn client(&self, token: Option<&str>) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig(token)).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    /// Creates a running (not yet ready) pod; returns its name.
    pub fn create_pod(&self) -> String {
        let name = {
            let mut n = self.next_pod.lock();
            *n += 1;
            format!("demo-{n}")
        };
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "uid": format!("00000000-0000-0000-0000-{:012}", self.next_pod.lock()),
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "protoactor-demo"}
            },
            "spec": {"containers": [{"name": "member", "image": "protoactor-demo:latest"}]},
            "status": {
                "phase": "Running",
                "podIP": "127.0.0.1",
                "conditions": [{"type": "Ready", "status": "False"}]
            }
        });
        let mut data = self.shared.data.lock();
        self.shared.commit(&mut data, NAMESPACE, &name, Some(pod));
        name
    }

    /// Deletes a pod.
    pub fn delete_pod(&self, name: &str) {
        let mut data = self.shared.data.lock();
        self.shared.commit(&mut data, NAMESPACE, name, None);
    }

    /// A pod as stored.
    pub fn pod(&self, name: &str) -> Option<Value> {
        self.shared.data.lock().pods.get(&(NAMESPACE.to_string(), name.to_string())).cloned()
    }

    /// The merge patches received, by pod name.
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.shared.patches.lock().clone()
    }

    /// Forgets the change history (as etcd compaction does) and ends every
    /// open watch: watchers resuming from an old resourceVersion get 410.
    pub fn compact(&self) {
        let mut data = self.shared.data.lock();
        data.changes.clear();
        data.oldest = data.rv + 1;
        self.shared.generation.send_modify(|g| *g += 1);
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

    /// Serves again on the same port, state kept.
    pub async fn start(&self) {
        let listener = TcpListener::bind(self.address).await.expect("bind the same port again");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let connections: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let listener = Tracking { listener, connections: connections.clone() };
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/pods", get(list_or_watch))
            .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod).patch(patch_pod))
            .with_state(self.shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock() = Some(Running { server, connections });
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
        self.kubelet.abort();
    }
}

/// Keeps a duplicate of every accepted socket so `stop` can cut it.
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

/// Readiness probes: TCP connect to each pod's annotated host:port.
async fn kubelet(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PROBE_PERIOD);
    loop {
        tick.tick().await;
        let targets: Vec<((String, String), String)> = {
            let data = shared.data.lock();
            data.pods
                .iter()
                .filter_map(|(key, pod)| {
                    let a = &pod["metadata"]["annotations"];
                    let host = a[format!("{PREFIX}/host")].as_str()?;
                    let port = a[format!("{PREFIX}/port")].as_str()?;
                    Some((key.clone(), format!("{host}:{port}")))
                })
                .collect()
        };
        for (key, address) in targets {
            let up = matches!(
                tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(&address)).await,
                Ok(Ok(_))
            );
            let mut data = shared.data.lock();
            let failures = {
                let f = data.failures.entry(key.clone()).or_insert(0);
                *f = if up { 0 } else { *f + 1 };
                *f
            };
            let Some(pod) = data.pods.get(&key) else { continue };
            let ready = pod["status"]["conditions"][0]["status"] == "True";
            let want = if up {
                true
            } else if failures >= FAILURE_THRESHOLD {
                false
            } else {
                ready
            };
            if want != ready {
                let mut pod = pod.clone();
                pod["status"]["conditions"][0]["status"] = json!(if want { "True" } else { "False" });
                shared.commit(&mut data, &key.0, &key.1, Some(pod));
            }
        }
    }
}

/// Equality-based label selectors: `a=b,c=d` (also `a==b`).
fn matches(selector: &str, pod: &Value) -> bool {
    let labels = &pod["metadata"]["labels"];
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (key, value) = term.split_once("==").or_else(|| term.split_once('=')).unwrap_or((term, ""));
        labels[key.trim()].as_str() == Some(value.trim())
    })
}

fn valid_selector(selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|t| t.contains('=') && !t.contains("!="))
}

async fn list_or_watch(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(denied) = shared.authorize(&headers, false) {
        return *denied;
    }
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    if !valid_selector(&selector) {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "this fake supports equality selectors only");
    }
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watching {
        let data = shared.data.lock();
        let items: Vec<Value> =
            data.pods.iter().filter(|((n, _), p)| *n == ns && matches(&selector, p)).map(|(_, p)| p.clone()).collect();
        return axum::Json(json!({
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": data.rv.to_string()},
            "items": items
        }))
        .into_response();
    }
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = Duration::from_secs(query.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800));
    let from = query.get("resourceVersion").cloned().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(stream_watch(shared, ns, selector, from, bookmarks, timeout, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (Ok::<_, Infallible>(line), rx))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("a response")
}

fn line(value: Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

async fn stream_watch(
    shared: Arc<Shared>,
    ns: String,
    selector: String,
    from: String,
    bookmarks: bool,
    timeout: Duration,
    tx: mpsc::Sender<Bytes>,
) {
    let mut changed = shared.changed.subscribe();
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut cursor = match from.parse::<u64>() {
        Ok(rv) if rv > 0 => rv,
        // "" or "0": start with the current state as ADDED events.
        _ => {
            let (events, rv) = {
                let data = shared.data.lock();
                let events: Vec<Value> = data
                    .pods
                    .iter()
                    .filter(|((n, _), p)| *n == ns && matches(&selector, p))
                    .map(|(_, p)| json!({"type": "ADDED", "object": p}))
                    .collect();
                (events, data.rv)
            };
            for e in events {
                if tx.send(line(e)).await.is_err() {
                    return;
                }
            }
            rv
        }
    };
    let mut bookmark = tokio::time::interval(Duration::from_millis(500));
    loop {
        let (events, gone) = {
            let data = shared.data.lock();
            if cursor + 1 < data.oldest {
                (Vec::new(), true)
            } else {
                let mut events = Vec::new();
                for c in data.changes.iter().filter(|c| c.rv > cursor && c.namespace == ns) {
                    let was = c.before.as_ref().is_some_and(|p| matches(&selector, p));
                    let is = !c.deleted && c.after.as_ref().is_some_and(|p| matches(&selector, p));
                    let kind = match (was, is) {
                        (false, true) => Some("ADDED"),
                        (true, true) => Some("MODIFIED"),
                        (true, false) => Some("DELETED"),
                        (false, false) => None,
                    };
                    if let (Some(kind), Some(object)) = (kind, &c.after) {
                        events.push(json!({"type": kind, "object": object}));
                    }
                }
                cursor = data.rv;
                (events, false)
            }
        };
        if gone {
            let error = status_body(410, "Expired", &format!("too old resource version: {cursor} (compacted)"));
            let _ = tx.send(line(json!({"type": "ERROR", "object": error}))).await;
            return;
        }
        for e in events {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            _ = generation.changed() => return,
            _ = bookmark.tick(), if bookmarks => {
                let mark = json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": cursor.to_string()}}});
                if tx.send(line(mark)).await.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
}

async fn get_pod(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = shared.authorize(&headers, false) {
        return *denied;
    }
    match shared.data.lock().pods.get(&(ns, name.clone())) {
        Some(pod) => axum::Json(pod.clone()).into_response(),
        None => status(StatusCode::NOT_FOUND, "NotFound", &format!("pods \"{name}\" not found")),
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            let Value::Object(target) = target else { return };
            for (key, value) in fields {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

async fn patch_pod(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(denied) = shared.authorize(&headers, true) {
        return *denied;
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != "application/merge-patch+json" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the patch is not JSON");
    };
    let mut data = shared.data.lock();
    let Some(pod) = data.pods.get(&(ns.clone(), name.clone())) else {
        return status(StatusCode::NOT_FOUND, "NotFound", &format!("pods \"{name}\" not found"));
    };
    let mut pod = pod.clone();
    merge_patch(&mut pod, &patch);
    shared.patches.lock().push((name.clone(), patch));
    shared.commit(&mut data, &ns, &name, Some(pod.clone()));
    let stored = data.pods.get(&(ns, name)).cloned().unwrap_or(pod);
    axum::Json(stored).into_response()
}
