//! Guards on the remote port, for connections that have not said who they
//! are: a cap on how many may wait for their handshake (the surplus is closed
//! at once), a deadline for it (idle, stalled or foreign connections are
//! closed then, TLS or not), a bound on the handshake's size (nothing large
//! is buffered for a stranger), and closing every connection of a member
//! once it is blocked.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::throttle_log::LogThrottle;

/// The inbound connections of one server.
pub(crate) struct Connections {
    max_pending: usize,
    handshake_timeout: Duration,
    /// Connections that have not completed a handshake yet.
    pending: AtomicUsize,
    open: Mutex<HashMap<SocketAddr, Arc<Conn>>>,
    refusals: LogThrottle,
}

/// What is known about one inbound connection.
struct Conn {
    closed: AtomicBool,
    /// Wakes the connection's reader so that it sees `closed`.
    waker: AtomicWaker,
    /// Still counted in `pending`.
    pending: AtomicBool,
    /// The members that completed a handshake on it.
    members: Mutex<Vec<String>>,
}

/// How many inbound connections there are (see [`Remote::connection_stats`](crate::Remote::connection_stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionStats {
    /// Open inbound connections.
    pub open: usize,
    /// Of those, the ones that have not completed a handshake.
    pub awaiting_handshake: usize,
}

impl Connections {
    pub(crate) fn new(max_pending: usize, handshake_timeout: Duration) -> Arc<Self> {
        Arc::new(Connections {
            max_pending,
            handshake_timeout,
            pending: AtomicUsize::new(0),
            open: Mutex::new(HashMap::new()),
            refusals: LogThrottle::new(5, Duration::from_secs(1)),
        })
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats { open: self.open.lock().len(), awaiting_handshake: self.pending.load(Ordering::Acquire) }
    }

