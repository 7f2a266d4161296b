//! `aadgate check-config --online`: asks the provider and the app, in
//! order, whether the configuration works, and says for each check what
//! it found — and, when it failed, which key to fix. The AADSTS codes are
//! explained by [`aadgate_core::entra`], the same words the log and the
//! sign-in pages use.
//!
//! Nothing secret is printed: not the client secret, not the token the
//! client-credentials check receives.

use std::fmt;
use std::time::Duration;

use aadgate_core::config::ProviderKind;
use aadgate_core::entra::{self, Explanation};
use aadgate_core::provider::RedirectUriProbe;
use aadgate_core::{Provider, ProviderError, ProxySettings, Settings};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use url::Url;

/// How long the app may take to accept a connection and to answer.
const UPSTREAM_WAIT: Duration = Duration::from_secs(5);

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It works.
    Ok,
    /// It does not: the message says what to fix.
    Fail,
    /// It could not be determined (the provider does not tell); not a failure.
    Unknown,
    /// Not run: it does not apply, or an earlier check failed.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// What it found.
    pub outcome: Outcome,
    /// Details: what was seen, and for a failure, the key and the fix.
    pub message: String,
}

impl Check {
    fn new(name: &'static str, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            name,
            outcome,
            message: message.into(),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.outcome {
            Outcome::Ok => "OK",
            Outcome::Fail => "FAIL",
            Outcome::Unknown => "UNKNOWN",
            Outcome::Skip => "SKIP",
        };
        write!(f, "  {tag:<8}{:<30}{}", self.name, self.message)
    }
}

/// Runs every check in order: the provider's discovery and keys, the
/// tenant, the client id and secret, the redirect URI, the app. Each line
/// is printed as soon as its check is done.
pub async fn run(
    settings: &Settings,
    proxy: &ProxySettings,
    mut print: impl FnMut(&Check),
) -> Vec<Check> {
    let provider = Provider::new(settings);
    let mut checks = Vec::new();
    let mut push = |c: Check| {
        print(&c);
        checks.push(c);
    };
    let discovery = discover(&provider).await;
    let provider_ok = discovery.outcome == Outcome::Ok;
    let tenant = tenant(settings, &discovery);
    let tenant_failed = tenant.outcome == Outcome::Fail;
    push(discovery.into());
    push(tenant);
    if provider_ok {
        push(client_credentials(settings, &provider).await);
        push(redirect_uri(settings, &provider).await);
    } else {
        let why = if tenant_failed {
            "not run: the tenant is wrong (above)"
        } else {
            "not run: the provider could not be used (above)"
        };
        push(Check::new("client id and secret", Outcome::Skip, why));
        push(Check::new("redirect URI", Outcome::Skip, why));
    }
    push(upstream(&proxy.upstream).await);
    checks
}

/// The first check's result, kept for the tenant check.
struct Discovery {
    outcome: Outcome,
    message: String,
    /// The provider refused the tenant (an AADSTS code about `oidc.tenant`).
    tenant_refused: Option<&'static Explanation>,
}

impl From<Discovery> for Check {
    fn from(d: Discovery) -> Self {
        Check::new("discovery and keys", d.outcome, d.message)
    }
}

async fn discover(provider: &Provider) -> Discovery {
    let fail = |message: String, tenant_refused| Discovery {
        outcome: Outcome::Fail,
        message,
        tenant_refused,
    };
    let meta = match provider.metadata().await {
        Ok(meta) => meta,
        Err(e) => {
            let tenant_refused = refused_tenant(&e);
            let message = match (&e, tenant_refused) {
                (ProviderError::Refused { status, url, .. }, Some(_)) => format!(
                    "the provider answered HTTP {status} at {url}: it does not know the tenant (see `tenant`)"
                ),
                _ => describe(&e),
            };
            return fail(message, tenant_refused);
        }
    };
    match provider.fetch_signing_keys().await {
        Ok(0) => fail(
            format!(
                "{} publishes no signing key aadgate can use. Fix: check oidc.issuer names the right provider",
                meta.jwks_uri
            ),
            None,
        ),
        Ok(n) => Discovery {
            outcome: Outcome::Ok,
            message: format!("issuer {}, {n} signing key(s)", meta.issuer),
            tenant_refused: None,
        },
        Err(e) => fail(describe(&e), None),
    }
}

