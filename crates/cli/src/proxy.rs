//! `aadgate proxy`: the sign-in layer in front of a forwarding handler.
//!
//! Each worker ([`serve_workers`]) runs its own single-threaded runtime with
//! its own [`Proxy`] and pool of keep-alive connections to the app
//! ([`crate::upstream`]). Bodies stream both ways; WebSocket upgrades are
//! spliced after the layer has admitted the request.

use std::net::SocketAddr;

use std::convert::Infallible;
use std::sync::Arc;

use aadgate::{Auth, AuthService, Refusal, User};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo};

use aadgate_core::ProxySettings;
use aadgate_core::limits::Limits;

use crate::connections::{Backoff, LogLimit, Tracker, Watched};
use crate::request_body::{Progress, TimedBody};
use crate::upstream::{Pool, UpstreamError};
use std::time::Duration;
use url::Url;

/// The proxy as one tower service: the [`HostGuard`] around the sign-in
/// layer around [`Dispatch`].
pub type Proxy = HostGuard<AuthService<Dispatch>>;

/// Answers `421 Misdirected Request` to an untrusted client whose `Host` (or
/// HTTP/2 authority) is not `public_url`'s, before anything else happens, so
/// the app only ever sees `public_url`'s authority as `Host` and
/// `X-Forwarded-Host` (a forged host would otherwise reach links, redirects
/// and cache keys the app builds from it). `/healthz` is answered on any host,
/// for load balancers that probe by address.
#[derive(Clone)]
pub struct HostGuard<S> {
    inner: S,
    shared: Arc<GuardShared>,
}

struct GuardShared {
    /// `public_url`'s authority as a client may write it: `host:port`, and
    /// plain `host` when the port is the scheme's default (compared
    /// case-insensitively, without allocating).
    authorities: Vec<String>,
    public_url: Url,
    trusted: Vec<ipnet::IpNet>,
    limits: Limits,
}

impl<S> std::fmt::Debug for HostGuard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostGuard")
            .field("authorities", &self.shared.authorities)
            .finish_non_exhaustive()
    }
}

impl<S> HostGuard<S> {
    /// The limits the proxy was configured with.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }
}

impl GuardShared {
    fn new(public: &Url, trusted: Vec<ipnet::IpNet>, limits: Limits) -> Self {
        let host = public.host_str().unwrap_or_default();
        let port = public.port_or_known_default().unwrap_or(80);
        let default = if public.scheme() == "https" { 443 } else { 80 };
        let mut authorities = vec![format!("{host}:{port}")];
        if port == default {
            authorities.push(host.to_owned());
        }
        Self {
            authorities,
            public_url: public.clone(),
            trusted,
            limits,
        }
    }

    fn matches(&self, authority: &[u8]) -> bool {
        self.authorities
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(authority))
    }

    /// Whether every authority the request names is `public_url`'s.
    fn allows(&self, req: &Request) -> bool {
        let host = req.headers().get(header::HOST);
        if host.is_some_and(|h| !self.matches(h.as_bytes())) {
            return false;
        }
        match req.uri().authority() {
            Some(a) => self.matches(a.as_str().as_bytes()),
            None => host.is_some(),
        }
    }
}

impl<S> tower::Service<Request> for HostGuard<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        futures_util::future::Either<S::Future, std::future::Ready<Result<Response, Infallible>>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        use futures_util::future::Either;
        let g = &self.shared;
        // RFC 9112 3.2: more than one Host is a 400, whoever sends it (the
        // app would join them into one host of the client's choosing).
        if req.headers().get_all(header::HOST).iter().nth(1).is_some() {
            return Either::Right(std::future::ready(Ok(Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad request",
            )
            .message("The request names more than one host.")
            .reason("more than one Host header")
            .respond(aadgate::is_navigation(req.method(), req.headers())))));
        }
        // Cheapest first: nearly every request names public_url's authority.
        let trusted = || {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| g.trusted.iter().any(|n| n.contains(&peer.ip())))
        };
        if g.allows(&req) || req.uri().path() == aadgate_core::paths::HEALTHZ || trusted() {
            return Either::Left(self.inner.call(req));
        }
        let url = g.public_url.as_str();
        let refusal = Refusal::new(StatusCode::MISDIRECTED_REQUEST, "misdirected_request", "Wrong address")
            .html(format!(
                "<p>This app is served at <a href=\"{url}\">{url}</a>. Open it there.</p>",
                url = aadgate::pages::escape(url),
            ))
            .field("public_url", url)
            .reason(format!(
                "the Host {:?} is not public_url's (a proxy in front that rewrites Host must be listed in trusted_proxies, or pass the Host through)",
                req.headers().get(header::HOST)
            ));
        Either::Right(std::future::ready(Ok(
            refusal.respond(aadgate::is_navigation(req.method(), req.headers()))
        )))
    }
}

