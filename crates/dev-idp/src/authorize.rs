//! The authorize endpoint: validates the authorization request like Entra ID,
//! shows the account picker ([`crate::picker`]) or signs the `login_hint`
//! user in at once, and sends an authorization code back to the registered
//! redirect URI in the requested response mode ([`crate::response_mode`]).
//! A sign-in starts or reuses the dev IdP's browser session
//! ([`crate::browser_session`]).
//!
//! Errors about the client or the redirect URI are shown as a page and never
//! redirected (a redirect to an unregistered URI would be an open redirect);
//! every other error is redirected back with Entra's error parameters.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use crate::aadsts::{self, AadError};
use crate::browser_session::{self, SignInSession};
use crate::config::DevUser;
use crate::html::{self, escape};
use crate::params::Params;
use crate::response_mode::{Client, ResponseMode};
use crate::store::{BrowserSession, CodeGrant};
use crate::{DevIdp, clock, ids, picker};

/// How long an authorization code can be redeemed (Entra: about 10 minutes).
pub(crate) const CODE_LIFETIME_SECS: u64 = 600;
/// Longest `nonce` accepted (it is stored with the code).
const MAX_NONCE_LEN: usize = 2048;

/// Parameters that must not be repeated.
const SINGLE_VALUED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "prompt",
];

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) async fn authorize_get(
    State(idp): State<DevIdp>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorize(&idp, &tenant, &params, &headers)
}

/// `POST /{tenant}/oauth2/v2.0/authorize` (form-encoded parameters).
pub(crate) async fn authorize_post(
    State(idp): State<DevIdp>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(&body);
    authorize(&idp, &tenant, &params, &headers)
}

/// An error shown as a page: the error, and trusted HTML to show below it.
struct ErrorPage {
    error: AadError,
    extra: String,
}

impl From<AadError> for ErrorPage {
    fn from(error: AadError) -> Self {
        Self {
            error,
            extra: String::new(),
        }
    }
}

/// Checks the tenant, the client id and the redirect URI. Failures are
/// error pages: nothing may be redirected to a URI that is not registered.
fn registered_client<'p>(
    idp: &DevIdp,
    tenant: &str,
    params: &'p Params,
) -> Result<(&'p str, &'p str), ErrorPage> {
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
    let config = idp.config();

    let Some(client_id) = params.get("client_id") else {
        return Err(AadError::missing_parameter("client_id").into());
    };
    let Some(client) = config.client(client_id) else {
        let err = AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory 'aadgate dev tenant'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
        let extra = format!(
            "<p class=\"muted\">This dev IdP has the application <code>{}</code> (key <code>client_id</code> in its configuration) and the client applications of <code>client_apps</code>.</p>",
            escape(&config.client_id)
        );
        return Err(ErrorPage { error: err, extra });
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_971,
            "No reply address provided.",
        )
        .into());
    };
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        let err = AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50_011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        );
        let registered: String = client
            .redirect_uris
            .iter()
            .map(|r| format!("<li><code>{}</code></li>", escape(r)))
            .collect();
        let extra = format!(
            "<p class=\"muted\">Redirect URIs registered in this dev IdP for this application (key <code>redirect_uris</code>; compared exactly, character for character):</p><ul>{registered}</ul>"
        );
        return Err(ErrorPage { error: err, extra });
    }
    Ok((client_id, redirect_uri))
}

/// Checks the rest of the authorization request. Failures are redirected
/// back to the (registered) client; `mode` is set as soon as it is known.
fn validate_request<'p>(
    config: &crate::DevIdpConfig,
    params: &'p Params,
    client_id: &'p str,
    redirect_uri: &'p str,
    mode: &mut ResponseMode,
) -> Result<Request<'p>, AadError> {
    *mode = ResponseMode::from_param(params.get("response_mode"))?;
    match params.get("response_type") {
        None => return Err(AadError::missing_parameter("response_type")),
        Some("code") => {}
        Some(other) => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_response_type",
                70_005,
                format!(
                    "The provided value for the input parameter 'response_type' is not allowed for this request: '{other}'. This dev IdP supports the authorization code flow only ('code')."
                ),
            ));
        }
    }
    let Some(scope) = params.get("scope") else {
        return Err(AadError::missing_parameter("scope"));
    };
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' is not valid: '{scope}'. This dev IdP issues ID tokens and requires the 'openid' scope."
            ),
        ));
    }
    crate::tokens::ApiScopes::requested(config, &scopes)?;
    let Some(code_challenge) = params.get("code_challenge") else {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'code_challenge'. This dev IdP requires PKCE (RFC 7636) with code_challenge_method=S256.",
        ));
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        None => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90_100,
                "The 'code_challenge_method' parameter is missing, which means 'plain' (RFC 7636 section 4.3). Send code_challenge_method=S256; this dev IdP does not accept 'plain'.",
            ));
        }
        Some(other) => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90_100,
                format!(
                    "The 'code_challenge_method' value '{other}' is not supported. Use 'S256'; this dev IdP does not accept 'plain'."
                ),
            ));
        }
    }
    if code_challenge.len() != 43
        || !code_challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            501_491,
            "Invalid size of Code_Challenge parameter. An S256 code_challenge is the unpadded base64url encoding of a SHA-256 hash: 43 characters.",
        ));
    }
    let nonce = params.get("nonce");
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_100,
            format!("The 'nonce' parameter is longer than {MAX_NONCE_LEN} characters."),
        ));
    }
    let prompt = params.get("prompt");
    if let Some(p) = prompt
        && !matches!(p, "none" | "login" | "consent" | "select_account")
    {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_023,
            format!("Unsupported 'prompt' value '{p}'."),
        ));
    }
    Ok(Request {
        client_id,
        redirect_uri,
        scopes,
        nonce,
        code_challenge,
        prompt,
    })
}

