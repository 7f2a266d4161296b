//! Configuration: plain serde structs whose doc comments are the reference.
//!
//! A configuration is read from TOML and then overridden from the environment:
//! every key can be set as `AADGATE_<SECTION>_<KEY>` (for example
//! `AADGATE_OIDC_CLIENT_SECRET` or `AADGATE_SESSION_SECRET`), and top-level keys
//! as `AADGATE_<KEY>` (`AADGATE_UPSTREAM`). Secrets therefore never need to be
//! in the file.
//!
//! ```
//! use aadgate_core::config::Config;
//!
//! let toml = r#"
//! public_url = "http://127.0.0.1:4180"
//! upstream = "http://127.0.0.1:8050"
//!
//! [oidc]
//! tenant = "contoso.onmicrosoft.com"
//! client_id = "00000000-0000-0000-0000-000000000001"
//!
//! [session]
//! store = "memory"
//!
//! [authz]
//! roles = ["App.Read", "App.Write", "App.Admin"]
//!
//! [[route]]
//! path = "/admin"
//! role = "App.Admin"
//! "#;
//! let env = [
//!     ("AADGATE_OIDC_CLIENT_SECRET", "from-the-environment"),
//!     ("AADGATE_SESSION_SECRET", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
//! ];
//! let config = Config::from_toml_and_env(toml, env).unwrap();
//! assert_eq!(config.oidc.client_secret.as_deref(), Some("from-the-environment"));
//! let settings = config.validate().unwrap();
//! assert_eq!(settings.redirect_uri.as_str(), "http://127.0.0.1:4180/auth/callback");
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::ConfigError;
use crate::policy::Policy;

/// The whole configuration of an aadgate proxy or of an app using the library.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the proxy listens on. Default `127.0.0.1:4180`.
    #[serde(default = "default_listen")]
    pub listen: String,
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
    pub dash: crate::dash::DashConfig,
    /// Timeouts and caps on connections, request bodies and sign-ins.
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
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
    #[serde(default)]
    pub client_secret: Option<String>,
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
    /// Where the provider sends the browser after sign-out. Default
    /// `{public_url}/auth/signed-out` (register it as a redirect URI too).
    #[serde(default)]
    pub post_logout_redirect_uri: Option<String>,
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
    /// `file:<directory>` (default `file:./.aadgate/sessions`, an embedded
    /// database that survives restarts) or `memory`.
    #[serde(default)]
    pub store: Option<String>,
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

/// `[authz]`: the role hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    /// App roles, lowest first: each role implies those before it. A signed-in
    /// user holding none of them is refused with 403. Empty: any signed-in
    /// user is let in.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// `[[route]]`: a rule for a path prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, matched on whole segments of the normalized path
    /// (`/admin` matches `/admin` and `/admin/x`, not `/administrator`).
    pub path: String,
    /// At least this role (or a higher one) is required.
    #[serde(default)]
    pub role: Option<String>,
    /// `true`: no sign-in needed.
    #[serde(default)]
    pub public: bool,
    /// Group object ids; the user must be a member of at least one (in
    /// addition to the role). Needs the `groups` claim in the ID token
    /// (Entra: Token configuration > Add groups claim). A token that signals
    /// group overage (over 200 groups) is refused on such routes.
    #[serde(default)]
    pub groups: Vec<String>,
}

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

/// A configuration checked and resolved, ready to use. Its `Debug` output
/// leaves the secrets out.
#[derive(Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// External URL, without trailing slash.
    pub public_url: Url,
    /// `public_url` + `/auth/callback`.
    pub redirect_uri: Url,
    /// Where the provider returns after sign-out.
    pub post_logout_redirect_uri: Url,
    /// Upstream app, when configured.
    pub upstream: Option<Url>,
    /// Trusted proxy networks.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether to pass the access token upstream.
    pub pass_access_token: bool,
    /// Proxy worker threads (at least 1).
    pub workers: usize,
    /// Issuer URL used for discovery (for multi-tenant Entra: the `organizations`/`common` authority).
    pub issuer: Url,
    /// Provider flavour.
    pub provider: ProviderKind,
    /// Client ID.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
    /// Scopes, `openid` first.
    pub scopes: Vec<String>,
    /// Allowed tenants (multi-tenant Entra only); `["*"]` = any.
    pub allowed_tenants: Vec<String>,
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
    /// Absolute lifetime.
    pub lifetime: Duration,
    /// Authorization policy.
    pub policy: Policy,
    /// Dash callback rules.
    pub dash_callbacks: crate::dash::CallbackRules,
    /// Inject the session script into HTML responses.
    pub dash_session_script: bool,
    /// Timeouts and caps.
    pub limits: crate::limits::Limits,
    /// How often a session's roles and groups are re-derived from the
    /// provider (`None`: never).
    pub revalidate: Option<Duration>,
    /// How long a session outlives a provider that cannot be reached for revalidation.
    pub revalidate_grace: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url.as_str())
            .field("upstream", &self.upstream.as_ref().map(Url::as_str))
            .field("issuer", &self.issuer.as_str())
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("secret", &"<redacted>")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Where sessions are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In process memory; lost on restart.
    Memory,
    /// Embedded database in this directory.
    File(std::path::PathBuf),
}

