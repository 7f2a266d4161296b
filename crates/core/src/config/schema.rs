//! The configuration file's keys: plain serde structs whose doc comments
//! are the reference.

use serde::{Deserialize, Serialize};

use crate::dash::DashConfig;
use crate::limits::LimitsConfig;
use crate::policy::{AuthzConfig, RouteConfig};

/// The whole configuration of an aadgate proxy or of an app using the library.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the proxy listens on. Default `127.0.0.1:4180`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of a second listener serving Prometheus metrics as
    /// `GET /metrics` (OpenMetrics text), e.g. `127.0.0.1:9090`. Default:
    /// none, no metrics are kept. Bind it where only the scraper reaches it:
    /// it answers anyone who connects. `aadgate proxy` only.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// The URL users type to reach the app, as seen by their browser (scheme,
    /// host, port). The redirect URI registered at the identity provider is
    /// this plus `/auth/callback`. Required.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The app the proxy forwards to, e.g. `http://127.0.0.1:8050`: plain
    /// http, scheme, host and port only. Required by `aadgate proxy`; unused
    /// by the library.
    #[serde(default)]
    pub upstream: Option<String>,
    /// CIDRs of reverse proxies in front of aadgate whose `X-Forwarded-*`
    /// headers are believed. Empty: every client is untrusted.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Pass the user's access token to the app as `X-Forwarded-Access-Token`.
    /// Default `false`.
    #[serde(default)]
    pub pass_access_token: bool,
    /// Threads serving proxy connections, each with its own event loop and
    /// its own keep-alive connections to `upstream` (like nginx's
    /// `worker_processes`). Default: the number of CPUs the process may use
    /// (its CPU affinity and cgroup quota). Unused by the library.
    #[serde(default)]
    pub workers: Option<usize>,
    /// `text` (default: one readable line per event) or `json` (one JSON
    /// object per line, for log collectors). `aadgate proxy` only.
    #[serde(default)]
    pub log_format: Option<String>,
    /// One line per request in the log (method, path, status, duration,
    /// bytes, user id, correlation id, client, the app's status). Default
    /// `true`. `aadgate proxy` only.
    #[serde(default)]
    pub access_log: Option<bool>,
    /// Include the query string in the access log. Default `false`: query
    /// strings can carry codes, tokens and personal data.
    #[serde(default)]
    pub access_log_query: bool,
    /// On SIGTERM (or Ctrl-C) the proxy fails `/readyz`, stops accepting
    /// connections and gives open requests this long to finish, then exits
    /// 0. In seconds; default 30 (Kubernetes' default grace period).
    #[serde(default)]
    pub shutdown_timeout_secs: Option<u64>,
    /// Which families of identity headers the app receives, any of:
    /// `aadgate` (`X-Forwarded-User`, `-Email`, `-Preferred-Username`,
    /// `-Name`, `-Roles`, `-Groups`), `app-service` (`X-MS-CLIENT-PRINCIPAL`,
    /// `-ID`, `-NAME`, `-IDP`, as Azure App Service sends them) and
    /// `oauth2-proxy` (`X-Auth-Request-User`, `-Email`,
    /// `-Preferred-Username`, `-Groups`, `-Roles`). Default
    /// `["aadgate", "app-service"]`. Every family is always stripped from
    /// what clients send.
    #[serde(default)]
    pub identity_headers: Option<Vec<String>>,
    /// aadgate as the sign-in check of another reverse proxy (nginx
    /// `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth`).
    #[serde(default)]
    pub forward_auth: ForwardAuthConfig,
    /// The identity provider.
    #[serde(default)]
    pub oidc: OidcConfig,
    /// Sessions.
    #[serde(default)]
    pub session: SessionConfig,
    /// Role hierarchy.
    #[serde(default)]
    pub authz: AuthzConfig,
    /// Per-path rules; the longest matching `path` prefix wins.
    #[serde(default)]
    pub route: Vec<RouteConfig>,
    /// Plotly Dash: per-callback role rules and the session script.
    #[serde(default)]
    pub dash: DashConfig,
    /// Timeouts and caps on connections, request bodies and sign-ins.
    #[serde(default)]
    pub limits: LimitsConfig,
}

fn default_listen() -> String {
    "127.0.0.1:4180".to_owned()
}

