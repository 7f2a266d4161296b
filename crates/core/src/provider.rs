//! The OpenID provider: discovery, the signing-key cache and the token endpoint.
//!
//! Discovery and keys are fetched lazily, so a provider that is down at
//! start-up does not stop aadgate from serving existing sessions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::client_auth::{ClientAuth, JWT_BEARER};
use crate::config::{ProviderKind, Settings, is_loopback_url};
use crate::error::{BearerError, ProviderError, TokenError};
use crate::metrics::{Metrics, ProviderFetch};
use crate::token::{
    self, AccessClaims, AccessExpectations, Algorithm, Expectations, IdClaims, VerifyingKey,
};

/// Largest discovery / JWKS / token response read.
const MAX_BODY: usize = 1024 * 1024;
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;
/// Keys older than this are refetched on next use.
const KEYS_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// An unknown `kid` triggers a refetch at most this often.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(300);
/// Oldest acceptable `iat` of an ID token received now.
const MAX_TOKEN_AGE: i64 = 3600;

/// The parts of the discovery document aadgate uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Issuer (for Entra multi-tenant, a template with `{tenantid}`).
    pub issuer: String,
    /// Authorization endpoint.
    pub authorization_endpoint: Url,
    /// Token endpoint.
    pub token_endpoint: Url,
    /// JWKS.
    pub jwks_uri: Url,
    /// RP-initiated logout.
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
    /// Client authentication methods.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// ID-token algorithms the provider uses.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// Tokens from the token endpoint.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// Access token (opaque to aadgate).
    pub access_token: String,
    /// Lifetime of the access token in seconds.
    #[serde(default)]
    pub expires_in: Option<u64>,
    /// Refresh token, with `offline_access`.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// ID token.
    #[serde(default)]
    pub id_token: Option<String>,
    /// Scopes granted, when the provider says (RFC 6749 5.1).
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenResponse(..redacted..)")
    }
}

struct KeyState {
    keys: Arc<Vec<VerifyingKey>>,
    fetched_at: Option<Instant>,
    last_forced: Option<Instant>,
}

/// A configured provider with its caches.
pub struct Provider {
    kind: ProviderKind,
    configured_issuer: String,
    client_id: String,
    client_auth: ClientAuth,
    allowed_tenants: Vec<String>,
    allowed_algorithms: Option<Vec<Algorithm>>,
    /// Audiences naming this API in access tokens.
    audiences: Vec<String>,
    accept_v1_tokens: bool,
    graph_url: Option<Url>,
    skew: i64,
    http: reqwest::Client,
    metadata: Mutex<Option<Arc<Metadata>>>,
    discovery_lock: tokio::sync::Mutex<()>,
    keys: Mutex<KeyState>,
    keys_lock: tokio::sync::Mutex<()>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.configured_issuer)
            .finish_non_exhaustive()
    }
}

/// Entra's v1.0 issuer for the tenant of a v2.0 issuer (or template):
/// `https://login.microsoftonline.com/{t}/v2.0` -> `https://sts.windows.net/{t}/`
/// (`sts.chinacloudapi.cn` in Microsoft's China cloud).
fn v1_issuer(v2: &str) -> String {
    let tenant = v2
        .trim_end_matches('/')
        .trim_end_matches("/v2.0")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let host = if v2.contains(".cn/") {
        "https://sts.chinacloudapi.cn"
    } else {
        "https://sts.windows.net"
    };
    format!("{host}/{tenant}/")
}

/// ID tokens are checked against the system time: they were minted by the
/// provider's clock, not by a test's [`Clock`](crate::clock::Clock).
fn now_secs() -> i64 {
    crate::clock::Clock::system().now()
}

impl Provider {
    /// A provider for these settings. Nothing is fetched yet.
    pub fn new(settings: &Settings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("aadgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with rustls builds");
        Self {
            kind: settings.provider.clone(),
            configured_issuer: settings.issuer.as_str().trim_end_matches('/').to_owned(),
            client_id: settings.client_id.clone(),
            client_auth: settings.client_auth.clone(),
            allowed_tenants: settings.allowed_tenants.clone(),
            allowed_algorithms: settings.allowed_algorithms.clone(),
            audiences: settings.audiences.clone(),
            accept_v1_tokens: settings.accept_v1_tokens,
            graph_url: settings.graph_url.clone(),
            skew: settings.clock_skew.as_secs() as i64,
            http,
            metadata: Mutex::new(None),
            discovery_lock: tokio::sync::Mutex::new(()),
            keys: Mutex::new(KeyState {
                keys: Arc::new(Vec::new()),
                fetched_at: None,
                last_forced: None,
            }),
            keys_lock: tokio::sync::Mutex::new(()),
            metrics: None,
        }
    }