/// The explanation, when the provider refused because of the tenant.
fn refused_tenant(e: &ProviderError) -> Option<&'static Explanation> {
    match e {
        ProviderError::Refused {
            explanation: Some(exp),
            ..
        } if entra::TENANT_CODES.contains(&exp.code) => Some(exp),
        _ => None,
    }
}

/// Whether the tenant exists, from what discovery found (Entra ID answers
/// discovery for an unknown tenant with AADSTS90002).
fn tenant(settings: &Settings, discovery: &Discovery) -> Check {
    let name = "tenant";
    let ProviderKind::Entra {
        tenant,
        multi_tenant,
    } = &settings.provider
    else {
        return Check::new(
            name,
            Outcome::Skip,
            "not Microsoft Entra ID: the issuer names no tenant",
        );
    };
    match discovery.outcome {
        Outcome::Ok if *multi_tenant => Check::new(
            name,
            Outcome::Ok,
            format!("{tenant}: any tenant's users may sign in (oidc.allowed_tenants limits them)"),
        ),
        Outcome::Ok => Check::new(
            name,
            Outcome::Ok,
            format!("{tenant} exists (the provider published its discovery document)"),
        ),
        _ => match discovery.tenant_refused {
            Some(exp) => Check::new(name, Outcome::Fail, format!("{tenant}: {exp}")),
            None => Check::new(
                name,
                Outcome::Skip,
                "not known: the provider could not be asked (above)",
            ),
        },
    }
}

/// A provider error as one line: what happened and, when the provider's
/// answer names it, the key to fix.
fn describe(e: &ProviderError) -> String {
    match e {
        ProviderError::Unreachable { url, reason } => format!(
            "no answer from {url}: {reason}. Fix: check the network, and oidc.tenant / oidc.cloud / oidc.issuer"
        ),
        ProviderError::Failing { .. } => {
            format!("{e}. Nothing to fix in aadgate: try again later")
        }
        ProviderError::Refused {
            explanation: Some(exp),
            status,
            url,
            ..
        } => format!("{url} answered HTTP {status}: {exp}"),
        ProviderError::TokenEndpoint {
            explanation: Some(exp),
            error,
            status,
            ..
        } => format!("the token endpoint answered HTTP {status} {error}: {exp}"),
        ProviderError::IssuerMismatch { .. } => format!(
            "{e}. Fix: oidc.issuer must be the provider's issuer exactly (or, for Entra ID, leave it out and set oidc.tenant)"
        ),
        e => e.to_string(),
    }
}

async fn client_credentials(settings: &Settings, provider: &Provider) -> Check {
    let auth = &settings.client_auth;
    let name = auth.check_name();
    let (scope, entra) = match &settings.provider {
        ProviderKind::Entra {
            multi_tenant: true,
            tenant,
        } => {
            return Check::new(
                name,
                Outcome::Unknown,
                format!(
                    "cannot be checked with oidc.tenant = \"{tenant}\": the client-credentials request needs the app's own tenant. The first sign-in checks them"
                ),
            );
        }
        ProviderKind::Entra { .. } => (Some(format!("{}/.default", settings.client_id)), true),
        ProviderKind::Generic => (None, false),
    };
    match provider.client_credentials(scope.as_deref()).await {
        Ok(_token) => Check::new(
            name,
            Outcome::Ok,
            format!(
                "the provider issued an application token to {} (client credentials): the id and the {} are right",
                settings.client_id,
                auth.what()
            ),
        ),
        Err(ProviderError::TokenEndpoint {
            explanation: Some(exp),
            error,
            status,
            ..
        }) if exp.key.is_some() => Check::new(
            name,
            Outcome::Fail,
            format!("the token endpoint answered HTTP {status} {error}: {exp}"),
        ),
        Err(ProviderError::TokenEndpoint { error, .. }) if error == "invalid_client" => Check::new(
            name,
            Outcome::Fail,
            format!(
                "the provider rejected the client's credentials (invalid_client). Fix: check oidc.client_id and {}{}",
                match auth {
                    aadgate_core::client_auth::ClientAuth::Secret(_) => "oidc.client_secret",
                    aadgate_core::client_auth::ClientAuth::Certificate(_) =>
                        "that oidc.client_certificate is uploaded to the app registration (Certificates & secrets) and oidc.client_key is its key",
                    aadgate_core::client_auth::ClientAuth::AssertionFile(_) =>
                        "the app registration's federated credential (issuer, subject, audience api://AzureADTokenExchange) against the token in oidc.client_assertion_file",
                },
                if entra {
                    ""
                } else {
                    " (the provider's log says which)"
                }
            ),
        ),
        Err(ProviderError::TokenEndpoint {
            error, description, ..
        }) => Check::new(
            name,
            Outcome::Unknown,
            format!(
                "could not be determined: the provider refused the client-credentials request with {error}{}{}, which does not say whether the id and secret are right. The first sign-in checks them",
                if description.is_empty() { "" } else { ": " },
                description
            ),
        ),
        Err(e) => Check::new(name, Outcome::Fail, describe(&e)),
    }
}

