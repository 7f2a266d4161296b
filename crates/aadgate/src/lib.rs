//! # aadgate
//!
//! Microsoft Entra ID (Azure AD) and OpenID Connect sign-in for axum/tower
//! apps, with app roles: sign-in routes, a layer that requires sign-in, a
//! layer that requires a role, and extractors for the user and their access
//! token. The `aadgate` reverse proxy is this crate in front of a forwarding
//! handler; there is no second implementation of sign-in.
//!
//! ## A guided tour
//!
//! Configuration uses the same TOML sections as `aadgate proxy`
//! ([`aadgate_core::Config`]), so a team can move between the proxy and the
//! library without relearning anything:
//!
//! ```toml
//! public_url = "https://dash.contoso.com"
//! [oidc]
//! tenant = "contoso.onmicrosoft.com"
//! client_id = "..."                       # secret: AADGATE_OIDC_CLIENT_SECRET
//! [session]
//! store = "file:/var/lib/myapp/sessions"  # secret: AADGATE_SESSION_SECRET
//! [authz]
//! roles = ["App.Read", "App.Write", "App.Admin"]
//! ```
//!
//! An app adds sign-in with [`Auth::routes`], requires it with
//! [`Auth::require_login`], guards routes with [`Auth::require_role`], and
//! reads the user with the [`User`] extractor. Here against the built-in dev
//! identity provider, so the example runs as it is:
//!
//! ```
//! use aadgate::{AccessToken, Auth, MaybeUser, User};
//! use aadgate_core::Config;
//! use axum::{Router, routing::get};
//!
//! async fn home(user: User) -> String {
//!     format!("Hello {}, you hold {:?}", user.name(), user.roles())
//! }
//! async fn admin(user: User) -> String {
//!     format!("Welcome to the admin page, {}", user.name())
//! }
//! async fn graph(token: AccessToken) -> String {
//!     // e.g. GET https://graph.microsoft.com/v1.0/me with token.secret() as bearer
//!     format!("token of {} characters", token.secret().len())
//! }
//! async fn landing(user: MaybeUser) -> String {
//!     match user.0 {
//!         Some(u) => format!("signed in as {}", u.name()),
//!         None => "not signed in".to_owned(),
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let idp_url = format!("http://{}", idp_listener.local_addr()?);
//! # let app_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let app_url = format!("http://{}", app_listener.local_addr()?);
//! # let mut idp_config = aadgate_dev_idp::DevIdpConfig::default();
//! # idp_config.redirect_uris = vec![format!("{app_url}/auth/callback")];
//! # let idp = aadgate_dev_idp::DevIdp::new(idp_config, idp_url.parse()?)?;
//! # let idp_router = idp.router();
//! # tokio::spawn(async move { axum::serve(idp_listener, idp_router).await });
//! let config = Config::from_toml_and_env(
//!     &format!(
//!         r#"
//!         public_url = "{app_url}"
//!         [oidc]
//!         tenant = "{tenant}"
//!         issuer = "{issuer}"     # the dev IdP; for Entra ID, tenant alone is enough
//!         client_id = "{client_id}"
//!         [session]
//!         store = "memory"
//!         [authz]
//!         roles = ["App.Read", "App.Write", "App.Admin"]
//!         [[route]]
//!         path = "/welcome"
//!         public = true
//!         "#,
//!         tenant = idp.config().tenant_id,
//!         issuer = idp.issuer(),
//!         client_id = idp.config().client_id,
//!     ),
//!     // In production: std::env::vars()
//!     [
//!         ("AADGATE_OIDC_CLIENT_SECRET", idp.config().client_secret.as_str()),
//!         ("AADGATE_SESSION_SECRET", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
//!     ],
//! )?;
//! let auth = Auth::from_config(&config)?;
//!
//! let app = Router::new()
//!     .route("/", get(home))
//!     .route("/admin", get(admin).layer(auth.require_role("App.Admin")))
//!     .route("/graph", get(graph))
//!     .route("/welcome", get(landing))
//!     .merge(auth.routes())
//!     .layer(auth.require_login());
//! # tokio::spawn(async move { axum::serve(app_listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await });
//!
//! // A browser signs in as the dev IdP's reader (Rita Reader, role App.Read):
//! let browser = reqwest::Client::builder().cookie_store(true).build()?;
//! let page = browser.get(format!("{app_url}/auth/login?rd=/&login_hint=reader")).send().await?.text().await?;
//! assert_eq!(page, r#"Hello Rita Reader, you hold ["App.Read"]"#);
//! let admin = browser.get(format!("{app_url}/admin")).header("accept", "application/json").send().await?;
//! assert_eq!(admin.status(), 403);
//! # assert!(browser.get(format!("{app_url}/graph")).send().await?.text().await?.starts_with("token of"));
//! # assert_eq!(reqwest::get(format!("{app_url}/welcome")).await?.text().await?, "not signed in");
//! # Ok(()) }
//! ```
//!
//! ## What each piece does
//!
//! - [`Auth::routes`]: `/auth/login?rd=`, `/auth/callback`, `/auth/logout`,
//!   `/auth/me`, Azure App Service's `/.auth/*` aliases, `/healthz`.
//! - [`Auth::require_login`]: every request needs a session and, when
//!   `[authz] roles` is set, at least the lowest role (a user with none is
//!   refused with 403); `[[route]]` rules adjust that per path. Browser
//!   navigations without a session are redirected to sign-in; API calls get
//!   `401 {"error":"login_required","login_url":...}`. Client-supplied
//!   identity headers are removed from every request.
//! - [`Auth::require_role`]: at least this role, higher roles included.
//! - [`User`], [`MaybeUser`]: who is signed in. [`AccessToken`]: a valid
//!   access token for downstream calls, refreshed when near expiry.
//!
//! ## Errors
//!
//! [`AuthError`] is returned at start-up and names the configuration key to
//! fix. [`SignInError`] says precisely why a sign-in failed; that text goes to
//! the log with a correlation id, while the browser gets a fixed message
//! ([`SignInError::public_message`]) and the id.

