//! Guards on the remote port, for connections that have not said who they
//! are: a cap on how many may wait for their handshake (the surplus is closed
//! at once), a deadline for it (idle, stalled or foreign connections are
//! closed then, TLS or not), a bound on the handshake's size (nothing large
//! is buffered for a stranger), and closing every connection of a member
//! once it is blocked.

use std::collections::HashMap;
use std::future::Future;
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
use tonic::transport::server::TcpConnectInfo;

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

    /// Accepts connections for ever, yielding the admitted ones. On a TLS
    /// port a connection whose first bytes are not a TLS handshake is
    /// screened out (see [`screen_plaintext`]).
    pub(crate) fn incoming(
        self: Arc<Self>,
        listener: TcpListener,
        tls_handshake_timeout: Option<Duration>,
    ) -> impl futures_util::Stream<Item = Result<Guarded, io::Error>> + Send + 'static {
        let (screened_tx, screened) = tokio::sync::mpsc::unbounded_channel::<Guarded>();
        let accepted = futures_util::stream::unfold((listener, self), move |(listener, conns)| {
            let screened_tx = screened_tx.clone();
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            // Replies from the server side would wait on Nagle's algorithm.
                            let _ = stream.set_nodelay(true);
                            let Some(guarded) = conns.admit(stream, peer) else { continue };
                            let Some(timeout) = tls_handshake_timeout else {
                                return Some((Ok(guarded), (listener, conns)));
                            };
                            // Each is screened on its own: a silent one holds up nobody.
                            tokio::spawn(screen_plaintext(guarded, timeout, screened_tx.clone()));
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
            }
        });
        let screened =
            futures_util::stream::unfold(
                screened,
                |mut rx| async move { rx.recv().await.map(|guarded| (Ok(guarded), rx)) },
            );
        futures_util::stream::select(accepted, screened)
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
        Some(Guarded { io: Some(stream), conn, conns: self.clone(), peer, info })
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

/// A TLS alert record (fatal, protocol_version) in plain text, as a TLS
/// server answers a client that does not speak TLS.
const PLAINTEXT_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 70];

/// On a TLS port: passes a connection that opens with a TLS handshake record
/// on to the TLS acceptor. One that opens with anything else (a plain-text
/// peer's HTTP/2 preface) gets a TLS alert, so that the peer can tell it
/// reached a TLS port (its error is `Tls`, not a vanished peer), and is
/// closed once it hangs up (closing with its bytes unread would reset the
/// connection, and the reset can overtake the alert).
async fn screen_plaintext(mut guarded: Guarded, timeout: Duration, pass: tokio::sync::mpsc::UnboundedSender<Guarded>) {
    use tokio::io::AsyncWriteExt;
    let Some(io) = guarded.io.as_mut() else { return };
    let mut first = [0u8; 1];
    match tokio::time::timeout(timeout, io.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 22 => {
            let _ = pass.send(guarded);
        }
        Ok(Ok(n)) if n > 0 => {
            let peer = guarded.peer;
            if guarded.conns.refusals.allow() {
                tracing::warn!(%peer, "refused a plain-text connection on this TLS port; configure TLS on both sides");
            }
            // Dropping it then closes it politely (see `Guarded`'s drop).
            let _ = tokio::time::timeout(Duration::from_secs(1), io.write_all(&PLAINTEXT_ALERT)).await;
        }
        _ => {}
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
    /// Taken only by the drop.
    io: Option<TcpStream>,
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
        let stranger = self.conn.pending.load(Ordering::Acquire) && !self.conn.closed.load(Ordering::Acquire);
        self.conns.forget(self.peer, &self.conn);
        // A stranger refused by TLS (its certificate, or plain text on a TLS
        // port) was just sent an alert. Closing with its bytes unread would
        // reset the connection, and a reset can overtake the alert: the peer
        // would see a vanished server instead of a TLS failure. So: end our
        // side, read until the peer hangs up (at most a second), then close.
        if stranger
            && let Some(io) = self.io.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(linger(io));
        }
    }
}

async fn linger(mut io: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let drained = async {
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
}

impl Guarded {
    fn io(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match &mut self.io {
            Some(io) => Ok(Pin::new(io)),
            None => Err(closed_error()),
        }
    }
}

/// `Poll::Ready(Err(..))` unless `$io` is there.
macro_rules! io_or_closed {
    ($io:expr) => {
        match $io {
            Ok(io) => io,
            Err(e) => return Poll::Ready(Err(e)),
        }
    };
}

impl Guarded {
    /// The connection's addresses.
    pub(crate) fn connect_info(&self) -> TcpConnectInfo {
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
        io_or_closed!(this.io()).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.conn.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(closed_error()));
        }
        io_or_closed!(this.io()).poll_write(cx, buf)
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
        io_or_closed!(this.io()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io_or_closed!(self.get_mut().io()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        io_or_closed!(self.get_mut().io()).poll_shutdown(cx)
    }
}

/// The error a body ends with when its peer stalled in the middle of a message.
#[derive(Debug)]
pub(crate) struct MidMessageStall(pub(crate) String);

impl std::fmt::Display for MidMessageStall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MidMessageStall {}

impl MidMessageStall {
    /// The stall `error` or one of its sources reports, if any.
    pub(crate) fn in_chain<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a MidMessageStall> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(stall) = e.downcast_ref::<MidMessageStall>() {
                return Some(stall);
            }
            next = e.source();
        }
        None
    }
}

