//! The token endpoint: client authentication, the `authorization_code`
//! grant (single-use codes, PKCE S256), the `refresh_token` grant (with
//! refresh-token rotation) and the `client_credentials` grant (an
//! application token for the app's own API), answering and failing the way
//! Entra ID does.

use aws_lc_rs::constant_time;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::aadsts::AadError;
use crate::params::Params;
use crate::store::Redeem;
use crate::tokens::{self, SignIn};
use crate::{DevIdp, clock, ids};

/// Parameters that must not be repeated.
const SINGLE_VALUED: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "scope",
];

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(idp): State<DevIdp>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    let mut response = match exchange(&idp, &tenant, &headers, &params) {
        Ok(body) => Json(body).into_response(),
        Err(failure) => failure.into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /{tenant}/oauth2/v2.0/token`: Entra's AADSTS900561.
pub(crate) async fn wrong_method() -> Response {
    AadError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        900_561,
        "The endpoint only accepts POST, OPTIONS requests. Received a GET request.",
    )
    .into_response()
}

/// A failed token request: the error, and whether the client used HTTP Basic
/// (a 401 then carries `WWW-Authenticate: Basic`, RFC 6749 §5.2).
struct Failure {
    error: AadError,
    basic: bool,
}

impl From<AadError> for Failure {
    fn from(error: AadError) -> Self {
        Self {
            error,
            basic: false,
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let unauthorized = self.error.status == StatusCode::UNAUTHORIZED;
        let mut response = self.error.into_response();
        if unauthorized && self.basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"aadgate-dev-idp\""),
            );
        }
        response
    }
}

fn exchange(
    idp: &DevIdp,
    tenant: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Result<serde_json::Value, Failure> {
    idp.check_tenant(tenant)?;
    if let Some(name) = params.repeated(SINGLE_VALUED) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_023,
            format!("The request is not valid: parameter '{name}' is included more than once."),
        )
        .into());
    }
    let client_id = authenticate_client(idp, headers, params)?;
    let now = clock::now_secs();
    match params.get("grant_type") {
        None => Err(AadError::missing_parameter("grant_type").into()),
        Some("authorization_code") => Ok(authorization_code(idp, &client_id, params, now)?),
        Some("refresh_token") => Ok(refresh_token(idp, &client_id, params, now)?),
        Some("client_credentials") => Ok(client_credentials(idp, &client_id, params, now)?),
        Some(other) => Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            format!(
                "The app requested an unsupported grant type '{other}'. This dev IdP supports 'authorization_code', 'refresh_token' and 'client_credentials'."
            ),
        )
        .into()),
    }
}

/// Authenticates the client by HTTP Basic, by `client_id` and
/// `client_secret` in the body, or by a client assertion (a certificate's
/// signature, or a federated credential); returns the client id.
fn authenticate_client(
    idp: &DevIdp,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, Failure> {
    let config = idp.config();
    if let Some(kind) = params.get("client_assertion_type") {
        if kind != crate::assertion::JWT_BEARER {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90_023,
                format!(
                    "The client_assertion_type '{kind}' is not supported; use '{}'.",
                    crate::assertion::JWT_BEARER
                ),
            )
            .into());
        }
        if params.get("client_secret").is_some() || headers.contains_key(header::AUTHORIZATION) {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90_023,
                "The client authenticated with more than one method (a client assertion and a secret). Use only one (RFC 6749 section 2.3).",
            )
            .into());
        }
        let client_id = params
            .get("client_id")
            .ok_or_else(|| AadError::missing_parameter("client_id"))?;
        let assertion = params
            .get("client_assertion")
            .ok_or_else(|| AadError::missing_parameter("client_assertion"))?;
        crate::assertion::verify(idp, client_id, assertion)?;
        return Ok(client_id.to_owned());
    }
    let basic = basic_credentials(headers)?;
    let used_basic = basic.is_some();
    let fail = |error: AadError| Failure {
        error,
        basic: used_basic,
    };
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if params.get("client_secret").is_some() {
                return Err(fail(AadError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    90_023,
                    "The client authenticated with more than one method (HTTP Basic and 'client_secret' in the body). Use only one (RFC 6749 section 2.3).",
                )));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(fail(AadError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    90_023,
                    "The 'client_id' in the body differs from the client id in the HTTP Basic credentials.",
                )));
            }
            (id, Some(secret))
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(AadError::missing_parameter("client_id").into());
            };
            (
                id.to_owned(),
                params.get("client_secret").map(str::to_owned),
            )
        }
    };
    let Some(client) = config.client(&client_id) else {
        return Err(fail(AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory 'aadgate dev tenant'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )));
    };
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(fail(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )));
    };
    if constant_time::verify_slices_are_equal(secret.as_bytes(), client.secret.as_bytes()).is_err()
    {
        return Err(fail(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )));
    }
    Ok(client_id)
}

/// Decodes `Authorization: Basic` credentials: base64 of
/// `form-urlencoded(client_id) ":" form-urlencoded(client_secret)`
/// (RFC 6749 §2.3.1). `Ok(None)` when there is no Basic header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, Failure> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || Failure {
        error: AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            "The HTTP Basic client credentials could not be decoded. Send base64(urlencode(client_id) \":\" urlencode(client_secret)).",
        ),
        basic: true,
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    Ok(Some((
        form_urldecode(id).ok_or_else(malformed)?,
        form_urldecode(secret).ok_or_else(malformed)?,
    )))
}

/// `application/x-www-form-urlencoded` decoding of one value.
fn form_urldecode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

fn authorization_code(
    idp: &DevIdp,
    client_id: &str,
    params: &Params,
    now: u64,
) -> Result<serde_json::Value, AadError> {
    let code = params
        .get("code")
        .ok_or_else(|| AadError::missing_parameter("code"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| AadError::missing_parameter("redirect_uri"))?;
    let verifier = params.get("code_verifier");

    let outcome = idp.store().redeem_code(code, now, |grant| {
        if grant.client_id != client_id {
            return Err(invalid_grant(
                70_000,
                "The provided authorization code was issued to a different client.",
            ));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(invalid_grant(
                500_112,
                format!(
                    "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                    grant.redirect_uri
                ),
            ));
        }
        let Some(verifier) = verifier else {
            return Err(AadError::missing_parameter("code_verifier"));
        };
        let computed = ids::sha256_b64url(verifier.as_bytes());
        if !is_valid_verifier(verifier)
            || constant_time::verify_slices_are_equal(
                computed.as_bytes(),
                grant.code_challenge.as_bytes(),
            )
            .is_err()
        {
            return Err(invalid_grant(
                501_481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        Ok(())
    });
    let grant = match outcome {
        Redeem::Redeemed(grant) => grant,
        Redeem::Rejected(err) => return Err(err),
        Redeem::AlreadyUsed => {
            return Err(invalid_grant(
                54_005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        Redeem::Expired => {
            return Err(invalid_grant(
                70_008,
                "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ));
        }
        Redeem::Unknown => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                9_002_313,
                "Invalid request. Request is malformed or invalid. (The authorization code is not known to this dev IdP; codes do not survive a restart.)",
            ));
        }
    };
    let user = &idp.current_user(&grant.oid)?;
    let response = tokens::issue(
        idp,
        &SignIn {
            user,
            client_id,
            scopes: &grant.scopes,
            nonce: grant.nonce.as_deref(),
            sid: &grant.sid,
            auth_time: grant.auth_time,
        },
        now,
    )
    .map_err(|_| server_error())?;
    tracing::info!(user = %user.username, "dev IdP redeemed an authorization code");
    Ok(response.to_json())
}

fn refresh_token(
    idp: &DevIdp,
    client_id: &str,
    params: &Params,
    now: u64,
) -> Result<serde_json::Value, AadError> {
    let token = params
        .get("refresh_token")
        .ok_or_else(|| AadError::missing_parameter("refresh_token"))?;
    let requested: Option<Vec<String>> = params
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_owned).collect());

    let outcome = idp.store().redeem_refresh_token(token, now, |grant| {
        if grant.client_id != client_id {
            return Err(invalid_grant(
                70_000,
                "The provided refresh token was issued to a different client.",
            ));
        }
        if let Some(extra) = requested
            .iter()
            .flatten()
            .find(|s| !grant.scopes.contains(s))
        {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70_011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid: '{extra}' was not granted in the original authorization."
                ),
            ));
        }
        Ok(())
    });
    let grant = match outcome {
        Redeem::Redeemed(grant) => grant,
        Redeem::Rejected(err) => return Err(err),
        Redeem::AlreadyUsed => {
            return Err(invalid_grant(
                70_000,
                "The provided grant has expired due to it being revoked, a fresh auth token is needed. (This dev IdP rotates refresh tokens: each one can be used once, and the response carries its replacement.)",
            ));
        }
        Redeem::Expired => {
            return Err(invalid_grant(
                700_082,
                "The refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
            ));
        }
        Redeem::Unknown => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                9_002_313,
                "Invalid request. Request is malformed or invalid. (The refresh token is not known to this dev IdP; tokens do not survive a restart.)",
            ));
        }
    };
    // Narrow to the requested scopes if given, but keep offline_access so a
    // replacement refresh token is always issued (as Entra does).
    let mut scopes = requested.unwrap_or_else(|| grant.scopes.clone());
    if !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_owned());
    }
    let user = &idp.current_user(&grant.oid)?;
    let response = tokens::issue(
        idp,
        &SignIn {
            user,
            client_id,
            scopes: &scopes,
            nonce: None,
            sid: &grant.sid,
            auth_time: grant.auth_time,
        },
        now,
    )
    .map_err(|_| server_error())?;
    tracing::info!(user = %user.username, "dev IdP redeemed a refresh token");
    Ok(response.to_json())
}

/// The `client_credentials` grant: an application token (no user) for the
/// resource `scope` names, which must be `<resource>/.default` as Entra
/// requires. The one resource this dev IdP knows is the registered app
/// itself, named by its client id or `api://<client id>`.
fn client_credentials(
    idp: &DevIdp,
    client_id: &str,
    params: &Params,
    now: u64,
) -> Result<serde_json::Value, AadError> {
    let scope = params
        .get("scope")
        .ok_or_else(|| AadError::missing_parameter("scope"))?;
    let resource = tokens::AppResource::from_scope(idp, scope)?;
    let response =
        tokens::issue_app_token(idp, client_id, &resource, now).map_err(|_| server_error())?;
    tracing::info!(%client_id, "dev IdP issued an application token (client credentials)");
    Ok(response)
}

/// RFC 7636 §4.1: 43 to 128 characters of `[A-Za-z0-9-._~]`.
fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn invalid_grant(code: u32, message: impl Into<String>) -> AadError {
    AadError::new(StatusCode::BAD_REQUEST, "invalid_grant", code, message)
}

fn server_error() -> AadError {
    AadError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        50_000,
        "There was an error issuing a token: signing failed.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        // base64("a%3Ab:s+e%25cret") -> id "a:b", secret "s e%cret"
        let encoded = STANDARD.encode("a%3Ab:s+e%25cret");
        let header_value = format!("Basic {encoded}");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&header_value).expect("header"),
        );
        let (id, secret) = basic_credentials(&headers)
            .ok()
            .flatten()
            .expect("credentials");
        assert_eq!(id, "a:b");
        assert_eq!(secret, "s e%cret");
    }

    #[test]
    fn non_basic_authorization_is_ignored_and_garbage_rejected() {
        assert!(matches!(basic_credentials(&basic("Bearer x")), Ok(None)));
        assert!(basic_credentials(&basic("Basic !!!")).is_err());
        assert!(basic_credentials(&basic("Basic bm9jb2xvbg==")).is_err());
    }

    #[test]
    fn verifier_syntax() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
    }
}