    /// Counts every request to the provider into `metrics`
    /// (`aadgate_provider_fetches_total`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count<T>(&self, what: ProviderFetch, result: &Result<T, ProviderError>) {
        if let Some(m) = &self.metrics {
            m.provider_fetch(what, result.as_ref().map(drop));
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Discovery metadata, fetched once and cached.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, ProviderError> {
        if let Some(m) = self.metadata.lock().expect("metadata lock").clone() {
            return Ok(m);
        }
        let _single_flight = self.discovery_lock.lock().await;
        if let Some(m) = self.metadata.lock().expect("metadata lock").clone() {
            return Ok(m);
        }
        let fetched = self.discover().await;
        self.count(ProviderFetch::Discovery, &fetched);
        let meta = Arc::new(fetched?);
        *self.metadata.lock().expect("metadata lock") = Some(meta.clone());
        Ok(meta)
    }

    /// Fetches and checks the discovery document.
    async fn discover(&self) -> Result<Metadata, ProviderError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.configured_issuer
        );
        let body = self.get_json(&url).await?;
        let meta: Metadata = serde_json::from_value(body).map_err(|e| ProviderError::Invalid {
            what: "discovery document",
            reason: e.to_string(),
        })?;
        self.check_metadata(&meta)?;
        Ok(meta)
    }

    fn check_metadata(&self, meta: &Metadata) -> Result<(), ProviderError> {
        let found = meta.issuer.trim_end_matches('/');
        let ok = match &self.kind {
            ProviderKind::Generic => found == self.configured_issuer,
            ProviderKind::Entra {
                multi_tenant: true,
                tenant,
            } => {
                // .../organizations/v2.0 publishes the template .../{tenantid}/v2.0
                self.configured_issuer
                    .replace(&format!("/{tenant}/"), "/{tenantid}/")
                    == found
            }
            ProviderKind::Entra {
                multi_tenant: false,
                tenant,
            } => {
                // A domain tenant resolves to the tenant's GUID on the same host.
                // Tenant GUIDs are case-insensitive; Entra publishes them lower-case.
                found.eq_ignore_ascii_case(&self.configured_issuer)
                    || (!crate::entra::is_guid(tenant)
                        && found.rsplit('/').nth(1).is_some_and(|guid| {
                            crate::entra::is_guid(guid)
                                && self
                                    .configured_issuer
                                    .replace(&format!("/{tenant}/v2.0"), &format!("/{guid}/v2.0"))
                                    == found
                        }))
            }
        };
        if !ok {
            return Err(ProviderError::IssuerMismatch {
                expected: self.configured_issuer.clone(),
                found: meta.issuer.clone(),
            });
        }
        let issuer_url =
            Url::parse(&self.configured_issuer).map_err(|e| ProviderError::Invalid {
                what: "issuer",
                reason: e.to_string(),
            })?;
        for (what, u) in [
            ("authorization_endpoint", &meta.authorization_endpoint),
            ("token_endpoint", &meta.token_endpoint),
            ("jwks_uri", &meta.jwks_uri),
        ] {
            let secure = u.scheme() == "https"
                || (u.scheme() == "http" && is_loopback_url(&issuer_url) && is_loopback_url(u));
            if !secure {
                return Err(ProviderError::Invalid {
                    what,
                    reason: format!("{u} is not https"),
                });
            }
        }
        Ok(())
    }

    /// Whether sign-ins can work now: discovery loaded and signing keys
    /// fetched (fetching them when not yet). Once both have been loaded, a
    /// later provider outage does not make this fail: signed-in users keep
    /// working, and sign-ins report the outage themselves.
    pub async fn ready(&self) -> Result<(), ProviderError> {
        self.metadata().await?;
        let fetched = self.keys.lock().expect("keys lock").fetched_at.is_some();
        if !fetched {
            self.fetch_keys(false).await?;
        }
        Ok(())
    }

    /// Fetches the signing keys now (discovery first, when not yet loaded)
    /// and returns how many usable ones the provider publishes.
    pub async fn fetch_signing_keys(&self) -> Result<usize, ProviderError> {
        self.fetch_keys(false).await?;
        Ok(self.keys.lock().expect("keys lock").keys.len())
    }

    /// The issuer tokens must carry (discovery's, possibly a template).
    pub async fn issuer(&self) -> Result<String, ProviderError> {
        Ok(self.metadata().await?.issuer.clone())
    }

    fn allowed_algorithms(&self, meta: &Metadata) -> Vec<Algorithm> {
        if let Some(a) = &self.allowed_algorithms {
            return a.clone();
        }
        if matches!(self.kind, ProviderKind::Entra { .. }) {
            return vec![Algorithm::RS256];
        }
        let from_discovery: Vec<Algorithm> = meta
            .id_token_signing_alg_values_supported
            .iter()
            .filter_map(|a| token::parse_allowed_algorithm(a).ok())
            .collect();
        if from_discovery.is_empty() {
            vec![Algorithm::RS256]
        } else {
            from_discovery
        }
    }

    async fn get_json(&self, url: &str) -> Result<Value, ProviderError> {
        let unreachable = |reason: String| ProviderError::Unreachable {
            url: url.to_owned(),
            reason,
        };
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            // Entra answers a wrong tenant with 400 and an AADSTS code: the
            // setting is wrong, the provider is up.
            let body = read_capped(resp).await.unwrap_or_default();
            let answer = ErrorAnswer::parse(&body);
            if status.is_server_error() {
                return Err(answer.failing(url, status));
            }
            let description = if answer.description.is_empty() {
                answer.error
            } else {
                answer.description
            };
            return Err(ProviderError::Refused {
                url: url.to_owned(),
                status: status.as_u16(),
                explanation: crate::entra::explain_text(&description),
                description,
            });
        }
        let body = read_capped(resp).await.map_err(unreachable)?;
        serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid {
            what: "JSON document",
            reason: e.to_string(),
        })
    }

    async fn fetch_keys(&self, forced: bool) -> Result<(), ProviderError> {
        let meta = self.metadata().await?;
        let fetched = self
            .get_json(meta.jwks_uri.as_str())
            .await
            .and_then(|mut body| match body.get_mut("keys").map(Value::take) {
                Some(Value::Array(list)) => Ok(list),
                _ => Err(ProviderError::Invalid {
                    what: "JWKS",
                    reason: "no keys array".into(),
                }),
            });
        self.count(ProviderFetch::Jwks, &fetched);
        let list = fetched?;
        let mut keys = Vec::new();
        for (i, jwk) in list.iter().enumerate() {
            if keys.len() >= MAX_KEYS {
                tracing::warn!(
                    count = list.len(),
                    "JWKS has more keys than {MAX_KEYS}; ignoring the rest"
                );
                break;
            }
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => keys.push(k),
                Err(why) => tracing::debug!(index = i, %why, "ignoring a JWKS key"),
            }
        }
        let mut st = self.keys.lock().expect("keys lock");
        st.keys = Arc::new(keys);
        st.fetched_at = Some(Instant::now());
        if forced {
            st.last_forced = Some(Instant::now());
        }
        Ok(())
    }

    async fn current_keys(&self) -> Arc<Vec<VerifyingKey>> {
        let stale = {
            let st = self.keys.lock().expect("keys lock");
            st.fetched_at.is_none_or(|t| t.elapsed() > KEYS_MAX_AGE)
        };
        if stale {
            let _g = self.keys_lock.lock().await;
            let still = self
                .keys
                .lock()
                .expect("keys lock")
                .fetched_at
                .is_none_or(|t| t.elapsed() > KEYS_MAX_AGE);
            if still && let Err(e) = self.fetch_keys(false).await {
                // Keep the last good set.
                tracing::warn!(error = %e, "could not fetch signing keys");
            }
        }
        self.keys.lock().expect("keys lock").keys.clone()
    }

    /// Refetch for an unknown kid, at most once per [`UNKNOWN_KID_REFETCH`].
    async fn refetch_for_unknown_kid(&self) -> Arc<Vec<VerifyingKey>> {
        let before = self.keys.lock().expect("keys lock").fetched_at;
        let _g = self.keys_lock.lock().await;
        let (allowed, after) = {
            let st = self.keys.lock().expect("keys lock");
            (
                st.last_forced
                    .is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFETCH),
                st.fetched_at,
            )
        };
        // Another task refetched while we waited: use its result.
        if allowed && before == after {
            // The attempt counts, failed or not: a failing JWKS is not
            // asked again for every token with an unknown kid.
            self.keys.lock().expect("keys lock").last_forced = Some(Instant::now());
            if let Err(e) = self.fetch_keys(true).await {
                tracing::warn!(error = %e, "could not refetch signing keys");
            }
        }
        self.keys.lock().expect("keys lock").keys.clone()
    }

    /// Validates an ID token fully. `nonce` is required at sign-in and `None`
    /// for tokens from a refresh.
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<IdClaims, TokenError> {
        let meta = self
            .metadata()
            .await
            .map_err(|e| TokenError::Malformed(format!("provider: {e}")))?;
        let header = token::read_header(id_token, &self.allowed_algorithms(&meta))?;
        let keys = self.current_keys().await;
        let keys = match token::select_key(&header, &keys) {
            Err(TokenError::UnknownKey(_)) => self.refetch_for_unknown_kid().await,
            _ => keys,
        };
        let key = token::select_key(&header, &keys)?;
        let claims = token::verify_signature(id_token, &header, key)?;
        let x = Expectations {
            issuer: &meta.issuer,
            client_id: &self.client_id,
            allowed_tenants: &self.allowed_tenants,
            entra: matches!(self.kind, ProviderKind::Entra { .. }),
            nonce,
            now: now_secs(),
            skew: self.skew,
            max_age: MAX_TOKEN_AGE,
        };
        token::check_claims(&claims, key, &x)
    }

    /// Validates an access token presented to this app's API as a bearer
    /// token: signature by the provider's keys, then
    /// [`token::check_access_claims`] (issuer and tenant as at sign-in, an
    /// audience of this API, times, who calls).
    pub async fn validate_access_token(&self, token: &str) -> Result<AccessClaims, BearerError> {
        let meta = self.metadata().await.map_err(BearerError::Unavailable)?;
        let header = token::read_header(token, &self.allowed_algorithms(&meta))?;
        let keys = self.current_keys().await;
        let keys = match token::select_key(&header, &keys) {
            Err(TokenError::UnknownKey(_)) => self.refetch_for_unknown_kid().await,
            _ => keys,
        };
        if keys.is_empty() {
            return Err(BearerError::Unavailable(ProviderError::Invalid {
                what: "JWKS",
                reason: "no signing keys could be fetched".into(),
            }));
        }
        let key = token::select_key(&header, &keys)?;
        let claims = token::verify_signature(token, &header, key)?;
        let entra = matches!(self.kind, ProviderKind::Entra { .. });
        let v1_issuer = (entra && self.accept_v1_tokens).then(|| v1_issuer(&meta.issuer));
        let x = AccessExpectations {
            issuer: &meta.issuer,
            v1_issuer: v1_issuer.as_deref(),
            audiences: &self.audiences,
            allowed_tenants: &self.allowed_tenants,
            entra,
            now: now_secs(),
            skew: self.skew,
        };
        Ok(token::check_access_claims(&claims, &header, key, &x)?)
    }

    /// The object IDs of every group the user of `access_token` is a member
    /// of, transitive membership included: Microsoft Graph's
    /// `POST /v1.0/me/getMemberObjects` (`securityEnabledOnly: false`). For
    /// a token that reported group overage.
    pub async fn member_groups(&self, access_token: &str) -> Result<Vec<String>, ProviderError> {
        let Some(base) = &self.graph_url else {
            return Err(ProviderError::Invalid {
                what: "configuration",
                reason: "no Microsoft Graph address (oidc.graph_url)".into(),
            });
        };
        let url = format!(
            "{}/v1.0/me/getMemberObjects",
            base.as_str().trim_end_matches('/')
        );
        let unreachable = |reason: String| ProviderError::Unreachable {
            url: url.clone(),
            reason,
        };
        let resp = self
            .http
            .post(&url)
            // Within the session's refresh lock (a few seconds across replicas).
            .timeout(Duration::from_secs(5))
            .bearer_auth(access_token)
            .json(&serde_json::json!({ "securityEnabledOnly": false }))
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        let body = read_capped(resp).await.map_err(unreachable)?;
        if !status.is_success() {
            // Graph's errors: {"error": {"code": "...", "message": "..."}}.
            let error: Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = error["error"]["code"].as_str().unwrap_or_default();
            let message = error["error"]["message"].as_str().unwrap_or_default();
            let fix = if status.as_u16() == 403 {
                " (add GroupMember.Read.All to oidc.scopes and grant admin consent for it: API permissions > Microsoft Graph > Delegated)"
            } else {
                ""
            };
            return Err(ProviderError::Refused {
                url,
                status: status.as_u16(),
                description: format!("{code}: {message}{fix}"),
                explanation: None,
            });
        }
        let answer: Value = serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid {
            what: "Graph answer",
            reason: e.to_string(),
        })?;
        let list = answer["value"]
            .as_array()
            .ok_or_else(|| ProviderError::Invalid {
                what: "Graph answer",
                reason: "no value array".into(),
            })?;
        Ok(list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// Exchanges an authorization code (with its PKCE verifier).
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// Uses a refresh token. `scope` is sent only when given: RFC 6749 6 says
    /// leaving it out means the scope originally granted, and a provider may
    /// refuse scopes it did not grant (Entra ID wants it sent).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, ProviderError> {
        let mut params = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        self.token_request(&params).await
    }

    /// The client-credentials grant (RFC 6749 4.4): a token for the
    /// application itself, no user. `scope` is sent when given; Entra ID
    /// wants `<resource>/.default` (for the app's own API,
    /// `<client id>/.default`). A success proves the client id and secret
    /// right; Entra's refusal names which is wrong (AADSTS700016,
    /// AADSTS7000215, AADSTS7000222; see [`crate::entra`]).
    pub async fn client_credentials(
        &self,
        scope: Option<&str>,
    ) -> Result<TokenResponse, ProviderError> {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        self.token_request(&params).await
    }

    /// Asks the authorization endpoint, without a user (`prompt=none`),
    /// whether `redirect_uri` is registered for the client. Entra ID
    /// answers an unregistered one with an error page carrying AADSTS50011
    /// and a registered one with a redirect to it (`login_required`); other
    /// answers do not tell. Nothing is signed in and no secret is sent.
    pub async fn probe_redirect_uri(
        &self,
        redirect_uri: &str,
    ) -> Result<RedirectUriProbe, ProviderError> {
        let meta = self.metadata().await?;
        let mut url = meta.authorization_endpoint.clone();
        let random = crate::crypto::random_token;
        let verifier = random();
        let challenge = crate::crypto::b64url(&crate::crypto::sha256(verifier.as_bytes()));
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_mode", "query")
            .append_pair("scope", "openid")
            .append_pair("state", &random())
            .append_pair("nonce", &random())
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "none");
        let endpoint = meta.authorization_endpoint.as_str();
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| ProviderError::Unreachable {
                url: endpoint.to_owned(),
                reason: error_chain(&e),
            })?;
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| resp.url().join(l).ok());
            let to_redirect_uri = location.is_some_and(|mut l| {
                l.set_query(None);
                l.set_fragment(None);
                l.as_str() == redirect_uri
            });
            return Ok(if to_redirect_uri {
                RedirectUriProbe::Registered
            } else {
                RedirectUriProbe::Unknown { status }
            });
        }
        if resp.status().is_server_error() {
            return Err(ProviderError::Failing {
                url: endpoint.to_owned(),
                status,
                description: String::new(),
            });
        }
        let body = read_capped(resp).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        Ok(match crate::entra::find_code(&text) {
            Some(50011) => RedirectUriProbe::NotRegistered,
            Some(code) => RedirectUriProbe::Refused {
                status,
                code,
                explanation: crate::entra::explain(code),
            },
            None => RedirectUriProbe::Unknown { status },
        })
    }

    /// Whether this is Microsoft Entra ID (or the dev IdP speaking its dialect).
    pub fn is_entra(&self) -> bool {
        matches!(self.kind, ProviderKind::Entra { .. })
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<TokenResponse, ProviderError> {
        let meta = self.metadata().await?;
        let answered = self.call_token_endpoint(&meta, params).await;
        self.count(ProviderFetch::Token, &answered);
        answered
    }

    async fn call_token_endpoint(
        &self,
        meta: &Metadata,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, ProviderError> {
        let methods = &meta.token_endpoint_auth_methods_supported;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self
            .http
            .post(meta.token_endpoint.clone())
            .header("accept", "application/json");
        form.push(("client_id", &self.client_id));
        let assertion;
        match &self.client_auth {
            ClientAuth::Secret(secret) => {
                // RFC 8414: an absent list means client_secret_basic.
                let use_post = !methods.is_empty()
                    && !methods.iter().any(|m| m == "client_secret_basic")
                    && methods.iter().any(|m| m == "client_secret_post");
                if use_post {
                    form.push(("client_secret", secret));
                } else {
                    // RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
                    let enc = |s: &str| {
                        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                    };
                    req = req.basic_auth(enc(&self.client_id), Some(enc(secret)));
                }
            }
            ClientAuth::Certificate(cert) => {
                assertion =
                    cert.assertion(&self.client_id, meta.token_endpoint.as_str(), now_secs())?;
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", &assertion));
            }
            ClientAuth::AssertionFile(path) => {
                assertion = crate::client_auth::read_assertion(path).await?;
                form.push(("client_assertion_type", JWT_BEARER));
                form.push(("client_assertion", &assertion));
            }
        }
        let url = meta.token_endpoint.as_str();
        let unreachable = |reason: String| ProviderError::Unreachable {
            url: url.to_owned(),
            reason,
        };
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        let body = read_capped(resp).await.map_err(unreachable)?;
        if !status.is_success() {
            let answer = ErrorAnswer::parse(&body);
            if status.is_server_error() {
                return Err(answer.failing(url, status));
            }
            if answer.error.is_empty() {
                return Err(ProviderError::Refused {
                    url: url.to_owned(),
                    status: status.as_u16(),
                    explanation: crate::entra::explain_text(&answer.description),
                    description: answer.description,
                });
            }
            return Err(ProviderError::TokenEndpoint {
                explanation: crate::entra::explain_text(&answer.description),
                error: answer.error,
                description: answer.description,
                status: status.as_u16(),
                trace_id: answer.trace_id,
                correlation_id: answer.correlation_id,
            });
        }
        serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid {
            what: "token response",
            reason: e.to_string(),
        })
    }
}

