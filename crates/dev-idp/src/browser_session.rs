//! The dev IdP's own browser session: the single sign-on cookie that lets a
//! later authorize request (e.g. with `prompt=none`) sign the same user in
//! again, keeping the `sid`, and that logout ends.
//!
//! The session (user and `sid`) is kept in the [`Store`]; this module owns
//! the cookie (name, lifetime, path and attributes) and the rule for when a
//! sign-in reuses a session.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use url::Url;

use crate::store::{BrowserSession, Store};
use crate::{DevIdp, ids};

/// How long the dev IdP's own sign-in session (SSO cookie) lasts.
const SESSION_LIFETIME_SECS: u64 = 12 * 3600;
/// Name of the dev IdP's single sign-on cookie.
const SESSION_COOKIE: &str = "aadgate_dev_idp_session";

/// The browser's session, if its cookie names one that is still live: the
/// session id and the session.
pub(crate) fn current(
    idp: &DevIdp,
    headers: &HeaderMap,
    now: u64,
) -> Option<(String, BrowserSession)> {
    session_cookie(headers).and_then(|id| {
        let found = idp.store().session(&id, now);
        found.map(|session| (id, session))
    })
}

/// Ends the browser's session, if its cookie names one; returns its `sid`.
pub(crate) fn end(idp: &DevIdp, headers: &HeaderMap) -> Option<String> {
    let id = session_cookie(headers)?;
    let mut store = idp.store();
    let sid = store.session(&id, crate::clock::now_secs()).map(|s| s.sid);
    store.remove_session(&id);
    sid
}

/// Clears the session cookie in the browser.
pub(crate) fn clear_cookie(idp: &DevIdp, response: &mut Response) {
    let clear = format!(
        "{SESSION_COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0",
        cookie_path(idp)
    );
    append_set_cookie(response, &clear);
}

/// The browser session a sign-in belongs to.
pub(crate) struct SignInSession {
    /// The session id: the cookie's value and the key in the [`Store`].
    id: String,
    /// The sign-in session id (`sid` claim, `session_state`).
    pub(crate) sid: String,
    /// Whether the session starts with this sign-in.
    is_new: bool,
}

impl SignInSession {
    /// Reuses the browser's `current` session (and so the `sid`) if the user
    /// `oid` is signed in to it; otherwise starts a new one.
    pub(crate) fn for_user(current: Option<(String, BrowserSession)>, oid: &str) -> Self {
        match current {
            Some((id, s)) if s.oid == oid => Self {
                id,
                sid: s.sid,
                is_new: false,
            },
            _ => Self {
                id: ids::random_token(32),
                sid: ids::guid(),
                is_new: true,
            },
        }
    }

    /// Records a new session for `oid` in `store` (a reused one is there).
    pub(crate) fn save(&self, store: &mut Store, oid: &str, now: u64) {
        if self.is_new {
            store.insert_session(
                self.id.clone(),
                BrowserSession {
                    oid: oid.to_owned(),
                    sid: self.sid.clone(),
                },
                now + SESSION_LIFETIME_SECS,
                now,
            );
        }
    }

    /// Sets the session cookie for a new session (a reused one has it).
    pub(crate) fn set_cookie(&self, idp: &DevIdp, response: &mut Response) {
        if !self.is_new {
            return;
        }
        let secure = if idp.base().starts_with("https:") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{SESSION_COOKIE}={session_id}; Path={}; HttpOnly; SameSite=Lax; Max-Age={SESSION_LIFETIME_SECS}{secure}",
            cookie_path(idp),
            session_id = self.id,
        );
        append_set_cookie(response, &cookie);
    }
}

fn append_set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The path the session cookie is scoped to: `{base path}/{tenant}/oauth2/`,
/// which covers the authorize and logout endpoints and little else (cookies
/// are shared between ports on the same host).
fn cookie_path(idp: &DevIdp) -> String {
    Url::parse(&idp.tenant_url("oauth2/")).map_or_else(|_| "/".to_owned(), |u| u.path().to_owned())
}

/// The dev IdP's session id from the request's cookies, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("x=y; aadgate_dev_idp_session=abc"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }
}