    /// Accepts connections for ever, yielding the admitted ones.
    pub(crate) fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> impl futures_util::Stream<Item = Result<Guarded, io::Error>> + Send + 'static {
        futures_util::stream::unfold((listener, self), |(listener, conns)| async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        // Replies from the server side would wait on Nagle's algorithm.
                        let _ = stream.set_nodelay(true);
                        if let Some(guarded) = conns.admit(stream, peer) {
                            return Some((Ok(guarded), (listener, conns)));
                        }
                    }
                    Err(error) => {
                        // Out of file descriptors, say: give others time to close theirs.
                        if conns.refusals.allow() {
                            tracing::warn!(%error, "accepting a connection failed");
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        })
    }

    /// Admits `stream` if fewer than the cap are waiting for their handshake
    /// (else it is closed now), and closes it at the deadline unless a
    /// handshake completed on it by then.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Option<Guarded> {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            if self.refusals.allow() {
                tracing::warn!(%peer, max = self.max_pending, "refused a connection: too many are waiting for their handshake");
            }
            return None;
        }
        let conn = Arc::new(Conn {
            closed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            pending: AtomicBool::new(true),
            members: Mutex::new(Vec::new()),
        });
        self.open.lock().insert(peer, conn.clone());
        let weak: Weak<Conn> = Arc::downgrade(&conn);
        let timeout = self.handshake_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(conn) = weak.upgrade()
                && conn.pending.load(Ordering::Acquire)
            {
                tracing::debug!(%peer, ?timeout, "closing a connection that did not complete a handshake in time");
                conn.close();
            }
        });
        let info = TcpConnectInfo { local_addr: stream.local_addr().ok(), remote_addr: Some(peer) };
        Some(Guarded { io: stream, conn, conns: self.clone(), peer, info })
    }

    /// A handshake from `member` completed on the connection from `peer`.
    pub(crate) fn handshaken(&self, peer: Option<SocketAddr>, member: &str) {
        let Some(conn) = peer.and_then(|p| self.open.lock().get(&p).cloned()) else { return };
        conn.members.lock().push(member.to_string());
        if conn.pending.swap(false, Ordering::AcqRel) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Closes every connection on which `member` completed a handshake;
    /// returns how many.
    pub(crate) fn close_member(&self, member: &str) -> usize {
        let conns: Vec<Arc<Conn>> =
            self.open.lock().values().filter(|c| c.members.lock().iter().any(|m| m == member)).cloned().collect();
        conns.iter().for_each(|c| c.close());
        conns.len()
    }

    /// Closes every connection (the end of a shutdown's grace period).
    pub(crate) fn close_all(&self) {
        let conns: Vec<Arc<Conn>> = self.open.lock().values().cloned().collect();
        conns.iter().for_each(|c| c.close());
    }

    fn forget(&self, peer: SocketAddr, conn: &Arc<Conn>) {
        let mut open = self.open.lock();
        if open.get(&peer).is_some_and(|c| Arc::ptr_eq(c, conn)) {
            open.remove(&peer);
        }
        drop(open);
        if conn.pending.swap(false, Ordering::AcqRel) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Conn {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// An accepted TCP connection that can be closed from outside: its reads
/// and writes fail once it is, and the HTTP/2 server then drops it.
pub(crate) struct Guarded {
    io: TcpStream,
    conn: Arc<Conn>,
    conns: Arc<Connections>,
    peer: SocketAddr,
    info: TcpConnectInfo,
}

fn closed_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed by the remoting server")
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.conns.forget(self.peer, &self.conn);
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.waker.register(cx.waker());
        if this.conn.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.conn.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.conn.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A request body whose first gRPC message (the handshake) may announce at
/// most `limit` bytes. tonic reserves a buffer of the announced length as
/// soon as it reads a message's 5-byte prefix, so without this a stranger's
/// stream that announces a 4 MiB message and stalls costs 4 MiB.
pub(crate) struct FirstMessageLimit<B> {
    inner: B,
    limit: usize,
    state: Prefix,
}

enum Prefix {
    /// Reading the first message's prefix: `n` of its 5 bytes so far.
    Header { bytes: [u8; 5], n: usize },
    /// Inside the first message: this many bytes to go.
    Body(usize),
    /// Past the first message: nothing more to check.
    Done,
}

impl<B> FirstMessageLimit<B> {
    pub(crate) fn new(inner: B, limit: usize) -> Self {
        FirstMessageLimit { inner, limit, state: Prefix::Header { bytes: [0; 5], n: 0 } }
    }

    /// Follows the first message through `data`; an error if it announces too much.
    fn inspect(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                Prefix::Done => return Ok(()),
                Prefix::Header { bytes, n } => {
                    let take = (5 - *n).min(data.len());
                    bytes[*n..*n + take].copy_from_slice(&data[..take]);
                    *n += take;
                    data = &data[take..];
                    if *n == 5 {
                        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                        if len > self.limit {
                            return Err(format!(
                                "the first message announces {len} bytes; a handshake may have at most {} \
                                 (RemoteConfig::with_max_handshake_size)",
                                self.limit
                            ));
                        }
                        self.state = if len == 0 { Prefix::Done } else { Prefix::Body(len) };
                    }
                }
                Prefix::Body(left) => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = &data[take..];
                    if *left == 0 {
                        self.state = Prefix::Done;
                    }
                }
            }
        }
        Ok(())
    }
}

impl<B> Body for FirstMessageLimit<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if !matches!(this.state, Prefix::Done)
            && let Some(data) = frame.data_ref()
            && let Err(reason) = this.inspect(data.chunk())
        {
            return Poll::Ready(Some(Err(reason.into())));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(len: u32) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&len.to_be_bytes());
        v
    }

    #[test]
    fn a_first_message_over_the_limit_is_refused_even_when_its_prefix_is_split() {
        let mut body = FirstMessageLimit::new((), 100);
        let p = prefix(101);
        assert!(body.inspect(&p[..2]).is_ok());
        assert!(body.inspect(&p[2..]).is_err());
    }

    #[test]
    fn only_the_first_message_is_limited() {
        let mut body = FirstMessageLimit::new((), 100);
        let mut data = prefix(3);
        data.extend_from_slice(b"abc");
        data.extend_from_slice(&prefix(1_000_000));
        assert!(body.inspect(&data).is_ok());
        assert!(matches!(body.state, Prefix::Done));
    }
}
