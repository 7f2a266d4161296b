//! A local OpenID Connect identity provider that imitates Microsoft Entra ID's
//! v2 endpoints, so an Entra ID relying party can be developed, demonstrated
//! and tested without an Azure tenant.
//!
//! [`DevIdp`] builds an [`axum::Router`]; it does not bind sockets. Serve the
//! router at the base URL you gave [`DevIdp::new`]:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use aadgate_dev_idp::{DevIdp, DevIdpConfig};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = url::Url::parse(&format!("http://{}", listener.local_addr()?))?;
//! let idp = DevIdp::new(DevIdpConfig::default(), base)?;
//! println!("issuer: {}", idp.issuer());
//! axum::serve(listener, idp.router()).await?;
//! # Ok(()) }
//! ```
//!
//! # Endpoints (`{t}` is the tenant id)
//!
//! | Path | Purpose |
//! |---|---|
//! | `GET /` | Home page: tenant, client, discovery URL, users |
//! | `GET /{t}/v2.0/.well-known/openid-configuration` | OpenID Connect discovery |
//! | `GET /{t}/discovery/v2.0/keys` | JWKS (signing key and the previous one) |
//! | `GET`, `POST /{t}/oauth2/v2.0/authorize` | Authorization code flow with PKCE S256; account picker |
//! | `POST /{t}/oauth2/v2.0/token` | `authorization_code`, `refresh_token` and `client_credentials` grants |
//! | `GET`, `POST /{t}/oauth2/v2.0/logout` | RP-initiated logout |
//! | `GET`, `POST /oidc/userinfo` | OpenID Connect userinfo (bearer access token) |
//! | `GET /v1.0/me` | Microsoft Graph user resource (bearer access token) |
//! | `POST /v1.0/me/getMemberObjects`, `POST /v1.0/users/{id}/getMemberObjects` | Graph group membership (for groups overage) |
//! | `POST /_dev/rotate-keys` | Rotate the signing key; returns `{"kid": ...}` |
//!
//! # Behaviour worth knowing
//!
//! * `login_hint=<username or e-mail>` signs that user in at once (no page);
//!   without it the authorize endpoint shows an account picker.
//! * `login_hint=error:<AADSTS number>` (e.g. `error:50105`) redirects back
//!   with that Entra error, to exercise a relying party's error handling.
//! * As in Entra ID, `name`, `preferred_username` and `oid` need the
//!   `profile` scope, `email` needs the `email` scope, `roles` is omitted
//!   when no role is assigned, and a refresh token is issued only for
//!   `offline_access`.
//! * Access tokens look like Microsoft Graph tokens (a `nonce` in the JOSE
//!   header that makes ordinary signature validation fail); only this IdP's
//!   Graph and userinfo endpoints accept them.
//! * `grant_type=client_credentials` with `scope=<client id>/.default` (or
//!   `api://<client id>/.default`) returns an application token (`idtyp:
//!   app`, `aud` the client id) signed like ID tokens; a wrong secret is
//!   `401 invalid_client` AADSTS7000215 and an unknown client id
//!   AADSTS700016, as in Entra ID.
//! * All state (codes, tokens, sessions) is in memory and bounded.

#![forbid(unsafe_code)]

mod aadsts;
mod assertion;
mod authorize;
mod browser_session;
mod clock;
pub mod config;
mod discovery;
mod graph;
mod html;
mod ids;
mod index;
mod keys;
mod logout;
mod params;
mod picker;
mod response_mode;
mod store;
mod token;
mod tokens;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use url::Url;

pub use config::{ConfigError, DevClientApp, DevIdpConfig, DevUser};

use crate::aadsts::AadError;
use crate::keys::{KeySet, SigningKey};
use crate::store::Store;

/// A running dev identity provider: configuration, signing keys and the
/// in-memory state of codes, tokens and sessions.
///
/// Cheap to clone (the state is shared behind an [`Arc`]).
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
}

struct Inner {
    config: DevIdpConfig,
    /// The base URL without a trailing slash.
    base: String,
    keys: KeySet,
    store: Mutex<Store>,
    /// Changes made to users since start-up (by oid), as an administrator
    /// makes them in Entra ID: role assignments and blocked sign-in.
    directory: Mutex<std::collections::HashMap<String, UserChange>>,
}

#[derive(Debug, Clone, Default)]
struct UserChange {
    roles: Option<Vec<String>>,
    disabled: bool,
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.issuer())
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