/// What the authorization endpoint said about a redirect URI
/// ([`Provider::probe_redirect_uri`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectUriProbe {
    /// The provider redirected to it: it is registered.
    Registered,
    /// The provider said it is not registered (AADSTS50011).
    NotRegistered,
    /// The provider refused the request for another reason it named.
    Refused {
        /// HTTP status of the error page.
        status: u16,
        /// The AADSTS code.
        code: u32,
        /// What it means, when aadgate knows the code.
        explanation: Option<&'static crate::entra::Explanation>,
    },
    /// The answer does not tell (HTTP status given).
    Unknown {
        /// HTTP status of the answer.
        status: u16,
    },
}

/// An HTTP client error with its causes (`connection refused`, `dns
/// error`), which reqwest's own message leaves out.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The parts of a provider's error answer aadgate reports: OAuth `error`,
/// the first line of `error_description` (Entra appends trace lines), and
/// Entra's trace and correlation ids.
#[derive(Debug, Default)]
struct ErrorAnswer {
    error: String,
    description: String,
    trace_id: String,
    correlation_id: String,
}

impl ErrorAnswer {
    /// The provider at `url` answered `status`, a server error, with this.
    fn failing(self, url: &str, status: reqwest::StatusCode) -> ProviderError {
        ProviderError::Failing {
            url: url.to_owned(),
            status: status.as_u16(),
            description: self.description,
        }
    }

    fn parse(body: &[u8]) -> Self {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(500)
                .collect::<String>()
        };
        Self {
            error: s("error"),
            description: s("error_description"),
            trace_id: s("trace_id"),
            correlation_id: s("correlation_id"),
        }
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("response larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
