//! aadgate's two cookies, the session id and the pending sign-ins, in both
//! directions: set by aadgate, read from requests, and kept away from the
//! app (removed from the `Cookie` header it receives, and from the
//! `Set-Cookie` headers it sends, so it can neither read nor plant them).

use axum::http::{HeaderMap, HeaderValue, header};
use url::Url;

#[derive(Debug, Clone)]
pub(crate) struct CookieNames {
    pub(crate) session: &'static str,
    pub(crate) pending: &'static str,
    pub(crate) secure: bool,
    /// `session.cookie_domain`: the session cookie's `Domain` (the pending
    /// sign-in cookie always stays on `public_url`'s host, where sign-in
    /// starts and ends).
    domain: Option<String>,
}

impl CookieNames {
    /// `__Host-` prefixed and `Secure` on https; plain names on loopback
    /// http. A session cookie shared under `cookie_domain` cannot be
    /// `__Host-` (that prefix forbids `Domain`): it is `__Secure-aadgate`.
    pub(crate) fn new(public_url: &Url, cookie_domain: Option<&str>) -> Self {
        let domain = cookie_domain.map(str::to_owned);
        if public_url.scheme() == "https" {
            Self {
                session: if domain.is_some() {
                    "__Secure-aadgate"
                } else {
                    "__Host-aadgate"
                },
                pending: "__Host-aadgate-login",
                secure: true,
                domain,
            }
        } else {
            Self {
                session: "aadgate",
                pending: "aadgate_login",
                secure: false,
                domain,
            }
        }
    }

    pub(crate) fn set(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let domain = match &self.domain {
            Some(d) if name == self.session => format!("; Domain={d}"),
            _ => String::new(),
        };
        let v = format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}{domain}"
        );
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
            let (_, v) = pair.split_once('=')?;
            (cookie_name(pair) == name).then_some(v.trim().trim_matches('"'))
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
        .filter(|pair| !pair.is_empty() && !names.contains(&cookie_name(pair)))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !all.is_empty()
        && let Ok(v) = HeaderValue::from_str(&all.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// The name in a `Cookie` pair (`name=value`) or at the start of a
/// `Set-Cookie` value (`name=value; Path=/`), without surrounding spaces.
fn cookie_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(k, _)| k).trim()
}

/// Removes the `Set-Cookie` headers that would set (overwrite, fixate) one
/// of aadgate's cookies, keeping the app's others.
pub(crate) fn strip_own_set_cookies(headers: &mut HeaderMap, names: &[&str]) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|c| {
            c.to_str().map_or(true, |c| {
                !names.contains(&cookie_name(c.split(';').next().unwrap_or("")))
            })
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for c in kept {
        headers.append(header::SET_COOKIE, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cookies_are_kept_from_the_app_both_ways() {
        let names = ["aadgate", "aadgate_login"];
        let mut req = HeaderMap::new();
        req.append(header::COOKIE, "a=1; aadgate=s3cret;b=2".parse().unwrap());
        req.append(header::COOKIE, " aadgate_login = x ".parse().unwrap());
        assert_eq!(
            cookie_values(&req, "aadgate").collect::<Vec<_>>(),
            ["s3cret"]
        );
        strip_own_cookies(&mut req, &names);
        assert_eq!(
            req.get_all(header::COOKIE).iter().collect::<Vec<_>>(),
            ["a=1; b=2"]
        );

        let mut resp = HeaderMap::new();
        for c in [
            "aadgate=planted; Path=/",
            "app=1; Path=/",
            " aadgate_login=x",
            "aadgate2=ok",
        ] {
            resp.append(header::SET_COOKIE, c.parse().unwrap());
        }
        strip_own_set_cookies(&mut resp, &names);
        let left: Vec<_> = resp
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["app=1; Path=/", "aadgate2=ok"]);
    }
}
