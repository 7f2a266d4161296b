//! Bearer tokens: an Entra access token for this app's API in
//! `Authorization: Bearer`, on the routes that take one
//! (`[[route]] auth = "bearer"` or `"any"`). Refusals follow RFC 6750: `401`
//! with `WWW-Authenticate: Bearer error="invalid_token"`, `403` with
//! `error="insufficient_scope"`, never a redirect to sign-in.

use std::sync::Arc;

use aadgate_core::error::BearerError;
use aadgate_core::session::{Session, Tokens};
use aadgate_core::token::{AccessClaims, CallerKind};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::Response;

use crate::refusal::Refusal;
use crate::{Auth, User, UserView};

/// How long a validated token is taken without checking it again, at most
/// (and never past its `exp`): a key the provider withdraws stops working
/// within this time.
const VALIDATED_FOR_SECS: i64 = 300;

/// Tokens validated recently, so a caller presenting the same token on
/// every request pays for one signature check (tens of microseconds), not
/// one per request. Keyed by the token's SHA-256; bounded in entries.
pub(crate) struct ValidatedTokens {
    map: moka::sync::Cache<[u8; 32], (User, i64)>,
}

impl ValidatedTokens {
    pub(crate) fn new() -> Self {
        Self {
            map: moka::sync::Cache::builder().max_capacity(10_000).build(),
        }
    }

    fn get(&self, key: &[u8; 32], now: i64) -> Option<User> {
        self.map
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(user, _)| user)
    }

    fn insert(&self, key: [u8; 32], user: User, until: i64) {
        self.map.insert(key, (user, until));
    }
}

/// What a bearer token says about its caller beyond the identity.
#[derive(Debug)]
pub(crate) struct BearerCaller {
    pub(crate) kind: CallerKind,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
}

/// The bearer token of a request: `Ok(None)` without an `Authorization`
/// header of the Bearer scheme; `Err` for one that cannot be read (several
/// `Authorization` headers, or a token outside RFC 6750's `b64token`
/// syntax), which is refused whatever the route.
pub(crate) fn token_of(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("several Authorization headers");
    }
    let value = value
        .to_str()
        .map_err(|_| "an Authorization header that is not ASCII")?;
    // The scheme ends at the first space or tab. A Bearer credential in any
    // other form than `Bearer <token>` is refused rather than ignored: an
    // app might read it as a token where aadgate saw none.
    let scheme_end = value.find([' ', '\t']).unwrap_or(value.len());
    if !value[..scheme_end].eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = value[scheme_end..]
        .strip_prefix(' ')
        .ok_or("a Bearer credential not of the form `Bearer <token>`")?;
    let body = token.trim_end_matches('=');
    if body.is_empty()
        || !body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
    {
        return Err("a bearer token that is not one RFC 6750 b64token");
    }
    Ok(Some(token))
}

impl Auth {
    /// The caller a bearer token names, or the answer refusing it.
    pub(crate) async fn bearer_user(&self, token: &str, path: &str) -> Result<User, Response> {
        let key = aadgate_core::crypto::sha256(token.as_bytes());
        let now = self.clock().now();
        if let Some(user) = self.inner.bearer_cache.get(&key, now) {
            if let Some(m) = self.metrics() {
                m.bearer("cached");
            }
            return Ok(user);
        }
        let claims = match self.inner.provider.validate_access_token(token).await {
            Ok(c) => c,
            Err(BearerError::Invalid(e)) => {
                if let Some(m) = self.metrics() {
                    m.bearer("invalid");
                }
                return Err(challenge(
                    Refusal::new(StatusCode::UNAUTHORIZED, "invalid_token", "Invalid token")
                        .reason(format!("refused a bearer token for {path}: {e}")),
                    "invalid_token",
                    &e.to_string(),
                    None,
                ));
            }
            Err(BearerError::Unavailable(e)) => {
                return Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "Temporarily unavailable",
                )
                .message("Tokens cannot be checked right now. Try again in a minute.")
                .reason(format!("cannot check a bearer token: {e}"))
                .error()
                .respond(false));
            }
        };
        if let Some(m) = self.metrics() {
            m.bearer("ok");
        }
        // Entra gives any application of the tenant a token for any API;
        // only the application roles granted to it make it a caller.
        if claims.kind == CallerKind::Application && claims.identity.roles.is_empty() {
            return Err(challenge(
                Refusal::new(StatusCode::FORBIDDEN, "insufficient_scope", "Access denied")
                    .reason(format!(
                        "refused an application token for {path} (client {}): it holds no application role of this app",
                        claims.client_id
                    )),
                "insufficient_scope",
                "an application token without an application role of this app: grant the calling application one of the app's roles (API permissions > Application permissions, with admin consent)",
                None,
            ));
        }
        let until = claims.exp.min(now + VALIDATED_FOR_SECS);
        let user = self.user_of_token(token, claims);
        self.inner.bearer_cache.insert(key, user.clone(), until);
        Ok(user)
    }

    /// A [`User`] for a validated bearer token: a session that lives as
    /// long as the token, is never stored, and holds the token itself as
    /// its access token (for on-behalf-of calls).
    fn user_of_token(&self, token: &str, claims: AccessClaims) -> User {
        let now = self.clock().now();
        let session = Session {
            identity: claims.identity,
            tokens: Tokens {
                access_token: Some(token.to_owned()),
                access_expires_at: Some(claims.exp),
                ..Tokens::default()
            },
            created_at: now,
            expires_at: claims.exp,
            last_seen: now,
            checked_at: now,
        };
        let settings = &self.inner.settings;
        let view = UserView::of(&session, &settings.policy, settings.identity_headers);
        User {
            session: Arc::new(session),
            view: Arc::new(view),
            cookie: Arc::from(""),
            bearer: Some(Arc::new(BearerCaller {
                kind: claims.kind,
                client_id: claims.client_id,
                scopes: claims.scopes,
            })),
        }
    }
}

