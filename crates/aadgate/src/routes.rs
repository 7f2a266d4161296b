//! Sign-in routes: login, callback, logout, me, and App Service aliases.

use aadgate_core::flow::{
    AuthorizationRequest, PENDING_TTL, PendingJar, PendingLogin, safe_return_path,
};
use aadgate_core::session::Tokens;
use aadgate_core::{crypto, entra};
use axum::Router;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use aadgate_core::paths;

use crate::answers::{local_url, redirect};
use crate::error::SignInError;
use crate::pages::{self, escape};
use crate::{Auth, Refusal, cookies, headers};

pub(crate) fn router<S: Clone + Send + Sync + 'static>(auth: Auth) -> Router<S> {
    use aadgate_core::paths::*;
    Router::new()
        .route(LOGIN, get(login))
        .route(CALLBACK, get(callback))
        .route(LOGOUT, get(logout).post(logout))
        .route(SIGNED_OUT, get(signed_out))
        .route(FRONTCHANNEL_LOGOUT, get(frontchannel_logout))
        .route(ME, get(me))
        .route(CHECK, axum::routing::any(crate::forward_auth::check))
        .route(SESSION_JS, get(session_js))
        .route(APP_SERVICE_ME, get(app_service_me))
        .route(APP_SERVICE_LOGIN, get(app_service_login))
        .route(APP_SERVICE_LOGOUT, get(app_service_logout))
        .route(APP_SERVICE_REFRESH, get(app_service_refresh))
        .route(HEALTHZ, get(|| async { "ok" }))
        .route(READYZ, get(ready))
        .with_state(auth)
}

