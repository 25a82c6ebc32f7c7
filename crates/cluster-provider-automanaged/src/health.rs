//! The health endpoint: what a member answers when polled, and the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use protoactor_cluster::{Error, Member};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Bind;

/// The path of the health endpoint (`GET`).
pub const HEALTH_PATH: &str = "/_protoactor/member";

/// How long stopping waits for open connections to close before dropping them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Whether a member is serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Up and hosting its kinds.
    Alive,
    /// A status this version does not know (from a newer member); counted
    /// as not answering.
    #[serde(other)]
    Unknown,
}

/// The JSON a member answers on [`HEALTH_PATH`], e.g.
/// `{"cluster":"shop","id":"3f1c…","host":"10.0.0.1","port":4020,"kinds":["cart"],"status":"alive"}`.
/// `host`/`port` are the member's remoting address, not the health one.
/// Unknown fields are ignored, so later versions may add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The cluster name.
    pub cluster: String,
    /// The member id (its actor system id, new on every start).
    pub id: String,
    /// Remoting host.
    pub host: String,
    /// Remoting port.
    pub port: u16,
    /// Kinds the member hosts.
    pub kinds: Vec<String>,
    /// Whether it is serving.
    pub status: MemberStatus,
}

impl MemberInfo {
    pub(crate) fn new(cluster: &str, member: &Member) -> Self {
        MemberInfo {
            cluster: cluster.to_string(),
            id: member.id.clone(),
            host: member.host.clone(),
            port: u16::try_from(member.port).unwrap_or(0),
            kinds: member.kinds.clone(),
            status: MemberStatus::Alive,
        }
    }

    /// The cluster [`Member`] this answer describes.
    pub fn to_member(&self) -> Member {
        Member::new(self.host.clone(), self.port, self.id.clone(), self.kinds.clone())
    }
}

struct ServeState {
    info: MemberInfo,
    serving: AtomicBool,
}

/// A running health endpoint.
pub(crate) struct Server {
    state: Arc<ServeState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Binds the health endpoint's listener, registered with `runtime`.
pub(crate) async fn bind(bind: Bind, runtime: &Handle) -> Result<tokio::net::TcpListener, Error> {
    let listener = match bind {
        Bind::Listener(listener) => listener,
        Bind::Address { host, port } => {
            let failed = |e: std::io::Error| {
                Error::Provider(format!(
                    "automanaged: cannot bind the health endpoint on {host}:{port}: {e}; \
                     choose a free address with AutomanagedConfig::with_bind"
                ))
            };
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), port)).await.map_err(failed)?.collect();
            std::net::TcpListener::bind(&addrs[..]).map_err(failed)?
        }
    };
    let failed =
        |e: std::io::Error| Error::Provider(format!("automanaged: cannot use the health endpoint listener: {e}"));
    listener.set_nonblocking(true).map_err(failed)?;
    let _runtime = runtime.enter();
    tokio::net::TcpListener::from_std(listener).map_err(failed)
}

/// Serves `info` on `listener` until [`Server::stop`].
pub(crate) fn serve(listener: tokio::net::TcpListener, info: MemberInfo, runtime: &Handle) -> Server {
    let state = Arc::new(ServeState { info, serving: AtomicBool::new(true) });
    let app = Router::new().route(HEALTH_PATH, get(answer)).with_state(state.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = runtime.spawn(async move {
        let signal = async move {
            let _ = stopped.await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
            tracing::warn!(error = %e, "automanaged health endpoint failed");
        }
    });
    Server { state, stop, task }
}

async fn answer(State(state): State<Arc<ServeState>>) -> Response {
    // Connections still open while stopping must not report us alive.
    if !state.serving.load(Ordering::Acquire) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(state.info.clone()).into_response()
}

impl Server {
    /// Stops answering at once, then closes the listener and open
    /// connections (so the port is free when this returns).
    pub(crate) async fn stop(self) {
        self.state.serving.store(false, Ordering::Release);
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(STOP_GRACE, self.task).await.is_err() {
            tracing::debug!("automanaged health endpoint connections did not close in time; dropping them");
            abort.abort();
        }
    }
}
