//! A userspace TCP relay on a member's link: delay, loss and one-way cuts
//! without `tc netem` (not in this kernel) and without root.
//!
//! A member advertises an address the relay listens on (another loopback
//! address, same port), so everything the others send to it goes through its
//! relay. Each accepted connection is paired with one to the member; each
//! direction is a reader handing timed chunks to a writer that delivers them
//! in order:
//! - delay: a chunk is written `delay` after it was read;
//! - loss: a TCP stream loses no bytes, it retransmits: a lost segment shows
//!   as a stall of one retransmission timeout ([`RETRANSMIT`]) for it and
//!   everything behind it, which is what a chunk "lost" here gets;
//! - cut (one direction or both): chunks are held, not delivered, until the
//!   cut heals (as TCP keeps retransmitting), then delivered in order.
//!
//! [`Link`] holds the conditions; they change while connections run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Error;

/// The stall a lost chunk causes: Linux's minimum retransmission timeout.
pub(crate) const RETRANSMIT: Duration = Duration::from_millis(200);

/// Chunks in flight per direction before the reader waits (backpressure).
const IN_FLIGHT: usize = 256;

/// The conditions of one member's link. Shared by its relay's connections.
#[derive(Debug)]
pub(crate) struct Link {
    delay_us: AtomicU64,
    /// Lost chunks per million.
    loss_ppm: AtomicU32,
    /// Towards the member (what the others send it) is cut.
    inbound_cut: AtomicBool,
    /// From the member (its answers on connections made to it) is cut.
    outbound_cut: AtomicBool,
    /// Bumped on every change, so held chunks are looked at again.
    changed: watch::Sender<u64>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            delay_us: AtomicU64::new(0),
            loss_ppm: AtomicU32::new(0),
            inbound_cut: AtomicBool::new(false),
            outbound_cut: AtomicBool::new(false),
            changed: watch::channel(0).0,
        }
    }
}

impl Link {
    /// Delay added to each chunk, both directions.
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.delay_us.store(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Fraction (0..=1) of chunks lost (each stalls its direction by [`RETRANSMIT`]).
    pub(crate) fn set_loss(&self, fraction: f64) {
        self.loss_ppm.store((fraction.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Cuts (or heals) one direction: `inbound` is towards the member.
    pub(crate) fn set_cut(&self, inbound: bool, cut: bool) {
        let flag = if inbound { &self.inbound_cut } else { &self.outbound_cut };
        flag.store(cut, Ordering::Relaxed);
        self.changed.send_modify(|n| *n += 1);
    }

    fn cut(&self, inbound: bool) -> bool {
        if inbound { &self.inbound_cut } else { &self.outbound_cut }.load(Ordering::Relaxed)
    }

    /// When a chunk read now may be written.
    fn due(&self) -> Instant {
        let mut due = Instant::now() + Duration::from_micros(self.delay_us.load(Ordering::Relaxed));
        let loss = self.loss_ppm.load(Ordering::Relaxed);
        if loss > 0 && fastrand::u32(0..1_000_000) < loss {
            due += RETRANSMIT;
        }
        due
    }
}

/// A relay listening on one address, forwarding to another. Dropping it
/// stops accepting; running connections end when either side closes.
#[derive(Debug)]
pub(crate) struct Relay {
    local: SocketAddr,
    accept: JoinHandle<()>,
}

impl Relay {
    /// Listens on `listen` and forwards each connection to `target` under `link`.
    pub(crate) async fn start(listen: SocketAddr, target: SocketAddr, link: Arc<Link>) -> Result<Relay, Error> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Io(format!("the relay cannot listen on {listen}"), e))?;
        let local = listener.local_addr().map_err(|e| Error::Io("the relay's bound address".into(), e))?;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                let link = link.clone();
                tokio::spawn(async move {
                    match TcpStream::connect(target).await {
                        Ok(outbound) => pair(inbound, outbound, link).await,
                        Err(e) => tracing::debug!(%target, error = %e, "relay: the member refused; closing"),
                    }
                });
            }
        });
        Ok(Relay { local, accept })
    }

    /// The address it listens on.
    pub(crate) fn local(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Relays both directions of one connection until either side closes.
async fn pair(inbound: TcpStream, outbound: TcpStream, link: Arc<Link>) {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (from_peer, to_peer) = inbound.into_split();
    let (from_member, to_member) = outbound.into_split();
    let towards = direction(from_peer, to_member, link.clone(), true);
    let back = direction(from_member, to_peer, link, false);
    // Either direction ending (EOF, error) ends the connection.
    tokio::select! {
        () = towards => {}
        () = back => {}
    }
}

/// One direction: a reader timing chunks, a writer delivering them in order.
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Link>,
    inbound: bool,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let reader = {
        let link = link.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut last = Instant::now();
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                // In order: a chunk is never due before the one ahead of it.
                last = last.max(link.due());
                if tx.send((last, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    };
    let writer = async move {
        let mut changed = link.changed.subscribe();
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            while link.cut(inbound) {
                if changed.changed().await.is_err() {
                    return;
                }
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An echo server; its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        address
    }

    async fn round_trip(s: &mut TcpStream, byte: u8) -> u8 {
        s.write_all(&[byte]).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        b[0]
    }

    #[tokio::test]
    async fn bytes_pass_through_in_order_both_ways() {
        let link = Arc::new(Link::default());
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo().await, link).await.unwrap();
        let mut s = TcpStream::connect(relay.local()).await.unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let mut back = Vec::new();
        let (_, read) = tokio::join!(
            async {
                w.write_all(&data).await.unwrap();
            },
            async {
                back.resize(data.len(), 0);
                r.read_exact(&mut back).await
            }
        );
        read.unwrap();
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn a_cut_direction_holds_bytes_until_it_heals_then_delivers_them() {
        let link = Arc::new(Link::default());
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo().await, link.clone()).await.unwrap();
        let mut s = TcpStream::connect(relay.local()).await.unwrap();
        assert_eq!(round_trip(&mut s, 1).await, 1);
        // Answers cut: the request reaches the echo, its answer is held.
        link.set_cut(false, true);
        s.write_all(&[2]).await.unwrap();
        let mut b = [0u8; 1];
        let held = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut b)).await;
        assert!(held.is_err(), "nothing comes back while the member's direction is cut");
        link.set_cut(false, false);
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(b[0], 2, "the held answer arrives after the heal");
    }

    #[tokio::test]
    async fn delay_and_loss_hold_each_chunk_at_least_that_long() {
        let link = Arc::new(Link::default());
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), echo().await, link.clone()).await.unwrap();
        let mut s = TcpStream::connect(relay.local()).await.unwrap();
        link.set_delay(Duration::from_millis(30));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut s, 3).await, 3);
        // Through the relay twice (there and back): two delays at least.
        assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
        link.set_delay(Duration::ZERO);
        link.set_loss(1.0);
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut s, 4).await, 4);
        assert!(started.elapsed() >= RETRANSMIT * 2, "every chunk lost once: {:?}", started.elapsed());
    }
}
