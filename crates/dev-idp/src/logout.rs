//! RP-initiated logout (`end_session_endpoint`).
//!
//! Ends the dev IdP's own browser session (its SSO cookie), then redirects
//! to `post_logout_redirect_uri` (with `state` appended) if that URI is
//! allowed, or shows a "You have signed out" page. `id_token_hint`,
//! `logout_hint` and `client_id` are accepted and ignored, as the dev IdP
//! keeps at most one session per browser.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

use crate::html::{self, escape};
use crate::params::Params;
use crate::{DevIdp, browser_session};

/// `GET /{tenant}/oauth2/v2.0/logout`.
pub(crate) async fn logout_get(
    State(idp): State<DevIdp>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    logout(
        &idp,
        &tenant,
        &headers,
        &Params::parse(query.unwrap_or_default().as_bytes()),
    )
}

/// `POST /{tenant}/oauth2/v2.0/logout` (form-encoded parameters).
pub(crate) async fn logout_post(
    State(idp): State<DevIdp>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    logout(&idp, &tenant, &headers, &Params::parse(&body))
}

fn logout(idp: &DevIdp, tenant: &str, headers: &HeaderMap, params: &Params) -> Response {
    if let Err(err) = idp.check_tenant(tenant) {
        return html::error_page(&err, "");
    }
    // End the dev IdP's own session, if the browser has one.
    let ended = browser_session::end(idp, headers);
    let target = params.get("post_logout_redirect_uri");
    let frontchannel = ended.zip(idp.config().frontchannel_logout_url.clone());
    let mut response = match (target, frontchannel) {
        // The app's front-channel logout URL must load before the browser
        // leaves: a page with the iframe that then moves on.
        (target, Some((sid, url))) => {
            let next = target.filter(|uri| is_allowed(idp, uri));
            frontchannel_page(&url, &sid, next, params.get("state"))
        }
        (Some(uri), None) if is_allowed(idp, uri) => redirect(uri, params.get("state")),
        (target, None) => signed_out_page(target),
    };
    browser_session::clear_cookie(idp, &mut response);
    tracing::info!(
        redirected = response.status() == StatusCode::FOUND,
        "dev IdP signed a browser out"
    );
    response
}

/// Whether the logout endpoint may redirect to `uri`: an exact match in
/// `post_logout_redirect_uris`, or, when that list is empty, an http(s) URI
/// with the same origin as a registered redirect URI.
fn is_allowed(idp: &DevIdp, uri: &str) -> bool {
    let config = idp.config();
    if !config.post_logout_redirect_uris.is_empty() {
        return config.post_logout_redirect_uris.iter().any(|u| u == uri);
    }
    let Ok(target) = Url::parse(uri) else {
        return false;
    };
    if !matches!(target.scheme(), "http" | "https") {
        return false;
    }
    let origin = target.origin();
    config
        .redirect_uris
        .iter()
        .filter_map(|r| Url::parse(r).ok())
        .any(|r| r.origin() == origin)
}

/// The signed-out page with the application's front-channel logout URL in a
/// hidden iframe (`?sid=…`, as Entra sends it), then on to `next`.
fn frontchannel_page(url: &str, sid: &str, next: Option<&str>, state: Option<&str>) -> Response {
    let Ok(mut frame) = Url::parse(url) else {
        return signed_out_page(None);
    };
    frame.query_pairs_mut().append_pair("sid", sid);
    let onward = next.and_then(|uri| {
        let mut u = Url::parse(uri).ok()?;
        if let Some(state) = state {
            u.query_pairs_mut().append_pair("state", state);
        }
        Some(u)
    });
    let go_on = onward.map_or(String::new(), |u| {
        format!(
            "<p><a id=\"continue\" href=\"{u}\">Continue</a></p><script>document.getElementById('frontchannel').addEventListener('load',function(){{location.href=document.getElementById('continue').href}})</script>",
            u = escape(u.as_str())
        )
    });
    let mut page = html::page(
        StatusCode::OK,
        "You have signed out",
        &format!(
            "<h1>You have signed out of your account</h1>\
<iframe id=\"frontchannel\" src=\"{src}\" style=\"display:none\" title=\"front-channel logout\"></iframe>{go_on}",
            src = escape(frame.as_str())
        ),
    );
    // This page, unlike the others, frames the app and moves on by script.
    page.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-src http: https:; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    page
}

fn redirect(uri: &str, state: Option<&str>) -> Response {
    let Ok(mut url) = Url::parse(uri) else {
        return signed_out_page(Some(uri));
    };
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    let Ok(location) = HeaderValue::from_str(url.as_str()) else {
        return signed_out_page(Some(uri));
    };
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
}

fn signed_out_page(rejected: Option<&str>) -> Response {
    let notice = rejected
        .map(|uri| {
            format!(
                "<div class=\"notice\">Not redirecting to <code>{}</code>: it is not an allowed post-logout redirect URI (key <code>post_logout_redirect_uris</code>; when empty, the origin must equal a registered redirect URI's).</div>",
                escape(uri)
            )
        })
        .unwrap_or_default();
    html::page(
        StatusCode::OK,
        "You have signed out",
        &format!(
            "<h1>You have signed out of your account</h1>\
<p>It's a good idea to close all browser windows.</p>{notice}\
<p class=\"muted\">Your session with the aadgate dev IdP has ended. The application you came from may still have its own session.</p>"
        ),
    )
}
