//! A configuration checked and resolved: the library's [`Settings`] and the
//! proxy's [`ProxySettings`], kept apart so each reads only its own.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use crate::policy::Policy;
use crate::session::StoreKind;

/// Which provider, resolved from `[oidc]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// Microsoft Entra ID (or the dev IdP speaking its dialect).
    Entra {
        /// The tenant as configured.
        tenant: String,
        /// `true` for `common`/`organizations`: issuer is a template.
        multi_tenant: bool,
    },
    /// Any other OpenID provider.
    Generic,
}

/// What the library needs, checked and resolved: the provider, the
/// sessions, the rules. Its `Debug` output leaves the secrets out.
#[derive(Clone)]
pub struct Settings {
    /// External URL, without trailing slash.
    pub public_url: Url,
    /// `public_url` + `/auth/callback`.
    pub redirect_uri: Url,
    /// Where the provider returns after sign-out.
    pub post_logout_redirect_uri: Url,
    /// Networks of the reverse proxies whose `X-Forwarded-*` headers are
    /// believed, for the client's address (the sign-in rate limit, the
    /// proxy's forwarding headers) and the scheme and host it asked for.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether to pass the access token upstream.
    pub pass_access_token: bool,
    /// Issuer URL used for discovery (for multi-tenant Entra: the `organizations`/`common` authority).
    pub issuer: Url,
    /// Provider flavour.
    pub provider: ProviderKind,
    /// Client ID.
    pub client_id: String,
    /// How the app authenticates at the token endpoint.
    pub client_auth: crate::client_auth::ClientAuth,
    /// Scopes, `openid` first.
    pub scopes: Vec<String>,
    /// Allowed tenants (multi-tenant Entra only); `["*"]` = any.
    pub allowed_tenants: Vec<String>,
    /// Audiences that name this app's API in bearer tokens: the client ID,
    /// `api://<client id>` and `oidc.audiences`.
    pub audiences: Vec<String>,
    /// Microsoft Graph's base URL (`None`: no Graph, a provider other than
    /// Entra ID without `oidc.graph_url`).
    pub graph_url: Option<Url>,
    /// Whether group overage is resolved through Microsoft Graph.
    pub resolve_group_overage: bool,
    /// Whether Entra v1.0 access tokens are accepted as bearer tokens.
    pub accept_v1_tokens: bool,
    /// Explicitly allowed algorithms, if configured.
    pub allowed_algorithms: Option<Vec<crate::token::Algorithm>>,
    /// Clock skew.
    pub clock_skew: Duration,
    /// 32+ bytes of secret key material.
    pub secret: Vec<u8>,
    /// Where sessions live.
    pub store: StoreKind,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Bytes the session cache may use (`session.cache_mib`).
    pub cache_budget: u64,
    /// Absolute lifetime.
    pub lifetime: Duration,
    /// Authorization policy.
    pub policy: Policy,
    /// Dash callback rules.
    pub dash_callbacks: crate::dash::CallbackRules,
    /// Sign-ins one client address may start per minute (0: no limit).
    pub signin_per_minute: u32,
    /// How often a session's roles and groups are re-derived from the
    /// provider (`None`: never).
    pub revalidate: Option<Duration>,
    /// How long a session outlives a provider that cannot be reached for revalidation.
    pub revalidate_grace: Duration,
    /// `public_url`'s host and `forward_auth.hosts`: what `/auth/check`
    /// decides for and where sign-in may return.
    pub hosts: crate::hosts::ProtectedHosts,
    /// `session.cookie_domain`, lower-case, without a leading dot.
    pub cookie_domain: Option<String>,
    /// `identity_headers`: which header families the app receives.
    pub identity_headers: HeaderFamilies,
}

/// `identity_headers`: the families of identity headers sent to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFamilies {
    /// `X-Forwarded-User`, `-Email`, `-Preferred-Username`, `-Name`, `-Roles`, `-Groups`.
    pub aadgate: bool,
    /// `X-MS-CLIENT-PRINCIPAL`, `-ID`, `-NAME`, `-IDP`.
    pub app_service: bool,
    /// `X-Auth-Request-User`, `-Email`, `-Preferred-Username`, `-Groups`, `-Roles`.
    pub oauth2_proxy: bool,
}

impl Default for HeaderFamilies {
    fn default() -> Self {
        Self {
            aadgate: true,
            app_service: true,
            oauth2_proxy: false,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("public_url", &self.public_url.as_str())
            .field("issuer", &self.issuer.as_str())
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_auth", &self.client_auth)
            .field("secret", &"<redacted>")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// What only `aadgate proxy` reads: where it listens, the app it forwards
/// to, its threads and its connection limits. The library never sees these.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served (`GET /metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The app requests are forwarded to (plain `http://host:port`).
    pub upstream: Url,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Inject the session script into HTML responses (`dash.session_script`).
    pub session_script: bool,
    /// Timeouts and caps on connections and request bodies.
    pub limits: crate::limits::Limits,
    /// How the log is written.
    pub log_format: LogFormat,
    /// The access log.
    pub access_log: AccessLog,
}

/// `access_log` and `access_log_query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLog {
    /// A line per request.
    pub enabled: bool,
    /// With the query string.
    pub query: bool,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: true,
            query: false,
        }
    }
}

/// `log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}