/// `[oidc]`: which OpenID Connect provider signs users in.
///
/// For Microsoft Entra ID set `tenant` (and `cloud` for sovereign clouds);
/// for any other OpenID provider set `issuer` instead.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Entra ID tenant: a GUID, a verified domain (`contoso.onmicrosoft.com`),
    /// `organizations` or `common` (multi-tenant apps).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Entra ID cloud: `public` (default), `usgov` or `china`.
    #[serde(default)]
    pub cloud: Option<String>,
    /// Issuer URL of any other OpenID provider (Okta, Keycloak, Google...),
    /// or of an Entra-compatible one at a non-standard address such as
    /// `aadgate dev-idp`. Discovery is read from
    /// `{issuer}/.well-known/openid-configuration`. `http://` is accepted for
    /// loopback hosts only.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Application (client) ID from the app registration.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Client secret. Prefer `AADGATE_OIDC_CLIENT_SECRET` to writing it here.
    /// Or no secret at all: `client_certificate` + `client_key`, or
    /// `client_assertion_file`.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Path of the PEM certificate uploaded to the app registration
    /// (Certificates & secrets > Certificates), instead of a secret: aadgate
    /// signs a client assertion with `client_key` (`private_key_jwt`, with
    /// the certificate's `x5t#S256`), as Entra requires.
    #[serde(default)]
    pub client_certificate: Option<String>,
    /// Path of the PEM RSA private key of `client_certificate`.
    #[serde(default)]
    pub client_key: Option<String>,
    /// Path of a federated token to present instead of a secret (workload
    /// identity federation: a Kubernetes service account token Entra trusts
    /// through a federated credential of the app registration), read again
    /// for every request because the platform renews it. Default:
    /// `AZURE_FEDERATED_TOKEN_FILE` (set by AKS workload identity) when
    /// neither a secret nor a certificate is configured.
    #[serde(default)]
    pub client_assertion_file: Option<String>,
    /// Scopes requested at sign-in. Default
    /// `["openid", "profile", "email", "offline_access"]`; `openid` is always added.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Multi-tenant apps only (`tenant = "organizations"` or `"common"`):
    /// tenant IDs allowed to sign in; `"*"` allows any tenant.
    #[serde(default)]
    pub allowed_tenants: Vec<String>,
    /// ID-token signing algorithms accepted. Default `["RS256"]` for Entra ID,
    /// otherwise the asymmetric algorithms the provider's discovery lists.
    /// Symmetric (`HS*`) and `none` are never accepted.
    #[serde(default)]
    pub allowed_algorithms: Option<Vec<String>>,
    /// Clock skew tolerated when checking `exp`, `nbf` and `iat`, in seconds.
    /// Default 120, at most 300.
    #[serde(default)]
    pub clock_skew_secs: Option<u64>,
    /// Further audiences that name this app's API in bearer tokens
    /// (`[[route]] auth = "bearer"`), such as a custom Application ID URI
    /// (`https://api.contoso.com/dashboards`). The client ID and
    /// `api://<client id>` are always accepted.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accept Entra v1.0 access tokens (issuer `https://sts.windows.net/…`)
    /// as bearer tokens. Default `false`: set
    /// `"accessTokenAcceptedVersion": 2` in the API's app registration
    /// manifest instead, so Entra issues v2.0 tokens.
    #[serde(default)]
    pub accept_v1_tokens: bool,
    /// Microsoft Graph's address, for `authz.resolve_group_overage`.
    /// Default: the cloud's (`https://graph.microsoft.com`,
    /// `https://graph.microsoft.us`, `https://microsoftgraph.chinacloudapi.cn`);
    /// with `issuer` set (the dev IdP, which serves Graph's endpoints itself)
    /// the issuer's scheme, host and port.
    #[serde(default)]
    pub graph_url: Option<String>,
    /// Where the provider sends the browser after sign-out. Default
    /// `{public_url}/auth/signed-out` (register it as a redirect URI too).
    #[serde(default)]
    pub post_logout_redirect_uri: Option<String>,
}

