//! The app behind the proxy: where a request goes, and the keep-alive
//! connections it goes over.
//!
//! Each proxy worker has its own [`Pool`] of idle HTTP/1.1 connections to the
//! one upstream. This is written here instead of using hyper-util's legacy
//! `Client` because that pool is built for many hosts shared between threads:
//! per request it locks a map keyed by scheme and authority (hashed byte by
//! byte with SipHash), checks out through a channel and puts back through
//! another lock, about 12,000 instructions of a signed-in request's 64,000
//! (`bench/results/profile/`). With one upstream per single-threaded worker, a
//! stack of idle connections does the same job. hyper's own
//! `client::conn::http1` still does all of the HTTP.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use url::Url;

/// How long connecting to the app may take before the request fails with 502.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections kept per worker; more are closed when they fall idle.
pub const MAX_IDLE: usize = 256;

/// Why a request did not reach the app or its answer did not come back.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made in time.
    #[error("cannot connect to {authority}: {reason}")]
    Connect {
        /// host:port of the app.
        authority: String,
        /// What the operating system said.
        reason: String,
    },
    /// HTTP failed on an established connection.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// Every connection the pool may open stayed busy for this long.
    #[error("no connection to the app came free within {0:?} (limits.upstream_max_connections)")]
    Busy(Duration),
    /// The upstream URL cannot be used.
    #[error("upstream {url:?}: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// A pool of keep-alive connections to the app, for one worker.
pub struct Pool {
    authority: Authority,
    host: url::Host,
    port: u16,
    idle: Mutex<Vec<SendRequest<Body>>>,
    /// Connections open now (idle, busy or being made).
    open: AtomicUsize,
    /// Most connections open at once.
    max: usize,
    /// How long a request waits for a connection when all `max` are busy.
    wait: Duration,
    /// Woken when a connection falls idle or closes.
    freed: tokio::sync::Notify,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("authority", &self.authority)
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl Pool {
    /// A pool for `upstream`, a plain `http://host:port` URL (as the
    /// configuration's `upstream` is validated to be), with the default cap
    /// of 256 connections and a 120 s wait for one.
    pub fn new(upstream: &Url) -> Result<Arc<Self>, UpstreamError> {
        Self::with_max(upstream, 256, Duration::from_secs(120))
    }

    /// A pool that opens at most `max` connections; a request that finds
    /// them all busy waits up to `wait` for one, then fails with
    /// [`UpstreamError::Busy`].
    pub fn with_max(
        upstream: &Url,
        max: usize,
        wait: Duration,
    ) -> Result<Arc<Self>, UpstreamError> {
        let bad = |why| UpstreamError::Url {
            url: upstream.to_string(),
            why,
        };
        if upstream.scheme() != "http" {
            return Err(bad("only plain http is spoken to the app"));
        }
        let host = upstream.host().ok_or_else(|| bad("no host"))?.to_owned();
        let port = upstream
            .port_or_known_default()
            .ok_or_else(|| bad("no port"))?;
        let authority: Authority = upstream[url::Position::BeforeHost..url::Position::AfterPort]
            .parse()
            .map_err(|_| bad("no valid host:port"))?;
        Ok(Arc::new(Self {
            authority,
            host,
            port,
            idle: Mutex::new(Vec::new()),
            open: AtomicUsize::new(0),
            max: max.max(1),
            wait,
            freed: tokio::sync::Notify::new(),
        }))
    }

    /// The app's host:port.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The request target to send for `uri`: its path and query in origin
    /// form; `None` for a target that is not a path (`OPTIONS *`).
    pub fn target_for(uri: &Uri) -> Option<Uri> {
        let pq = match uri.path_and_query() {
            Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
            Some(_) => return None,
            None => PathAndQuery::from_static("/"),
        };
        Some(Uri::from(pq))
    }

    /// Sends `req` (origin-form URI) on an idle connection or a new one. A
    /// request that an idle connection turned out to be closed for, before
    /// any of it was written, is sent again on a new connection.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        loop {
            let (mut sender, reused) = match tokio::time::timeout(self.wait, self.obtain()).await {
                Ok(got) => got?,
                Err(_) => return Err(UpstreamError::Busy(self.wait)),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    // After `101 Switching Protocols` the connection belongs to the upgrade.
                    let back = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS)
                        .then(|| (sender, Arc::downgrade(self)));
                    return Ok(resp.map(|body| PooledBody::new(body, back)));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// An idle connection, or a new one while fewer than `max` are open, or
    /// (waiting) the first of them to come free; `true` for a reused one.
    async fn obtain(self: &Arc<Self>) -> Result<(SendRequest<Body>, bool), UpstreamError> {
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(s) = self.checkout() {
                return Ok((s, true));
            }
            if self
                .open
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < self.max).then_some(n + 1)
                })
                .is_ok()
            {
                return match self.connect().await {
                    Ok(s) => Ok((s, false)),
                    Err(e) => {
                        self.closed();
                        Err(e)
                    }
                };
            }
            freed.await;
        }
    }

    /// A connection (or an attempt at one) has ended: its slot is free.
    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.freed.notify_one();
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// An idle connection that is still open and ready for a request.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(sender) = idle.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Opens a connection; the caller has reserved its slot, which the
    /// connection's task gives back when it ends.
    async fn connect(self: &Arc<Self>) -> Result<SendRequest<Body>, UpstreamError> {
        let fail = |reason: String| UpstreamError::Connect {
            authority: self.authority.to_string(),
            reason,
        };
        let connecting = async {
            match &self.host {
                url::Host::Ipv4(ip) => tokio::net::TcpStream::connect((*ip, self.port)).await,
                url::Host::Ipv6(ip) => tokio::net::TcpStream::connect((*ip, self.port)).await,
                url::Host::Domain(name) => {
                    tokio::net::TcpStream::connect((name.as_str(), self.port)).await
                }
            }
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| fail(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
            if let Some(pool) = pool.upgrade() {
                pool.closed();
            }
        });
        Ok(sender)
    }

    /// Returns a connection whose response has been read. It goes back to the
    /// idle stack once it is ready for another request; until then (the
    /// request body may still be streaming, e.g. when the app answered before
    /// reading an upload) a task waits for it, so no request ever queues
    /// behind another one's body.
    fn put_back(self: Arc<Self>, mut sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        if sender.is_ready() {
            self.push_idle(sender);
            return;
        }
        let pool = Arc::downgrade(&self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok()
                && let Some(pool) = pool.upgrade()
            {
                pool.push_idle(sender);
            }
        });
    }

    fn push_idle(&self, sender: SendRequest<Body>) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(sender);
            self.freed.notify_one();
        }
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }
}

