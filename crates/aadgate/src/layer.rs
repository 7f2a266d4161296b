//! The layer: strips client identity headers, finds the session, applies the
//! route rules, and either lets the request through with a [`User`] or
//! answers it (302 to sign-in, 401 JSON, 403 page).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use aadgate_core::policy::Requirement;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::Response;
use tower::{Layer, Service};

use crate::pages::escape;
use crate::refusal::Refusal;
use crate::{Auth, User, cookies, headers};

/// Layer enforcing sign-in and the configured role rules. See [`Auth::require_login`].
#[derive(Clone)]
pub struct AuthLayer {
    pub(crate) auth: Auth,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthLayer")
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            auth: self.auth.clone(),
            inner,
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    auth: Auth,
    inner: S,
}

impl<S> std::fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthService")
    }
}

/// Whether `path` is exactly one of the paths [`Auth::routes`](crate::Auth::routes)
/// serves (the table is [`aadgate_core::paths::OWN_PATHS`]). The layer lets
/// these through without a session; a service that wraps its own dispatch
/// in the layer can use this to send them to the routes.
///
/// ```
/// assert!(aadgate::is_own_path("/auth/callback"));
/// assert!(!aadgate::is_own_path("/auth/callback/"));
/// assert!(!aadgate::is_own_path("/auth/../admin"));
/// ```
pub fn is_own_path(path: &str) -> bool {
    aadgate_core::paths::is_own_path(path)
}

