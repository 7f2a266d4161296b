//! Identity headers: the ones aadgate sets for the app, and the stripping of
//! every client-supplied copy.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use serde_json::json;

use aadgate_core::config::HeaderFamilies;
use aadgate_core::session::Identity;

use crate::User;
use crate::refresh::AppTokens;

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
        "x-forwarded-auth",
        "x-forwarded-caller",
        "x-forwarded-client-id",
        "x-forwarded-scopes",
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
pub fn principal_claims(id: &Identity) -> Vec<serde_json::Value> {
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
    HeaderValue::from_str(&encoded(text)).ok()
}

/// `text` as a header value may carry it. Header values must be visible
/// ASCII. A value with anything else (a name with accents) is
/// percent-encoded as UTF-8 (RFC 3986: `Zoë` -> `Zo%C3%AB`, space -> `%20`),
/// which `decodeURIComponent` and `urllib.parse.unquote` undo. `%` is
/// encoded too, so decoding is never ambiguous.
fn encoded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        text.into()
    } else {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).into()
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
/// `identity_headers` (built when the session entered the cache), how the
/// caller was authenticated, and with `pass_access_token` the tokens:
/// `X-Forwarded-Access-Token`, and for the `app-service` family
/// `X-MS-TOKEN-AAD-ACCESS-TOKEN`, `-ID-TOKEN` and `-EXPIRES-ON` as App
/// Service sends them.
pub fn identity_headers<'a>(
    user: &'a User,
    tokens: Option<&AppTokens>,
) -> impl Iterator<Item = (HeaderName, HeaderValue)> + 'a {
    let mut token_headers = Vec::new();
    if let Some(t) = tokens {
        let mut put = |name: &'static str, text: &str| {
            if let Some(v) = value(text) {
                token_headers.push((HeaderName::from_static(name), v));
            }
        };
        put("x-forwarded-access-token", t.access_token());
        if user.view.headers.families.app_service {
            put("x-ms-token-aad-access-token", t.access_token());
            if let Some(id) = t.id_token() {
                put("x-ms-token-aad-id-token", id);
            }
            if let Some(exp) = t.expires_at() {
                put("x-ms-token-aad-expires-on", &app_service_time(exp));
            }
        }
    }
    user.view
        .headers
        .for_app()
        .chain(caller_headers(user))
        .chain(token_headers)
}

/// Unix seconds as App Service writes times (`X-MS-TOKEN-AAD-EXPIRES-ON`,
/// `/.auth/me`'s `expires_on`): `2026-12-02T10:15:00.0000000Z`.
pub(crate) fn app_service_time(secs: i64) -> String {
    let t = crate::routes::rfc3339(secs);
    format!("{}.0000000Z", t.trim_end_matches('Z'))
}

/// How the caller was authenticated: `X-Forwarded-Auth` (`session` or
/// `bearer`) and `X-Forwarded-Caller` (`user` or `application`); for a
/// bearer token also `X-Forwarded-Client-Id` (the calling client
/// application) and `X-Forwarded-Scopes` (its delegated permissions,
/// comma-separated, when it has any).
fn caller_headers(user: &User) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
    let auth = HeaderName::from_static("x-forwarded-auth");
    let caller = HeaderName::from_static("x-forwarded-caller");
    let kind = HeaderValue::from_static(user.caller().as_str());
    let (first, rest) = match &user.bearer {
        None => ((auth, HeaderValue::from_static("session")), None),
        Some(b) => {
            let client =
                value(&b.client_id).map(|v| (HeaderName::from_static("x-forwarded-client-id"), v));
            let scopes = (!b.scopes.is_empty())
                .then(|| value(&b.scopes.join(",")))
                .flatten()
                .map(|v| (HeaderName::from_static("x-forwarded-scopes"), v));
            (
                (auth, HeaderValue::from_static("bearer")),
                Some(client.into_iter().chain(scopes)),
            )
        }
    };
    [first, (caller, kind)]
        .into_iter()
        .chain(rest.into_iter().flatten())
}

/// The identity headers `/auth/check` answers with: aadgate's and
/// oauth2-proxy's families always (the front copies what its app reads),
/// App Service's when `identity_headers` has them.
pub(crate) fn forward_auth_headers(
    user: &User,
) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
    user.view.headers.for_check().chain(caller_headers(user))
}

/// The values identity headers carry; several headers may carry one.
#[derive(Clone, Copy)]
enum Value {
    UserId,
    Email,
    PreferredUsername,
    Name,
    Roles,
    Groups,
    Principal,
    PrincipalName,
    Idp,
}

