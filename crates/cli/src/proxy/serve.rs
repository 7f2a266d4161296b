//! Serving: the listening socket, one single-threaded runtime per worker,
//! and each connection under the configured `[limits]`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aadgate::Auth;
use aadgate_core::ProxySettings;
use aadgate_core::limits::Limits;
use aadgate_core::metrics::RequestKind;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use http_body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::access_log::Started;
use super::{Proxy, app};
use crate::connections::{Backoff, LogLimit, Tracker, Watched};
use crate::request_body::TimedBody;

/// Binds the proxy's listening socket (`SO_REUSEADDR`, a backlog of 1,024)
/// for [`serve_workers`]. Must be called within a tokio runtime.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// The listening socket a service manager passed (systemd socket
/// activation: `LISTEN_FDS=1`, `LISTEN_PID` = this process, the socket as
/// descriptor 3), or `None` when there is none and the proxy binds `listen`
/// itself.
///
/// A socket that outlives the process is what makes a restart lose nothing:
/// systemd (or whatever holds it) keeps it open, connections that arrive
/// while no process accepts wait in its queue, and the next process
/// accepts them. `fds` is read once at start-up, before any thread starts
/// ([`listenfd::ListenFd::from_env`] removes the variables, so that a
/// child process never takes them for its own).
pub fn inherited(fds: &mut listenfd::ListenFd) -> Result<Option<std::net::TcpListener>, String> {
    const FIX: &str = "Fix: the .socket unit needs exactly one `ListenStream=` with an address and port (as `listen`), and `Accept=no`";
    match fds.len() {
        0 => return Ok(None),
        1 => {}
        n => {
            return Err(format!(
                "socket activation passed {n} sockets (LISTEN_FDS={n}); aadgate serves one. {FIX}"
            ));
        }
    }
    let listener = fds
        .take_tcp_listener(0)
        .map_err(|e| format!("the socket passed by socket activation (descriptor 3) is not a TCP socket ({e}). {FIX}"))?
        .ok_or_else(|| format!("the socket passed by socket activation was already taken. {FIX}"))?;
    let listening = socket2::SockRef::from(&listener)
        .is_listener()
        .map_err(|e| {
            format!("cannot inspect the socket passed by socket activation ({e}). {FIX}")
        })?;
    if !listening {
        return Err(format!(
            "the socket passed by socket activation is a connection, not a listening socket. {FIX}"
        ));
    }
    // tokio needs it non-blocking (systemd passes it blocking).
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make the inherited socket non-blocking ({e})"))?;
    Ok(Some(listener))
}

/// Serves the proxy on `workers` threads until `shutdown` completes, then
/// lets open requests finish and returns once every worker has stopped.
///
/// Each worker is a single-threaded tokio runtime with its own forwarder
/// (so its own keep-alive connections to the upstream) that accepts from the
/// shared listening socket, as nginx's worker processes do: a request never
/// changes thread, so there is no cross-thread waking, work stealing or
/// atomic reference counting on the forwarding path. The caller's runtime is
/// worker 0; the others are threads started here.
pub async fn serve_workers(
    listener: std::net::TcpListener,
    auth: Auth,
    settings: ProxySettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = settings.workers.max(1);
    let mut limits = settings.limits.clone();
    limits.max_connections = Some(limits.max_connections.unwrap_or_else(|| {
        crate::connections::default_cap(workers, limits.upstream_max_connections)
    }));
    let first = app(&auth, &settings).map_err(std::io::Error::other)?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for i in 1..workers {
        let listener = listener.try_clone()?;
        let (auth, settings, mut stopped) = (auth.clone(), settings.clone(), stopped.clone());
        let limits = limits.clone();
        let thread = std::thread::Builder::new()
            .name(format!("aadgate-worker-{i}"))
            .spawn(move || -> std::io::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let shutdown = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    let proxy = app(&auth, &settings).map_err(std::io::Error::other)?;
                    serve_with(listener, proxy, shutdown, &limits).await
                })
            })?;
        threads.push(thread);
    }
    drop(stopped);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let draining = auth.clone();
    let shutdown = async move {
        shutdown.await;
        // Load balancers see /readyz fail while open requests finish.
        draining.drain();
        tracing::info!("shutting down: not accepting connections, finishing open requests");
        let _ = stop.send(true);
    };
    let served = serve_with(listener, first, shutdown, &limits).await;
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("worker panicked")))
            })
            .collect::<std::io::Result<Vec<()>>>()
    })
    .await
    .map_err(std::io::Error::other)?;
    // Idle clocks noted since the last batch.
    auth.sessions().flush_idle_clocks().await;
    served.and(joined.map(drop))
}

/// Serves the proxy, as one worker, until `shutdown` completes, then lets
/// open requests finish. Limits are the proxy's configured `[limits]`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Proxy,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = app.limits().clone();
    serve_with(listener, app, shutdown, &limits).await
}

/// How long, at most, connections are drained after the shutdown signal
/// before the idle ones are closed (within `shutdown_timeout_secs`).
///
/// Closing an idle HTTP/1.1 keep-alive connection always races a request
/// the client may be sending on it at that moment. So on shutdown each
/// HTTP/1 response first says `Connection: close` (the client opens a new
/// connection for its next request, which the next process accepts from the
/// same socket), and only connections that stayed idle through this window
/// are closed; a client whose request meets that close retries it (RFC 9112
/// section 9.3.1; browsers do). HTTP/2 connections get a GOAWAY at the end
/// of the window, which names the last request served: no race.
const DRAIN: Duration = Duration::from_secs(1);

