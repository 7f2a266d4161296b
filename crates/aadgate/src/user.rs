//! The signed-in user, as request extension and extractor.

use std::sync::Arc;

use aadgate_core::session::{Identity, Session, StoreError};
pub use aadgate_core::token::CallerKind;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

/// The signed-in user. Put into request extensions by the sign-in layer;
/// extract it in a handler:
///
/// ```
/// use aadgate::User;
/// async fn home(user: User) -> String {
///     format!("Hello {}", user.name())
/// }
/// ```
#[derive(Clone)]
pub struct User {
    pub(crate) session: Arc<Session>,
    pub(crate) view: Arc<UserView>,
    pub(crate) cookie: Arc<str>,
    /// Set when the request came with a bearer token instead of a session.
    pub(crate) bearer: Option<Arc<crate::bearer::BearerCaller>>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("roles", &self.view.roles)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Everything known about the user from the ID token.
    pub fn identity(&self) -> &Identity {
        &self.session.identity
    }

    /// Stable id: Entra `oid`, else `sub`.
    pub fn id(&self) -> &str {
        self.session.identity.user_id()
    }

    /// A name to show.
    pub fn name(&self) -> &str {
        self.session.identity.display_name()
    }

    /// Email, if the provider sent one.
    pub fn email(&self) -> Option<&str> {
        self.session.identity.email.as_deref()
    }

    /// Effective roles: each held role and every configured role below it.
    pub fn roles(&self) -> &[String] {
        &self.view.roles
    }

    /// Whether the user holds `role` (directly or through a higher one).
    pub fn has_role(&self, role: &str) -> bool {
        self.view.roles.iter().any(|r| r == role)
    }

    /// When the session ends at the latest (unix seconds).
    pub fn session_expires_at(&self) -> i64 {
        self.session.expires_at
    }

    /// Whether the request was authenticated by a bearer token
    /// (`[[route]] auth = "bearer"` or `"any"`) rather than a session.
    pub fn is_bearer(&self) -> bool {
        self.bearer.is_some()
    }

    /// Who is calling: a user (with a session, or a delegated bearer token)
    /// or an application on its own behalf (a client-credentials token).
    pub fn caller(&self) -> CallerKind {
        self.bearer.as_ref().map_or(CallerKind::User, |b| b.kind)
    }

    /// The client application that obtained the bearer token (`azp`, or
    /// `appid` in v1.0 tokens); `None` for a session.
    pub fn client_id(&self) -> Option<&str> {
        self.bearer.as_ref().map(|b| b.client_id.as_str())
    }

    /// The delegated permissions (`scp`) of a user's bearer token; empty for
    /// a session and for application tokens.
    pub fn scopes(&self) -> &[String] {
        self.bearer.as_ref().map_or(&[], |b| b.scopes.as_slice())
    }

    /// The access token stored at sign-in (it may have expired); for a
    /// bearer request, the bearer token.
    pub fn stored_access_token(&self) -> Option<&str> {
        self.session.tokens.access_token.as_deref()
    }
}

/// What the layer derives from a session when it enters the session cache
/// and reuses on every request of that session: the effective roles, and
/// the identity headers. Kept by [`crate::Sessions`].
pub struct UserView {
    /// The user's id, for the response's [`UserId`] (shared, not copied
    /// per request).
    pub(crate) id: Arc<str>,
    pub(crate) roles: Arc<[String]>,
    /// The identity headers for the app and for `/auth/check`.
    pub(crate) headers: crate::headers::IdentityHeaders,
}

impl UserView {
    /// Derives the view of `session` under `policy`.
    pub(crate) fn of(
        session: &Session,
        policy: &aadgate_core::Policy,
        families: aadgate_core::config::HeaderFamilies,
    ) -> Self {
        let roles = policy.effective_roles(&session.identity.roles);
        Self {
            id: session.identity.user_id().into(),
            headers: crate::headers::IdentityHeaders::new(&session.identity, &roles, families),
            roles: roles.into(),
        }
    }
}

impl aadgate_core::session::CachedView for UserView {
    fn heap_bytes(&self) -> usize {
        // Each allocation is counted with 16 bytes of the allocator's own.
        self.id.len()
            + 16
            + self.roles.iter().map(|r| r.len() + 24 + 16).sum::<usize>()
            + 16
            + self.headers.heap_bytes()
    }
}

impl std::fmt::Debug for UserView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserView")
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl crate::Auth {
    /// The signed-in user of a request (the first session cookie that names a
    /// live session), `None`, or an error when a session cookie could only be
    /// checked in a store that cannot be read.
    pub(crate) async fn current_user(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<User>, StoreError> {
        let inner = &self.inner;
        let mut failure = None;
        for value in crate::cookies::cookie_values(headers, inner.cookies.session) {
            let (mut session, mut view) = match inner.store.get_with_view(value).await {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(e) => {
                    failure = Some(e);
                    continue;
                }
            };
            let mut cookie: Option<Arc<str>> = None;
            if let Some(every) = inner.settings.revalidate {
                let every = every.as_secs() as i64;
                if self.clock().now() - session.checked_at >= every {
                    let c: Arc<str> = value.into();
                    let Some(renewed) = self.revalidate(&c, every).await else {
                        continue;
                    };
                    (session, view) = renewed;
                    cookie = Some(c);
                }
            }
            return Ok(Some(User {
                session,
                view,
                cookie: cookie.unwrap_or_else(|| value.into()),
                bearer: None,
            }));
        }
        failure.map_or(Ok(None), Err)
    }
}

/// The signed-in user's id (`oid`, else `sub`), in the extensions of the
/// response to a request the layer admitted (for an access log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(pub Arc<str>);

/// Rejection when no user is signed in.
#[derive(Debug, Clone, Copy)]
pub struct NotSignedIn;

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        crate::answers::login_required(None, None, false)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<User>().cloned().ok_or(NotSignedIn)
    }
}

/// Extracts the user when signed in, `None` otherwise (for public pages).
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<User>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(parts.extensions.get::<User>().cloned()))
    }
}

/// A valid access token for the signed-in user, refreshed with the refresh
/// token when it is about to expire (one refresh per session however many
/// requests need it at once). Use it for downstream calls such as Microsoft
/// Graph:
///
/// ```
/// use aadgate::AccessToken;
/// async fn profile(token: AccessToken) -> String {
///     // reqwest::Client::new().get("https://graph.microsoft.com/v1.0/me").bearer_auth(token.secret())
///     format!("{} characters", token.secret().len())
/// }
/// ```
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// The bearer token. Do not log it.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = parts.extensions.get::<User>().cloned().ok_or(NotSignedIn)?;
        let auth = parts
            .extensions
            .get::<crate::Auth>()
            .cloned()
            .ok_or(NotSignedIn)?;
        auth.access_token(&user)
            .await
            .map(AccessToken)
            .ok_or(NotSignedIn)
    }
}
