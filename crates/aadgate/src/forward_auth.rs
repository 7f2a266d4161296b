//! `/auth/check`: forward-auth for a reverse proxy that already routes the
//! traffic (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `forwardAuth`, ingress-nginx's `auth-url`).
//!
//! The proxy in front asks about a request it is about to send to an app,
//! naming it in `X-Forwarded-Method`, `X-Forwarded-Uri` (or
//! `X-Original-URI`) and `X-Forwarded-Host` (ingress-nginx:
//! `X-Original-Method` and `X-Original-URL`), believed only from
//! `trusted_proxies`. The question is answered by the very same layer that
//! guards `aadgate proxy` ([`crate::AuthLayer`]), run on a request rebuilt
//! from those headers and the client's cookies: one set of rules, so the
//! two cannot drift apart.
//!
//! - allowed: `200` with the identity headers (aadgate's `X-Forwarded-*`,
//!   oauth2-proxy's `X-Auth-Request-*`, and App Service's when
//!   `identity_headers` has them) for the proxy to copy to the app;
//! - not signed in: `401`; for a browser navigation with `Location` set to
//!   the sign-in URL that returns to the original URL (nginx:
//!   `error_page 401` + `auth_request_set`), or, with `?redirect=1`, a
//!   `302` there (Caddy and Traefik pass the answer to the browser);
//! - signed in but not allowed: `403`. Every other refusal (a malformed
//!   path, a Dash callback whose body the check cannot see) is a `403`
//!   too, since nginx treats any other status as its own error; only an
//!   unreachable session store stays a `503`.

use std::convert::Infallible;
use std::net::SocketAddr;

use aadgate_core::paths;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::uri::{Authority, PathAndQuery};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, ServiceExt};

use crate::{Auth, AuthLayer, Refusal, User};

/// Marks a request rebuilt by `/auth/check`: it has no body, and a sign-in
/// must return to `return_to` (the original URL, absolute when it is on
/// another host than `public_url`'s).
#[derive(Debug, Clone)]
pub(crate) struct ForwardAuthCheck {
    pub(crate) return_to: String,
}

/// `/auth/check`, any method (nginx's `auth_request` keeps the original
/// request's method).
pub(crate) async fn check(State(auth): State<Auth>, req: Request) -> Response {
    let redirect_mode = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "redirect=1" || p == "redirect=true")
    });
    let original = match original_request(&auth, &req) {
        Ok(r) => r,
        Err(reason) => return refused(reason).respond(false),
    };
    let layer = AuthLayer { auth: auth.clone() };
    let admit =
        tower::service_fn(|req: Request| async move { Ok::<_, Infallible>(admitted(&req)) });
    let Ok(answer) = layer.layer(admit).oneshot(original.request).await;
    translate(&auth, answer, original.navigation, redirect_mode)
}

struct Original {
    request: Request,
    navigation: bool,
}

