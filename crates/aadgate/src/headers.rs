//! Identity headers: the ones aadgate sets for the app, and the stripping of
//! every client-supplied copy.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use serde_json::json;

use aadgate_core::config::HeaderFamilies;

use crate::User;

/// Whether a header name is one of the identity headers aadgate owns.
/// Names are compared case-insensitively with `_` and `-` treated alike, so
/// `X_Forwarded_User` is caught as well (some servers map both to one variable).
pub fn is_identity_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-preferred-username",
        "x-forwarded-name",
        "x-forwarded-roles",
        "x-forwarded-groups",
        "x-forwarded-access-token",
        "remote-user",
    ];
    const PREFIXES: &[&str] = &["x-ms-client-principal", "x-ms-token-", "x-auth-request-"];
    EXACT.iter().any(|e| loose_eq(name, e))
        || PREFIXES
            .iter()
            .any(|p| name.len() >= p.len() && loose_eq(&name[..p.len()], p))
}

/// ASCII case-insensitive equality with `_` and `-` alike, without allocating.
/// `pattern` is lower-case with `-`.
pub fn loose_eq(name: &str, pattern: &str) -> bool {
    name.len() == pattern.len()
        && name.bytes().zip(pattern.bytes()).all(|(a, b)| {
            let a = if a == b'_' {
                b'-'
            } else {
                a.to_ascii_lowercase()
            };
            a == b
        })
}

/// Removes every identity header a client sent.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| is_identity_header(k.as_str()))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(&name);
    }
}

/// Claims in the App Service `{typ, val}` form.
pub fn principal_claims(user: &User) -> Vec<serde_json::Value> {
    let id = user.identity();
    let mut claims = Vec::new();
    let mut push = |typ: &str, val: &str| claims.push(json!({"typ": typ, "val": val}));
    push("iss", &id.issuer);
    push("sub", &id.sub);
    if let Some(v) = &id.oid {
        push(
            "http://schemas.microsoft.com/identity/claims/objectidentifier",
            v,
        );
    }
    if let Some(v) = &id.tid {
        push("http://schemas.microsoft.com/identity/claims/tenantid", v);
    }
    if let Some(v) = &id.name {
        push("name", v);
    }
    if let Some(v) = &id.preferred_username {
        push("preferred_username", v);
    }
    if let Some(v) = &id.email {
        push(
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            v,
        );
    }
    for r in &id.roles {
        push("roles", r);
    }
    for g in &id.groups {
        push("groups", g);
    }
    claims
}

fn value(text: &str) -> Option<HeaderValue> {
    // Header values must be visible ASCII. A value with anything else (a name
    // with accents) is percent-encoded as UTF-8 (RFC 3986: `Zoë` -> `Zo%C3%AB`,
    // space -> `%20`), which `decodeURIComponent` and `urllib.parse.unquote` undo.
    // `%` is encoded too, so decoding is never ambiguous.
    if text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        HeaderValue::from_str(text).ok()
    } else {
        let enc = percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        HeaderValue::from_str(&enc).ok()
    }
}

/// The longest identity header value sent, in bytes. gunicorn refuses a
/// header line over 8,190 bytes (`limit_request_field_size`), and other
/// servers have similar limits; 200 group ids (the most Entra ID puts in a
/// token) come to 7,399 bytes and fit. A groups header that would be longer
/// is left out, and `X-MS-CLIENT-PRINCIPAL` leaves its group claims out
/// when they would make it longer (both logged).
pub const MAX_HEADER_VALUE: usize = 8_000;

/// The headers that tell the app who the user is: the families chosen by
/// `identity_headers`, computed once per cached session and reused, plus
/// the access token when given.
pub fn identity_headers(user: &User, access_token: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = user
        .view
        .headers
        .get_or_init(|| build_identity_headers(user, user.view.families))
        .clone();
    if let Some(hv) = access_token.and_then(value) {
        out.push((HeaderName::from_static("x-forwarded-access-token"), hv));
    }
    out
}

