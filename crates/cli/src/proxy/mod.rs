//! `aadgate proxy`: the sign-in layer in front of a forwarding handler.
//!
//! Each worker ([`serve_workers`]) runs its own single-threaded runtime with
//! its own [`Proxy`] and pool of keep-alive connections to the app
//! ([`crate::upstream`]). Bodies stream both ways; WebSocket upgrades are
//! spliced after the layer has admitted the request.
//!
//! - [`HostGuard`] (`host_guard`): requests for another host are refused first;
//! - [`Dispatch`]: aadgate's own routes, or the app;
//! - `forward`: the request rewritten into exactly what the app sees, the
//!   answer relayed; `headers`: which headers cross, in each direction;
//!   `session_script`: the script put into HTML pages;
//! - `serve`: listening, the workers, and the connections' limits;
//!   `access_log`: a line per request.

mod access_log;
mod forward;
mod headers;
mod host_guard;
mod serve;
mod session_script;

use std::convert::Infallible;
use std::sync::Arc;

use aadgate::{Auth, AuthError, AuthService};
use aadgate_core::ProxySettings;
use aadgate_core::metrics::RequestKind;
use axum::Router;
use axum::extract::Request;
use axum::response::Response;

use crate::upstream::{Pool, UpstreamError};
use forward::Forwarder;
pub use host_guard::HostGuard;
pub use serve::{bind, inherited, serve, serve_with, serve_workers};

/// The proxy as one tower service: the [`HostGuard`] around the sign-in
/// layer around [`Dispatch`].
pub type Proxy = HostGuard<AuthService<Dispatch>>;

/// The sign-in the proxy runs with: counting into new [`Metrics`] when
/// `metrics_listen` is set (and only then: nobody could read them).
///
/// [`Metrics`]: aadgate_core::metrics::Metrics
pub fn auth(config: &aadgate_core::Config, settings: &ProxySettings) -> Result<Auth, AuthError> {
    let metrics = settings
        .metrics_listen
        .map(|_| Arc::new(aadgate_core::metrics::Metrics::new()));
    Auth::from_settings_with_metrics(config.validate()?, metrics)
}

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
        mark: auth.metrics().is_some(),
        routes: auth.routes(),
        forwarder: Arc::new(Forwarder::new(
            pool,
            auth.clone(),
            settings.session_script,
            limits.upstream_header,
        )),
    };
    // Who is a trusted proxy, and the public URL, are the library's settings:
    // the sign-in routes read them too.
    let library = auth.settings();
    Ok(HostGuard::new(
        tower::Layer::layer(&auth.require_login(), dispatch),
        &library.public_url,
        library.trusted_proxies.clone(),
        limits,
        settings.access_log,
        auth.metrics().cloned(),
    ))
}

/// What the sign-in layer lets through goes to aadgate's own routes when the
/// path is exactly one of them ([`aadgate::is_own_path`]), otherwise to the
/// app. Written out instead of an axum `Router` with a fallback: forwarding
/// is every request the app gets, and the router's matching, boxing and
/// state cloning were ~15 % of the instructions a proxied request costs.
///
/// With metrics on, the response carries which of the two answered (a
/// [`RequestKind`] in its extensions); a response without one was refused
/// before it got here.
#[derive(Clone)]
pub struct Dispatch {
    /// Mark responses with their [`RequestKind`] (metrics are on).
    mark: bool,
    routes: Router,
    forwarder: Arc<Forwarder>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("upstream", self.forwarder.upstream())
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
        let mark = self.mark;
        if aadgate::is_own_path(req.uri().path()) {
            let routes = self.routes.clone();
            Box::pin(async move {
                let mut resp = tower::ServiceExt::oneshot(routes, req).await?;
                if mark {
                    resp.extensions_mut().insert(RequestKind::Own);
                }
                Ok(resp)
            })
        } else {
            let forwarder = self.forwarder.clone();
            Box::pin(async move {
                let mut resp = forward::forward(&forwarder, req).await;
                if mark {
                    resp.extensions_mut().insert(RequestKind::Forwarded);
                }
                Ok(resp)
            })
        }
    }
}