/// `[forward_auth]`: `GET /auth/check` for a reverse proxy in front of
/// other apps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthConfig {
    /// Hosts besides `public_url`'s that `/auth/check` decides for and that
    /// sign-in may return to: exact names (`sales.contoso.com`) or one
    /// leading wildcard (`*.apps.contoso.com`). Each must lie under
    /// `session.cookie_domain`, or it would never receive the session
    /// cookie. Default: none.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `[session]`: server-side sessions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// At least 32 random bytes, hex or base64 encoded (`openssl rand -hex 32`).
    /// Encrypts tokens at rest and pending sign-ins. Prefer
    /// `AADGATE_SESSION_SECRET` to writing it here.
    #[serde(default)]
    pub secret: Option<String>,
    /// Where sessions live:
    /// - `file:<directory>` (default `file:./.aadgate/sessions`): an
    ///   embedded database that survives restarts, for one process;
    /// - `memory`: lost on restart;
    /// - `redis://[user[:password]@]host:port[/db]`, or `rediss://…` for TLS
    ///   (Azure Cache for Redis listens with TLS on 6380): shared by any
    ///   number of replicas, no sticky sessions needed.
    #[serde(default)]
    pub store: Option<String>,
    /// Password for Redis, instead of writing it in `store`'s URL. Prefer
    /// `AADGATE_SESSION_REDIS_PASSWORD`.
    #[serde(default)]
    pub redis_password: Option<String>,
    /// How aadgate signs in to Redis:
    /// - `password` (default): the URL's password or `redis_password` (an
    ///   access key for Azure Cache for Redis);
    /// - `managed-identity`: a Microsoft Entra token of the managed identity
    ///   (App Service, Container Apps, Functions: `IDENTITY_ENDPOINT`; a
    ///   VM or an AKS node: the instance metadata service), for Azure Cache
    ///   for Redis with Entra authentication;
    /// - `workload-identity`: a Microsoft Entra token for the federated
    ///   token AKS workload identity provides (`AZURE_FEDERATED_TOKEN_FILE`,
    ///   `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`).
    ///
    /// The user is the token's object ID (`oid`) unless the URL names one;
    /// the token is renewed before it expires and every open connection
    /// signs in again with it.
    #[serde(default)]
    pub redis_auth: Option<String>,
    /// The client ID of the user-assigned managed identity to use
    /// (`redis_auth = "managed-identity"`). Default `AZURE_CLIENT_ID` when
    /// set, else the system-assigned identity.
    #[serde(default)]
    pub redis_identity_client_id: Option<String>,
    /// Prefix of every Redis key aadgate writes, so several apps can share
    /// one Redis. Default `aadgate:`.
    #[serde(default)]
    pub redis_prefix: Option<String>,
    /// PEM file of the certificate authority that signed the Redis
    /// server's certificate (`rediss://` with a private CA). Default: the
    /// system's trusted roots.
    #[serde(default)]
    pub redis_ca_file: Option<String>,
    /// Share the session cookie with every host under this domain
    /// (`contoso.com`), for forward-auth in front of several hosts. It must
    /// contain `public_url`'s host. Default: none (the cookie belongs to
    /// `public_url`'s host alone, `__Host-` prefixed on https).
    #[serde(default)]
    pub cookie_domain: Option<String>,
    /// Memory the session cache may use, in MiB (default 256, about 70,000
    /// active sessions of users in a few groups; ~3.6 KB each). Requests of cached sessions
    /// read memory only; past the budget, the sessions used least recently
    /// leave the cache and are read from the store again when next used
    /// (a few tens of microseconds each).
    #[serde(default)]
    pub cache_mib: Option<u64>,
    /// A session unused for this long ends, in seconds. Default 28800 (8 h).
    #[serde(default)]
    pub idle_timeout_secs: Option<u64>,
    /// A session ends this long after sign-in whatever happens, in seconds.
    /// Default 86400 (24 h).
    #[serde(default)]
    pub lifetime_secs: Option<u64>,
    /// At most this long after sign-in or the last check, a session's roles
    /// and groups are re-derived from a fresh ID token obtained with its
    /// refresh token, so a role removed in Entra ID stops working within
    /// this time. A refused refresh (`invalid_grant`: user disabled, consent
    /// revoked, password reset) ends the session. In seconds; default 900;
    /// 0 turns it off (roles then last as long as the session).
    #[serde(default)]
    pub revalidate_secs: Option<u64>,
    /// While the provider cannot be reached, a session due for revalidation
    /// is kept for at most this long past its due time (and the outage is
    /// logged), then ended. In seconds; default 3600.
    #[serde(default)]
    pub revalidate_grace_secs: Option<u64>,
}