/// The request the proxy in front is asking about, rebuilt from the
/// forwarded headers of a trusted peer.
fn original_request(auth: &Auth, req: &Request) -> Result<Original, String> {
    let settings = auth.settings();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| p.ip());
    let trusted = peer.is_some_and(|ip| settings.trusted_proxies.iter().any(|n| n.contains(&ip)));
    if !trusted {
        return Err(format!(
            "{} from {}, which is not in trusted_proxies: the method, URI and host it names cannot be believed (add the address of the proxy that sends forward-auth requests to trusted_proxies)",
            paths::CHECK,
            peer.map_or_else(|| "an unknown address".to_owned(), |p| p.to_string())
        ));
    }
    let headers = req.headers();
    let one = |name: &'static str| -> Result<Option<&str>, String> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("{name} was sent more than once"));
        }
        first
            .map(|v| {
                v.to_str()
                    .map_err(|_| format!("{name} is not visible ASCII"))
            })
            .transpose()
    };
    // ingress-nginx names the whole original URL and the method in its own
    // headers; the others use the X-Forwarded-* set.
    let original_url = match one("x-original-url")? {
        Some(u) => {
            Some(url::Url::parse(u).map_err(|_| format!("X-Original-URL {u:?} is not a URL"))?)
        }
        None => None,
    };
    let method_text = match one("x-forwarded-method")? {
        Some(m) => Some(m),
        None => one("x-original-method")?,
    };
    let method = match method_text {
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| format!("the forwarded method {m:?} is not a method"))?,
        None => req.method().clone(),
    };
    let uri = match (
        one("x-forwarded-uri")?,
        one("x-original-uri")?,
        &original_url,
    ) {
        (Some(u), _, _) | (None, Some(u), _) => u,
        (None, None, Some(url)) => &url[url::Position::BeforePath..],
        (None, None, None) => "/",
    };
    let path_and_query = match uri.parse::<PathAndQuery>() {
        Ok(pq) if uri.starts_with('/') => pq,
        _ => {
            return Err(format!(
                "the forwarded URI {uri:?} is not an origin-form path"
            ));
        }
    };
    let original_authority = original_url
        .as_ref()
        .map(|u| u[url::Position::BeforeHost..url::Position::AfterPort].to_owned());
    let host_text = match one("x-forwarded-host")? {
        Some(h) => h,
        None => match &original_authority {
            Some(a) => a.as_str(),
            None => one("host")?.unwrap_or_default(),
        },
    };
    let authority = host_text
        .parse::<Authority>()
        .map_err(|_| format!("the forwarded host {host_text:?} is not a host"))?;
    if !settings.hosts.contains(authority.host()) {
        return Err(format!(
            "the forwarded host {:?} is neither public_url's nor in forward_auth.hosts",
            authority.host()
        ));
    }
    let scheme = match one("x-forwarded-proto")? {
        Some("https") => "https",
        Some("http") => "http",
        Some(other) => {
            return Err(format!(
                "X-Forwarded-Proto {other:?} is neither http nor https"
            ));
        }
        None => match original_url.as_ref().map(url::Url::scheme) {
            Some("https") => "https",
            Some("http") => "http",
            _ => settings.public_url.scheme(),
        },
    };
    let public = &settings.public_url;
    let same_origin = scheme == public.scheme()
        && authority
            .host()
            .eq_ignore_ascii_case(public.host_str().unwrap_or_default())
        && authority.port_u16().or_else(|| default_port(scheme)) == public.port_or_known_default();
    let return_to = if same_origin {
        path_and_query.as_str().to_owned()
    } else {
        format!("{scheme}://{authority}{path_and_query}")
    };
    let navigation = crate::is_navigation(&method, headers);
    let mut request = Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = path_and_query.into();
    *request.headers_mut() = headers.clone();
    request
        .extensions_mut()
        .insert(ForwardAuthCheck { return_to });
    Ok(Original {
        request,
        navigation,
    })
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// A request the check refuses to consider.
fn refused(reason: String) -> Refusal {
    Refusal::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
        .message("This request cannot be checked.")
        .reason(reason)
        .warn()
}

/// What the layer let through: `200` with the identity headers.
fn admitted(req: &Request) -> Response {
    let mut resp = StatusCode::OK.into_response();
    if let Some(user) = req.extensions().get::<User>() {
        let headers = resp.headers_mut();
        for (name, value) in crate::headers::forward_auth_headers(user) {
            headers.append(name.clone(), value.clone());
        }
        resp.extensions_mut()
            .insert(crate::UserId(user.view.id.clone()));
    }
    resp
}

/// The layer's answer in forward-auth terms (see the module docs).
fn translate(auth: &Auth, mut answer: Response, navigation: bool, redirect_mode: bool) -> Response {
    let status = answer.status();
    if status.is_success() || status.is_server_error() || status == StatusCode::FORBIDDEN {
        return answer;
    }
    if status == StatusCode::FOUND {
        // The layer's "sign in first" for a navigation: its Location is
        // aadgate's local sign-in URL; the browser is on another server.
        let local = answer
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(paths::LOGIN)
            .to_owned();
        let absolute = auth
            .settings()
            .public_url
            .join(&local)
            .map_or(local, String::from);
        let location = HeaderValue::from_str(&absolute).unwrap_or(HeaderValue::from_static("/"));
        if redirect_mode && navigation {
            answer.headers_mut().insert(header::LOCATION, location);
            return answer;
        }
        let mut resp = sign_in_page(&absolute);
        resp.headers_mut().insert(header::LOCATION, location);
        return resp;
    }
    if status == StatusCode::UNAUTHORIZED {
        return answer;
    }
    // nginx accepts only 2xx, 401 and 403 from an auth subrequest.
    *answer.status_mut() = StatusCode::FORBIDDEN;
    answer
}

/// The `401` for a navigation: the sign-in URL in `Location`, and a page
/// that links to it for proxies that show the answer as it is.
fn sign_in_page(url: &str) -> Response {
    let escaped = crate::pages::escape(url);
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Sign in</title>\
<p>You need to sign in to see this page. <a href=\"{escaped}\">Sign in</a></p>"
    );
    let mut resp = (StatusCode::UNAUTHORIZED, axum::response::Html(body)).into_response();
    let h: &mut HeaderMap = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    resp
}