/// Query pairs; `None` when a parameter we read appears twice (duplicate
/// `state`/`code` is an attack signature) or the query is oversized.
fn query_pairs(raw: Option<&str>, singular: &[&str]) -> Option<Vec<(String, String)>> {
    let raw = raw.unwrap_or("");
    if raw.len() > 8192 {
        return None;
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect();
    for name in singular {
        if pairs.iter().filter(|(k, _)| k == name).count() > 1 {
            return None;
        }
    }
    Some(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The client's connection, when the server recorded it (`ConnectInfo`).
type Peer = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

/// `limits.signin_per_minute` for this client: `Some` is the 429 page.
fn throttle(auth: &Auth, peer: &Peer, headers: &HeaderMap) -> Option<Response> {
    // Without the connection's address there is no client to limit (a
    // library user serving without `ConnectInfo`); one shared bucket would
    // let a single client lock everyone out.
    let Some(axum::Extension(ConnectInfo(peer))) = peer else {
        return None;
    };
    let client = crate::client_address(headers, *peer, &auth.inner.settings.trusted_proxies);
    match auth
        .inner
        .signin_throttle
        .take(client, std::time::Instant::now())
    {
        Ok(()) => None,
        Err(wait) => {
            // Always a page: these are navigations (the provider's redirect included).
            let mut resp = crate::Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sign_ins",
                "Too many sign-in attempts",
            )
            .message(format!(
                "This browser or network started too many sign-ins in a short time. Wait {wait} seconds, then try again."
            ))
            .reason(format!("{client} exceeded limits.signin_per_minute"))
            .warn()
            .respond(true);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            Some(resp)
        }
    }
}

async fn login(
    State(auth): State<Auth>,
    peer: Peer,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = throttle(&auth, &peer, &headers) {
        return resp;
    }
    let Some(pairs) = query_pairs(q.as_deref(), &["rd", "login_hint"]) else {
        return Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad sign-in request",
        )
        .message("The sign-in link is malformed.")
        .reason("malformed query string on /auth/login")
        .primary("Sign in again", paths::LOGIN)
        .respond(true);
    };
    // A local path, or an absolute URL on a host aadgate protects
    // (`forward_auth.hosts`); anything else would be an open redirect.
    let rd = param(&pairs, "rd")
        .and_then(|rd| auth.settings().hosts.safe_return_target(rd))
        .unwrap_or_else(|| "/".to_owned());
    let login_hint =
        param(&pairs, "login_hint").filter(|h| h.len() <= 256 && !h.chars().any(char::is_control));
    let inner = &auth.inner;
    let meta = match inner.provider.metadata().await {
        Ok(m) => m,
        Err(e) => return SignInError::from(e).into_response(),
    };
    let t = auth.clock().now();
    let login = PendingLogin::new(rd, meta.issuer.clone(), t);
    let mut jar = PendingJar::from_cookie(
        cookies::cookie_values(&headers, inner.cookies.pending).next(),
        &inner.pending_sealer,
        t,
    );
    let url = AuthorizationRequest {
        endpoint: &meta.authorization_endpoint,
        client_id: &inner.settings.client_id,
        redirect_uri: inner.settings.redirect_uri.as_str(),
        scopes: &inner.settings.scopes,
        login: &login,
        login_hint,
    }
    .url();
    jar.push(login);
    let mut resp = redirect(url.as_str());
    resp.headers_mut().append(
        header::SET_COOKIE,
        inner.cookies.set(
            inner.cookies.pending,
            &jar.to_cookie(&inner.pending_sealer),
            PENDING_TTL,
        ),
    );
    resp
}

async fn callback(
    State(auth): State<Auth>,
    peer: Peer,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let count = |outcome| {
        if let Some(m) = auth.metrics() {
            m.signin(outcome);
        }
    };
    if let Some(resp) = throttle(&auth, &peer, &headers) {
        count(Err("throttled"));
        return resp;
    }
    let cid = pages::correlation_id();
    let Some(pairs) = query_pairs(
        q.as_deref(),
        &[
            "code",
            "state",
            "error",
            "error_description",
            "session_state",
            "iss",
        ],
    ) else {
        let e = SignInError::MalformedCallback;
        count(Err(e.reason()));
        return e.into_page(&cid);
    };
    if let Some(error) = param(&pairs, "error") {
        count(Err("provider_error"));
        return provider_error_page(&pairs, error, &cid);
    }
    match complete_sign_in(&auth, &pairs, &headers).await {
        Ok(resp) => {
            count(Ok(()));
            resp
        }
        Err(e) => {
            count(Err(e.reason()));
            e.into_page(&cid)
        }
    }
}

/// Checks the callback against the pending sign-in, redeems the code,
/// validates the ID token and creates the session.
async fn complete_sign_in(
    auth: &Auth,
    pairs: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, SignInError> {
    let inner = &auth.inner;
    let (Some(code), Some(state)) = (param(pairs, "code"), param(pairs, "state")) else {
        return Err(SignInError::MissingParameters);
    };
    if code.len() > 4096 || state.len() > 256 {
        return Err(SignInError::MalformedCallback);
    }
    let t = auth.clock().now();
    let mut jar = PendingJar::from_cookie(
        cookies::cookie_values(headers, inner.cookies.pending).next(),
        &inner.pending_sealer,
        t,
    );
    let login = jar.take(state).ok_or(SignInError::UnknownState)?;
    // Single use, even if the pending cookie is replayed (on any replica,
    // with a shared store).
    let state_id = crypto::sha256(login.state.as_bytes());
    if !inner.store.claim_once(&state_id, t + PENDING_TTL).await? {
        return Err(SignInError::StateReused);
    }
    let meta = inner.provider.metadata().await?;
    if meta.issuer != login.issuer {
        return Err(SignInError::IssuerMixUp {
            started: login.issuer,
            now: meta.issuer.clone(),
        });
    }
    if let Some(iss) = param(pairs, "iss") {
        // RFC 9207: when the provider names itself, it must be the one we started with.
        if iss != login.issuer && !login.issuer.contains("{tenantid}") {
            return Err(SignInError::IssuerMixUp {
                started: login.issuer,
                now: iss.to_owned(),
            });
        }
    }
    let tokens = inner
        .provider
        .exchange_code(code, &login.verifier, inner.settings.redirect_uri.as_str())
        .await?;
    let id_token = tokens.id_token.as_deref().ok_or(SignInError::NoIdToken)?;
    let claims = inner
        .provider
        .validate_id_token(id_token, Some(&login.nonce))
        .await?;
    let identity = auth
        .resolve_group_overage(claims.identity, &tokens.access_token)
        .await;
    let stored = Tokens {
        id_token: Some(id_token.to_owned()),
        access_token: Some(tokens.access_token.clone()),
        access_expires_at: tokens.expires_in.map(|s| t + s as i64),
        refresh_token: tokens.refresh_token.clone(),
        scope: tokens.scope.clone(),
    };
    // A brand-new session id: whatever session cookie came in is dropped (fixation defence).
    for old in cookies::cookie_values(headers, inner.cookies.session) {
        if inner.store.get(old).await.is_some() {
            inner.store.remove(old).await;
        }
    }
    let (cookie, session) = inner.store.create(identity, stored).await?;
    tracing::info!(user = %session.identity.user_id(), "signed in");
    let mut resp = redirect(&login.rd);
    let c = &inner.cookies;
    resp.headers_mut().append(
        header::SET_COOKIE,
        c.set(c.session, &cookie, inner.settings.lifetime.as_secs() as i64),
    );
    let pending = if jar.is_empty() {
        c.clear(c.pending)
    } else {
        c.set(
            c.pending,
            &jar.to_cookie(&inner.pending_sealer),
            PENDING_TTL,
        )
    };
    resp.headers_mut().append(header::SET_COOKIE, pending);
    Ok(resp)
}

fn provider_error_page(pairs: &[(String, String)], error: &str, cid: &str) -> Response {
    let description = param(pairs, "error_description").unwrap_or("");
    let trace = param(pairs, "trace_id").unwrap_or("");
    let corr = param(pairs, "correlation_id").unwrap_or("");
    tracing::warn!(correlation_id = %cid, %error, %description, trace_id = %trace, provider_correlation_id = %corr, "provider returned an error to the callback");
    let ids = (!trace.is_empty() || !corr.is_empty()).then_some((trace, corr));
    let code = entra::find_code(description);
    let refusal = match code.and_then(entra::explain) {
        Some(exp) => pages::explained(StatusCode::FORBIDDEN, exp, error, ids),
        None => Refusal::new(
            StatusCode::FORBIDDEN,
            "signin_refused",
            "Sign-in was refused",
        )
        .html(format!(
            "<p>The identity provider refused the sign-in: <code>{}</code>{}.</p>{}",
            escape(error),
            escape(&code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default()),
            pages::entra_ids(ids)
        ))
        .primary("Try again", paths::LOGIN),
    };
    refusal
        .reason(format!("the provider refused the sign-in: {error}"))
        .correlation_id(cid)
        .respond(true)
}

/// Whether a sign-out request comes from aadgate's own site (or the user's
/// own hand), so that another site cannot sign anyone out (logout CSRF).
///
/// A POST must carry an `Origin` (or, from older browsers, a `Referer`) of
/// `public_url`'s origin. A GET counts only when the browser says it is
/// same-origin or typed by the user (`Sec-Fetch-Site: same-origin | none`);
/// any other GET gets a page with a sign-out button instead.
fn same_site_logout(auth: &Auth, method: &Method, headers: &HeaderMap) -> bool {
    let origin = auth
        .inner
        .settings
        .public_url
        .origin()
        .ascii_serialization();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let fetch_site = header("sec-fetch-site");
    if *method == Method::POST {
        return match header("origin") {
            Some(o) => o == origin,
            None => {
                fetch_site.is_some_and(|s| s == "same-origin")
                    || header("referer")
                        .and_then(|r| url::Url::parse(r).ok())
                        .is_some_and(|r| r.origin().ascii_serialization() == origin)
            }
        };
    }
    matches!(fetch_site, Some("same-origin" | "none"))
}

async fn logout(
    State(auth): State<Auth>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let inner = &auth.inner;
    let pairs = query_pairs(q.as_deref(), &["rd"]).unwrap_or_default();
    let rd = param(&pairs, "rd")
        .and_then(safe_return_path)
        .unwrap_or_else(|| "/".to_owned());
    if !same_site_logout(&auth, &method, &headers) {
        if method == Method::POST {
            tracing::info!("sign-out refused: a POST from another origin");
        }
        return pages::page(
            StatusCode::OK,
            "Sign out?",
            &format!(
                "<p>Do you want to sign out of this app (and of your Microsoft account in this browser)?</p>\
<form method=\"post\" action=\"{}\"><button class=\"button\" type=\"submit\">Sign out</button>\
<a class=\"button secondary\" href=\"{}\">Stay signed in</a></form>",
                escape(&local_url(paths::LOGOUT, "rd", &rd)),
                escape(&rd)
            ),
        );
    }
    let mut id_token = None;
    let mut login_hint = None;
    for value in cookies::cookie_values(&headers, inner.cookies.session) {
        if let Some(s) = inner.store.get_full(value).await {
            id_token = s.tokens.id_token.clone();
            login_hint = s.identity.login_hint.clone();
            tracing::info!(user = %s.identity.user_id(), "signed out");
            inner.store.remove(value).await;
        }
    }
    let end_session = inner
        .provider
        .metadata()
        .await
        .ok()
        .and_then(|m| m.end_session_endpoint.clone());
    let target = match end_session {
        Some(mut u) => {
            {
                let mut qp = u.query_pairs_mut();
                qp.append_pair(
                    "post_logout_redirect_uri",
                    inner.settings.post_logout_redirect_uri.as_str(),
                );
                qp.append_pair("client_id", &inner.settings.client_id);
                qp.append_pair("state", &rd);
                if let Some(t) = &id_token {
                    qp.append_pair("id_token_hint", t);
                }
                if let Some(h) = &login_hint {
                    qp.append_pair("logout_hint", h);
                }
            }
            u.to_string()
        }
        None => local_url(paths::SIGNED_OUT, "state", &rd),
    };
    let mut resp = redirect(&target);
    let c = &inner.cookies;
    resp.headers_mut()
        .append(header::SET_COOKIE, c.clear(c.session));
    resp.headers_mut()
        .append(header::SET_COOKIE, c.clear(c.pending));
    resp
}

/// The page script that turns a 401 on a background request into a sign-in.
pub(crate) const SESSION_JS: &str = include_str!("session.js");

async fn session_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        SESSION_JS,
    )
        .into_response()
}