/// Keys that hold lists: an environment value for them is split on commas
/// (or parsed as a TOML array when it starts with `[`).
const LIST_KEYS: &[&str] = &[
    "trusted_proxies",
    "oidc.scopes",
    "oidc.allowed_tenants",
    "oidc.allowed_algorithms",
    "authz.roles",
];
const BOOL_KEYS: &[&str] = &["pass_access_token", "dash.session_script"];
const INT_KEYS: &[&str] = &[
    "oidc.clock_skew_secs",
    "session.idle_timeout_secs",
    "session.lifetime_secs",
    "dash.max_body_bytes",
    "workers",
    "session.revalidate_secs",
    "session.revalidate_grace_secs",
    "limits.first_byte_secs",
    "limits.header_secs",
    "limits.keepalive_secs",
    "limits.body_idle_secs",
    "limits.request_secs",
    "limits.upstream_header_secs",
    "limits.max_connections",
    "limits.upstream_max_connections",
    "limits.signin_per_minute",
];
/// Upper bound of `workers`.
const MAX_WORKERS: usize = 1024;
const SECTIONS: &[&str] = &["oidc", "session", "authz", "dash", "limits"];

impl Config {
    /// Parses TOML text and applies `AADGATE_*` overrides from `env`
    /// (pass `std::env::vars()` in production, a list in tests).
    pub fn from_toml_and_env<I, K, V>(toml_text: &str, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut table: toml::Table = toml_text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new("(file)", format!("is not valid TOML: {}", e.message()))
                .with_fix("check the line the message points at")
        })?;
        for (name, value) in env {
            apply_env(&mut table, name.as_ref(), value.as_ref())?;
        }
        Config::deserialize(toml::Value::Table(table)).map_err(|e| {
            let msg = e.message().to_owned();
            ConfigError::new("(file)", msg).with_fix(
                "see the configuration reference in README.md for the keys and their types",
            )
        })
    }

    /// Reads a TOML file and applies overrides from the process environment.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
                .with_fix("pass the path of an existing TOML file")
        })?;
        Self::from_toml_and_env(&text, std::env::vars())
    }

    /// Checks every key and resolves defaults. Errors name the key and the fix.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::new("listen", format!("{:?} is not an address", self.listen)).with_fix(
                "use host:port with an IP address, e.g. \"127.0.0.1:4180\" or \"0.0.0.0:4180\"",
            )
        })?;

        let public_url_text = self.public_url.as_deref().ok_or_else(|| {
            ConfigError::new("public_url", "is missing").with_fix(
                "set it to the URL users open, e.g. \"https://dash.contoso.com\" (env AADGATE_PUBLIC_URL)",
            )
        })?;
        let public_url = parse_base_url("public_url", public_url_text)?;
        if public_url.scheme() == "http" && !is_loopback_url(&public_url) {
            return Err(ConfigError::new(
                "public_url",
                format!("{public_url_text:?} is plain http on a non-loopback host; session cookies would travel unencrypted"),
            )
            .with_fix("serve users over https (terminate TLS in front of aadgate and list that proxy in trusted_proxies), or use a loopback address for local work"));
        }
        let redirect_uri = join(&public_url, crate::paths::CALLBACK);

        let upstream = match self.upstream.as_deref() {
            None => None,
            Some(u) => {
                let url = parse_base_url("upstream", u)?;
                if url.scheme() != "http" {
                    return Err(ConfigError::new("upstream", format!("{u:?} is https"))
                        .with_fix("give the app's plain http address, e.g. \"http://127.0.0.1:8050\": aadgate speaks plain HTTP/1.1 to the app, which should listen on the same host or a private network"));
                }
                Some(url)
            }
        };

        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ConfigError::new("trusted_proxies", format!("{s:?} is not a CIDR"))
                            .with_fix("use networks such as \"10.0.0.0/8\" or single addresses")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let workers = match self.workers {
            None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            Some(n @ 1..=MAX_WORKERS) => n,
            Some(n) => {
                return Err(
                    ConfigError::new("workers", format!("{n} is out of range")).with_fix(format!(
                        "use 1 to {MAX_WORKERS}, or leave it out to use one per CPU"
                    )),
                );
            }
        };

        let (issuer, provider) = self.resolve_provider()?;

        let client_id = non_empty(self.oidc.client_id.as_deref()).ok_or_else(|| {
            ConfigError::new("oidc.client_id", "is missing").with_fix(
                "copy the Application (client) ID from the app registration's Overview page",
            )
        })?;
        let client_secret = non_empty(self.oidc.client_secret.as_deref()).ok_or_else(|| {
            ConfigError::new("oidc.client_secret", "is missing").with_fix(
                "create one under Certificates & secrets and pass it as AADGATE_OIDC_CLIENT_SECRET",
            )
        })?;

        let mut scopes = vec!["openid".to_owned()];
        let configured = self.oidc.scopes.clone().unwrap_or_else(|| {
            ["profile", "email", "offline_access"]
                .map(str::to_owned)
                .to_vec()
        });
        for s in configured {
            if s.is_empty() || s.contains(char::is_whitespace) {
                return Err(
                    ConfigError::new("oidc.scopes", format!("{s:?} is not a scope"))
                        .with_fix("list scopes as separate strings without spaces"),
                );
            }
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }

        let multi = matches!(
            provider,
            ProviderKind::Entra {
                multi_tenant: true,
                ..
            }
        );
        if !self.oidc.allowed_tenants.is_empty() && !multi {
            return Err(ConfigError::new(
                "oidc.allowed_tenants",
                "only applies to multi-tenant apps",
            )
            .with_fix("remove it, or set oidc.tenant = \"organizations\" (or \"common\")"));
        }
        if multi && self.oidc.allowed_tenants.is_empty() {
            return Err(ConfigError::new(
                "oidc.allowed_tenants",
                "is empty for a multi-tenant app, so nobody could sign in",
            )
            .with_fix("list the tenant IDs allowed to sign in, or [\"*\"] to allow any tenant"));
        }
        for t in &self.oidc.allowed_tenants {
            if t != "*" && !is_guid(t) {
                return Err(ConfigError::new(
                    "oidc.allowed_tenants",
                    format!("{t:?} is not a tenant ID"),
                )
                .with_fix(
                    "use tenant ID GUIDs (Entra admin center > Overview > Tenant ID), or \"*\"",
                ));
            }
        }

        let allowed_algorithms = match &self.oidc.allowed_algorithms {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|a| crate::token::parse_allowed_algorithm(a).map_err(|why| {
                        ConfigError::new("oidc.allowed_algorithms", format!("{a:?} {why}"))
                            .with_fix("use asymmetric algorithms: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384")
                    }))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };

        let skew = self.oidc.clock_skew_secs.unwrap_or(120);
        if skew > 300 {
            return Err(ConfigError::new(
                "oidc.clock_skew_secs",
                format!("{skew} is more than 300 seconds"),
            )
            .with_fix("fix the machine's clock (NTP) and keep the skew at 300 or less"));
        }

        let post_logout_redirect_uri = match self.oidc.post_logout_redirect_uri.as_deref() {
            None => join(&public_url, crate::paths::SIGNED_OUT),
            Some(u) => Url::parse(u).map_err(|_| {
                ConfigError::new(
                    "oidc.post_logout_redirect_uri",
                    format!("{u:?} is not a URL"),
                )
                .with_fix("use an absolute URL registered at the provider")
            })?,
        };

        let secret_text = non_empty(self.session.secret.as_deref()).ok_or_else(|| {
            ConfigError::new("session.secret", "is missing").with_fix(
                "generate one with `openssl rand -hex 32` and pass it as AADGATE_SESSION_SECRET",
            )
        })?;
        let secret = decode_secret(&secret_text).ok_or_else(|| {
            ConfigError::new(
                "session.secret",
                "must be at least 32 random bytes, hex or base64 encoded",
            )
            .with_fix("generate one with `openssl rand -hex 32`")
        })?;

        let store = match self
            .session
            .store
            .as_deref()
            .unwrap_or("file:./.aadgate/sessions")
        {
            "memory" => StoreKind::Memory,
            s if s.starts_with("file:") && s.len() > 5 => StoreKind::File(s[5..].into()),
            other => {
                return Err(
                    ConfigError::new("session.store", format!("{other:?} is not a store"))
                        .with_fix("use \"file:<directory>\" (persistent, default) or \"memory\""),
                );
            }
        };

        let idle = self.session.idle_timeout_secs.unwrap_or(8 * 3600);
        let lifetime = self.session.lifetime_secs.unwrap_or(24 * 3600);
        if idle == 0 || lifetime == 0 {
            return Err(ConfigError::new(
                if idle == 0 {
                    "session.idle_timeout_secs"
                } else {
                    "session.lifetime_secs"
                },
                "is zero",
            )
            .with_fix("use a number of seconds greater than zero"));
        }

        let policy = Policy::from_config(&self.authz, &self.route)?;
        let dash_callbacks = crate::dash::CallbackRules::from_config(&self.dash, policy.roles())?;

        Ok(Settings {
            listen,
            public_url,
            redirect_uri,
            post_logout_redirect_uri,
            upstream,
            trusted_proxies,
            pass_access_token: self.pass_access_token,
            workers,
            issuer,
            provider,
            client_id,
            client_secret,
            scopes,
            allowed_tenants: self.oidc.allowed_tenants.clone(),
            allowed_algorithms,
            clock_skew: Duration::from_secs(skew),
            secret,
            store,
            idle_timeout: Duration::from_secs(idle),
            lifetime: Duration::from_secs(lifetime),
            policy,
            dash_callbacks,
            dash_session_script: self.dash.session_script,
            limits: self.limits.resolve()?,
            revalidate: match self.session.revalidate_secs.unwrap_or(900) {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            revalidate_grace: Duration::from_secs(
                self.session.revalidate_grace_secs.unwrap_or(3600),
            ),
        })
    }

    fn resolve_provider(&self) -> Result<(Url, ProviderKind), ConfigError> {
        let o = &self.oidc;
        match (non_empty(o.tenant.as_deref()), non_empty(o.issuer.as_deref())) {
            (Some(_), Some(_)) if o.cloud.is_some() => Err(ConfigError::new(
                "oidc.issuer",
                "is set together with oidc.tenant and oidc.cloud",
            )
            .with_fix("for Entra ID set tenant (and cloud); for another provider set only issuer")),
            (None, None) => Err(ConfigError::new("oidc.tenant", "is missing").with_fix(
                "set oidc.tenant to your Entra tenant ID or domain, or oidc.issuer for another OpenID provider",
            )),
            (None, Some(issuer)) => {
                let url = parse_issuer(&issuer)?;
                Ok((url, ProviderKind::Generic))
            }
            (Some(tenant), issuer) => {
                if tenant.contains(['/', '?', '#', ' ']) || tenant == "consumers" {
                    return Err(ConfigError::new("oidc.tenant", format!("{tenant:?} is not a work tenant"))
                        .with_fix("use the tenant ID GUID, a verified domain, \"organizations\" or \"common\""));
                }
                let multi_tenant = tenant == "common" || tenant == "organizations";
                let url = match issuer {
                    // An Entra-compatible provider at its own address (the dev IdP).
                    Some(issuer) => parse_issuer(&issuer)?,
                    None => {
                        let host = match o.cloud.as_deref().unwrap_or("public") {
                            "public" => "login.microsoftonline.com",
                            "usgov" => "login.microsoftonline.us",
                            "china" => "login.partner.microsoftonline.cn",
                            other => {
                                return Err(ConfigError::new(
                                    "oidc.cloud",
                                    format!("{other:?} is not a cloud"),
                                )
                                .with_fix("use \"public\", \"usgov\" or \"china\""));
                            }
                        };
                        Url::parse(&format!("https://{host}/{tenant}/v2.0")).map_err(|_| {
                            ConfigError::new("oidc.tenant", format!("{tenant:?} is not a tenant"))
                                .with_fix("use the tenant ID GUID or a verified domain")
                        })?
                    }
                };
                Ok((url, ProviderKind::Entra { tenant, multi_tenant }))
            }
        }
    }
}

