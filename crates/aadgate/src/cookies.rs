//! aadgate's two cookies: the session id and the pending sign-ins.

use axum::http::{HeaderMap, HeaderValue, header};
use url::Url;

#[derive(Debug, Clone, Copy)]
pub(crate) struct CookieNames {
    pub(crate) session: &'static str,
    pub(crate) pending: &'static str,
    pub(crate) secure: bool,
}

impl CookieNames {
    /// `__Host-` prefixed and `Secure` on https; plain names on loopback http.
    pub(crate) fn for_url(public_url: &Url) -> Self {
        if public_url.scheme() == "https" {
            Self {
                session: "__Host-aadgate",
                pending: "__Host-aadgate-login",
                secure: true,
            }
        } else {
            Self {
                session: "aadgate",
                pending: "aadgate_login",
                secure: false,
            }
        }
    }

    pub(crate) fn set(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v =
            format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
        HeaderValue::from_str(&v).expect("cookie values are URL-safe base64")
    }

    pub(crate) fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", 0)
    }
}

/// How many values of one cookie are looked at. A browser sends one; a
/// forged request may send thousands, each of which would cost a lookup.
const MAX_VALUES: usize = 2;

/// Values of a cookie across all `Cookie` headers, at most [`MAX_VALUES`].
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v.trim_matches('"'))
        })
        .take(MAX_VALUES)
}

/// Removes aadgate's cookies from the `Cookie` headers, keeping the app's.
pub(crate) fn strip_own_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let present = headers.get_all(header::COOKIE).iter().any(|v| {
        names
            .iter()
            .any(|n| v.as_bytes().windows(n.len()).any(|w| w == n.as_bytes()))
    });
    if !present {
        return;
    }
    let all: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && !names.contains(&k)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !all.is_empty()
        && let Ok(v) = HeaderValue::from_str(&all.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}