/// [`serve`] with explicit limits (timeouts and the connection cap).
///
/// axum's `serve` sets no timer, so hyper's header timeout would never
/// fire, and keeps idle connections forever: the accept loop and each
/// connection's task are here for that (see the `connections` module).
///
/// On `shutdown` it stops accepting, drains open connections for up to a
/// second (HTTP/1 responses say `Connection: close`), then lets open
/// requests finish, all within `limits.shutdown`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Proxy,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    limits: &Limits,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioTimer;
    use hyper_util::server::conn::auto::Builder;
    use tower::Service as _;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let cap = limits
        .max_connections
        .unwrap_or_else(|| crate::connections::default_cap(1, limits.upstream_max_connections));
    let tracker = Tracker::new(cap, limits.first_byte, limits.keepalive);
    let access = app.access_log();
    let metrics = app.metrics().cloned();
    let (body_idle, body_whole) = (limits.body_idle, limits.request);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::default();
    let mut accept_log = LogLimit::new(Duration::from_secs(10));
    let mut cap_log = LogLimit::new(Duration::from_secs(10));
    // Set at the shutdown signal: HTTP/1 responses then close their connection.
    let draining = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff.reset();
                    a
                }
                Err(e) => {
                    // Out of file descriptors and the like: make room, wait, retry.
                    let exhausted = crate::connections::is_exhaustion(&e);
                    let evicted = exhausted && tracker.evict_idlest();
                    if let Some(left_out) = accept_log.admit(std::time::Instant::now()) {
                        tracing::warn!(error = %e, open = tracker.len(), evicted, repeated = left_out, "accept failed; backing off");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next()) => {}
                        () = &mut shutdown => break,
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if tracker.len() >= tracker.cap && !tracker.evict_idlest() {
            // Every connection is busy: the newcomer waits for none of them.
            if let Some(left_out) = cap_log.admit(std::time::Instant::now()) {
                tracing::warn!(
                    open = tracker.len(),
                    cap = tracker.cap,
                    repeated = left_out,
                    "connection refused: limits.max_connections reached and none idle"
                );
            }
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (id, conn) = tracker.register();
        let proxy = app.clone();
        let on_conn = conn.clone();
        let draining = draining.clone();
        let metrics = metrics.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = on_conn.request();
            let http1 = req.version() <= http::Version::HTTP_11;
            let draining = draining.clone();
            let mut req = if req.body().is_end_stream() {
                req.map(Body::new)
            } else {
                let (parts, body) = req.into_parts();
                let (body, progress) = TimedBody::new(body, body_idle, body_whole);
                let mut req = Request::from_parts(parts, Body::new(body));
                req.extensions_mut().insert(progress);
                req
            };
            req.extensions_mut().insert(ConnectInfo(peer));
            // Timed only when someone reads the time: the access log, the metrics.
            let arrived = (access.enabled || metrics.is_some()).then(Instant::now);
            let logged = access
                .enabled
                .then(|| Started::new(&req, proxy.client_of(&req, peer), access));
            let counted = metrics.clone();
            let answered = proxy.clone().call(req);
            async move {
                let mut resp = answered.await;
                drop(in_flight);
                if let Ok(resp) = &mut resp
                    && http1
                    && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS
                    && draining.load(std::sync::atomic::Ordering::Relaxed)
                {
                    // hyper closes the connection after this response.
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                if let (Some(arrived), Ok(resp)) = (arrived, &resp) {
                    let took = arrived.elapsed();
                    if let Some(m) = counted {
                        // Marked by `Dispatch`; unmarked ones were refused before it.
                        let kind = resp.extensions().get::<RequestKind>().copied();
                        m.request(
                            kind.unwrap_or(RequestKind::Refused),
                            resp.status().as_u16(),
                            took,
                        );
                    }
                    if let Some(started) = logged {
                        started.finish(resp, took);
                    }
                }
                resp
            }
        });
        let io = TokioIo::new(Watched::new(stream, conn.clone(), tracker.clone()));
        let served = builder.serve_connection_with_upgrades(io, svc);
        // Boxed: the spawned future's `Send` cannot be proven through the
        // generic `watch` otherwise (a higher-ranked lifetime in hyper's types).
        let served: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
            Box::pin(graceful.watch(served.into_owned()));
        let tracker = tracker.clone();
        tokio::spawn(async move { tracker.watch(id, conn, served).await });
    }
    let signalled = tokio::time::Instant::now();
    draining.store(true, std::sync::atomic::Ordering::Relaxed);
    // Not accepting any more; connections still queued in the socket are
    // accepted by whoever else holds it (the next process), or refused.
    drop(listener);
    // Connections in use close with their next response; idle ones are
    // given the drain window, then closed by the graceful shutdown.
    tokio::select! {
        () = tracker.emptied() => {}
        () = tokio::time::sleep(DRAIN.min(limits.shutdown)) => {}
    }
    let left = limits.shutdown.saturating_sub(signalled.elapsed());
    if tokio::time::timeout(left, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still open {} s after the shutdown signal (shutdown_timeout_secs); closing them",
            limits.shutdown.as_secs()
        );
    }
    Ok(())
}
