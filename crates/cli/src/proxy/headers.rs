//! Which headers cross the proxy, in each direction: hop-by-hop headers
//! never; client-supplied overrides of the URL or the client's address
//! never; forwarding headers only from `trusted_proxies`.

use axum::http::{HeaderMap, HeaderName, header};

/// Hop-by-hop headers (RFC 9110 7.6.1 and the legacy ones), never forwarded
/// in either direction; `Connection` may name more.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Headers a client may use to make an upstream believe another URL was
/// asked for, or another client address: removed from every request (matched
/// case-insensitively, `_` and `-` alike); aadgate sets the address ones itself.
const CLIENT_OVERRIDES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-script-name",
    "script-name",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
];

/// Forwarding headers: believed only from `trusted_proxies` (in their
/// hyphenated spelling), set or replaced by aadgate otherwise. Matched with
/// `_` and `-` alike: WSGI and CGI servers map `X_Forwarded_For` and
/// `X-Forwarded-For` to the same variable.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-scheme",
    "x-url-scheme",
    "x-host",
    "front-end-https",
];

fn is_forwarding(name: &HeaderName) -> bool {
    FORWARDING
        .iter()
        .any(|f| aadgate::headers::loose_eq(name.as_str(), f))
}

/// Headers a `Connection` header may not name for removal: message framing,
/// the host, and every header aadgate decides on or sets.
fn connection_may_not_remove(name: &HeaderName) -> bool {
    name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::CONTENT_TYPE
        || name == header::CONTENT_ENCODING
        || is_forwarding(name)
        || CLIENT_OVERRIDES
            .iter()
            .any(|o| aadgate::headers::loose_eq(name.as_str(), o))
        || aadgate::headers::is_identity_header(name.as_str())
}

/// Removes, in one pass over the map, the hop-by-hop headers (with the
/// headers `Connection` names, except those it may not) and, for a request
/// (`request = Some(trusted)`), the client overrides, any forwarding header
/// spelled with `_`, and, from an untrusted client, the forwarding headers.
/// Most messages carry none of them, so usually nothing is allocated.
pub(super) fn strip_headers(headers: &mut HeaderMap, request: Option<bool>) {
    let mut remove: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let drop = is_hop_by_hop(name)
            || request.is_some_and(|trusted| {
                (is_forwarding(name) && (!trusted || name.as_str().contains('_')))
                    || CLIENT_OVERRIDES
                        .iter()
                        .any(|o| aadgate::headers::loose_eq(name.as_str(), o))
            });
        if drop {
            remove.push(name.clone());
        }
    }
    if remove.is_empty() {
        return;
    }
    if remove.contains(&header::CONNECTION) {
        remove.extend(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .filter(|n| !connection_may_not_remove(n)),
        );
    }
    for n in remove {
        headers.remove(n);
    }
}

pub(super) fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hop_by_hop_and_client_supplied_headers_are_stripped_in_one_pass() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("x-original-url", "/admin"),
            ("x_real_ip", "1.2.3.4"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4"),
            ("accept", "*/*"),
            ("x-app", "kept"),
        ] {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let mut trusted = h.clone();
        strip_headers(&mut trusted, Some(true));
        let names = |h: &HeaderMap| {
            let mut v: Vec<String> = h.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&trusted),
            ["accept", "forwarded", "x-app", "x-forwarded-host"]
        );
        strip_headers(&mut h, Some(false));
        assert_eq!(names(&h), ["accept", "x-app"]);
        let mut resp = HeaderMap::new();
        resp.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        resp.insert(
            "x-forwarded-host",
            HeaderValue::from_static("kept in responses"),
        );
        strip_headers(&mut resp, None);
        assert_eq!(names(&resp), ["x-forwarded-host"]);
    }
}