/// Whether a request is a browser navigation (it gets a redirect or a page)
/// as opposed to XHR, fetch or an API call (it gets JSON): a `GET`/`HEAD`
/// without `X-Requested-With`, with `Sec-Fetch-Mode: navigate` or, from
/// older clients, an `Accept` naming `text/html`.
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    if headers.contains_key("x-requested-with") {
        return false;
    }
    if let Some(mode) = headers.get("sec-fetch-mode") {
        return mode.as_bytes() == b"navigate";
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        // Take the service that was driven to readiness, leave a clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            headers::strip_identity_headers(req.headers_mut());
            // Werkzeug (and so Flask and Dash) upper-cases the method: decide
            // on, and forward, the method the app will see.
            if let Some(m) = canonical_method(req.method()) {
                *req.method_mut() = m;
            }
            let path = req.uri().path().to_owned();
            // aadgate's own paths go to its routes; but a request rebuilt by
            // `/auth/check` is for the app behind another proxy, whatever
            // its path, and gets the app's rules.
            // (The extension is looked up only for aadgate's own paths.)
            if is_own_path(&path)
                && req
                    .extensions()
                    .get::<crate::forward_auth::ForwardAuthCheck>()
                    .is_none()
            {
                return inner.call(req).await;
            }
            let policy = &auth.inner.settings.policy;
            let decision = policy.decide(&path);
            let credentials = decision.credentials;
            let guarded = decision.requirement != Requirement::Public;
            // A bearer token is read on the routes that take one: always on
            // `auth = "bearer"`, on `auth = "any"` when one is sent.
            // Only routes that take a token read `Authorization`.
            let token = match (guarded && credentials.bearer)
                .then(|| crate::bearer::token_of(req.headers()))
            {
                None | Some(Ok(None)) => None,
                Some(Ok(Some(t))) => Some(t.to_owned()),
                Some(Err(why)) => {
                    return Ok(crate::bearer::challenge(
                        Refusal::new(StatusCode::BAD_REQUEST, "invalid_request", "Bad request")
                            .reason(format!("refused {why} for {path}")),
                        "invalid_request",
                        why,
                        None,
                    ));
                }
            };
            let by_bearer = guarded
                && !decision.malformed
                && credentials.bearer
                && (token.is_some() || !credentials.session);
            let user = if by_bearer {
                let Some(token) = token else {
                    return Ok(crate::bearer::token_required(&req));
                };
                match auth.bearer_user(&token, &path).await {
                    Ok(u) => Ok(Some(u)),
                    Err(resp) => return Ok(resp),
                }
            } else {
                auth.current_user(req.headers()).await
            };
            cookies::strip_own_cookies(req.headers_mut(), &auth.cookie_names());
            let user = match (user, decision.requirement) {
                (Ok(user), _) => user,
                // Public pages do not need the session.
                (Err(_), Requirement::Public) => None,
                (Err(e), _) => return Ok(crate::answers::sessions_unavailable(&e, &req)),
            };
            if decision.malformed {
                return Ok(bad_path(&req));
            }
            if guarded && !credentials.session && !credentials.bearer {
                return Ok(Refusal::new(StatusCode::FORBIDDEN, "forbidden", "Access denied")
                    .message("This address is not served.")
                    .reason(format!(
                        "refused {path}: its [[route]] rule and the rule its lower-cased path matches take different credentials (auth = \"session\" and \"bearer\"), so no request can meet both"
                    ))
                    .respond(is_navigation(req.method(), req.headers())));
            }
            let requirement = decision.requirement;
            let unmet = user
                .as_ref()
                .and_then(|u| policy.unmet(&decision, &u.session.identity.roles));
            if let Some(u) = &user
                && let Some(b) = &u.bearer
                && unmet.is_none()
                && b.kind == aadgate_core::token::CallerKind::User
                && let Some(scopes) = decision.unmet_scopes(&b.scopes)
            {
                return Ok(crate::bearer::challenge(
                    Refusal::new(StatusCode::FORBIDDEN, "insufficient_scope", "Access denied")
                        .field("required_scopes", scopes.to_vec())
                        .reason(format!(
                            "access denied to {path} for {} (client {}): the token has none of the scopes {}",
                            u.id(),
                            b.client_id,
                            scopes.join(", ")
                        )),
                    "insufficient_scope",
                    &format!("the token needs one of the scopes {}", scopes.join(" ")),
                    Some(scopes),
                ));
            }
            match (requirement, user) {
                (Requirement::Public, user) => {
                    let req = match dash_callback_check(&auth, req, user.as_ref()).await {
                        Ok(r) => r,
                        Err(resp) => return Ok(resp),
                    };
                    let mut req = req;
                    if let Some(u) = user {
                        req.extensions_mut().insert(u);
                        req.extensions_mut().insert(auth.clone());
                    }
                    inner.call(req).await
                }
                (_, None) => {
                    let resp = login_required(&auth, &req);
                    // A route that also takes a bearer token says so to programs.
                    Ok(
                        if credentials.bearer && resp.status() == StatusCode::UNAUTHORIZED {
                            crate::bearer::with_challenge(resp, "Bearer")
                        } else {
                            resp
                        },
                    )
                }
                (_, Some(u)) if unmet.is_some() => Ok(forbidden(
                    &auth,
                    &req,
                    &u,
                    Lacking::of(policy, unmet.unwrap_or(requirement)),
                )),
                (_, Some(u))
                    if !aadgate_core::Policy::groups_allow(
                        decision.groups,
                        &u.session.identity.groups,
                        u.session.identity.groups_overage,
                    ) =>
                {
                    Ok(forbidden_by_group(&req, &u))
                }
                (_, Some(u)) => {
                    let id = crate::UserId(u.view.id.clone());
                    let mut req = match dash_callback_check(&auth, req, Some(&u)).await {
                        Ok(r) => r,
                        Err(resp) => return Ok(resp),
                    };
                    req.extensions_mut().insert(u);
                    req.extensions_mut().insert(auth.clone());
                    let mut resp = inner.call(req).await?;
                    resp.extensions_mut().insert(id);
                    Ok(resp)
                }
            }
        })
    }
}