/// A response body from the app that returns its connection to the pool once
/// it has been read to the end. A body dropped before its end takes the
/// connection with it (hyper closes it).
pub struct PooledBody {
    body: Incoming,
    back: Option<(SendRequest<Body>, Weak<Pool>)>,
}

impl PooledBody {
    fn new(body: Incoming, back: Option<(SendRequest<Body>, Weak<Pool>)>) -> Self {
        let mut this = Self { body, back };
        // Nothing to read (HEAD, 204, 304, Content-Length: 0): done already.
        if this.body.is_end_stream() {
            this.give_back();
        }
        this
    }

    fn give_back(&mut self) {
        if let Some((sender, pool)) = self.back.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.put_back(sender);
        }
    }
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("returns_connection", &self.back.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            // A server writing a body of known length stops polling once it
            // has it all, so the end is noticed with the last frame.
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An app that answers `/n` with `n` bytes and says which client port asked.
    async fn app() -> Url {
        use axum::extract::{ConnectInfo, Path};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let router = axum::Router::new().route(
            "/{n}",
            axum::routing::any(
                |ConnectInfo(peer): ConnectInfo<SocketAddr>, Path(n): Path<usize>| async move {
                    ([("x-peer-port", peer.port().to_string())], "x".repeat(n))
                },
            ),
        );
        tokio::spawn(async move {
            axum::serve(
                l,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        Url::parse(&format!("http://{addr}")).unwrap()
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    async fn read(resp: Response<PooledBody>) -> (String, usize) {
        let port = resp.headers()["x-peer-port"].to_str().unwrap().to_owned();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (port, body.len())
    }

    #[test]
    fn targets_are_origin_form_paths() {
        let t = |u: &str| Pool::target_for(&u.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(t("/a/b?c=d%20e").as_deref(), Some("/a/b?c=d%20e"));
        assert_eq!(
            t("http://evil.example/x?y").as_deref(),
            Some("/x?y"),
            "an absolute-form target keeps only its path"
        );
        assert_eq!(t("*"), None, "OPTIONS * is not forwarded");
    }

    #[tokio::test]
    async fn sequential_requests_reuse_one_connection() {
        let pool = Pool::new(&app().await).unwrap();
        let mut ports = Vec::new();
        for n in [0, 10, 100_000, 1] {
            let (port, len) = read(pool.send(get(&format!("/{n}"))).await.unwrap()).await;
            assert_eq!(len, n);
            ports.push(port);
        }
        ports.dedup();
        assert_eq!(ports.len(), 1, "one connection for all: {ports:?}");
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_open_connections_that_all_return() {
        let pool = Pool::new(&app().await).unwrap();
        let answers = futures_util::future::join_all(
            (0..8).map(|_| async { read(pool.send(get("/1000")).await.unwrap()).await }),
        )
        .await;
        assert!(answers.iter().all(|(_, len)| *len == 1000));
        let idle = pool.idle_count();
        assert!((1..=8).contains(&idle), "{idle}");
        // The idle ones serve the next requests instead of new connections.
        let before: std::collections::HashSet<_> = answers.into_iter().map(|(p, _)| p).collect();
        let (port, _) = read(pool.send(get("/5")).await.unwrap()).await;
        assert!(before.contains(&port));
    }

    #[tokio::test]
    async fn a_body_dropped_unread_takes_its_connection_along() {
        let pool = Pool::new(&app().await).unwrap();
        let resp = pool.send(get("/1000000")).await.unwrap();
        drop(resp);
        assert_eq!(pool.idle_count(), 0, "a half-read connection is not reused");
        let (_, len) = read(pool.send(get("/3")).await.unwrap()).await;
        assert_eq!(len, 3);
        assert_eq!(pool.idle_count(), 1);
    }

    /// An app that answers every request at once, before reading its body,
    /// then reads the body to its end and keeps the connection for the next
    /// request (as apps that reject or accept uploads early do). Answers say
    /// which connection (its client port) they came on.
    async fn early_answering_app() -> Url {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, peer) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => got.extend_from_slice(&buf[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                        got.drain(..end + 4);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nx-peer-port: {}\r\ncontent-length: 2\r\n\r\nok",
                            peer.port()
                        );
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                        if head.contains("transfer-encoding: chunked") {
                            // Read (and drop) the body up to its last chunk.
                            while !got.windows(5).any(|w| w == b"0\r\n\r\n") {
                                match s.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => got.extend_from_slice(&buf[..n]),
                                }
                            }
                            let at = got.windows(5).position(|w| w == b"0\r\n\r\n").unwrap();
                            got.drain(..at + 5);
                        }
                    }
                });
            }
        });
        Url::parse(&format!("http://{addr}")).unwrap()
    }

    #[tokio::test]
    async fn no_request_waits_behind_another_requests_unfinished_upload() {
        let pool = Pool::new(&early_answering_app().await).unwrap();
        // Warm up: one connection, idle.
        let (first, _) = read(pool.send(get("/")).await.unwrap()).await;
        assert_eq!(pool.idle_count(), 1);
        // An upload on it that has not ended when its answer has.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<Bytes, std::io::Error>>();
        tx.send(Ok(Bytes::from_static(b"part"))).unwrap();
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let upload = Request::post("/").body(Body::from_stream(body)).unwrap();
        let (port, len) = read(pool.send(upload).await.unwrap()).await;
        assert_eq!(
            (port.as_str(), len),
            (first.as_str(), 2),
            "the idle connection was used"
        );
        assert_eq!(pool.idle_count(), 0, "still sending the upload: not idle");
        // The next request does not queue behind the upload: a new connection.
        let (other, _) = tokio::time::timeout(Duration::from_secs(10), async {
            read(pool.send(get("/")).await.unwrap()).await
        })
        .await
        .expect("the next request gets another connection");
        assert_ne!(other, first);
        // Once the upload ends, its connection is ready again and returns.
        tx.send(Ok(Bytes::from_static(b"end"))).unwrap();
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), async {
            while pool.idle_count() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the uploading connection comes back once it is ready");
    }

    /// An app that closes every connection after one answer without saying
    /// so (as when its keep-alive timeout strikes between two requests).
    async fn closing_app() -> Url {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Url::parse(&format!("http://{addr}")).unwrap()
    }

    #[tokio::test]
    async fn a_connection_the_app_closed_is_replaced_without_an_error() {
        let pool = Pool::new(&closing_app().await).unwrap();
        for _ in 0..20 {
            let resp = pool.send(get("/")).await.expect("answered");
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&body[..], b"ok");
        }
    }

    #[test]
    fn only_plain_http_upstreams_make_a_pool() {
        for bad in [
            "https://app.internal/",
            "unix:/run/app.sock",
            "data:text/plain,x",
        ] {
            let e = Pool::new(&Url::parse(bad).unwrap()).unwrap_err();
            assert!(matches!(e, UpstreamError::Url { .. }), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_app_is_a_connect_error_naming_it() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}", l.local_addr().unwrap())).unwrap();
        drop(l);
        let pool = Pool::new(&url).unwrap();
        let e = pool.send(get("/")).await.unwrap_err();
        assert!(
            matches!(&e, UpstreamError::Connect { authority, .. } if url.as_str().contains(authority.as_str())),
            "{e}"
        );
    }

    /// An app that holds every request until `release` is notified, and
    /// counts the connections it accepted and the requests it holds.
    async fn gated_app() -> (
        Url,
        Arc<tokio::sync::Notify>,
        Arc<AtomicUsize>,
        Arc<AtomicUsize>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let release = Arc::new(tokio::sync::Notify::new());
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let (r, a, h) = (release.clone(), accepted.clone(), held.clone());
        tokio::spawn(async move {
            loop {
                let (s, peer) = l.accept().await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                let (r, h) = (r.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |_req| {
                        let (r, h) = (r.clone(), h.clone());
                        async move {
                            let released = r.notified();
                            h.fetch_add(1, Ordering::SeqCst);
                            released.await;
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .header("x-peer-port", peer.port().to_string())
                                    .body(http_body_util::Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        (
            Url::parse(&format!("http://{addr}")).unwrap(),
            release,
            accepted,
            held,
        )
    }

    #[tokio::test]
    async fn connections_to_the_app_are_capped_and_waiters_get_the_next_free_one() {
        let (url, release, accepted, held) = gated_app().await;
        let pool = Pool::with_max(&url, 2, Duration::from_secs(30)).unwrap();
        let requests: Vec<_> = (0..6)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(
                    async move { read(pool.send(get(&format!("/{i}"))).await.unwrap()).await },
                )
            })
            .collect();
        // Wait (bounded) until the app holds two requests: the cap.
        tokio::time::timeout(Duration::from_secs(10), async {
            while held.load(Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert_eq!(pool.open_count(), 2);
        // Let requests through one at a time until all six have answered.
        let done = async {
            for r in requests {
                loop {
                    release.notify_waiters();
                    tokio::task::yield_now().await;
                    if r.is_finished() {
                        break;
                    }
                }
                assert_eq!(r.await.unwrap().1, 2);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .unwrap();
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "never more than two connections"
        );
    }

    #[tokio::test]
    async fn a_request_that_finds_every_connection_busy_too_long_is_refused() {
        let (url, release, _, held) = gated_app().await;
        let pool = Pool::with_max(&url, 1, Duration::from_millis(200)).unwrap();
        let first = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.send(get("/1")).await.map(drop) })
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            while held.load(Ordering::SeqCst) < 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        let second = pool.send(get("/2")).await;
        assert!(matches!(second, Err(UpstreamError::Busy(_))), "{second:?}");
        release.notify_waiters();
        first.await.unwrap().unwrap();
    }
}