/// The identity headers `/auth/check` answers with: aadgate's and
/// oauth2-proxy's families always (the front copies what its app reads),
/// App Service's when `identity_headers` has them. Computed once per cached
/// session, like [`identity_headers`].
pub(crate) fn forward_auth_headers(user: &User) -> &[(HeaderName, HeaderValue)] {
    user.view.check_headers.get_or_init(|| {
        let families = HeaderFamilies {
            aadgate: true,
            oauth2_proxy: true,
            app_service: user.view.families.app_service,
        };
        build_identity_headers(user, families)
    })
}

/// The identity headers of `families` (not cached).
fn build_identity_headers(user: &User, families: HeaderFamilies) -> Vec<(HeaderName, HeaderValue)> {
    let id = user.identity();
    let mut out = Vec::new();
    let mut add = |name: &'static str, v: Option<&str>| {
        if let Some(hv) = v.and_then(value) {
            if hv.len() > MAX_HEADER_VALUE {
                tracing::warn!(
                    user = %id.user_id(),
                    header = name,
                    bytes = hv.len(),
                    "identity header left out: longer than {MAX_HEADER_VALUE} bytes"
                );
                return;
            }
            out.push((HeaderName::from_static(name), hv));
        }
    };
    let roles = user.roles().join(",");
    let groups = id.groups.join(",");
    if families.aadgate {
        add("x-forwarded-user", Some(id.user_id()));
        add("x-forwarded-email", id.email.as_deref());
        add(
            "x-forwarded-preferred-username",
            id.preferred_username.as_deref(),
        );
        add("x-forwarded-name", id.name.as_deref());
        add("x-forwarded-roles", Some(&roles));
        add("x-forwarded-groups", Some(&groups));
    }
    if families.oauth2_proxy {
        add("x-auth-request-user", Some(id.user_id()));
        add("x-auth-request-email", id.email.as_deref());
        add(
            "x-auth-request-preferred-username",
            id.preferred_username.as_deref(),
        );
        add("x-auth-request-groups", Some(&groups));
        add("x-auth-request-roles", Some(&roles));
    }
    if families.app_service {
        add("x-ms-client-principal", Some(&client_principal(user)));
        add("x-ms-client-principal-id", Some(id.user_id()));
        add(
            "x-ms-client-principal-name",
            Some(
                id.preferred_username
                    .as_deref()
                    .unwrap_or(id.display_name()),
            ),
        );
        add("x-ms-client-principal-idp", Some("aad"));
    }
    out
}

/// App Service's `X-MS-CLIENT-PRINCIPAL`: base64 JSON of the claims, the
/// group claims left out when they would take it past [`MAX_HEADER_VALUE`].
fn client_principal(user: &User) -> String {
    let encode = |claims: Vec<serde_json::Value>| {
        let principal = json!({
            "auth_typ": "aad",
            "claims": claims,
            "name_typ": "name",
            "role_typ": "roles",
        });
        base64::engine::general_purpose::STANDARD.encode(principal.to_string())
    };
    let full = encode(principal_claims(user));
    if full.len() <= MAX_HEADER_VALUE {
        return full;
    }
    tracing::warn!(
        user = %user.id(),
        groups = user.identity().groups.len(),
        "X-MS-CLIENT-PRINCIPAL sent without group claims: with them it would be {} bytes (over {MAX_HEADER_VALUE}); the groups are in X-Forwarded-Groups",
        full.len()
    );
    let without_groups = principal_claims(user)
        .into_iter()
        .filter(|c| c["typ"] != "groups")
        .collect();
    encode(without_groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_values_are_percent_encoded() {
        assert_eq!(value("Zoë Writer").unwrap(), "Zo%C3%AB%20Writer");
        assert_eq!(value("Plain Name").unwrap(), "Plain Name");
        assert_eq!(value("100% Co").unwrap(), "100%25%20Co");
    }

    #[test]
    fn identity_header_names_match_loosely() {
        for n in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X-FORWARDED_EMAIL",
            "x-ms-client-principal",
            "X_MS_CLIENT_PRINCIPAL_ID",
            "x-ms-token-aad-access-token",
            "Remote_User",
        ] {
            assert!(is_identity_header(n), "{n}");
        }
        for n in ["x-forwarded-for", "x-forwarded-proto", "cookie", "x-user"] {
            assert!(!is_identity_header(n), "{n}");
        }
    }
}