/// Applies `[[dash.callback]]` rules to a Dash callback request: the body is
/// read (up to the configured limit), the callback's outputs matched, and the
/// rule's role required. Only on Dash's callback path and only while rules
/// exist; every other request streams untouched.
async fn dash_callback_check(
    auth: &Auth,
    req: Request<Body>,
    user: Option<&User>,
) -> Result<Request<Body>, Response> {
    use aadgate_core::dash;
    let rules = &auth.inner.settings.dash_callbacks;
    if rules.is_empty() {
        return Ok(req);
    }
    // Decide on the decoded, normalized path, as the app's router will see it
    // (`/_dash-update-c%6Fmponent` is the callback endpoint to Werkzeug).
    let normalized = aadgate_core::policy::normalize_path(req.uri().path()).unwrap_or_default();
    let path = normalized.to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    if dash::is_uninspectable_callback_path(path) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "refused a Dash WebSocket or MCP callback request: callback role rules cannot inspect them",
        ));
    }
    // Forward-auth never sees the body, and may not even be told the real
    // method: every request for the callback path is refused (fail closed).
    if dash::is_callback_path(path)
        && req
            .extensions()
            .get::<crate::forward_auth::ForwardAuthCheck>()
            .is_some()
    {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "refused a Dash callback asked about through /auth/check: forward-auth never sees the callback's body, so [[dash.callback]] rules cannot be applied (put `aadgate proxy` in front of Dash apps that have callback rules)",
        ));
    }
    // Any method but the three that never reach Dash's dispatch is inspected
    // (the method was upper-cased as Werkzeug does; see `canonical_method`).
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || !dash::is_callback_path(path)
    {
        return Ok(req);
    }
    if req
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_callback",
            "refused a Dash callback with a Content-Encoding: its body cannot be inspected",
        ));
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, rules.max_body_bytes).await {
        Ok(b) => b,
        Err(e)
            if std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) =>
        {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "callback_too_large",
                &format!(
                    "refused a Dash callback over dash.max_body_bytes ({})",
                    rules.max_body_bytes
                ),
            ));
        }
        Err(_) => {
            // The client stopped sending, or sent too slowly for the server's limits.
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "a Dash callback body could not be read whole (too slow, or the client went away)",
            ));
        }
    };
    let req = Request::from_parts(parts, Body::from(bytes.clone()));
    match rules.required(&bytes) {
        Err(e) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_callback",
            &format!("refused an unreadable Dash callback: {e}"),
        )),
        Ok(needed) if needed.is_empty() => Ok(req),
        Ok(needed) => {
            let policy = &auth.inner.settings.policy;
            let Some(u) = user else {
                return Err(login_required(auth, &req));
            };
            match needed
                .into_iter()
                .find(|r| !policy.allows(*r, &u.session.identity.roles))
            {
                Some(unmet) => Err(forbidden(auth, &req, u, Lacking::of(policy, unmet))),
                None => Ok(req),
            }
        }
    }
}

