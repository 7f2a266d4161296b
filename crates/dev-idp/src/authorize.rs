//! The authorize endpoint: validates the authorization request like Entra ID,
//! shows an account picker (or signs the `login_hint` user in at once) and
//! sends an authorization code back to the registered redirect URI.
//!
//! Errors about the client or the redirect URI are shown as a page and never
//! redirected (a redirect to an unregistered URI would be an open redirect);
//! every other error is redirected back with Entra's error parameters.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use crate::aadsts::{self, AadError, Diagnostics};
use crate::config::DevUser;
use crate::html::{self, escape};
use crate::params::Params;
use crate::store::{BrowserSession, CodeGrant};
use crate::{DevIdp, clock, ids};

/// How long an authorization code can be redeemed (Entra: about 10 minutes).
pub(crate) const CODE_LIFETIME_SECS: u64 = 600;
/// How long the dev IdP's own sign-in session (SSO cookie) lasts.
const SESSION_LIFETIME_SECS: u64 = 12 * 3600;
/// Name of the dev IdP's single sign-on cookie.
pub(crate) const SESSION_COOKIE: &str = "aadgate_dev_idp_session";
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

/// Error simulations offered on the account picker.
const SIMULATED_ERRORS: &[(u32, &str)] = &[
    (50_105, "user not assigned to the app"),
    (65_001, "consent missing"),
    (53_003, "blocked by Conditional Access"),
    (50_076, "MFA required"),
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

/// Where and how the response goes back to the relying party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseMode {
    Query,
    FormPost,
}

struct Client<'a> {
    redirect_uri: &'a str,
    mode: ResponseMode,
    state: Option<&'a str>,
}

impl Client<'_> {
    /// Redirects an Entra-style error back to the client.
    fn error(&self, err: &AadError) -> Response {
        let diag = Diagnostics::new();
        tracing::info!(
            error = err.error,
            code = err.code,
            trace_id = %diag.trace_id,
            "dev IdP authorize error redirected: {}",
            err.message
        );
        let mut params = err.redirect_params(&diag);
        if let Some(state) = self.state {
            params.push(("state", state.to_owned()));
        }
        respond(self.redirect_uri, self.mode, &params)
    }
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
    if client_id != config.client_id {
        let err = AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory 'aadgate dev tenant'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        );
        let extra = format!(
            "<p class=\"muted\">This dev IdP has one application: <code>{}</code> (key <code>client_id</code> in its configuration).</p>",
            escape(&config.client_id)
        );
        return Err(ErrorPage { error: err, extra });
    }
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_971,
            "No reply address provided.",
        )
        .into());
    };
    if !config.redirect_uris.iter().any(|r| r == redirect_uri) {
        let err = AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50_011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        );
        let registered: String = config
            .redirect_uris
            .iter()
            .map(|r| format!("<li><code>{}</code></li>", escape(r)))
            .collect();
        let extra = format!(
            "<p class=\"muted\">Redirect URIs registered in this dev IdP (key <code>redirect_uris</code>; compared exactly, character for character):</p><ul>{registered}</ul>"
        );
        return Err(ErrorPage { error: err, extra });
    }
    Ok((client_id, redirect_uri))
}

/// Checks the rest of the authorization request. Failures are redirected
/// back to the (registered) client; `mode` is set as soon as it is known.
fn validate_request<'p>(
    params: &'p Params,
    client_id: &'p str,
    redirect_uri: &'p str,
    mode: &mut ResponseMode,
) -> Result<Request<'p>, AadError> {
    match params.get("response_mode") {
        None | Some("query") => {}
        Some("form_post") => *mode = ResponseMode::FormPost,
        Some(other) => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                70_007,
                format!(
                    "The value '{other}' of the 'response_mode' parameter is not supported. This dev IdP supports 'query' and 'form_post'."
                ),
            ));
        }
    }
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
    let request = match validate_request(params, client_id, redirect_uri, &mut client.mode) {
        Ok(request) => request,
        Err(err) => return client.error(&err),
    };
    let config = idp.config();
    let prompt = request.prompt;

    // Who signs in?
    let now = clock::now_secs();
    let session = session_cookie(headers).and_then(|id| {
        let found = idp.store().session(&id, now);
        found.map(|session| (id, session))
    });
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
            Err(_) => picker(
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
            None => picker(
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
        None => picker(idp, params, session.as_ref().map(|(_, s)| s), None),
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
    // Reuse the session (and so the `sid`) if the same user is signed in.
    let (session_id, sid, new_session) = match session {
        Some((id, s)) if s.oid == user.oid => (id, s.sid, false),
        _ => (ids::random_token(32), ids::guid(), true),
    };
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
        if new_session {
            store.insert_session(
                session_id.clone(),
                BrowserSession {
                    oid: user.oid.clone(),
                    sid: sid.clone(),
                },
                now + SESSION_LIFETIME_SECS,
                now,
            );
        }
    }
    tracing::info!(user = %user.username, %sid, "dev IdP signed a user in; code issued");
    let mut params = vec![("code", code)];
    if let Some(state) = client.state {
        params.push(("state", state.to_owned()));
    }
    params.push(("session_state", sid));
    let mut response = respond(client.redirect_uri, client.mode, &params);
    if new_session {
        let secure = if idp.base().starts_with("https:") {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{SESSION_COOKIE}={session_id}; Path={}; HttpOnly; SameSite=Lax; Max-Age={SESSION_LIFETIME_SECS}{secure}",
            cookie_path(idp)
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The path the session cookie is scoped to: `{base path}/{tenant}/oauth2/`,
/// which covers the authorize and logout endpoints and little else (cookies
/// are shared between ports on the same host).
pub(crate) fn cookie_path(idp: &DevIdp) -> String {
    Url::parse(&idp.tenant_url("oauth2/")).map_or_else(|_| "/".to_owned(), |u| u.path().to_owned())
}

/// The dev IdP's session id from the request's cookies, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Sends `params` to `redirect_uri`: a 302 with a query string, or an
/// auto-submitting form for `form_post`.
fn respond(redirect_uri: &str, mode: ResponseMode, params: &[(&str, String)]) -> Response {
    match mode {
        ResponseMode::Query => {
            let Ok(mut url) = Url::parse(redirect_uri) else {
                // Registered redirect URIs are validated as absolute URLs.
                return html::page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign in - error",
                    "<h1>Sign in</h1><div class=\"error\">The redirect URI could not be parsed.</div>",
                );
            };
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            let mut response = StatusCode::FOUND.into_response();
            if let Ok(location) = HeaderValue::from_str(url.as_str()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        ResponseMode::FormPost => {
            let inputs: String = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\" />",
                        escape(k),
                        escape(v)
                    )
                })
                .collect();
            let page = format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Working...</title></head><body>\
<form method=\"POST\" name=\"hiddenform\" action=\"{action}\">{inputs}\
<noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" /></noscript>\
</form><script>document.forms[0].submit();</script></body></html>",
                action = escape(redirect_uri),
            );
            html::with_page_headers(
                Html(page).into_response(),
                "default-src 'none'; script-src 'unsafe-inline'; form-action *; frame-ancestors 'none'; base-uri 'none'",
            )
        }
    }
}