impl DevIdp {
    /// Creates a dev IdP with a freshly generated RSA-2048 signing key.
    ///
    /// `base` is the URL the router is served at, e.g.
    /// `http://127.0.0.1:43123`; every URL the IdP publishes (issuer,
    /// endpoints) starts with it. A path is allowed if the router is nested
    /// under it; a trailing slash is ignored.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] if the configuration does not validate or
    /// `base` is not a plain `http`/`https` URL; [`ConfigError::Crypto`] if
    /// key generation fails.
    pub fn new(config: DevIdpConfig, base: Url) -> Result<Self, ConfigError> {
        config.validate()?;
        if !matches!(base.scheme(), "http" | "https")
            || !base.has_host()
            || base.query().is_some()
            || base.fragment().is_some()
            || !base.username().is_empty()
            || base.password().is_some()
        {
            return Err(ConfigError::Invalid {
                key: "base".to_owned(),
                message: format!(
                    "{base} must be a plain http(s) URL without query, fragment or credentials, e.g. http://127.0.0.1:4181"
                ),
            });
        }
        let mut base = String::from(base);
        while base.ends_with('/') {
            base.pop();
        }
        let keys = KeySet::generate().map_err(|e| ConfigError::Crypto(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                base,
                config,
                keys,
                store: Mutex::new(Store::default()),
                directory: Mutex::new(std::collections::HashMap::new()),
            }),
        })
    }

    /// The axum router serving every endpoint (see the crate documentation).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(index::home))
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery::openid_configuration),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(discovery::jwks))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .route(
                "/{tenant}/oauth2/v2.0/token",
                post(token::token).get(token::wrong_method),
            )
            .route(
                "/{tenant}/oauth2/v2.0/logout",
                get(logout::logout_get).post(logout::logout_post),
            )
            .route("/oidc/userinfo", get(graph::userinfo).post(graph::userinfo))
            .route("/v1.0/me", get(graph::me))
            .route("/v1.0/me/getMemberObjects", post(graph::my_member_objects))
            .route(
                "/v1.0/users/{id}/getMemberObjects",
                post(graph::user_member_objects),
            )
            .route("/_dev/rotate-keys", post(rotate_keys_endpoint))
            .with_state(self.clone())
    }

    /// The issuer: `{base}/{tenant_id}/v2.0`.
    pub fn issuer(&self) -> String {
        format!("{}/{}/v2.0", self.inner.base, self.inner.config.tenant_id)
    }

    /// The discovery URL: `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    /// The base URL the router is served at, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    /// The configuration this IdP was created with.
    pub fn config(&self) -> &DevIdpConfig {
        &self.inner.config
    }

    /// Generates a new signing key and signs new tokens with it; the
    /// previous key stays in the JWKS (as during an Entra ID key rollover)
    /// so tokens it signed still verify. Returns the new key's `kid`.
    ///
    /// This generates an RSA key synchronously (tens of milliseconds; call
    /// it from `spawn_blocking` on a busy runtime). Should key generation
    /// ever fail, the error is logged and the current key is kept; its `kid`
    /// is returned.
    pub fn rotate_keys(&self) -> String {
        match SigningKey::generate() {
            Ok(key) => {
                let kid = key.kid().to_owned();
                self.inner.keys.push(key);
                tracing::info!(%kid, "dev IdP rotated its signing key");
                kid
            }
            Err(error) => {
                tracing::error!(%error, "dev IdP could not generate a new signing key");
                self.inner.keys.current().kid().to_owned()
            }
        }
    }

    /// Replaces a user's app-role assignments, as an administrator does under
    /// *Enterprise applications → Users and groups*. Tokens issued from now
    /// on (sign-ins and refreshes) carry the new roles; tokens already
    /// issued keep theirs. Returns `false` for an unknown user.
    pub fn assign_roles(&self, username: &str, roles: &[&str]) -> bool {
        self.change_user(username, |c| {
            c.roles = Some(roles.iter().map(|r| (*r).to_owned()).collect());
        })
    }

    /// Blocks a user's sign-in (*Users → Edit properties → Account enabled:
    /// off*): the token endpoint then refuses their codes and refresh tokens
    /// with `invalid_grant` AADSTS50057, as Entra ID does. Returns `false`
    /// for an unknown user.
    pub fn disable_user(&self, username: &str) -> bool {
        self.change_user(username, |c| c.disabled = true)
    }

    fn change_user(&self, username: &str, change: impl FnOnce(&mut UserChange)) -> bool {
        let Some(user) = self.inner.config.find_user(username) else {
            return false;
        };
        let mut dir = self
            .inner
            .directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        change(dir.entry(user.oid.clone()).or_default());
        true
    }

    /// The user with this oid as the directory has them now, for the token
    /// endpoint: `Err` when deleted or disabled.
    pub(crate) fn current_user(&self, oid: &str) -> Result<config::DevUser, AadError> {
        let Some(user) = self.inner.config.find_user_by_oid(oid) else {
            return Err(AadError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_grant",
                50_034,
                "The user account does not exist in the directory.",
            ));
        };
        let mut user = user.clone();
        let change = self
            .inner
            .directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(oid)
            .cloned()
            .unwrap_or_default();
        if change.disabled {
            return Err(AadError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_grant",
                50_057,
                "The user account is disabled.",
            ));
        }
        if let Some(roles) = change.roles {
            user.roles = roles;
        }
        Ok(user)
    }

    /// `{base}/{tenant_id}/{path}`.
    pub(crate) fn tenant_url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.inner.base, self.inner.config.tenant_id)
    }

    pub(crate) fn keys(&self) -> &KeySet {
        &self.inner.keys
    }

    /// Locks the in-memory state. Never hold the guard across an `.await`.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts the configured tenant id (ignoring case) and nothing else.
    pub(crate) fn check_tenant(&self, tenant: &str) -> Result<(), AadError> {
        if tenant.eq_ignore_ascii_case(&self.inner.config.tenant_id) {
            Ok(())
        } else {
            Err(AadError::tenant_not_found(tenant))
        }
    }
}

/// `POST /_dev/rotate-keys`.
async fn rotate_keys_endpoint(State(idp): State<DevIdp>) -> Response {
    // RSA key generation takes a while; keep it off the async workers.
    match tokio::task::spawn_blocking(move || idp.rotate_keys()).await {
        Ok(kid) => axum::Json(serde_json::json!({ "kid": kid })).into_response(),
        Err(error) => {
            tracing::error!(%error, "dev IdP key rotation task failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