#![deny(missing_docs)]

mod answers;
mod bearer;
mod cookies;
mod error;
mod forward_auth;
#[cfg(feature = "graph")]
pub mod graph;
mod groups;
pub mod headers;
mod layer;
pub mod pages;
mod refresh;
mod refusal;
mod role;
mod routes;
mod throttle;
mod user;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aadgate_core::config::Settings;
use aadgate_core::crypto::Sealer;
use aadgate_core::metrics::Metrics;
use aadgate_core::{Config, Provider, SessionStore};

pub use aadgate_core;
pub use error::{AuthError, SignInError};
pub use layer::{AuthLayer, AuthService, is_navigation, is_own_path};
pub use refresh::AppTokens;
pub use refusal::{CorrelationId, Refusal};
pub use role::{RequireRole, RequireRoleLayer};
pub use throttle::client_address;
pub use user::{AccessToken, CallerKind, MaybeUser, NotSignedIn, User, UserId, UserView};

/// The session store as the library keeps it: each cached session with its
/// [`UserView`].
pub type Sessions = SessionStore<UserView>;

/// Sign-in for an app: configuration, provider, sessions. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("public_url", &self.inner.settings.public_url.as_str())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) settings: Settings,
    pub(crate) provider: Provider,
    pub(crate) store: Sessions,
    pub(crate) pending_sealer: Sealer,
    pub(crate) cookies: cookies::CookieNames,
    /// Hashes of `state` values already used, with their expiry (single use
    /// even if a pending-login cookie is replayed).
    /// One refresh in flight per session.
    pub(crate) refreshing: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    /// When a session's last refresh failed (bounded: cleared on success and sweep).
    pub(crate) refresh_failed: Mutex<HashMap<Arc<str>, i64>>,
    /// Sign-in steps per client address.
    pub(crate) signin_throttle: throttle::SignInThrottle,
    /// Set when the process is shutting down: `/readyz` fails.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// Bearer tokens already validated, by the SHA-256 of the token.
    pub(crate) bearer_cache: bearer::ValidatedTokens,
    /// Where sign-ins, refreshes and revalidations are counted (the
    /// provider and the session store count into the same).
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl Auth {
    /// Validates the configuration and opens the session store. Nothing is
    /// fetched from the provider yet: discovery happens at the first sign-in.
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        Self::from_settings(config.validate()?)
    }

    /// Builds from already validated settings.
    pub fn from_settings(settings: Settings) -> Result<Self, AuthError> {
        Self::from_settings_with_metrics(settings, None)
    }

    /// Builds from already validated settings, counting sign-ins, token
    /// refreshes, revalidations, requests to the provider and session-store
    /// operations into `metrics` (`None`: nothing is counted, as
    /// [`Auth::from_settings`]). Serve them with [`Auth::encode_metrics`].
    pub fn from_settings_with_metrics(
        settings: Settings,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self, AuthError> {
        let mut store = SessionStore::open(
            &settings.store,
            &settings.secret,
            settings.idle_timeout,
            settings.lifetime,
        )?;
        let mut provider = Provider::new(&settings);
        if let Some(m) = &metrics {
            store = store.with_metrics(m.clone());
            provider = provider.with_metrics(m.clone());
        }
        let store = store
            .with_cache_budget(settings.cache_budget)
            .keep_access_tokens_in_memory(settings.pass_access_token)
            .with_clock(aadgate_core::clock::Clock::system())
            .with_view({
                let policy = settings.policy.clone();
                let families = settings.identity_headers;
                move |session| UserView::of(session, &policy, families)
            });
        let cookies =
            cookies::CookieNames::new(&settings.public_url, settings.cookie_domain.as_deref());
        Ok(Self {
            inner: Arc::new(Inner {
                pending_sealer: Sealer::new(&settings.secret, "pending login"),
                provider,
                store,
                cookies,
                refreshing: Mutex::new(HashMap::new()),
                refresh_failed: Mutex::new(HashMap::new()),
                signin_throttle: throttle::SignInThrottle::new(settings.signin_per_minute),
                draining: std::sync::atomic::AtomicBool::new(false),
                bearer_cache: bearer::ValidatedTokens::new(),
                metrics,
                settings,
            }),
        })
    }

    /// Marks the process as shutting down: `/readyz` answers 503 from now
    /// on, so load balancers stop sending new requests while open ones
    /// finish. The proxy calls it on SIGTERM; an app using the library can
    /// call it from its own shutdown signal.
    pub fn drain(&self) {
        self.inner
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The metrics this `Auth` counts into, if any
    /// ([`Auth::from_settings_with_metrics`]).
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.inner.metrics.as_ref()
    }

    /// The metrics in the OpenMetrics text format
    /// ([`aadgate_core::metrics::CONTENT_TYPE`]), with
    /// `aadgate_active_sessions` and `aadgate_session_cache_bytes` read from
    /// the session store now; `None`
    /// without metrics. What `aadgate proxy` answers on `metrics_listen`'s
    /// `/metrics`. Counting the live sessions walks the session cache, off
    /// the async workers.
    pub async fn encode_metrics(&self) -> Option<String> {
        let m = self.inner.metrics.as_ref()?;
        m.set_active_sessions(self.inner.store.live_in_memory().await);
        m.set_session_cache_bytes(self.inner.store.cached_bytes());
        Some(m.encode())
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The session store (for maintenance such as purging).
    pub fn sessions(&self) -> &Sessions {
        &self.inner.store
    }

    /// The clock sessions, sign-ins and revalidation are timed with (the
    /// session store's). Tests move it forward to see expiry without waiting.
    pub fn clock(&self) -> &aadgate_core::clock::Clock {
        self.inner.store.clock()
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    /// Removes from an app's response the `Set-Cookie` headers that would set
    /// one of aadgate's cookies (the request side is done by the layer).
    pub fn strip_own_set_cookies(&self, headers: &mut axum::http::HeaderMap) {
        cookies::strip_own_set_cookies(headers, &self.cookie_names());
    }

    /// Names of aadgate's own cookies (never forwarded to an app).
    pub fn cookie_names(&self) -> [&'static str; 2] {
        [self.inner.cookies.session, self.inner.cookies.pending]
    }

    /// The layer that requires sign-in and applies the configured role rules
    /// (`[authz] roles`: without a matching `[[route]]`, the lowest role is
    /// needed; `public = true` routes need nothing). Signed-in requests get a
    /// [`User`] in their extensions. Browser navigations without a session are
    /// sent to sign-in; other requests get `401` JSON with a `login_url`.
    pub fn require_login(&self) -> AuthLayer {
        AuthLayer { auth: self.clone() }
    }

    /// A layer that requires at least `role` (or a higher one) of
    /// `[authz] roles`; put it on routes inside [`Auth::require_login`].
    ///
    /// # Panics
    ///
    /// If `role` is not in `[authz] roles` — a programming error that would
    /// otherwise silently lock everyone out (or in).
    pub fn require_role(&self, role: &str) -> RequireRoleLayer {
        let index = self
            .inner
            .settings
            .policy
            .roles()
            .iter()
            .position(|r| r == role)
            .unwrap_or_else(|| {
                panic!(
                    "require_role({role:?}): not in [authz] roles {:?}",
                    self.inner.settings.policy.roles()
                )
            });
        RequireRoleLayer {
            auth: self.clone(),
            needed: role::Needed::AtLeast(Arc::from(role), index),
        }
    }

    /// A layer that requires any one of `roles`: a role of `[authz] roles`
    /// directly or through a higher one, any other app role
    /// (`Reports.View`) directly. Put it on routes inside
    /// [`Auth::require_login`]. It narrows what `require_login` lets
    /// through: for users without the lowest role of `[authz] roles` to
    /// reach the route, give its path a `[[route]] roles = [...]` rule.
    ///
    /// ```no_run
    /// # async fn f(auth: aadgate::Auth) {
    /// let reports = axum::Router::<()>::new()
    ///     .route("/reports", axum::routing::get(|| async { "Q3" }))
    ///     .layer(auth.require_any_role(&["Reports.View", "App.Admin"]))
    ///     .layer(auth.require_login());
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// If `roles` is empty — a layer nobody could pass.
    pub fn require_any_role(&self, roles: &[&str]) -> RequireRoleLayer {
        assert!(
            !roles.is_empty(),
            "require_any_role(&[]): no role could pass"
        );
        RequireRoleLayer {
            auth: self.clone(),
            needed: role::Needed::AnyOf(roles.iter().map(|r| (*r).to_owned()).collect()),
        }
    }

    /// The sign-in routes: every path of [`aadgate_core::paths::OWN_PATHS`]
    /// (`/auth/login`, `/auth/callback`, `/auth/logout`, `/auth/signed-out`,
    /// `/auth/me`, `/auth/session.js`, App Service's `/.auth/me`,
    /// `/.auth/login/aad` and `/.auth/logout`, and `/healthz`).
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        routes::router(self.clone())
    }
}