fn authorize(idp: &DevIdp, tenant: &str, params: &Params, headers: &HeaderMap) -> Response {
    let (client_id, redirect_uri) = match registered_client(idp, tenant, params) {
        Ok(registered) => registered,
        Err(page) => return html::error_page(&page.error, &page.extra),
    };
    let mut client = Client {
        redirect_uri,
        mode: ResponseMode::Query,
        state: params.get("state"),
    };
    let request = match validate_request(
        idp.config(),
        params,
        client_id,
        redirect_uri,
        &mut client.mode,
    ) {
        Ok(request) => request,
        Err(err) => return client.error(&err),
    };
    let config = idp.config();
    let prompt = request.prompt;

    // Who signs in?
    let now = clock::now_secs();
    let session = browser_session::current(idp, headers, now);
    let login_hint = params.get("login_hint");
    if let Some(code) = login_hint.and_then(simulated_error_code) {
        return match code.parse::<u32>() {
            Ok(code) => {
                let (error, message) = aadsts::simulated(code, "user@contoso.example", client_id);
                client.error(&AadError::new(
                    StatusCode::BAD_REQUEST,
                    error,
                    code,
                    message,
                ))
            }
            Err(_) => picker::page(
                idp,
                params,
                session.as_ref().map(|(_, s)| s),
                Some(
                    "That is not a simulated error: write error: followed by an AADSTS number, e.g. error:50105.",
                ),
            ),
        };
    }
    match login_hint {
        Some(hint) => match config.find_user(hint) {
            Some(user) => sign_in(idp, &client, &request, user, session, now),
            None if prompt == Some("none") => client.error(&login_required()),
            None => picker::page(
                idp,
                params,
                session.as_ref().map(|(_, s)| s),
                Some(&format!(
                    "There is no user \u{201c}{hint}\u{201d} in this dev tenant. Pick an account below, or add the user to the dev IdP's configuration."
                )),
            ),
        },
        None if prompt == Some("none") => {
            let user = session
                .as_ref()
                .and_then(|(_, s)| config.find_user_by_oid(&s.oid));
            match user {
                Some(user) => sign_in(idp, &client, &request, user, session, now),
                None => client.error(&login_required()),
            }
        }
        None => picker::page(idp, params, session.as_ref().map(|(_, s)| s), None),
    }
}

/// The code in `login_hint=error:<code>` (also `error:AADSTS<code>`).
fn simulated_error_code(hint: &str) -> Option<&str> {
    let prefix = hint.get(..6)?;
    if !prefix.eq_ignore_ascii_case("error:") {
        return None;
    }
    let code = hint.get(6..)?;
    Some(
        code.strip_prefix("AADSTS")
            .or_else(|| code.strip_prefix("aadsts"))
            .unwrap_or(code),
    )
}

/// The validated parts of an authorization request a code is bound to.
struct Request<'a> {
    client_id: &'a str,
    redirect_uri: &'a str,
    scopes: Vec<String>,
    nonce: Option<&'a str>,
    code_challenge: &'a str,
    prompt: Option<&'a str>,
}

fn login_required() -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "login_required",
        50_058,
        "A silent sign-in request was sent but no user is signed in. The cookies used to represent the user's session were not sent in the request to Azure AD.",
    )
}

/// Issues a code for `user` and sends it to the client; starts or reuses
/// the dev IdP's browser session.
fn sign_in(
    idp: &DevIdp,
    client: &Client<'_>,
    request: &Request<'_>,
    user: &DevUser,
    session: Option<(String, BrowserSession)>,
    now: u64,
) -> Response {
    let session = SignInSession::for_user(session, &user.oid);
    let sid = session.sid.clone();
    let code = format!("1.{}", ids::random_token(64));
    {
        let mut store = idp.store();
        store.insert_code(
            code.clone(),
            CodeGrant {
                client_id: request.client_id.to_owned(),
                redirect_uri: request.redirect_uri.to_owned(),
                oid: user.oid.clone(),
                scopes: request.scopes.clone(),
                nonce: request.nonce.map(str::to_owned),
                code_challenge: request.code_challenge.to_owned(),
                sid: sid.clone(),
                auth_time: now,
            },
            now + CODE_LIFETIME_SECS,
            now,
        );
        session.save(&mut store, &user.oid, now);
    }
    tracing::info!(user = %user.username, %sid, "dev IdP signed a user in; code issued");
    let mut params = vec![("code", code)];
    if let Some(state) = client.state {
        params.push(("state", state.to_owned()));
    }
    params.push(("session_state", sid));
    let mut response = client.send(&params);
    session.set_cookie(idp, &mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_error_codes_parse() {
        assert_eq!(simulated_error_code("error:50105"), Some("50105"));
        assert_eq!(simulated_error_code("ERROR:AADSTS53003"), Some("53003"));
        assert_eq!(simulated_error_code("reader"), None);
        assert_eq!(simulated_error_code("érror:1"), None);
    }
}
