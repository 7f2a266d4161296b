//! Forwarding: each request the layer let through is rewritten into exactly
//! what the app will see, sent within the app's time, and its answer relayed
//! without aadgate's cookies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aadgate::{Auth, Refusal, User};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::headers::{is_websocket, strip_headers};
use super::session_script::{MAX_INJECT, inject_session_script, injectable};
use crate::request_body::Progress;
use crate::upstream::{Pool, PooledBody, UpstreamError};

/// Forwards requests to the app.
pub(super) struct Forwarder {
    pool: Arc<Pool>,
    auth: Auth,
    /// `dash.session_script`.
    session_script: bool,
    /// `limits.upstream_header_secs`.
    answer_within: Duration,
}

impl Forwarder {
    pub(super) fn new(
        pool: Arc<Pool>,
        auth: Auth,
        session_script: bool,
        answer_within: Duration,
    ) -> Self {
        Self {
            pool,
            auth,
            session_script,
            answer_within,
        }
    }

    /// The app's `host:port`.
    pub(super) fn upstream(&self) -> &http::uri::Authority {
        self.pool.authority()
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

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
    /// The refusal, with the buttons every refusal page has: *Home*, and
    /// *Sign out* for a signed-in user (as on the 403 page).
    fn respond(self, navigation: bool, signed_in: bool) -> Response {
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
        let refusal = if signed_in {
            refusal.link("Sign out", aadgate_core::paths::LOGOUT)
        } else {
            refusal
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
pub(super) async fn forward(fwd: &Forwarder, mut req: Request) -> Response {
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
    let signed_in = req.extensions().get::<User>().is_some();
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
    if let Err(failure) = fwd.address_to_app(&mut req) {
        return failure.respond(navigation, signed_in);
    }
    fwd.rewrite_headers(&mut req, peer, websocket).await;

    let mut resp = match fwd.send(req).await {
        Ok(resp) => resp,
        Err(failure) => return failure.respond(navigation, signed_in),
    };
    if websocket && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            relay_upgrade(client_upgrade, hyper::upgrade::on(&mut resp));
        }
        let (mut parts, _) = resp.into_parts();
        fwd.auth.strip_own_set_cookies(&mut parts.headers);
        return Response::from_parts(parts, Body::empty());
    }
    fwd.relay_response(resp, navigation, signed_in).await
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
        let tokens = match (&user, settings.pass_access_token) {
            (Some(u), true) => self.auth.app_tokens(u).await,
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
            for (name, value) in aadgate::headers::identity_headers(u, tokens.as_ref()) {
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
    async fn send(&self, req: Request) -> Result<Response<PooledBody>, Failure> {
        let progress = req.extensions().get::<Arc<Progress>>().cloned();
        let answer_within = self.answer_within;
        let too_late = async {
            if let Some(p) = &progress {
                p.finished().await;
            }
            tokio::time::sleep(answer_within).await;
        };
        let metrics = self.auth.metrics();
        let started = metrics.map(|_| Instant::now());
        let sent = tokio::select! {
            sent = self.pool.send(req) => sent,
            () = too_late => {
                self.count_error("timeout");
                return Err(Failure::AppTooSlow(answer_within));
            }
        };
        match sent {
            Ok(resp) => {
                if let (Some(m), Some(started)) = (metrics, started) {
                    m.upstream_answered(started.elapsed());
                }
                Ok(resp)
            }
            // The client's upload was too slow: not the app's failure.
            Err(_) if progress.as_ref().is_some_and(|p| p.timed_out()) => Err(Failure::SlowBody),
            Err(UpstreamError::Busy(waited)) => {
                self.count_error("busy");
                Err(Failure::AppBusy(waited))
            }
            Err(e) => {
                self.count_error(match e {
                    UpstreamError::Connect { .. } => "connect",
                    _ => "failed",
                });
                Err(Failure::BadGateway(e.to_string()))
            }
        }
    }

    /// Counts a request the app did not answer (`aadgate_upstream_errors_total`).
    fn count_error(&self, kind: &'static str) {
        if let Some(m) = self.auth.metrics() {
            m.upstream_error(kind);
        }
    }

    /// Relays the app's answer: hop-by-hop headers and aadgate's own cookies
    /// removed, the session script put into HTML pages when configured.
    async fn relay_response(
        &self,
        resp: Response<PooledBody>,
        navigation: bool,
        signed_in: bool,
    ) -> Response {
        let (mut parts, body) = resp.into_parts();
        parts
            .extensions
            .insert(super::access_log::UpstreamStatus(parts.status.as_u16()));
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
            self.count_error("failed");
            return Failure::BadGateway("HTML response larger than its Content-Length".into())
                .respond(navigation, signed_in);
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