/// The method with ASCII letters upper-cased, when that changes it: `post`
/// and `Post` are `POST` to Werkzeug, which upper-cases every method.
pub(crate) fn canonical_method(m: &Method) -> Option<Method> {
    let s = m.as_str();
    if !s.bytes().any(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Method::from_bytes(s.to_ascii_uppercase().as_bytes()).ok()
}

/// A path that is refused (dot segments, control characters, undecodable).
fn bad_path(req: &Request<Body>) -> Response {
    Refusal::new(StatusCode::BAD_REQUEST, "bad_request_path", "Bad request")
        .message("This address contains \".\" or \"..\" segments, or characters that are not allowed in a path. Open the page from a link instead.")
        .reason(format!(
            "the path {:?} has dot segments, control characters or undecodable escapes",
            req.uri().path()
        ))
        .respond(is_navigation(req.method(), req.headers()))
}

/// A refused Dash callback (always a script's request: JSON).
fn refuse(status: StatusCode, error: &'static str, reason: &str) -> Response {
    Refusal::new(status, error, "Refused")
        .reason(reason)
        .respond(false)
}

fn forbidden_by_group(req: &Request<Body>, user: &User) -> Response {
    let overage = user.session.identity.groups_overage;
    let why = if overage {
        "You belong to so many groups that Entra ID could not list them in your sign-in, so aadgate cannot confirm you are in one this page needs. Ask the app's owner to grant access through an app role instead."
    } else {
        "This page is limited to members of particular groups, and you are not in one of them."
    };
    let refusal = Refusal::new(StatusCode::FORBIDDEN, "forbidden", "Access denied")
        .html(format!(
            "<p>You are signed in as <strong>{}</strong>.</p><p>{}</p>",
            escape(user.name()),
            escape(why)
        ))
        .field("required", "group")
        .reason(format!(
            "access denied to {} for {}: not in an allowed group{}",
            req.uri().path(),
            user.id(),
            if overage {
                " (token has group overage: membership unknown, failing closed)"
            } else {
                ""
            }
        ));
    refused(
        refusal,
        req,
        user,
        "the caller is not in a group this route needs",
    )
}

pub(crate) fn login_required(auth: &Auth, req: &Request<Body>) -> Response {
    // After sign-in, back to the request: for `/auth/check`, the original
    // URL on the protected host.
    let return_to = match req
        .extensions()
        .get::<crate::forward_auth::ForwardAuthCheck>()
    {
        Some(check) => check.return_to.as_str(),
        None => req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
    };
    crate::answers::login_required(
        Some(&auth.inner.settings.public_url),
        Some(return_to),
        is_navigation(req.method(), req.headers()),
    )
}

/// What a refused user lacks, for the 403 answer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lacking<'a> {
    /// This role of the hierarchy, or a higher one.
    Role(&'a str),
    /// Any one of these roles.
    AnyOf(&'a [String]),
}

impl<'a> Lacking<'a> {
    /// What `needed` asks of `policy`'s roles.
    pub(crate) fn of(policy: &'a aadgate_core::Policy, needed: Requirement) -> Self {
        match needed {
            Requirement::AnyRole(list) => Self::AnyOf(policy.role_list(list)),
            _ => Self::Role(policy.role_name(needed).unwrap_or("")),
        }
    }
}

pub(crate) fn forbidden(
    auth: &Auth,
    req: &Request<Body>,
    user: &User,
    lacking: Lacking<'_>,
) -> Response {
    let policy = &auth.inner.settings.policy;
    let lowest = policy.roles().first().map(String::as_str).unwrap_or("");
    let who = match user.identity().preferred_username.as_deref() {
        Some(upn) if upn != user.name() => format!("{} ({})", escape(user.name()), escape(upn)),
        _ => escape(user.name()),
    };
    let refusal = Refusal::new(StatusCode::FORBIDDEN, "forbidden", "Access denied");
    let (body, refusal, needs) = match lacking {
        Lacking::AnyOf(roles) => {
            let listed = roles
                .iter()
                .map(|r| format!("<code>{}</code>", escape(r)))
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!(
                    "<p>You are signed in as <strong>{who}</strong>.</p><p>This page needs one of the roles {listed}, which you do not have.</p>"
                ),
                refusal.field("required_roles", roles.to_vec()),
                format!("one of {}", roles.join(", ")),
            )
        }
        Lacking::Role(role) => {
            let body = if policy.rank(&user.session.identity.roles).is_none() {
                format!(
                    "<p>You are signed in as <strong>{who}</strong>, but you have not been given access to this app.</p>\
<p>Access needs at least the <code>{}</code> role. Ask the app's owner to assign you a role.</p>",
                    escape(lowest)
                )
            } else {
                format!(
                    "<p>You are signed in as <strong>{who}</strong>.</p><p>This page needs the <code>{}</code> role or higher, which you do not have.</p>",
                    escape(role)
                )
            };
            (
                body,
                refusal.field("required_role", role),
                format!("role {role}"),
            )
        }
    };
    let refusal = refusal
        .html(body)
        .field("user", user.name())
        .link("Sign out", aadgate_core::paths::LOGOUT)
        .reason(format!(
            "access denied to {} for {}: missing {needs}",
            req.uri().path(),
            user.id(),
        ));
    refused(refusal, req, user, &format!("the caller lacks {needs}"))
}

/// A refusal of a signed-in `user`: a page or JSON for a session, JSON
/// with RFC 6750's `insufficient_scope` challenge for a bearer token.
fn refused(refusal: Refusal, req: &Request<Body>, user: &User, description: &str) -> Response {
    if user.is_bearer() {
        let resp = refusal.respond(false);
        return crate::bearer::with_challenge(
            resp,
            &crate::bearer::challenge_value("insufficient_scope", description, None),
        );
    }
    refusal.respond(is_navigation(req.method(), req.headers()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigation_detection() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, v.parse().unwrap());
            }
            m
        };
        assert!(is_navigation(
            &Method::GET,
            &h(&[("sec-fetch-mode", "navigate"), ("accept", "*/*")])
        ));
        assert!(is_navigation(
            &Method::GET,
            &h(&[("accept", "text/html,application/xhtml+xml")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &h(&[("sec-fetch-mode", "cors"), ("accept", "text/html")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &h(&[
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest")
            ])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &h(&[("accept", "application/json")])
        ));
        assert!(!is_navigation(
            &Method::POST,
            &h(&[("accept", "text/html")])
        ));
    }
}