/// What the sign-in layer lets through goes to aadgate's own routes when the
/// path is exactly one of them ([`aadgate::is_own_path`]), otherwise to the
/// app. Written out instead of an axum `Router` with a fallback: forwarding
/// is every request the app gets, and the router's matching, boxing and
/// state cloning were ~15 % of the instructions a proxied request costs.
#[derive(Clone)]
pub struct Dispatch {
    routes: Router,
    forwarder: Arc<Forwarder>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("upstream", self.forwarder.pool.authority())
            .finish_non_exhaustive()
    }
}

impl tower::Service<Request> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if aadgate::is_own_path(req.uri().path()) {
            let routes = self.routes.clone();
            Box::pin(tower::ServiceExt::oneshot(routes, req))
        } else {
            let forwarder = self.forwarder.clone();
            Box::pin(async move { Ok(forward(&forwarder, req).await) })
        }
    }
}

/// Forwards requests to the app.
struct Forwarder {
    pool: Arc<Pool>,
    auth: Auth,
    /// `dash.session_script`.
    session_script: bool,
    /// `limits.upstream_header_secs`.
    answer_within: Duration,
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Builds the proxy: sign-in routes, the layer, and forwarding for everything
/// else, with its own pool of keep-alive connections to `settings.upstream`
/// (a plain `http://host:port` URL; anything else is an error).
pub fn app(auth: &Auth, settings: &ProxySettings) -> Result<Proxy, UpstreamError> {
    let limits = settings.limits.clone();
    let pool = Pool::with_max(
        &settings.upstream,
        limits.upstream_max_connections,
        limits.upstream_header,
    )?;
    let dispatch = Dispatch {
        routes: auth.routes(),
        forwarder: Arc::new(Forwarder {
            pool,
            auth: auth.clone(),
            session_script: settings.session_script,
            answer_within: limits.upstream_header,
        }),
    };
    // Who is a trusted proxy, and the public URL, are the library's settings:
    // the sign-in routes read them too.
    let library = auth.settings();
    Ok(HostGuard {
        inner: tower::Layer::layer(&auth.require_login(), dispatch),
        shared: Arc::new(GuardShared::new(
            &library.public_url,
            library.trusted_proxies.clone(),
            limits,
        )),
    })
}

/// Hop-by-hop headers (RFC 9110 7.6.1 and the legacy ones), never forwarded
/// in either direction; `Connection` may name more.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Headers a client may use to make an upstream believe another URL was
/// asked for, or another client address: removed from every request (matched
/// case-insensitively, `_` and `-` alike); aadgate sets the address ones itself.
const CLIENT_OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-script-name",
    "script-name",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
];

/// Forwarding headers: believed only from `trusted_proxies` (in their
/// hyphenated spelling), set or replaced by aadgate otherwise. Matched with
/// `_` and `-` alike: WSGI and CGI servers map `X_Forwarded_For` and
/// `X-Forwarded-For` to the same variable.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-scheme",
    "x-url-scheme",
    "x-host",
    "front-end-https",
];

fn is_forwarding(name: &HeaderName) -> bool {
    FORWARDING
        .iter()
        .any(|f| aadgate::headers::loose_eq(name.as_str(), f))
}

/// Headers a `Connection` header may not name for removal: message framing,
/// the host, and every header aadgate decides on or sets.
fn connection_may_not_remove(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::CONTENT_TYPE
        || name == header::CONTENT_ENCODING
        || is_forwarding(name)
        || CLIENT_OVERRIDES
            .iter()
            .any(|o| aadgate::headers::loose_eq(name.as_str(), o))
        || aadgate::headers::is_identity_header(name.as_str())
}