/// Each identity header aadgate sets and the value it carries, by family.
/// The names are constants: using one per request copies no bytes.
static AADGATE: [(HeaderName, Value); 6] = [
    (HeaderName::from_static("x-forwarded-user"), Value::UserId),
    (HeaderName::from_static("x-forwarded-email"), Value::Email),
    (
        HeaderName::from_static("x-forwarded-preferred-username"),
        Value::PreferredUsername,
    ),
    (HeaderName::from_static("x-forwarded-name"), Value::Name),
    (HeaderName::from_static("x-forwarded-roles"), Value::Roles),
    (HeaderName::from_static("x-forwarded-groups"), Value::Groups),
];
static OAUTH2_PROXY: [(HeaderName, Value); 5] = [
    (
        HeaderName::from_static("x-auth-request-user"),
        Value::UserId,
    ),
    (
        HeaderName::from_static("x-auth-request-email"),
        Value::Email,
    ),
    (
        HeaderName::from_static("x-auth-request-preferred-username"),
        Value::PreferredUsername,
    ),
    (
        HeaderName::from_static("x-auth-request-groups"),
        Value::Groups,
    ),
    (
        HeaderName::from_static("x-auth-request-roles"),
        Value::Roles,
    ),
];
static APP_SERVICE: [(HeaderName, Value); 4] = [
    (
        HeaderName::from_static("x-ms-client-principal"),
        Value::Principal,
    ),
    (
        HeaderName::from_static("x-ms-client-principal-id"),
        Value::UserId,
    ),
    (
        HeaderName::from_static("x-ms-client-principal-name"),
        Value::PrincipalName,
    ),
    (
        HeaderName::from_static("x-ms-client-principal-idp"),
        Value::Idp,
    ),
];

/// The identity headers of one session, built once when it enters the
/// session cache and used by every request: each distinct value once, all
/// of them slices of one buffer (an App Service principal is most of it),
/// and for the app's families and for `/auth/check` which header carries
/// which value. About 1.7 KB for a typical Entra user, where one
/// `(HeaderName, HeaderValue)` list per use took 2.7 KB.
pub(crate) struct IdentityHeaders {
    /// By [`Value`]; `None` when the claim is absent or too long to send.
    values: Box<[Option<HeaderValue>]>,
    /// The buffer's length, for the cache's budget.
    bytes: usize,
    families: HeaderFamilies,
}

impl IdentityHeaders {
    /// Builds the headers `families` and `/auth/check` need for `identity`
    /// holding the effective `roles`.
    pub(crate) fn new(identity: &Identity, roles: &[String], families: HeaderFamilies) -> Self {
        let roles = roles.join(",");
        let groups = identity.groups.join(",");
        let principal = families.app_service.then(|| client_principal(identity));
        let texts: [Option<&str>; 9] = [
            Some(identity.user_id()),
            identity.email.as_deref(),
            identity.preferred_username.as_deref(),
            identity.name.as_deref(),
            Some(&roles),
            Some(&groups),
            principal.as_deref(),
            Some(
                identity
                    .preferred_username
                    .as_deref()
                    .unwrap_or(identity.display_name()),
            ),
            Some("aad"),
        ];
        let encoded: Vec<_> = texts
            .iter()
            .map(|t| {
                let e = encoded((*t)?);
                if e.len() > MAX_HEADER_VALUE {
                    tracing::warn!(
                        user = %identity.user_id(),
                        bytes = e.len(),
                        "identity header left out: longer than {MAX_HEADER_VALUE} bytes"
                    );
                    return None;
                }
                Some(e)
            })
            .collect();
        // The values end to end in one exactly sized buffer, then one
        // `HeaderValue` slicing each out of it.
        let mut buf = Vec::with_capacity(encoded.iter().flatten().map(|e| e.len()).sum());
        let ranges: Vec<_> = encoded
            .iter()
            .map(|e| {
                let start = buf.len();
                buf.extend_from_slice(e.as_ref()?.as_bytes());
                Some(start..buf.len())
            })
            .collect();
        let buf = bytes::Bytes::from(buf);
        let values = ranges
            .into_iter()
            .map(|r| r.and_then(|r| HeaderValue::from_maybe_shared(buf.slice(r)).ok()))
            .collect();
        Self {
            values,
            bytes: buf.len(),
            families,
        }
    }

    /// Heap bytes held: the buffer, the value slots and the allocator's
    /// share of their two allocations.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes + std::mem::size_of_val(&*self.values) + 64
    }

    /// The headers of the app's families.
    fn for_app(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.of(self.families)
    }

    /// The headers `/auth/check` answers with.
    fn for_check(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.of(HeaderFamilies {
            aadgate: true,
            oauth2_proxy: true,
            app_service: self.families.app_service,
        })
    }

    fn of(&self, families: HeaderFamilies) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let chosen = |on: bool, headers: &'static [(HeaderName, Value)]| {
            if on { headers } else { &[] }
        };
        chosen(families.aadgate, &AADGATE)
            .iter()
            .chain(chosen(families.oauth2_proxy, &OAUTH2_PROXY))
            .chain(chosen(families.app_service, &APP_SERVICE))
            .filter_map(|(name, v)| Some((name.clone(), self.values[*v as usize].clone()?)))
    }
}

