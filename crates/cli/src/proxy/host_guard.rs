//! Requests for another host than `public_url`'s are refused before anything
//! else happens.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use aadgate::Refusal;
use aadgate_core::config::AccessLog;
use aadgate_core::limits::Limits;
use aadgate_core::metrics::Metrics;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use url::Url;

/// Answers `421 Misdirected Request` to an untrusted client whose `Host` (or
/// HTTP/2 authority) is not `public_url`'s, before anything else happens, so
/// the app only ever sees `public_url`'s authority as `Host` and
/// `X-Forwarded-Host` (a forged host would otherwise reach links, redirects
/// and cache keys the app builds from it). `/healthz` and `/readyz` are answered on any host,
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
    access_log: AccessLog,
    metrics: Option<Arc<Metrics>>,
}

impl<S> std::fmt::Debug for HostGuard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostGuard")
            .field("authorities", &self.shared.authorities)
            .finish_non_exhaustive()
    }
}

impl<S> HostGuard<S> {
    pub(super) fn new(
        inner: S,
        public: &Url,
        trusted: Vec<ipnet::IpNet>,
        limits: Limits,
        access_log: AccessLog,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            inner,
            shared: Arc::new(GuardShared::new(
                public, trusted, limits, access_log, metrics,
            )),
        }
    }

    /// Whether and how requests are logged.
    pub fn access_log(&self) -> AccessLog {
        self.shared.access_log
    }

    /// The client's address: the connection's, or the one a trusted proxy
    /// in front reports.
    pub(super) fn client_of<B>(
        &self,
        req: &axum::http::Request<B>,
        peer: SocketAddr,
    ) -> std::net::IpAddr {
        aadgate::client_address(req.headers(), peer, &self.shared.trusted)
    }

    /// The limits the proxy was configured with.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Where requests are counted, when metrics are on.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.shared.metrics.as_ref()
    }
}

impl GuardShared {
    fn new(
        public: &Url,
        trusted: Vec<ipnet::IpNet>,
        limits: Limits,
        access_log: AccessLog,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
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
            access_log,
            metrics,
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
        if g.allows(&req) || aadgate_core::paths::is_probe(req.uri().path()) || trusted() {
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
