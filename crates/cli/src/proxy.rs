//! `aadgate proxy`: the sign-in layer in front of a forwarding handler.
//!
//! Bodies stream both ways through a pooled keep-alive hyper client;
//! WebSocket upgrades are spliced after the layer has admitted the request.

use std::net::SocketAddr;

use aadgate::{Auth, User};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use url::Url;

/// Shared state of the forwarding handler.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Body>,
    upstream: Url,
    auth: Auth,
}

/// Builds the proxy app: sign-in routes, the layer, and forwarding for everything else.
pub fn app(auth: Auth, upstream: Url) -> Router {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_keepalive(Some(std::time::Duration::from_secs(60)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector);
    let routes = auth.routes();
    let layer = auth.require_login();
    let fwd = Forwarder {
        client,
        upstream,
        auth,
    };
    Router::new()
        .merge(routes)
        .fallback(forward)
        .with_state(fwd)
        .layer(layer)
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers a client may use to make an upstream believe another URL was
/// asked for, or another client address: removed from every request (matched
/// case-insensitively, `_` and `-` alike); aadgate sets the address ones itself.
const CLIENT_OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(*n);
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn bad_gateway(why: &str) -> Response {
    tracing::warn!(error = %why, "upstream request failed");
    aadgate::pages::page(
        StatusCode::BAD_GATEWAY,
        "The app is not responding",
        "<p>aadgate signed you in, but the application behind it did not answer. Try again shortly; if it persists, the app's operators should check that it is running.</p>",
    )
}

async fn forward(
    State(fwd): State<Forwarder>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
) -> Response {
    let settings = fwd.auth.settings();
    let trusted = settings
        .trusted_proxies
        .iter()
        .any(|n| n.contains(&peer.ip()));
    let websocket = is_websocket(req.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let uri: Uri = match format!(
        "{}{}",
        fwd.upstream.as_str().trim_end_matches('/'),
        path_and_query
    )
    .parse()
    {
        Ok(u) => u,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad request path").into_response(),
    };
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_11;

    let user = req.extensions().get::<User>().cloned();
    let access_token = match (&user, settings.pass_access_token) {
        (Some(u), true) => fwd.auth.access_token(u).await,
        _ => None,
    };

    let headers = req.headers_mut();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    let overrides: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            CLIENT_OVERRIDES
                .iter()
                .any(|o| aadgate::headers::loose_eq(k.as_str(), o))
        })
        .cloned()
        .collect();
    for n in overrides {
        headers.remove(n);
    }
    // X-Forwarded-*: believed only from trusted proxies.
    let host = headers.get(header::HOST).cloned();
    let xff = match (
        trusted,
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    ) {
        (true, Some(prev)) => format!("{prev}, {}", peer.ip()),
        _ => peer.ip().to_string(),
    };
    if !trusted {
        headers.remove("x-forwarded-proto");
        headers.remove("x-forwarded-host");
        headers.remove("x-forwarded-port");
        headers.remove(header::FORWARDED);
    }
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        headers.insert("x-real-ip", v);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if settings.public_url.scheme() == "https" {
                "https"
            } else {
                "http"
            }),
        );
    }
    if !headers.contains_key("x-forwarded-host")
        && let Some(h) = host
    {
        headers.insert("x-forwarded-host", h);
    }
    if let Some(u) = &user {
        for (name, value) in aadgate::headers::identity_headers(u, access_token.as_deref()) {
            headers.insert(name, value);
        }
    }
    if websocket {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(v) = upgrade_value {
            headers.insert(header::UPGRADE, v);
        }
    }

    let mut resp = match fwd.client.request(req).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(&e.to_string()),
    };

    if websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(async move {
                match (client_upgrade.await, upstream_upgrade.await) {
                    (Ok(c), Ok(u)) => {
                        let mut c = TokioIo::new(c);
                        let mut u = TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                    _ => tracing::debug!("websocket upgrade did not complete"),
                }
            });
        }
        let (mut parts, _) = resp.into_parts();
        drop_own_set_cookies(&mut parts.headers, &fwd.auth.cookie_names());
        return Response::from_parts(parts, Body::empty());
    }

    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    drop_own_set_cookies(&mut parts.headers, &fwd.auth.cookie_names());
    if settings.dash_session_script && injectable(&parts.headers) {
        if let Ok(bytes) = axum::body::to_bytes(Body::new(body), MAX_INJECT).await {
            let page = inject_session_script(&bytes);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
            return Response::from_parts(parts, Body::from(page));
        }
        return bad_gateway("HTML response larger than its Content-Length");
    }
    Response::from_parts(parts, Body::new(body))
}