/// `refusal` with RFC 6750's challenge: `WWW-Authenticate: Bearer`, with
/// `error` and `error_description` (and the `scope` needed) when a token
/// was sent. Always JSON: a bearer caller is a program.
pub(crate) fn challenge(
    refusal: Refusal,
    error: &str,
    description: &str,
    scope: Option<&[String]>,
) -> Response {
    let value = challenge_value(error, description, scope);
    let refusal = refusal.field("error_description", description);
    with_challenge(refusal.respond(false), &value)
}

/// `Bearer error="…", error_description="…"[, scope="…"]`.
pub(crate) fn challenge_value(error: &str, description: &str, scope: Option<&[String]>) -> String {
    let mut value = format!(
        "Bearer error=\"{error}\", error_description=\"{}\"",
        quotable(description)
    );
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{}\"", quotable(&scope.join(" "))));
    }
    value
}

/// The answer to a request without a token on a route that needs one:
/// `401` and `WWW-Authenticate: Bearer` without an error code (RFC 6750
/// §3.1).
pub(crate) fn token_required(req: &Request<Body>) -> Response {
    let resp = Refusal::new(StatusCode::UNAUTHORIZED, "token_required", "Token required")
        .message("This API needs an access token: send Authorization: Bearer <token>.")
        .reason(format!("no bearer token for {}", req.uri().path()))
        .respond(false);
    with_challenge(resp, "Bearer")
}

/// Adds `WWW-Authenticate: value` to `resp`.
pub(crate) fn with_challenge(mut resp: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// `text` as an RFC 6750 quoted value may carry it: printable ASCII
/// without `"` and `\`.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_bearer_scheme_is_read_and_nothing_else() {
        assert_eq!(token_of(&headers(&[])), Ok(None));
        assert_eq!(token_of(&headers(&["Basic dXNlcjpwdw=="])), Ok(None));
        assert_eq!(token_of(&headers(&["bearer a.b.c"])), Ok(Some("a.b.c")));
        assert_eq!(
            token_of(&headers(&["Bearer a.b-_c=="])),
            Ok(Some("a.b-_c=="))
        );
        assert!(token_of(&headers(&["Bearer a b"])).is_err());
        assert!(token_of(&headers(&["Bearer "])).is_err());
        assert!(token_of(&headers(&["Bearer a\"b"])).is_err());
        assert!(token_of(&headers(&["Bearer a.b.c", "Bearer d.e.f"])).is_err());
        // Bearer in any other form is refused, not taken for "no token".
        assert!(token_of(&headers(&["Bearer\ta.b.c"])).is_err());
        assert!(token_of(&headers(&["Bearer  a.b.c"])).is_err());
        assert!(token_of(&headers(&["BEARER"])).is_err());
        assert_eq!(token_of(&headers(&["Bearerx a.b.c"])), Ok(None));
    }

    #[test]
    fn descriptions_are_quotable() {
        assert_eq!(quotable("issuer \"x\" \\ é"), "issuer 'x' ' ?");
    }
}