/// A body of gRPC messages (a peer's request, or the answer on a stream we
/// opened), followed for two guards:
///
/// - the first message (the handshake) may announce at most `limit` bytes.
///   tonic reserves a buffer of the announced length as soon as it reads a
///   message's 5-byte prefix, so without this a stranger's stream that
///   announces a 4 MiB message and stalls costs 4 MiB;
/// - a peer that stops in the middle of a message for `stall` has its
///   connection closed (the buffer reserved for the message goes with it):
///   between messages a stream may be silent for as long as it likes.
pub(crate) struct InboundBody<B> {
    inner: B,
    limit: usize,
    state: Prefix,
    /// Past the first message.
    first_done: bool,
    stall: Duration,
    /// Armed while the peer is silent in the middle of a message.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
    /// The connection to close when the peer stalls.
    conn: Option<(Arc<Conn>, SocketAddr)>,
}

enum Prefix {
    /// Reading a message's prefix: `n` of its 5 bytes so far.
    Header { bytes: [u8; 5], n: usize },
    /// Inside a message: this many bytes to go.
    Body(usize),
}

impl<B> InboundBody<B> {
    pub(crate) fn new(inner: B, limit: usize, stall: Duration) -> Self {
        InboundBody {
            inner,
            limit,
            state: Prefix::Header { bytes: [0; 5], n: 0 },
            first_done: false,
            stall,
            timer: None,
            armed: false,
            conn: None,
        }
    }

    /// Closes the connection from `peer` (if still open) when the peer stalls.
    pub(crate) fn closing(mut self, connections: &Connections, peer: Option<SocketAddr>) -> Self {
        self.conn = peer.and_then(|p| connections.open.lock().get(&p).cloned().map(|c| (c, p)));
        self
    }

    fn mid_message(&self) -> bool {
        !matches!(self.state, Prefix::Header { n: 0, .. })
    }

    /// Follows the messages through `data`; an error if the first one announces too much.
    fn inspect(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match &mut self.state {
                Prefix::Header { bytes, n } => {
                    let take = (5 - *n).min(data.len());
                    bytes[*n..*n + take].copy_from_slice(&data[..take]);
                    *n += take;
                    data = &data[take..];
                    if *n == 5 {
                        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                        if !self.first_done && len > self.limit {
                            return Err(format!(
                                "the first message announces {len} bytes; a handshake may have at most {} \
                                 (RemoteConfig::with_max_handshake_size)",
                                self.limit
                            ));
                        }
                        self.state = Prefix::Body(len);
                    }
                }
                Prefix::Body(left) => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = &data[take..];
                }
            }
            if matches!(self.state, Prefix::Body(0)) {
                self.first_done = true;
                self.state = Prefix::Header { bytes: [0; 5], n: 0 };
            }
        }
        Ok(())
    }

    /// The peer is silent: arms the stall timer if it is mid-message; an
    /// error once the timer has run out.
    fn silent(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        if !self.mid_message() {
            self.armed = false;
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.stall;
        if !self.armed {
            self.armed = true;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let Some(timer) = self.timer.as_mut() else { return Ok(()) };
        if timer.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        let reason = format!(
            "the peer stalled in the middle of a message for {:?} (RemoteConfig::with_stall_timeout); its connection is closed",
            self.stall
        );
        if let Some((conn, peer)) = &self.conn {
            tracing::warn!(%peer, stall = ?self.stall, "closing a connection whose peer stalled in the middle of a message");
            conn.close();
        }
        Err(reason)
    }
}

impl<B> Body for InboundBody<B>
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
            Poll::Pending => {
                return match this.silent(cx) {
                    Ok(()) => Poll::Pending,
                    Err(reason) => Poll::Ready(Some(Err(Box::new(MidMessageStall(reason))))),
                };
            }
        };
        this.armed = false;
        if let Some(data) = frame.data_ref()
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
        let mut body = InboundBody::new((), 100, Duration::from_secs(1));
        let p = prefix(101);
        assert!(body.inspect(&p[..2]).is_ok());
        assert!(body.inspect(&p[2..]).is_err());
    }

    #[test]
    fn only_the_first_message_is_limited() {
        let mut body = InboundBody::new((), 100, Duration::from_secs(1));
        let mut data = prefix(3);
        data.extend_from_slice(b"abc");
        assert!(body.inspect(&data).is_ok());
        assert!(!body.mid_message(), "the handshake is complete");
        assert!(body.inspect(&prefix(1_000_000)).is_ok());
        assert!(body.mid_message(), "inside the second message");
    }

    #[test]
    fn message_boundaries_are_followed_across_chunks() {
        let mut body = InboundBody::new((), 100, Duration::from_secs(1));
        let mut data = prefix(2);
        data.extend_from_slice(b"ab");
        data.extend_from_slice(&prefix(0));
        data.extend_from_slice(&prefix(4));
        data.extend_from_slice(b"abcd");
        for chunk in data.chunks(3) {
            assert!(body.inspect(chunk).is_ok());
        }
        assert!(!body.mid_message(), "three whole messages");
        assert!(body.inspect(&data[..9]).is_ok());
        assert!(body.mid_message(), "cut inside the second prefix");
    }
}