async fn signed_out(RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref(), &["state"]).unwrap_or_default();
    let rd = param(&pairs, "state")
        .and_then(safe_return_path)
        .unwrap_or_else(|| "/".to_owned());
    pages::page(
        StatusCode::OK,
        "You have signed out",
        &format!(
            "<p>Your session has ended. Close this window, or sign in again.</p><a class=\"button\" href=\"{}\">Sign in again</a>",
            escape(&local_url(paths::LOGIN, "rd", &rd))
        ),
    )
}

/// Front-channel logout: the provider, in a hidden iframe of its signed-out
/// page, names one of its sessions (`sid`; Entra sends no `iss`); every
/// aadgate session signed in under it ends, on every replica. No cookie is
/// needed (a third-party iframe usually carries none). Always a small empty
/// page: whether a session was found is not the framing page's business.
async fn frontchannel_logout(State(auth): State<Auth>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref(), &["sid", "iss"]).unwrap_or_default();
    let sid = param(&pairs, "sid").filter(|s| !s.is_empty() && s.len() <= 256);
    let iss = param(&pairs, "iss");
    let status = match sid {
        None => StatusCode::BAD_REQUEST,
        Some(sid) => match auth.inner.store.end_provider_session(sid, iss).await {
            Ok(n) => {
                tracing::info!(sessions = n, "front-channel logout");
                StatusCode::OK
            }
            Err(e) => {
                tracing::error!(error = %e, "front-channel logout failed: the session store cannot be reached");
                StatusCode::SERVICE_UNAVAILABLE
            }
        },
    };
    let mut resp = (
        status,
        axum::response::Html("<!doctype html><title>Signed out</title>"),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `/readyz`: 200 when sign-ins and sessions can work, else 503 naming the
/// part that cannot (the log has the precise reason).
async fn ready(State(auth): State<Auth>) -> Response {
    if auth
        .inner
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let mut resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "draining": true })),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return resp;
    }
    let (provider, store) = tokio::join!(auth.provider().ready(), auth.inner.store.ping());
    if provider.is_ok() && store.is_ok() {
        return (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "ready",
        )
            .into_response();
    }
    if let Err(e) = &provider {
        tracing::warn!(error = %e, "not ready: the identity provider's metadata or keys cannot be loaded");
    }
    if let Err(e) = &store {
        tracing::warn!(error = %e, "not ready: the session store cannot be reached (session.store)");
    }
    let mut resp = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({
            "ready": false,
            "provider": if provider.is_ok() { "ok" } else { "unreachable" },
            "session_store": if store.is_ok() { "ok" } else { "unreachable" },
        })),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn unauthorized(auth: &Auth) -> Response {
    crate::answers::login_required(Some(&auth.inner.settings.public_url), None, false)
}