/// HTML pages up to this size get the session script injected.
const MAX_INJECT: usize = 4 * 1024 * 1024;
const SESSION_SCRIPT_TAG: &[u8] = b"<script src=\"/auth/session.js\"></script>";

/// Only uncompressed HTML with a known, modest length is rewritten; anything
/// else streams through untouched.
fn injectable(headers: &HeaderMap) -> bool {
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let plain = headers
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let small = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= MAX_INJECT);
    html && plain && small
}

/// Puts the session script tag before `</head>` (or at the start of the page).
fn inject_session_script(page: &[u8]) -> Vec<u8> {
    if page.windows(16).any(|w| w == b"/auth/session.js") {
        return page.to_vec();
    }
    let lower: Vec<u8> = page.iter().map(u8::to_ascii_lowercase).collect();
    let at = lower.windows(7).position(|w| w == b"</head>").unwrap_or(0);
    let mut out = Vec::with_capacity(page.len() + SESSION_SCRIPT_TAG.len());
    out.extend_from_slice(&page[..at]);
    out.extend_from_slice(SESSION_SCRIPT_TAG);
    out.extend_from_slice(&page[at..]);
    out
}

/// The app may not set (overwrite, fixate) aadgate's own cookies.
fn drop_own_set_cookies(headers: &mut HeaderMap, own: &[&str]) {
    let cookies: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for c in cookies {
        let name = c
            .to_str()
            .ok()
            .and_then(|s| s.split('=').next())
            .map(str::trim)
            .unwrap_or("");
        if !own.contains(&name) {
            headers.append(header::SET_COOKIE, c);
        }
    }
}

/// How long a client may take to send a request's headers before the
/// connection is closed (slow-loris defence). axum's `serve` sets no timer,
/// so hyper's header timeout would never fire: this loop is why we serve
/// connections ourselves.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

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
    upstream: Url,
    workers: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for i in 1..workers.max(1) {
        let listener = listener.try_clone()?;
        let (auth, upstream, mut stopped) = (auth.clone(), upstream.clone(), stopped.clone());
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
                    serve(listener, app(auth, upstream), shutdown).await
                })
            })?;
        threads.push(thread);
    }
    drop(stopped);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    let served = serve(listener, app(auth, upstream), shutdown).await;
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
    served.and(joined.map(drop))
}

/// Serves the proxy until `shutdown` completes, then lets open requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, HEADER_READ_TIMEOUT).await
}

/// [`serve`] with an explicit header read timeout.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    header_read_timeout: Duration,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioTimer;
    use hyper_util::server::conn::auto::Builder;
    use tower::Service as _;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut router = router.clone();
            async move { router.call(req).await }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open 10 s after shutdown; closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_script_goes_before_head_end_once() {
        let out = inject_session_script(b"<html><HEAD><title>x</title></HEAD><body></body></html>");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("<title>x</title><script src=\"/auth/session.js\"></script></HEAD>"),
            "{text}"
        );
        assert_eq!(inject_session_script(&out), out, "not twice");
        let bare = String::from_utf8(inject_session_script(b"<p>hi</p>")).unwrap();
        assert!(bare.starts_with("<script src=\"/auth/session.js\"></script><p>"));
    }
}
