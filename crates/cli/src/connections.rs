//! Client connections: how long each may sit idle, how many a worker
//! keeps, and what the accept loop does when the process runs out of file
//! descriptors.
//!
//! hyper closes a connection only when a request's headers are too slow; a
//! connection that never sends a byte, or sits between requests, would be
//! kept forever, and enough of them exhaust the process's descriptors. Each
//! connection is therefore [`Watched`]: its last read or write and its
//! requests in progress are recorded, and its task closes it after
//! `limits.first_byte_secs` without a first byte or `limits.keepalive_secs`
//! idle between requests. A worker holds at most `limits.max_connections`;
//! at the cap, or when `accept` fails for want of descriptors, the
//! connection idle longest is closed to make room, so a new client (a
//! health check) is served promptly however many idle ones an attacker
//! opened. hyper has no such bookkeeping, hence this module.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// One client connection's activity.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Milliseconds since the tracker's epoch at the last read or write.
    last: AtomicU64,
    /// Requests whose response headers have not been sent yet.
    in_flight: AtomicUsize,
    /// Whether the client has sent anything at all.
    spoke: AtomicBool,
    /// Chosen to be closed to make room.
    evicted: AtomicBool,
    close: tokio::sync::Notify,
}

impl Conn {
    /// A request started on this connection; the guard ends it.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in progress (see [`Conn::request`]).
pub(crate) struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's connections.
#[derive(Debug)]
pub(crate) struct Tracker {
    epoch: Instant,
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Most connections kept open.
    pub(crate) cap: usize,
    first_byte: Duration,
    keepalive: Duration,
    /// Told when the last connection closes (see [`Tracker::emptied`]).
    empty: tokio::sync::Notify,
}

impl Tracker {
    pub(crate) fn new(cap: usize, first_byte: Duration, keepalive: Duration) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            cap,
            first_byte,
            keepalive,
            empty: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.conns.lock().map_or(0, |c| c.len())
    }

    /// Records a new connection.
    pub(crate) fn register(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            last: AtomicU64::new(self.now_ms()),
            in_flight: AtomicUsize::new(0),
            spoke: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            close: tokio::sync::Notify::new(),
        });
        if let Ok(mut c) = self.conns.lock() {
            c.insert(id, conn.clone());
        }
        (id, conn)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&id);
            if c.is_empty() {
                self.empty.notify_waiters();
            }
        }
    }

    /// Returns once no connection is open.
    pub(crate) async fn emptied(&self) {
        loop {
            // Registered before looking, so a close in between is not missed.
            let notified = self.empty.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Asks the connection idle longest (no request in progress) to close;
    /// `false` when every connection is busy.
    pub(crate) fn evict_idlest(&self) -> bool {
        let Ok(conns) = self.conns.lock() else {
            return false;
        };
        let victim = conns
            .values()
            .filter(|c| {
                c.in_flight.load(Ordering::Relaxed) == 0 && !c.evicted.load(Ordering::Relaxed)
            })
            .min_by_key(|c| c.last.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.evicted.store(true, Ordering::Relaxed);
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    /// Drives `conn` (a served connection) until it ends, or until it has
    /// been idle too long or is evicted with no request in progress; then
    /// drops it, which closes the socket.
    pub(crate) async fn watch<F: std::future::Future>(&self, id: u64, state: Arc<Conn>, conn: F) {
        let mut conn = std::pin::pin!(conn);
        loop {
            let limit = if state.spoke.load(Ordering::Relaxed) {
                self.keepalive
            } else {
                self.first_byte
            };
            let busy = state.in_flight.load(Ordering::Relaxed) > 0;
            let idle = Duration::from_millis(
                self.now_ms()
                    .saturating_sub(state.last.load(Ordering::Relaxed)),
            );
            if !busy && idle >= limit {
                break;
            }
            let wait = if busy { limit } else { limit - idle };
            tokio::select! {
                _ = &mut conn => break,
                () = tokio::time::sleep(wait) => {}
                () = state.close.notified() => {
                    if state.in_flight.load(Ordering::Relaxed) == 0 {
                        break;
                    }
                }
            }
        }
        self.remove(id);
    }
}

/// A socket that records its reads and writes in its [`Conn`].
pub(crate) struct Watched<T> {
    io: T,
    conn: Arc<Conn>,
    tracker: Arc<Tracker>,
}

impl<T> Watched<T> {
    pub(crate) fn new(io: T, conn: Arc<Conn>, tracker: Arc<Tracker>) -> Self {
        Self { io, conn, tracker }
    }

    fn touch(&self) {
        self.conn
            .last
            .store(self.tracker.now_ms(), Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.spoke.store(true, Ordering::Relaxed);
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Whether an `accept` error means the process or system is out of
/// descriptors or memory (closing a connection helps), rather than one
/// connection failing (`ECONNABORTED`).
pub(crate) fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Back-off between failing `accept` calls: 1 ms doubling to 1 s, so an
/// exhausted process does not spin.
#[derive(Debug, Default)]
pub(crate) struct Backoff(u32);

impl Backoff {
    pub(crate) fn next(&mut self) -> Duration {
        let d = Duration::from_millis(1 << self.0.min(10));
        self.0 += 1;
        d
    }

    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Logs a repeated error at most once per interval, with how many were
/// left out, so a failure that repeats thousands of times a second costs a
/// line every ten seconds instead of gigabytes.
#[derive(Debug)]
pub(crate) struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(left out since the last line)` when a line may be written now.
    pub(crate) fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Client connections each worker may keep when `limits.max_connections`
/// is not set: what the descriptor limit leaves after the upstream pools
/// and some slack, shared by the workers, between 16 and 10,000.
pub(crate) fn default_cap(workers: usize, upstream_per_worker: usize) -> usize {
    let nofile = open_files_limit().unwrap_or(1024);
    let workers = workers.max(1);
    let left = nofile
        .saturating_sub(64)
        .saturating_sub(upstream_per_worker.saturating_mul(workers));
    (left / workers).clamp(16, 10_000)
}

/// The soft `RLIMIT_NOFILE` from `/proc/self/limits` (read there rather than
/// with `getrlimit`, which would need `unsafe`).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line["Max open files".len()..].split_whitespace().next()? {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_errors_are_logged_once_per_interval_with_a_count() {
        let mut l = LogLimit::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.admit(t), Some(0));
        for i in 1..1000 {
            assert_eq!(l.admit(t + Duration::from_millis(i)), None);
        }
        assert_eq!(l.admit(t + Duration::from_secs(10)), Some(999));
    }

    #[test]
    fn backoff_doubles_to_a_second() {
        let mut b = Backoff::default();
        assert_eq!(b.next(), Duration::from_millis(1));
        assert_eq!(b.next(), Duration::from_millis(2));
        for _ in 0..20 {
            b.next();
        }
        assert_eq!(b.next(), Duration::from_millis(1024));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(1));
    }

    #[test]
    fn the_descriptor_limit_is_read() {
        assert!(open_files_limit().is_some_and(|n| n > 0));
        assert!((16..=10_000).contains(&default_cap(4, 256)));
    }

    #[tokio::test]
    async fn the_idlest_connection_is_evicted_and_busy_ones_never() {
        let t = Tracker::new(2, Duration::from_secs(60), Duration::from_secs(60));
        let (_, busy) = t.register();
        let _req = busy.request();
        assert!(
            !t.evict_idlest(),
            "a connection with a request in progress stays"
        );
        let (_, idle) = t.register();
        assert!(t.evict_idlest());
        assert!(idle.evicted.load(Ordering::Relaxed));
        assert!(!busy.evicted.load(Ordering::Relaxed));
    }
}