/// App Service's `X-MS-CLIENT-PRINCIPAL`: base64 JSON of the claims, the
/// group claims left out when they would take it past [`MAX_HEADER_VALUE`].
fn client_principal(id: &Identity) -> String {
    let encode = |claims: Vec<serde_json::Value>| {
        let principal = json!({
            "auth_typ": "aad",
            "claims": claims,
            "name_typ": "name",
            "role_typ": "roles",
        });
        base64::engine::general_purpose::STANDARD.encode(principal.to_string())
    };
    let full = encode(principal_claims(id));
    if full.len() <= MAX_HEADER_VALUE {
        return full;
    }
    tracing::warn!(
        user = %id.user_id(),
        groups = id.groups.len(),
        "X-MS-CLIENT-PRINCIPAL sent without group claims: with them it would be {} bytes (over {MAX_HEADER_VALUE}); the groups are in X-Forwarded-Groups",
        full.len()
    );
    let without_groups = principal_claims(id)
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

    fn identity(groups: usize) -> Identity {
        Identity {
            issuer: "https://login.microsoftonline.com/t/v2.0".into(),
            sub: "s".into(),
            oid: Some("0000-oid".into()),
            name: Some("Zoë Writer".into()),
            preferred_username: Some("zoe@contoso.example".into()),
            roles: vec!["App.Write".into()],
            groups: (0..groups).map(|i| format!("{i:036}")).collect(),
            ..Identity::default()
        }
    }

    fn names(h: impl Iterator<Item = (HeaderName, HeaderValue)>) -> Vec<String> {
        h.map(|(n, _)| n.to_string()).collect()
    }

    #[test]
    fn each_use_gets_its_families_and_shares_the_values() {
        let roles = ["App.Read".to_string(), "App.Write".to_string()];
        let families = HeaderFamilies::default();
        let h = IdentityHeaders::new(&identity(2), &roles, families);
        assert_eq!(
            names(h.for_app()),
            [
                "x-forwarded-user",
                "x-forwarded-preferred-username",
                "x-forwarded-name",
                "x-forwarded-roles",
                "x-forwarded-groups",
                "x-ms-client-principal",
                "x-ms-client-principal-id",
                "x-ms-client-principal-name",
                "x-ms-client-principal-idp",
            ],
            "no email claim: no email headers"
        );
        let check: Vec<_> = h.for_check().collect();
        assert_eq!(check.len(), 9 + 4, "plus oauth2-proxy's family");
        let get = |name: &str| {
            check
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("x-auth-request-user"), get("x-forwarded-user"));
        assert_eq!(get("x-forwarded-user").as_deref(), Some("0000-oid"));
        assert_eq!(
            get("x-forwarded-name").as_deref(),
            Some("Zo%C3%AB%20Writer")
        );
        assert_eq!(
            get("x-forwarded-roles").as_deref(),
            Some("App.Read,App.Write")
        );
        let principal = base64::engine::general_purpose::STANDARD
            .decode(get("x-ms-client-principal").unwrap())
            .unwrap();
        let principal: serde_json::Value = serde_json::from_slice(&principal).unwrap();
        assert_eq!(principal["auth_typ"], "aad");
        assert!(
            principal["claims"]
                .as_array()
                .unwrap()
                .contains(&json!({"typ": "roles", "val": "App.Write"}))
        );

        let lean = IdentityHeaders::new(
            &identity(2),
            &roles,
            HeaderFamilies {
                aadgate: true,
                app_service: false,
                oauth2_proxy: false,
            },
        );
        assert_eq!(names(lean.for_app()).len(), 5);
        assert!(
            lean.heap_bytes() < h.heap_bytes() - 500,
            "no principal built"
        );
    }

    #[test]
    fn values_too_long_to_send_are_left_out_and_weigh_what_they_hold() {
        let roles = ["App.Read".to_string()];
        let few = IdentityHeaders::new(&identity(2), &roles, HeaderFamilies::default());
        // 300 groups: 11,099 bytes of X-Forwarded-Groups, left out; the
        // principal is sent without its group claims.
        let many = IdentityHeaders::new(&identity(300), &roles, HeaderFamilies::default());
        assert!(!names(many.for_app()).contains(&"x-forwarded-groups".to_string()));
        assert!(names(many.for_app()).contains(&"x-ms-client-principal".to_string()));
        assert!(
            many.heap_bytes() < few.heap_bytes() + 200,
            "nothing left out is kept"
        );
        // 150 groups are sent (5,549 bytes) and weigh it.
        let some = IdentityHeaders::new(&identity(150), &roles, HeaderFamilies::default());
        assert!(names(some.for_app()).contains(&"x-forwarded-groups".to_string()));
        assert!(some.heap_bytes() > few.heap_bytes() + 5_000);
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