fn apply_env(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let Some(rest) = name.strip_prefix("AADGATE_") else {
        return Ok(());
    };
    let lower = rest.to_ascii_lowercase();
    let (section, key) = match SECTIONS
        .iter()
        .find(|s| lower.starts_with(&format!("{s}_")))
    {
        Some(s) => (Some(*s), lower[s.len() + 1..].to_owned()),
        None => (None, lower),
    };
    let dotted = match section {
        Some(s) => format!("{s}.{key}"),
        None => key.clone(),
    };
    let known_top = [
        "listen",
        "public_url",
        "upstream",
        "trusted_proxies",
        "pass_access_token",
        "workers",
    ];
    if section.is_none() && !known_top.contains(&key.as_str()) {
        // Not ours (e.g. AADGATE_LOG): ignore.
        return Ok(());
    }
    let parsed = if LIST_KEYS.contains(&dotted.as_str()) {
        if value.trim_start().starts_with('[') {
            let wrapped: toml::Table = format!("v = {value}").parse().map_err(|_| {
                ConfigError::new(name, "is not a TOML array")
                    .with_fix("use comma-separated values, e.g. App.Read,App.Write")
            })?;
            wrapped
                .get("v")
                .cloned()
                .unwrap_or(toml::Value::Array(vec![]))
        } else {
            toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            )
        }
    } else if BOOL_KEYS.contains(&dotted.as_str()) {
        toml::Value::Boolean(match value {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            _ => {
                return Err(
                    ConfigError::new(name, format!("{value:?} is not a boolean"))
                        .with_fix("use true or false"),
                );
            }
        })
    } else if INT_KEYS.contains(&dotted.as_str()) {
        toml::Value::Integer(value.parse().map_err(|_| {
            ConfigError::new(name, format!("{value:?} is not a whole number")).with_fix(
                if dotted.ends_with("_secs") {
                    "use a number of seconds"
                } else {
                    "use a whole number, e.g. 2"
                },
            )
        })?)
    } else {
        toml::Value::String(value.to_owned())
    };
    let target = match section {
        Some(s) => table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                ConfigError::new(s, "is not a table").with_fix(format!("write it as [{s}]"))
            })?,
        None => table,
    };
    target.insert(key, parsed);
    Ok(())
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse_base_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|_| {
        ConfigError::new(key, format!("{text:?} is not a URL"))
            .with_fix("use an absolute URL such as \"https://host:port\"")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(
            ConfigError::new(key, format!("{text:?} is not an http(s) URL"))
                .with_fix("use an absolute URL such as \"https://host:port\""),
        );
    }
    if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(
            ConfigError::new(key, format!("{text:?} has a path, query or fragment"))
                .with_fix("give only scheme, host and port; aadgate serves the whole site"),
        );
    }
    Ok(url)
}

