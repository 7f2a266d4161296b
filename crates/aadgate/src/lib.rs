//! # aadgate
//!
//! Microsoft Entra ID (Azure AD) and OpenID Connect sign-in for tower/axum
//! apps: sign-in routes, a layer that enforces sign-in and role rules, and a
//! [`User`] extractor. The `aadgate` proxy is this crate in front of a
//! forwarding handler; there is no second implementation.
//!
//! ```no_run
//! use aadgate::{Auth, User};
//! use aadgate_core::Config;
//! use axum::{routing::get, Router};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("aadgate.toml".as_ref())?;
//! let auth = Auth::from_config(&config)?;
//! let app: Router = Router::new()
//!     .route("/", get(|user: User| async move { format!("Hello {}", user.name()) }))
//!     .merge(auth.routes())
//!     .layer(auth.layer());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4180").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! The layer decides every request with the `[authz]` roles and `[[route]]`
//! rules of the configuration; `/auth/*`, `/.auth/*` and `/healthz` are always
//! reachable so that sign-in can happen.

#![warn(missing_docs)]

mod cookies;
pub mod headers;
mod layer;
pub mod pages;
mod routes;
mod user;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aadgate_core::config::Settings;
use aadgate_core::crypto::Sealer;
use aadgate_core::{Config, ConfigError, Provider, SessionStore};

pub use aadgate_core;
pub use layer::{AuthLayer, AuthService};
pub use user::{MaybeUser, NotSignedIn, User};

/// Errors building an [`Auth`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The session store could not be opened.
    #[error(
        "session.store: {0}. Fix: check the directory exists and is writable, and that no other aadgate process uses it"
    )]
    Store(#[from] aadgate_core::session::StoreError),
}

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
    pub(crate) store: SessionStore,
    pub(crate) pending_sealer: Sealer,
    pub(crate) cookies: cookies::CookieNames,
    /// Hashes of `state` values already used, with their expiry (single use
    /// even if a pending-login cookie is replayed).
    pub(crate) used_states: Mutex<HashMap<[u8; 32], i64>>,
    /// One refresh in flight per session.
    pub(crate) refreshing: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
}

impl Auth {
    /// Validates the configuration and opens the session store. Nothing is
    /// fetched from the provider yet: discovery happens at the first sign-in.
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        Self::from_settings(config.validate()?)
    }

    /// Builds from already validated settings.
    pub fn from_settings(settings: Settings) -> Result<Self, AuthError> {
        let store = SessionStore::open(
            &settings.store,
            &settings.secret,
            settings.idle_timeout,
            settings.lifetime,
        )?;
        let provider = Provider::new(&settings);
        let cookies = cookies::CookieNames::for_url(&settings.public_url);
        Ok(Self {
            inner: Arc::new(Inner {
                pending_sealer: Sealer::new(&settings.secret, "pending login"),
                provider,
                store,
                cookies,
                used_states: Mutex::new(HashMap::new()),
                refreshing: Mutex::new(HashMap::new()),
                settings,
            }),
        })
    }

    /// The validated settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The session store (for maintenance such as purging).
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.store
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    /// Names of aadgate's own cookies (never forwarded to an app).
    pub fn cookie_names(&self) -> [&'static str; 2] {
        [self.inner.cookies.session, self.inner.cookies.pending]
    }

    /// A valid access token for the user's session: the stored one, or, when it
    /// expires within a minute, a new one from the refresh token. Concurrent
    /// calls for one session make one refresh. `None` when the session has no
    /// usable access token any more (the user must sign in again).
    pub async fn access_token(&self, user: &User) -> Option<String> {
        let inner = &self.inner;
        let fresh = |t: &aadgate_core::Tokens| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            t.access_token
                .clone()
                .filter(|_| t.access_expires_at.is_none_or(|e| e > now + 60))
        };
        if let Some(t) = fresh(&user.session.tokens) {
            return Some(t);
        }
        let lock = inner
            .refreshing
            .lock()
            .expect("refresh map lock")
            .entry(user.cookie.clone())
            .or_default()
            .clone();
        let _guard = lock.lock().await;
        let result = self.refresh_locked(user, fresh).await;
        inner
            .refreshing
            .lock()
            .expect("refresh map lock")
            .remove(&user.cookie);
        result
    }

    async fn refresh_locked(
        &self,
        user: &User,
        fresh: impl Fn(&aadgate_core::Tokens) -> Option<String>,
    ) -> Option<String> {
        let inner = &self.inner;
        // Another request may have refreshed while we waited.
        let session = inner.store.get(&user.cookie).await?;
        if let Some(t) = fresh(&session.tokens) {
            return Some(t);
        }
        let rt = session.tokens.refresh_token.as_deref()?;
        let scopes = inner.settings.scopes.join(" ");
        let resp = match inner.provider.refresh(rt, &scopes).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(user = %user.id(), error = %e, "token refresh failed");
                return None;
            }
        };
        if let Some(id_token) = &resp.id_token {
            match inner.provider.validate_id_token(id_token, None).await {
                Ok(c) if c.sub == session.identity.sub && c.iss == session.identity.issuer => {}
                Ok(_) => {
                    tracing::warn!(user = %user.id(), "refreshed ID token changed identity; session ended");
                    inner.store.remove(&user.cookie).await;
                    return None;
                }
                Err(e) => {
                    tracing::warn!(user = %user.id(), error = %e, "refreshed ID token rejected");
                    return None;
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let tokens = aadgate_core::Tokens {
            id_token: resp
                .id_token
                .clone()
                .or_else(|| session.tokens.id_token.clone()),
            access_token: Some(resp.access_token.clone()),
            access_expires_at: resp.expires_in.map(|s| now + s as i64),
            refresh_token: resp
                .refresh_token
                .clone()
                .or_else(|| session.tokens.refresh_token.clone()),
        };
        if let Err(e) = inner.store.update_tokens(&user.cookie, tokens).await {
            tracing::warn!(error = %e, "could not store refreshed tokens");
        }
        Some(resp.access_token)
    }

    /// The layer that enforces sign-in and the configured role rules.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer { auth: self.clone() }
    }

    /// The sign-in routes: `/auth/login`, `/auth/callback`, `/auth/logout`,
    /// `/auth/signed-out`, `/auth/me`, App Service's `/.auth/me`,
    /// `/.auth/login/aad`, `/.auth/logout`, and `/healthz`.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        routes::router(self.clone())
    }
}
