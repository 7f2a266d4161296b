//! Checking every key and resolving defaults. Errors name the key and the fix.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use ipnet::IpNet;
use url::Url;

use super::{AccessLog, Config, LogFormat, ProviderKind, ProxySettings, Settings};
use crate::error::ConfigError;
use crate::policy::Policy;
use crate::session::StoreKind;

/// A required key that is set nowhere: named as the file's key and as its
/// environment variable, since either may be how it is meant to be set.
fn missing(key: &str) -> ConfigError {
    ConfigError::new(
        key,
        format!(
            "is missing (set it in a --config file or as {} in the environment)",
            super::env::variable(key)
        ),
    )
}

/// Upper bound of `workers`.
const MAX_WORKERS: usize = 1024;
impl Config {
    /// Checks every key the library reads and resolves defaults into
    /// [`Settings`]. Errors name the key and the fix.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let public_url_text = self.public_url.as_deref().ok_or_else(|| {
            missing("public_url")
                .with_fix("set it to the URL users open, e.g. \"https://dash.contoso.com\"")
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

        let (issuer, provider) = self.resolve_provider()?;

        let client_id = non_empty(self.oidc.client_id.as_deref()).ok_or_else(|| {
            missing("oidc.client_id").with_fix(
                "copy the Application (client) ID from the app registration's Overview page",
            )
        })?;
        let client_auth = self.client_auth()?;

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
            if t != "*" && !crate::entra::is_guid(t) {
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
            missing("session.secret").with_fix(
                "generate one with `openssl rand -hex 32` and pass it as AADGATE_SESSION_SECRET (or AADGATE_SESSION_SECRET_FILE, a file holding it)",
            )
        })?;
        let secret = decode_secret(&secret_text).ok_or_else(|| {
            ConfigError::new(
                "session.secret",
                "must be at least 32 random bytes, hex or base64 encoded",
            )
            .with_fix("generate one with `openssl rand -hex 32`")
        })?;

        let store = self.store_kind()?;

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

        let cache_budget = match self.session.cache_mib {
            None => crate::session::DEFAULT_CACHE_BUDGET,
            Some(mib @ 1..=1_048_576) => mib << 20,
            Some(_) => {
                return Err(ConfigError::new(
                    "session.cache_mib",
                    "must be between 1 and 1048576 (MiB)",
                )
                .with_fix("leave it out for the default, 256"));
            }
        };

        let audiences = self.audiences(&client_id)?;
        let graph_url = self.graph_url(&provider, &issuer)?;
        if self.authz.resolve_group_overage && graph_url.is_none() {
            return Err(ConfigError::new(
                "authz.resolve_group_overage",
                "needs Microsoft Graph, which only Entra ID has",
            )
            .with_fix(
                "set oidc.tenant (Entra ID), or oidc.graph_url, or remove resolve_group_overage",
            ));
        }
        if self.authz.resolve_group_overage {
            const READ_MEMBERSHIP: [&str; 3] = [
                "GroupMember.Read.All",
                "Group.Read.All",
                "Directory.Read.All",
            ];
            let granted = scopes.iter().any(|s| {
                let name = s.strip_prefix("https://graph.microsoft.com/").unwrap_or(s);
                READ_MEMBERSHIP.iter().any(|p| p.eq_ignore_ascii_case(name))
            });
            if !granted {
                return Err(ConfigError::new(
                    "oidc.scopes",
                    "lacks a Graph permission to read group memberships, which authz.resolve_group_overage needs",
                )
                .with_fix("add \"GroupMember.Read.All\" to oidc.scopes and grant admin consent for it (API permissions > Microsoft Graph > Delegated)"));
            }
        }
        let (hosts, cookie_domain) = self.protected_hosts(&public_url)?;
        let identity_headers = self.header_families()?;
        let mut policy = Policy::from_config(&self.authz, &self.route)?;
        let dash_callbacks = crate::dash::CallbackRules::from_config(&self.dash, &mut policy)?;

        Ok(Settings {
            public_url,
            redirect_uri,
            post_logout_redirect_uri,
            trusted_proxies,
            pass_access_token: self.pass_access_token,
            issuer,
            provider,
            client_id,
            client_auth,
            scopes,
            allowed_tenants: self.oidc.allowed_tenants.clone(),
            audiences,
            graph_url,
            resolve_group_overage: self.authz.resolve_group_overage,
            accept_v1_tokens: self.oidc.accept_v1_tokens,
            allowed_algorithms,
            clock_skew: Duration::from_secs(skew),
            secret,
            store,
            cache_budget,
            idle_timeout: Duration::from_secs(idle),
            lifetime: Duration::from_secs(lifetime),
            policy,
            dash_callbacks,
            signin_per_minute: self.limits.signin_per_minute(),
            revalidate: match self.session.revalidate_secs.unwrap_or(900) {
                0 => None,
                n => Some(Duration::from_secs(n)),
            },
            revalidate_grace: Duration::from_secs(
                self.session.revalidate_grace_secs.unwrap_or(3600),
            ),
            hosts,
            cookie_domain,
            identity_headers,
        })
    }

    /// How the app authenticates at the token endpoint: exactly one of a
    /// secret, a certificate with its key, or a federated token file.
    fn client_auth(&self) -> Result<crate::client_auth::ClientAuth, ConfigError> {
        use crate::client_auth::{Certificate, ClientAuth};
        let o = &self.oidc;
        let secret = non_empty(o.client_secret.as_deref());
        let cert = non_empty(o.client_certificate.as_deref());
        let key = non_empty(o.client_key.as_deref());
        let file = non_empty(o.client_assertion_file.as_deref());
        let chosen = [secret.is_some(), cert.is_some(), file.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if chosen > 1 {
            return Err(ConfigError::new(
                "oidc.client_secret",
                "is set together with oidc.client_certificate or oidc.client_assertion_file: the app authenticates one way",
            )
            .with_fix("keep one of client_secret, client_certificate (+ client_key) or client_assertion_file"));
        }
        if key.is_some() && cert.is_none() {
            return Err(ConfigError::new("oidc.client_key", "is set without oidc.client_certificate")
                .with_fix("set oidc.client_certificate to the PEM certificate uploaded to the app registration"));
        }
        match (secret, cert, key, file) {
            (Some(s), ..) => Ok(ClientAuth::Secret(s)),
            (None, Some(_), None, _) => Err(missing("oidc.client_key")
                .with_fix("set oidc.client_key to the PEM private key of oidc.client_certificate")),
            (None, Some(cert), Some(key), _) => Ok(ClientAuth::Certificate(std::sync::Arc::new(
                Certificate::load(&cert, &key)?,
            ))),
            (None, None, _, Some(file)) => {
                if let Err(e) = std::fs::metadata(&file) {
                    return Err(ConfigError::new(
                        "oidc.client_assertion_file",
                        format!("cannot read {file:?}: {e}"),
                    )
                    .with_fix("mount the federated token there (AKS workload identity: the pod's azure.workload.identity/use label), or give another path"));
                }
                Ok(ClientAuth::AssertionFile(file.into()))
            }
            (None, None, _, None) => Err(missing("oidc.client_secret").with_fix(
                "create one under Certificates & secrets and pass it as AADGATE_OIDC_CLIENT_SECRET (or AADGATE_OIDC_CLIENT_SECRET_FILE, a file holding it); or, with no secret at all, set oidc.client_certificate + oidc.client_key, or oidc.client_assertion_file (workload identity federation)",
            )),
        }
    }

    /// Microsoft Graph's address: `oidc.graph_url`, else the Entra cloud's,
    /// else (an Entra-compatible `oidc.issuer`: the dev IdP) the issuer's
    /// origin; `None` for other providers.
    fn graph_url(&self, provider: &ProviderKind, issuer: &Url) -> Result<Option<Url>, ConfigError> {
        if let Some(text) = non_empty(self.oidc.graph_url.as_deref()) {
            let url = parse_base_url("oidc.graph_url", &text)?;
            if url.scheme() == "http" && !is_loopback_url(&url) {
                return Err(
                    ConfigError::new("oidc.graph_url", format!("{text:?} is not https"))
                        .with_fix("use https (http only on loopback)"),
                );
            }
            return Ok(Some(url));
        }
        if !matches!(provider, ProviderKind::Entra { .. }) {
            return Ok(None);
        }
        // The dev IdP serves Graph's endpoints itself; any other issuer's
        // host never gets the user's Graph token.
        if non_empty(self.oidc.issuer.as_deref()).is_some() && is_loopback_url(issuer) {
            return Ok(Url::parse(&issuer.origin().ascii_serialization()).ok());
        }
        let cloud = self.oidc.cloud.as_deref().unwrap_or("public");
        Ok(crate::entra::graph_host(cloud).and_then(|h| Url::parse(&format!("https://{h}")).ok()))
    }

    /// The audiences bearer tokens may name: the client ID, its
    /// `api://` Application ID URI, and `oidc.audiences`.
    fn audiences(&self, client_id: &str) -> Result<Vec<String>, ConfigError> {
        let mut all = vec![client_id.to_owned(), format!("api://{client_id}")];
        for a in &self.oidc.audiences {
            if a.trim().is_empty() || a.trim() != a {
                return Err(ConfigError::new(
                    "oidc.audiences",
                    format!("{a:?} is empty or has spaces around it"),
                )
                .with_fix("list the Application ID URIs exactly as the API's app registration shows them (Expose an API > Application ID URI)"));
            }
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        Ok(all)
    }

    /// `forward_auth.hosts` and `session.cookie_domain`, checked together:
    /// a protected host outside the cookie's domain would loop through
    /// sign-in for ever (it never receives the session cookie).
    fn protected_hosts(
        &self,
        public_url: &Url,
    ) -> Result<(crate::hosts::ProtectedHosts, Option<String>), ConfigError> {
        use crate::hosts::{ProtectedHosts, within_domain};
        let public_host = public_url.host_str().unwrap_or_default();
        let cookie_domain = match self.session.cookie_domain.as_deref() {
            None => None,
            Some(d) => {
                let d = d.trim_start_matches('.').to_ascii_lowercase();
                if !crate::hosts::is_domain_name(&d) || !d.contains('.') {
                    return Err(ConfigError::new(
                        "session.cookie_domain",
                        format!("{d:?} is not a domain a cookie can be shared under"),
                    )
                    .with_fix("use the parent domain of the protected hosts, e.g. \"contoso.com\" (at least two labels, no scheme, port or wildcard)"));
                }
                if !within_domain(public_host, &d) {
                    return Err(ConfigError::new(
                        "session.cookie_domain",
                        format!("{d:?} does not contain public_url's host {public_host:?}; browsers would refuse the cookie"),
                    )
                    .with_fix("use a parent domain of public_url's host"));
                }
                Some(d)
            }
        };
        let hosts = ProtectedHosts::new(public_url, &self.forward_auth.hosts).map_err(|bad| {
            ConfigError::new(
                "forward_auth.hosts",
                format!("{:?} is not a host name or `*.` pattern", bad.0),
            )
            .with_fix("list lower-case host names (\"sales.contoso.com\") or one leading wildcard (\"*.apps.contoso.com\"), without scheme, port or path")
        })?;
        for pattern in hosts.patterns() {
            let name = pattern.trim_start_matches("*.");
            let shared = cookie_domain
                .as_deref()
                .is_some_and(|d| within_domain(name, d));
            if name != public_host && !shared {
                return Err(ConfigError::new(
                    "forward_auth.hosts",
                    format!("{pattern:?} would never receive the session cookie, so its users would be sent to sign in again and again"),
                )
                .with_fix(match &cookie_domain {
                    Some(d) => format!("list only hosts under session.cookie_domain ({d:?}), or widen it"),
                    None => "set session.cookie_domain to a parent domain of this host and of public_url's host".to_owned(),
                }));
            }
        }
        Ok((hosts, cookie_domain))
    }

    /// `identity_headers`.
    fn header_families(&self) -> Result<crate::config::HeaderFamilies, ConfigError> {
        let Some(names) = &self.identity_headers else {
            return Ok(Default::default());
        };
        let mut families = crate::config::HeaderFamilies {
            aadgate: false,
            app_service: false,
            oauth2_proxy: false,
        };
        for name in names {
            match name.as_str() {
                "aadgate" => families.aadgate = true,
                "app-service" => families.app_service = true,
                "oauth2-proxy" => families.oauth2_proxy = true,
                other => {
                    return Err(ConfigError::new(
                        "identity_headers",
                        format!("{other:?} is not a family of identity headers"),
                    )
                    .with_fix("use any of \"aadgate\", \"app-service\", \"oauth2-proxy\""));
                }
            }
        }
        Ok(families)
    }

    /// Checks the keys only `aadgate proxy` reads (`listen`,
    /// `metrics_listen`, `upstream`, `workers`, `dash.session_script`,
    /// `[limits]`) and resolves defaults
    /// into [`ProxySettings`]. Errors name the key and the fix.
    pub fn proxy_settings(&self) -> Result<ProxySettings, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|_| {
            ConfigError::new("listen", format!("{:?} is not an address", self.listen)).with_fix(
                "use host:port with an IP address, e.g. \"127.0.0.1:4180\" or \"0.0.0.0:4180\"",
            )
        })?;
        let metrics_listen = match self.metrics_listen.as_deref() {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    ConfigError::new("metrics_listen", format!("{text:?} is not an address"))
                        .with_fix("use host:port with an IP address, e.g. \"127.0.0.1:9090\" (or leave it out to serve no metrics)")
                })?;
                if addr == listen {
                    return Err(ConfigError::new(
                        "metrics_listen",
                        format!("{text:?} is the same address as `listen`"),
                    )
                    .with_fix("give the metrics their own port, e.g. \"127.0.0.1:9090\": only /metrics is served there"));
                }
                Some(addr)
            }
        };

        let u = self.upstream.as_deref().ok_or_else(|| {
            missing("upstream").with_fix("set it to the app's URL, e.g. \"http://127.0.0.1:8050\"")
        })?;
        let upstream = parse_base_url("upstream", u)?;
        if upstream.scheme() != "http" {
            return Err(ConfigError::new("upstream", format!("{u:?} is https"))
                .with_fix("give the app's plain http address, e.g. \"http://127.0.0.1:8050\": aadgate speaks plain HTTP/1.1 to the app, which should listen on the same host or a private network"));
        }

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

        let mut limits = self.limits.resolve()?;
        limits.shutdown = match self.shutdown_timeout_secs {
            None => Duration::from_secs(crate::limits::DEFAULT_SHUTDOWN_SECS),
            Some(n @ 1..=3600) => Duration::from_secs(n),
            Some(n) => {
                return Err(ConfigError::new(
                    "shutdown_timeout_secs",
                    format!("{n} is out of range"),
                )
                .with_fix("use 1 to 3600 seconds (default 30)"));
            }
        };
        let log_format = match self.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "log_format",
                    format!("{other:?} is not a log format"),
                )
                .with_fix("use \"text\" or \"json\""));
            }
        };
        Ok(ProxySettings {
            listen,
            metrics_listen,
            upstream,
            workers,
            session_script: self.dash.session_script,
            limits,
            log_format,
            access_log: AccessLog {
                enabled: self.access_log.unwrap_or(true),
                query: self.access_log_query,
            },
        })
    }

    /// `session.store` and the Redis keys beside it.
    fn store_kind(&self) -> Result<StoreKind, ConfigError> {
        let s = &self.session;
        let text = s.store.as_deref().unwrap_or("file:./.aadgate/sessions");
        let kind = match text {
            "memory" => StoreKind::Memory,
            t if t.starts_with("file:") && t.len() > 5 => StoreKind::File(t[5..].into()),
            t if [
                "redis://",
                "rediss://",
                "redis-cluster://",
                "rediss-cluster://",
            ]
            .iter()
            .any(|scheme| t.starts_with(scheme)) =>
            {
                match crate::session::cluster_nodes(t) {
                    Some(Err(why)) => {
                        return Err(ConfigError::new("session.store", why)
                            .with_fix("use redis-cluster://host:port,host:port (or rediss-cluster:// for TLS); put the password in AADGATE_SESSION_REDIS_PASSWORD"));
                    }
                    Some(Ok(_)) => {}
                    None => {
                        let url = Url::parse(t)
                            .ok()
                            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()));
                        if url.is_none() {
                            return Err(ConfigError::new("session.store", "is not a Redis URL")
                                .with_fix("use redis://host:port[/db] or rediss://host:port (TLS); put the password in AADGATE_SESSION_REDIS_PASSWORD"));
                        }
                    }
                }
                if !cfg!(feature = "redis") {
                    return Err(ConfigError::new(
                        "session.store",
                        "needs Redis support, which this build leaves out",
                    )
                    .with_fix("use the aadgate binary, or build with the `redis` cargo feature"));
                }
                let prefix = s
                    .redis_prefix
                    .clone()
                    .unwrap_or_else(|| "aadgate:".to_owned());
                if prefix.is_empty() || prefix.contains(char::is_whitespace) {
                    return Err(ConfigError::new(
                        "session.redis_prefix",
                        format!("{prefix:?} is not a key prefix"),
                    )
                    .with_fix("use a short name without spaces, e.g. \"dash-sales:\""));
                }
                let ca_file = match s.redis_ca_file.as_deref() {
                    None => None,
                    Some(path) if std::path::Path::new(path).is_file() => Some(path.into()),
                    Some(path) => {
                        return Err(ConfigError::new("session.redis_ca_file", format!("{path:?} is not a readable file"))
                            .with_fix("give the path of the PEM file of the CA that signed the Redis server's certificate"));
                    }
                };
                let auth = match s.redis_auth.as_deref() {
                    None | Some("password") => crate::session::RedisAuth::Password,
                    Some("managed-identity") => crate::session::RedisAuth::ManagedIdentity {
                        client_id: non_empty(s.redis_identity_client_id.as_deref()),
                    },
                    Some("workload-identity") => crate::session::RedisAuth::WorkloadIdentity,
                    Some(other) => {
                        return Err(ConfigError::new("session.redis_auth", format!("{other:?} is not a way to sign in to Redis"))
                            .with_fix("use \"password\" (the URL's password or an access key), \"managed-identity\" or \"workload-identity\" (Microsoft Entra tokens for Azure Cache for Redis)"));
                    }
                };
                let password = non_empty(s.redis_password.as_deref());
                if auth != crate::session::RedisAuth::Password {
                    let in_url = Url::parse(&t.replace("-cluster://", "://"))
                        .ok()
                        .and_then(|u| u.password().map(str::to_owned));
                    if password.is_some() || in_url.is_some() {
                        return Err(ConfigError::new("session.redis_auth", "is an Entra identity, but a Redis password is set too")
                            .with_fix("remove the password from session.store and AADGATE_SESSION_REDIS_PASSWORD: with Entra authentication the password is a token aadgate obtains and renews"));
                    }
                }
                if s.redis_identity_client_id.is_some()
                    && !matches!(auth, crate::session::RedisAuth::ManagedIdentity { .. })
                {
                    return Err(ConfigError::new(
                        "session.redis_identity_client_id",
                        "is set but session.redis_auth is not \"managed-identity\"",
                    )
                    .with_fix("set session.redis_auth = \"managed-identity\", or remove it"));
                }
                StoreKind::Redis(crate::session::RedisConfig {
                    url: t.to_owned(),
                    password,
                    prefix,
                    ca_file,
                    auth,
                })
            }
            other => {
                return Err(
                    ConfigError::new("session.store", format!("{other:?} is not a store"))
                        .with_fix("use \"file:<directory>\" (persistent, default), \"memory\", or \"redis://host:port\" / \"rediss://host:port\" (shared by replicas)"),
                );
            }
        };
        let redis_keys = [
            ("session.redis_password", s.redis_password.is_some()),
            ("session.redis_prefix", s.redis_prefix.is_some()),
            ("session.redis_ca_file", s.redis_ca_file.is_some()),
            ("session.redis_auth", s.redis_auth.is_some()),
            (
                "session.redis_identity_client_id",
                s.redis_identity_client_id.is_some(),
            ),
        ];
        if let Some((key, _)) = redis_keys.iter().find(|(_, set)| *set)
            && !matches!(kind, StoreKind::Redis(_))
        {
            return Err(
                ConfigError::new(*key, "is set but session.store is not Redis")
                    .with_fix("remove it, or set session.store = \"redis://host:port\""),
            );
        }
        Ok(kind)
    }

    fn resolve_provider(&self) -> Result<(Url, ProviderKind), ConfigError> {
        let o = &self.oidc;
        match (non_empty(o.tenant.as_deref()), non_empty(o.issuer.as_deref())) {
            (Some(_), Some(_)) if o.cloud.is_some() => Err(ConfigError::new(
                "oidc.issuer",
                "is set together with oidc.tenant and oidc.cloud",
            )
            .with_fix("for Entra ID set tenant (and cloud); for another provider set only issuer")),
            (None, None) => Err(missing("oidc.tenant").with_fix(
                "set oidc.tenant to your Entra tenant ID or domain, or oidc.issuer (AADGATE_OIDC_ISSUER) for another OpenID provider",
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
                        let cloud = o.cloud.as_deref().unwrap_or("public");
                        let host = crate::entra::cloud_host(cloud).ok_or_else(|| {
                            ConfigError::new("oidc.cloud", format!("{cloud:?} is not a cloud"))
                                .with_fix("use \"public\", \"usgov\" or \"china\"")
                        })?;
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

pub(super) fn decode_secret(text: &str) -> Option<Vec<u8>> {
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