async fn me(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let user = match auth.current_user(&headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return unauthorized(&auth),
        Err(e) => return crate::answers::sessions_unavailable_json(&e),
    };
    let id = user.identity();
    let mut resp = axum::Json(json!({
        "name": id.name,
        "preferred_username": id.preferred_username,
        "email": id.email,
        "oid": id.oid,
        "tid": id.tid,
        "sub": id.sub,
        "roles": user.roles(),
        "groups": id.groups,
        "expires_at": user.session_expires_at(),
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn app_service_me(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let user = match auth.current_user(&headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return unauthorized(&auth),
        Err(e) => return crate::answers::sessions_unavailable_json(&e),
    };
    let mut entry = json!({
        "provider_name": "aad",
        "user_id": user.identity().preferred_username.clone().unwrap_or_else(|| user.id().to_owned()),
        "user_claims": headers::principal_claims(user.identity()),
    });
    if auth.inner.settings.pass_access_token {
        let full = auth.inner.store.get_full(&user.cookie).await;
        let tokens = full.as_ref().map_or(&user.session.tokens, |s| &s.tokens);
        entry["access_token"] = json!(tokens.access_token);
        entry["id_token"] = json!(tokens.id_token);
        if let Some(exp) = tokens.access_expires_at {
            entry["expires_on"] = json!(headers::app_service_time(exp));
        }
    }
    let mut resp = axum::Json(json!([entry])).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// App Service's `/.auth/refresh`: the session's refresh token is redeemed
/// now, so the requests that follow (and `/.auth/me`) carry fresh tokens and
/// the roles of a fresh ID token. `200` (empty) when done; `401` when signed
/// out, when the provider refused the grant (the session has ended: sign in
/// again) or when the session has no refresh token; `503` when the provider
/// cannot be asked.
async fn app_service_refresh(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    use crate::refresh::Redeemed;
    // Another site's page cannot make the browser redeem its tokens (a
    // top-level navigation carries the Lax session cookie): only the app's
    // own pages, a typed URL, or a client that is no browser.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"))
    {
        return Refusal::new(StatusCode::FORBIDDEN, "forbidden", "Refused")
            .message("Tokens are refreshed only at the app's own request.")
            .reason("/.auth/refresh asked from another site (Sec-Fetch-Site)")
            .respond(false);
    }
    let user = match auth.current_user(&headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return unauthorized(&auth),
        Err(e) => return crate::answers::sessions_unavailable_json(&e),
    };
    let mut resp = match auth.refresh_now(&user).await {
        Redeemed::Renewed(_) => StatusCode::OK.into_response(),
        Redeemed::Ended => return unauthorized(&auth),
        Redeemed::NoRefreshToken => {
            return Refusal::new(StatusCode::UNAUTHORIZED, "no_refresh_token", "Cannot refresh")
                .message("This session cannot be refreshed. Sign in again.")
                .reason(format!(
                    "/.auth/refresh for {}: the session has no refresh token (add \"offline_access\" to oidc.scopes)",
                    user.id()
                ))
                .respond(false);
        }
        Redeemed::Unavailable => {
            return Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "Temporarily unavailable",
            )
            .message("The identity provider cannot be reached. Try again in a minute.")
            .reason(format!(
                "/.auth/refresh for {}: the provider could not be asked",
                user.id()
            ))
            .warn()
            .respond(false);
        }
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Formats unix seconds as RFC 3339 UTC (civil-from-days; avoids a date crate for one field).
pub(crate) fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn app_service_login(RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref(), &["post_login_redirect_uri"]).unwrap_or_default();
    let rd = param(&pairs, "post_login_redirect_uri")
        .and_then(safe_return_path)
        .unwrap_or_else(|| "/".to_owned());
    redirect(&local_url(paths::LOGIN, "rd", &rd))
}

async fn app_service_logout(RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref(), &["post_logout_redirect_uri"]).unwrap_or_default();
    let rd = param(&pairs, "post_logout_redirect_uri")
        .and_then(safe_return_path)
        .unwrap_or_else(|| "/".to_owned());
    redirect(&local_url(paths::LOGOUT, "rd", &rd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn duplicated_callback_parameters_are_refused() {
        assert!(query_pairs(Some("code=a&state=b&state=c"), &["code", "state"]).is_none());
        assert!(query_pairs(Some("code=a&state=b"), &["code", "state"]).is_some());
    }
}