/// Removes, in one pass over the map, the hop-by-hop headers (with the
/// headers `Connection` names, except those it may not) and, for a request
/// (`request = Some(trusted)`), the client overrides, any forwarding header
/// spelled with `_`, and, from an untrusted client, the forwarding headers.
/// Most messages carry none of them, so usually nothing is allocated.
fn strip_headers(headers: &mut HeaderMap, request: Option<bool>) {
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let drop = is_hop_by_hop(name)
            || request.is_some_and(|trusted| {
                (is_forwarding(name) && (!trusted || name.as_str().contains('_')))
                    || CLIENT_OVERRIDES
                        .iter()
                        .any(|o| aadgate::headers::loose_eq(name.as_str(), o))
            });
        if drop {
            remove.push(name.clone());
        }
    }
    if remove.is_empty() {
        return;
    }
    if remove.contains(&header::CONNECTION) {
        remove.extend(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .filter(|n| !connection_may_not_remove(n)),
        );
    }
    for n in remove {
        headers.remove(n);
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Why a request reached aadgate but got no answer from the app.
#[derive(Debug)]
enum Failure {
    /// The app could not be reached or failed mid-answer (502).
    BadGateway(String),
    /// The request body came too slowly (408; the connection is closed).
    SlowBody,
    /// The app did not answer within `limits.upstream_header_secs` (504).
    AppTooSlow(Duration),
    /// No connection to the app came free (503).
    AppBusy(Duration),
    /// The request target names no path, such as `*` (400).
    NoPath(String),
}

impl Failure {
    fn respond(self, navigation: bool) -> Response {
        let close = matches!(self, Failure::SlowBody);
        let refusal = match self {
            Failure::BadGateway(why) => Refusal::new(StatusCode::BAD_GATEWAY, "bad_gateway", "The app is not responding")
                .message("aadgate signed you in, but the application behind it did not answer. Try again shortly; if it persists, the app's operators should check that it is running.")
                .reason(format!("upstream request failed: {why}"))
                .warn(),
            Failure::SlowBody => Refusal::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "The upload was too slow")
                .message("Your browser took too long to send the request, so it was stopped. Try again on a faster connection.")
                .reason("the request body came too slowly (limits.body_idle_secs / limits.request_secs)"),
            Failure::AppTooSlow(after) => Refusal::new(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", "The app took too long")
                .message("The application behind aadgate did not answer in time. Try again shortly.")
                .reason(format!("the app did not answer within limits.upstream_header_secs ({} s)", after.as_secs()))
                .warn(),
            Failure::AppBusy(waited) => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "app_busy", "The app is busy")
                .message("The application behind aadgate is busy with other requests. Try again shortly.")
                .reason(format!("no connection to the app came free within {} s (limits.upstream_max_connections)", waited.as_secs()))
                .warn(),
            Failure::NoPath(target) => Refusal::new(StatusCode::BAD_REQUEST, "bad_request_path", "Bad request")
                .message("This request names no path.")
                .reason(format!("request target {target:?} is not a path")),
        };
        let mut resp = refusal.respond(navigation);
        if close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Forwards one request the layer let through: the request is rewritten
/// into exactly what the app will see, sent within the app's time, and its
/// answer relayed without aadgate's cookies.
async fn forward(fwd: &Forwarder, mut req: Request) -> Response {
    let Some(&ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() else {
        // `serve` always records it; without it nothing can be said about the client.
        return Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
        )
        .message("aadgate could not handle this request.")
        .reason("request without the client's address; serve the proxy with proxy::serve")
        .warn()
        .respond(false);
    };
    let websocket = is_websocket(req.headers());
    // Decided before the request goes on: failures answer a browser with a
    // page and a script with JSON.
    let navigation = aadgate::is_navigation(req.method(), req.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    if let Err(failure) = fwd.address_to_app(&mut req) {
        return failure.respond(navigation);
    }
    fwd.rewrite_headers(&mut req, peer, websocket).await;

    let mut resp = match fwd.send(req).await {
        Ok(resp) => resp,
        Err(failure) => return failure.respond(navigation),
    };
    if websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            relay_upgrade(client_upgrade, hyper::upgrade::on(&mut resp));
        }
        let (mut parts, _) = resp.into_parts();
        fwd.auth.strip_own_set_cookies(&mut parts.headers);
        return Response::from_parts(parts, Body::empty());
    }
    fwd.relay_response(resp, navigation).await
}

impl Forwarder {
    /// Points the request at the app: an HTTP/1.1 origin-form target, with
    /// `Host` as the client named it (HTTP/2 clients name it in the URI).
    fn address_to_app(&self, req: &mut Request) -> Result<(), Failure> {
        if !req.headers().contains_key(header::HOST) {
            let host = req.uri().authority().unwrap_or(self.pool.authority());
            if let Ok(v) = HeaderValue::from_str(host.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        *req.uri_mut() =
            Pool::target_for(req.uri()).ok_or_else(|| Failure::NoPath(req.uri().to_string()))?;
        *req.version_mut() = http::Version::HTTP_11;
        Ok(())
    }

    /// What the app is told, and nothing a client may forge: hop-by-hop and
    /// client-supplied overrides removed, the forwarding headers set (or
    /// extended, after a trusted proxy), and the user's identity headers.
    async fn rewrite_headers(&self, req: &mut Request, peer: SocketAddr, websocket: bool) {
        let settings = self.auth.settings();
        let trusted = settings
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&peer.ip()));
        let user = req.extensions().get::<User>().cloned();
        let access_token = match (&user, settings.pass_access_token) {
            (Some(u), true) => self.auth.access_token(u).await,
            _ => None,
        };

        let headers = req.headers_mut();
        let upgrade_value = headers.get(header::UPGRADE).cloned();
        strip_headers(headers, Some(trusted));
        // X-Forwarded-*: believed only from trusted proxies (the others were removed above).
        let ip = peer.ip().to_string();
        if let Ok(ip_value) = HeaderValue::from_str(&ip) {
            let xff = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(prev) if trusted => {
                    HeaderValue::from_str(&format!("{prev}, {ip}")).unwrap_or(ip_value.clone())
                }
                _ => ip_value.clone(),
            };
            headers.insert(X_FORWARDED_FOR, xff);
            headers.insert(X_REAL_IP, ip_value);
        }
        if !headers.contains_key(X_FORWARDED_PROTO) {
            let proto = if settings.public_url.scheme() == "https" {
                "https"
            } else {
                "http"
            };
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
        if !headers.contains_key(X_FORWARDED_HOST)
            && let Some(h) = headers.get(header::HOST).cloned()
        {
            headers.insert(X_FORWARDED_HOST, h);
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
    }

    /// Sends the request. The app's time to answer starts once the request
    /// body has been sent whole (a slow upload is the client's time, bounded
    /// by its own limits).
    async fn send(&self, req: Request) -> Result<Response<crate::upstream::PooledBody>, Failure> {
        let progress = req.extensions().get::<Arc<Progress>>().cloned();
        let answer_within = self.answer_within;
        let too_late = async {
            if let Some(p) = &progress {
                p.finished().await;
            }
            tokio::time::sleep(answer_within).await;
        };
        let sent = tokio::select! {
            sent = self.pool.send(req) => sent,
            () = too_late => return Err(Failure::AppTooSlow(answer_within)),
        };
        sent.map_err(|e| match e {
            _ if progress.as_ref().is_some_and(|p| p.timed_out()) => Failure::SlowBody,
            UpstreamError::Busy(waited) => Failure::AppBusy(waited),
            e => Failure::BadGateway(e.to_string()),
        })
    }

    /// Relays the app's answer: hop-by-hop headers and aadgate's own cookies
    /// removed, the session script put into HTML pages when configured.
    async fn relay_response(
        &self,
        resp: Response<crate::upstream::PooledBody>,
        navigation: bool,
    ) -> Response {
        let (mut parts, body) = resp.into_parts();
        strip_headers(&mut parts.headers, None);
        self.auth.strip_own_set_cookies(&mut parts.headers);
        if self.session_script && injectable(&parts.headers) {
            if let Ok(bytes) = axum::body::to_bytes(Body::new(body), MAX_INJECT).await {
                let page = inject_session_script(&bytes);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(page.len()));
                return Response::from_parts(parts, Body::from(page));
            }
            return Failure::BadGateway("HTML response larger than its Content-Length".into())
                .respond(navigation);
        }
        Response::from_parts(parts, Body::new(body))
    }
}

/// Copies bytes both ways between the client's and the app's upgraded
/// connections (WebSocket) until either side closes.
fn relay_upgrade(client: hyper::upgrade::OnUpgrade, app: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        match (client.await, app.await) {
            (Ok(c), Ok(u)) => {
                let mut c = TokioIo::new(c);
                let mut u = TokioIo::new(u);
                let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
            }
            _ => tracing::debug!("websocket upgrade did not complete"),
        }
    });
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
    let shutdown = async move {
        shutdown.await;
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

/// [`serve`] with explicit limits (timeouts and the connection cap).
///
/// axum's `serve` sets no timer, so hyper's header timeout would never
/// fire, and keeps idle connections forever: the accept loop and each
/// connection's task are here for that (see the `connections` module).
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
    let (body_idle, body_whole) = (limits.body_idle, limits.request);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut backoff = Backoff::default();
    let mut accept_log = LogLimit::new(Duration::from_secs(10));
    let mut cap_log = LogLimit::new(Duration::from_secs(10));
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
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let in_flight = on_conn.request();
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
            let answered = proxy.clone().call(req);
            async move {
                let resp = answered.await;
                drop(in_flight);
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
    fn hop_by_hop_and_client_supplied_headers_are_stripped_in_one_pass() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-original-url", "/admin"),
            ("x_real_ip", "1.2.3.4"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
            ("accept", "*/*"),
            ("x-app", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let mut trusted = h.clone();
        strip_headers(&mut trusted, Some(true));
        let names = |h: &HeaderMap| {
            let mut v: Vec<String> = h.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&trusted),
            ["accept", "forwarded", "x-app", "x-forwarded-host"]
        );
        strip_headers(&mut h, Some(false));
        assert_eq!(names(&h), ["accept", "x-app"]);
        let mut resp = HeaderMap::new();
        resp.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        resp.insert(
            "x-forwarded-host",
            HeaderValue::from_static("kept in responses"),
        );
        strip_headers(&mut resp, None);
        assert_eq!(names(&resp), ["x-forwarded-host"]);
    }

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
