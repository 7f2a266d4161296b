//! The answers aadgate gives in several places, each built here once: a
//! local URL with one query parameter, a redirect that no cache keeps, and
//! "sign in first" (a redirect for a browser navigation, `401` JSON naming
//! the sign-in URL for everything else).

use aadgate_core::paths;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use url::Url;

/// `path?name=value`, the value form-encoded (`/auth/login?rd=%2Freports`).
pub(crate) fn local_url(path: &str, name: &str, value: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(name, value)
        .finish();
    format!("{path}?{query}")
}

/// `302` to `to` with `Cache-Control: no-store` (a `to` that is not a valid
/// header value goes to `/`).
pub(crate) fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    let location = HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/"));
    resp.headers_mut().insert(header::LOCATION, location);
    no_store(resp)
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The answer to a request that needs a signed-in user and has none. A
/// browser navigation goes to sign-in (returning to `return_to`); anything
/// else (XHR, fetch, a Dash callback) gets
/// `401 {"error":"login_required","login_url":…}`, the URL absolute when
/// `public_url` is known.
pub(crate) fn login_required(
    public_url: Option<&Url>,
    return_to: Option<&str>,
    navigation: bool,
) -> Response {
    let local = match return_to {
        Some(rd) => local_url(paths::LOGIN, "rd", rd),
        None => paths::LOGIN.to_owned(),
    };
    if navigation {
        return redirect(&local);
    }
    let login_url = public_url
        .and_then(|u| u.join(&local).ok())
        .map_or(local, String::from);
    no_store(
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "login_required", "login_url": login_url})),
        )
            .into_response(),
    )
}

/// The session store cannot be read, so the request's session cannot be
/// checked: 503 (a page for a navigation, JSON otherwise), never a trip
/// through sign-in, which could not save a session either.
pub(crate) fn sessions_unavailable<B>(
    error: &aadgate_core::session::StoreError,
    req: &axum::http::Request<B>,
) -> Response {
    unavailable(error).respond(crate::is_navigation(req.method(), req.headers()))
}

/// [`sessions_unavailable`] for aadgate's JSON routes (`/auth/me`).
pub(crate) fn sessions_unavailable_json(error: &aadgate_core::session::StoreError) -> Response {
    unavailable(error).respond(false)
}

fn unavailable(error: &aadgate_core::session::StoreError) -> crate::Refusal {
    let mut refusal = crate::Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "sessions_unavailable",
        "Sign-in is unavailable",
    )
    .message("aadgate cannot check your session right now. Try again in a minute.")
    .reason(format!(
        "session store unreachable ({error}); check session.store"
    ))
    .error();
    refusal = refusal.field("retry_after_secs", 10);
    refusal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_required_redirects_navigations_and_names_the_url_otherwise() {
        let public = Url::parse("https://dash.contoso.com").unwrap();
        let nav = login_required(Some(&public), Some("/r?x=1"), true);
        assert_eq!(nav.status(), 302);
        assert_eq!(nav.headers()["location"], "/auth/login?rd=%2Fr%3Fx%3D1");
        assert_eq!(nav.headers()["cache-control"], "no-store");
        let api = login_required(Some(&public), Some("/r"), false);
        assert_eq!(api.status(), 401);
        assert_eq!(api.headers()["cache-control"], "no-store");
        assert_eq!(local_url("/a", "rd", "/b c"), "/a?rd=%2Fb+c");
    }
}