async fn redirect_uri(settings: &Settings, provider: &Provider) -> Check {
    let name = "redirect URI";
    let uri = settings.redirect_uri.as_str();
    match provider.probe_redirect_uri(uri).await {
        Ok(RedirectUriProbe::Registered) => Check::new(
            name,
            Outcome::Ok,
            format!("{uri} is registered (the provider redirected to it)"),
        ),
        Ok(RedirectUriProbe::NotRegistered) => Check::new(
            name,
            Outcome::Fail,
            format!(
                "{uri} is not registered for oidc.client_id: {}",
                entra::explain(50011).map_or_else(String::new, |e| e.to_string())
            ),
        ),
        Ok(RedirectUriProbe::Refused {
            explanation: Some(exp),
            ..
        }) => Check::new(
            name,
            if exp.key.is_some() {
                Outcome::Fail
            } else {
                Outcome::Unknown
            },
            format!("the authorization endpoint refused the probe: {exp}"),
        ),
        Ok(RedirectUriProbe::Refused { code, status, .. }) => Check::new(
            name,
            Outcome::Unknown,
            format!(
                "could not be determined: the authorization endpoint answered HTTP {status} with AADSTS{code}. Check {uri} is registered exactly"
            ),
        ),
        Ok(RedirectUriProbe::Unknown { status }) => Check::new(
            name,
            Outcome::Unknown,
            format!(
                "could not be determined: the provider answered HTTP {status} without saying (it tells only in a browser). Check {uri} is registered exactly (scheme, host, port, path)"
            ),
        ),
        Err(e) => Check::new(name, Outcome::Fail, describe(&e)),
    }
}

/// An HTTP request to the app: any answer means it is up.
async fn upstream(url: &Url) -> Check {
    let name = "upstream";
    let fix = "Fix: start the app, or correct `upstream`";
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = match tokio::net::lookup_host((host, port)).await {
        Ok(a) => a.collect::<Vec<_>>(),
        Err(e) => {
            return Check::new(
                name,
                Outcome::Fail,
                format!("{url}: cannot resolve {host} ({e}). {fix}"),
            );
        }
    };
    let Some(addr) = addrs.first().copied() else {
        return Check::new(
            name,
            Outcome::Fail,
            format!("{url}: {host} has no address. {fix}"),
        );
    };
    let stream = match tokio::time::timeout(UPSTREAM_WAIT, tokio::net::TcpStream::connect(addr))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Check::new(
                name,
                Outcome::Fail,
                format!("{url}: connection refused (nothing listens at {addr}). {fix}"),
            );
        }
        Ok(Err(e)) => {
            return Check::new(
                name,
                Outcome::Fail,
                format!("{url}: cannot connect ({e}). {fix}"),
            );
        }
        Err(_) => {
            return Check::new(
                name,
                Outcome::Fail,
                format!(
                    "{url}: no connection within {} s (a firewall, or the wrong address). {fix}",
                    UPSTREAM_WAIT.as_secs()
                ),
            );
        }
    };
    let answered = tokio::time::timeout(UPSTREAM_WAIT, async {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = http::Request::get(url.path())
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(
                http::header::USER_AGENT,
                concat!("aadgate-check-config/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<bytes::Bytes>::new())
            .expect("a GET request builds");
        sender.send_request(req).await.map(|r| r.status())
    })
    .await;
    match answered {
        Ok(Ok(status)) => Check::new(
            name,
            Outcome::Ok,
            format!("{url} answered HTTP {}", status.as_u16()),
        ),
        Ok(Err(e)) => Check::new(
            name,
            Outcome::Fail,
            format!("{url} accepted the connection but did not answer HTTP ({e}). {fix}"),
        ),
        Err(_) => Check::new(
            name,
            Outcome::Fail,
            format!(
                "{url} accepted the connection but did not answer within {} s. {fix}",
                UPSTREAM_WAIT.as_secs()
            ),
        ),
    }
}