/// The account picker: one button per user; each continues the same
/// authorization request with `login_hint=<username>`.
fn picker(
    idp: &DevIdp,
    params: &Params,
    session: Option<&BrowserSession>,
    notice: Option<&str>,
) -> Response {
    let config = idp.config();
    let hidden: String = params
        .pairs_except("login_hint")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let accounts: String = config
        .users
        .iter()
        .map(|user| account_button(user, session.is_some_and(|s| s.oid == user.oid)))
        .collect();
    let simulations: String = SIMULATED_ERRORS
        .iter()
        .map(|(code, label)| {
            format!(
                "<button class=\"simulate\" type=\"submit\" name=\"login_hint\" value=\"error:{code}\">AADSTS{code}: {}</button>",
                escape(label)
            )
        })
        .collect();
    let notice = notice
        .map(|n| format!("<div class=\"notice\">{}</div>", escape(n)))
        .unwrap_or_default();
    let redirect = params.get("redirect_uri").unwrap_or_default();
    let body = format!(
        "<h1>Sign in to {tenant} (aadgate dev IdP)</h1>\
<p class=\"sub\">Pick an account. This is a development identity provider: there are no passwords, and anyone who can reach it can sign in as anyone.</p>\
{notice}\
<form method=\"get\" action=\"authorize\">{hidden}{accounts}\
<h2>Simulate an Entra ID error</h2>\
<p class=\"muted\">Redirects back with the error, as <code>login_hint=error:&lt;code&gt;</code> does.</p>\
{simulations}</form>\
<p class=\"muted\">Application <code>{client}</code> &middot; returns to <code>{redirect}</code></p>",
        tenant = escape(&config.tenant_id),
        client = escape(&config.client_id),
        redirect = escape(redirect),
    );
    html::page(StatusCode::OK, "Sign in to your account", &body)
}

fn account_button(user: &DevUser, signed_in: bool) -> String {
    let initials: String = user
        .name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let roles: String = if user.roles.is_empty() {
        "<span class=\"role none\">no app roles</span>".to_owned()
    } else {
        user.roles
            .iter()
            .map(|r| format!("<span class=\"role\">{}</span>", escape(r)))
            .collect()
    };
    let badge = if signed_in {
        "<span class=\"badge\">&#10003; signed in</span>"
    } else {
        ""
    };
    format!(
        "<button class=\"account\" type=\"submit\" name=\"login_hint\" value=\"{username}\">\
<span class=\"avatar\">{initials}</span><span class=\"who\"><span class=\"name\">{name}</span><br>\
<span class=\"upn\">{email} &middot; login_hint <code>{username}</code> &middot; {groups} group(s)</span><br>{roles}</span>{badge}</button>",
        username = escape(&user.username),
        initials = escape(&initials),
        name = escape(&user.name),
        email = escape(&user.email),
        groups = user.groups.len(),
    )
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

    #[tokio::test]
    async fn form_post_escapes_values() {
        let response = respond(
            "https://rp.example/cb?x=\"",
            ResponseMode::FormPost,
            &[("state", "\"><script>".to_owned())],
        );
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("value=\"&quot;&gt;&lt;script&gt;\""),
            "{body}"
        );
        assert!(
            body.contains("action=\"https://rp.example/cb?x=&quot;\""),
            "{body}"
        );
    }

    #[test]
    fn simulated_error_codes_parse() {
        assert_eq!(simulated_error_code("error:50105"), Some("50105"));
        assert_eq!(simulated_error_code("ERROR:AADSTS53003"), Some("53003"));
        assert_eq!(simulated_error_code("reader"), None);
        assert_eq!(simulated_error_code("érror:1"), None);
    }
}