fn parse_issuer(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|_| {
        ConfigError::new("oidc.issuer", format!("{text:?} is not a URL"))
            .with_fix("use the issuer exactly as the provider's discovery document states it")
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_url(&url) => Ok(url),
        _ => Err(
            ConfigError::new("oidc.issuer", format!("{text:?} is not https")).with_fix(
                "use the provider's https issuer; plain http is accepted only on loopback hosts",
            ),
        ),
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn join(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    u.set_path(path);
    u
}

/// Whether `s` looks like a GUID (8-4-4-4-12 hex digits).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn decode_secret(text: &str) -> Option<Vec<u8>> {
    let bytes = if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .ok()?
    };
    (bytes.len() >= 32).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn base() -> String {
        format!(
            r#"
public_url = "http://127.0.0.1:4180"
[oidc]
tenant = "contoso.onmicrosoft.com"
client_id = "abc"
client_secret = "s"
[session]
secret = "{SECRET}"
store = "memory"
"#
        )
    }

    fn err(toml: &str, env: &[(&str, &str)]) -> ConfigError {
        Config::from_toml_and_env(toml, env.iter().copied())
            .and_then(|c| c.validate())
            .unwrap_err()
    }

    #[test]
    fn defaults_resolve_to_entra_public_cloud() {
        let s = Config::from_toml_and_env(&base(), Vec::<(String, String)>::new())
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(
            s.issuer.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        );
        assert_eq!(s.scopes, ["openid", "profile", "email", "offline_access"]);
        assert_eq!(s.clock_skew, Duration::from_secs(120));
        assert_eq!(
            s.post_logout_redirect_uri.as_str(),
            "http://127.0.0.1:4180/auth/signed-out"
        );
    }

    #[test]
    fn env_overrides_sections_lists_and_top_level() {
        let c = Config::from_toml_and_env(
            &base(),
            [
                ("AADGATE_OIDC_CLIENT_SECRET", "env-secret"),
                ("AADGATE_AUTHZ_ROLES", "App.Read, App.Admin"),
                ("AADGATE_UPSTREAM", "http://127.0.0.1:9000"),
                ("AADGATE_PASS_ACCESS_TOKEN", "true"),
                ("AADGATE_SESSION_IDLE_TIMEOUT_SECS", "60"),
                ("AADGATE_LOG", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(c.oidc.client_secret.as_deref(), Some("env-secret"));
        assert_eq!(c.authz.roles, ["App.Read", "App.Admin"]);
        assert_eq!(c.upstream.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(c.pass_access_token);
        assert_eq!(c.session.idle_timeout_secs, Some(60));
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let e = err(&base().replace("client_id = \"abc\"\n", ""), &[]);
        assert_eq!(e.key, "oidc.client_id");
        assert!(e.fix.contains("Application (client) ID"));

        let e = err(&base(), &[("AADGATE_SESSION_SECRET", "tooshort")]);
        assert_eq!(e.key, "session.secret");

        let e = err(
            &base(),
            &[("AADGATE_PUBLIC_URL", "http://dash.example.com")],
        );
        assert_eq!(e.key, "public_url");

        let e = err(
            &base(),
            &[("AADGATE_OIDC_ISSUER", "http://idp.example.com/x")],
        );
        assert_eq!(e.key, "oidc.issuer");

        let e = err(&format!("{}\nbogus = 1\n", base()), &[]);
        assert!(e.to_string().contains("bogus"), "{e}");

        let e = err(
            &base(),
            &[("AADGATE_UPSTREAM", "https://app.internal:8443")],
        );
        assert_eq!(e.key, "upstream");
        assert!(e.fix.contains("plain http"), "{}", e.fix);

        let e = err(&base(), &[("AADGATE_OIDC_TENANT", "organizations")]);
        assert_eq!(e.key, "oidc.allowed_tenants");
    }

    #[test]
    fn workers_default_to_the_cpus_and_are_bounded() {
        let ok = |env: &[(&str, &str)]| {
            Config::from_toml_and_env(&base(), env.iter().copied())
                .unwrap()
                .validate()
                .unwrap()
                .workers
        };
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(ok(&[]), cpus);
        assert_eq!(ok(&[("AADGATE_WORKERS", "3")]), 3);
        for bad in ["0", "1025"] {
            let e = err(&base(), &[("AADGATE_WORKERS", bad)]);
            assert_eq!(e.key, "workers");
            assert!(e.fix.contains("1 to 1024"), "{}", e.fix);
        }
        let e = err(&base(), &[("AADGATE_WORKERS", "two")]);
        assert_eq!(e.key, "AADGATE_WORKERS");
        assert!(e.fix.contains("whole number"), "{}", e.fix);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = Config::from_toml_and_env(&base(), Vec::<(String, String)>::new())
            .unwrap()
            .validate()
            .unwrap();
        let d = format!("{s:?}");
        assert!(
            !d.contains(SECRET) && !d.contains("client_secret: \"s\""),
            "{d}"
        );
    }

    #[test]
    fn secrets_accept_hex_and_base64() {
        assert_eq!(decode_secret(SECRET).unwrap().len(), 32);
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 48]);
        assert_eq!(decode_secret(&b64).unwrap().len(), 48);
        assert!(decode_secret("00ff").is_none());
    }

    #[test]
    fn multi_tenant_and_sovereign_clouds() {
        let s = Config::from_toml_and_env(
            &base(),
            [
                ("AADGATE_OIDC_TENANT", "organizations"),
                ("AADGATE_OIDC_CLOUD", "usgov"),
                ("AADGATE_OIDC_ALLOWED_TENANTS", "*"),
            ],
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            s.issuer.as_str(),
            "https://login.microsoftonline.us/organizations/v2.0"
        );
        assert!(matches!(
            s.provider,
            ProviderKind::Entra {
                multi_tenant: true,
                ..
            }
        ));
    }
}
