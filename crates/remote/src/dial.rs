//! The connecting side's transport: TCP, and TLS done here rather than in
//! tonic, so that a TLS failure is known by its type (a rustls error, or a
//! TLS record where plain text was expected) instead of being guessed from
//! an error message that HTTP/2 and gRPC may have rewritten on the way up;
//! and the gRPC client's view of the HTTP/2 connection over it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

/// What one connection attempt learnt about TLS on the way: read by the
/// endpoint when the attempt (or the stream) fails.
#[derive(Default)]
pub(crate) struct DialState {
    tls_failure: Mutex<Option<String>>,
    /// Reads that returned bytes: the stall watchdog samples it (no clock
    /// on the read path).
    reads: AtomicU64,
}

impl DialState {
    /// Reads that returned bytes so far.
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn read_some(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// The TLS failure seen on this connection, if any.
    pub(crate) fn tls_failure(&self) -> Option<String> {
        self.tls_failure.lock().clone()
    }

    fn record(&self, reason: String) {
        let mut slot = self.tls_failure.lock();
        if slot.is_none() {
            *slot = Some(reason);
        }
    }
}

/// Dials one peer: a `tower` service for `Endpoint::connect_with_connector`.
#[derive(Clone)]
pub(crate) struct Dialer {
    tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>,
    state: Arc<DialState>,
}

impl Dialer {
    /// Plain text, or TLS with `config` (verifying the peer as `domain_name`,
    /// else the host it is dialed at).
    pub(crate) fn new(tls: Option<(Arc<rustls::ClientConfig>, Option<String>)>) -> Self {
        Dialer { tls, state: Arc::new(DialState::default()) }
    }

    pub(crate) fn state(&self) -> Arc<DialState> {
        self.state.clone()
    }
}

impl Dialer {
    /// Connects to the host and port of `uri`, with TLS if configured.
    pub(crate) async fn dial(&self, uri: &Uri) -> io::Result<Transport> {
        let state = self.state.clone();
        let host = uri.host().ok_or_else(|| io::Error::other(format!("no host in {uri}")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().ok_or_else(|| io::Error::other(format!("no port in {uri}")))?;
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        // Requests and replies would wait on Nagle's algorithm.
        tcp.set_nodelay(true)?;
        let Some((config, domain_name)) = &self.tls else {
            return Ok(Transport::Plain(PlainText::new(tcp, state)));
        };
        let name = domain_name.clone().unwrap_or(host);
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| io::Error::other(format!("`{name}` is not a valid TLS server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(server_name, tcp).await.map_err(|e| {
            // Any failure of the handshake itself is TLS's, whatever the
            // cause (a plain-text server's bytes, a certificate, an alert).
            let reason = tls_reason(&e).unwrap_or_else(|| format!("the TLS handshake failed: {e}"));
            state.record(reason);
            e
        })?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            let reason = "the peer did not agree to HTTP/2 in the TLS handshake (ALPN)".to_string();
            state.record(reason.clone());
            return Err(io::Error::other(reason));
        }
        Ok(Transport::Tls(Box::new(Recorded { io: tls, state })))
    }
}

/// The text of a rustls error inside `error`, if there is one.
fn tls_reason(error: &io::Error) -> Option<String> {
    let inner = error.get_ref()?;
    let tls = inner.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            format!("the peer's certificate was refused: {tls}")
        }
        rustls::Error::AlertReceived(_) => {
            format!("the peer refused the TLS handshake ({tls}): does it trust our certificate?")
        }
        rustls::Error::InvalidMessage(_) => {
            format!("the peer does not speak TLS ({tls}): is it configured without TLS?")
        }
        other => format!("TLS failed: {other}"),
    })
}

/// The connection a [`Dialer`] made.
pub(crate) enum Transport {
    Plain(PlainText),
    Tls(Box<Recorded<tokio_rustls::client::TlsStream<TcpStream>>>),
}

/// A plain-text connection that notices a TLS server: the first bytes a TLS
/// server sends (an alert or a handshake record) are not HTTP/2.
pub(crate) struct PlainText {
    io: TcpStream,
    state: Arc<DialState>,
    checked: bool,
}

impl PlainText {
    fn new(io: TcpStream, state: Arc<DialState>) -> Self {
        PlainText { io, state, checked: false }
    }
}

/// The start of a TLS record: handshake (22) or alert (21), version 3.x.
/// An HTTP/2 server's first bytes are a SETTINGS frame: a length of at most
/// a few hundred bytes, so its first byte is 0.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [21 | 22, 3, ..])
}

impl AsyncRead for PlainText {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.read_some();
        }
        if !this.checked && matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() >= before + 2 {
            this.checked = true;
            if looks_like_tls(&buf.filled()[before..]) {
                let reason = "the peer speaks TLS and this system is configured without it: \
                              configure TLS on both (`RemoteConfig::with_tls`) or on neither"
                    .to_string();
                this.state.record(reason.clone());
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, reason)));
            }
        }
        poll
    }
}

impl AsyncWrite for PlainText {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
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

/// A TLS connection whose rustls errors (an alert from a server that does not
/// trust our certificate arrives after our side of the handshake, TLS 1.3)
/// are recorded before HTTP/2 turns them into "connection closed".
pub(crate) struct Recorded<T> {
    io: T,
    state: Arc<DialState>,
}

impl<T> Recorded<T> {
    fn seen<R>(&self, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(e)) = &poll
            && let Some(reason) = tls_reason(e)
        {
            self.state.record(reason);
        }
        poll
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorded<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.read_some();
        }
        this.seen(poll)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recorded<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.seen(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.seen(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.seen(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_read(cx, buf),
            Transport::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_write(cx, buf),
            Transport::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Transport::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(io) => io.is_write_vectored(),
            Transport::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_flush(cx),
            Transport::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(io) => Pin::new(io).poll_shutdown(cx),
            Transport::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The gRPC client's view of one hyper HTTP/2 connection, in place of
/// tonic's channel (no buffer task between the two). The answer's body is
/// guarded as a peer's request is on the server (see `InboundBody`): a peer
/// that stops in the middle of a message is found out, though its HTTP/2
/// stack still answers pings.
#[derive(Clone)]
pub(crate) struct H2Client {
    pub(crate) sender: hyper::client::conn::http2::SendRequest<tonic::body::Body>,
    /// The most the peer's first message (its handshake answer) may announce.
    pub(crate) first_limit: usize,
    pub(crate) stall: std::time::Duration,
}

type Answer = tonic::codegen::http::Response<crate::conn::InboundBody<hyper::body::Incoming>>;

impl tonic::codegen::Service<tonic::codegen::http::Request<tonic::body::Body>> for H2Client {
    type Response = Answer;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.sender.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<tonic::body::Body>) -> Self::Future {
        let answer = self.sender.send_request(request);
        let (limit, stall) = (self.first_limit, self.stall);
        Box::pin(async move {
            let answer = answer.await?;
            Ok(answer.map(|body| crate::conn::InboundBody::new(body, limit, stall)))
        })
    }
}
