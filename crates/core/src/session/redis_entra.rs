//! Microsoft Entra authentication to Azure Cache for Redis
//! (`session.redis_auth = "managed-identity"` or `"workload-identity"`):
//! the password is an Entra access token for `https://redis.azure.com`, the
//! user the identity's object ID, and Azure closes a connection whose token
//! has expired unless it signed in again with a new one.
//!
//! [`EntraCredentials`] obtains the token, renews it when three quarters of
//! its lifetime have passed (as Microsoft's own Redis clients do), and hands
//! every new one to redis-rs's connections through its
//! `StreamingCredentialsProvider`, which sends `AUTH` on each open
//! connection and uses the newest token for every new one. The Azure SDK
//! credential that redis-rs's `entra-id` feature wraps would bring the
//! whole Azure SDK for two HTTP requests; these are written here instead.
//!
//! Where the token comes from (the same variables the Azure SDKs read):
//! - managed identity on App Service, Container Apps and Functions:
//!   `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`, set by the platform;
//! - managed identity elsewhere (a VM, a scale set, an AKS node): the
//!   instance metadata service at 169.254.169.254 (or
//!   `AZURE_POD_IDENTITY_AUTHORITY_HOST`);
//! - AKS workload identity: the federated token in
//!   `AZURE_FEDERATED_TOKEN_FILE`, exchanged at
//!   `AZURE_AUTHORITY_HOST` (default `https://login.microsoftonline.com/`)
//!   for `AZURE_TENANT_ID` as the application `AZURE_CLIENT_ID`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::Stream;
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use serde::Deserialize;
use tokio::sync::watch;

use super::{RedisAuth, StoreError};

/// The resource Azure Cache for Redis accepts tokens for.
const RESOURCE: &str = "https://redis.azure.com";
/// How long a token request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between attempts after a failure.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Where tokens come from, resolved from the environment at start-up.
#[derive(Clone)]
enum Source {
    /// App Service, Container Apps, Functions (`IDENTITY_ENDPOINT`).
    AppService {
        endpoint: String,
        secret: String,
        client_id: Option<String>,
    },
    /// The instance metadata service.
    Imds {
        endpoint: String,
        client_id: Option<String>,
    },
    /// AKS workload identity.
    Workload {
        token_url: String,
        client_id: String,
        token_file: std::path::PathBuf,
    },
}

impl Source {
    /// The source `auth` names, from the environment `var` reads; `None`
    /// for password authentication; an error naming what is missing.
    fn resolve(
        auth: &RedisAuth,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, StoreError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        match auth {
            RedisAuth::Password => Ok(None),
            RedisAuth::ManagedIdentity { client_id } => {
                let client_id = client_id.clone().or_else(|| var("AZURE_CLIENT_ID"));
                if let (Some(endpoint), Some(secret)) =
                    (var("IDENTITY_ENDPOINT"), var("IDENTITY_HEADER"))
                {
                    return Ok(Some(Self::AppService {
                        endpoint,
                        secret,
                        client_id,
                    }));
                }
                let host = var("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                    .unwrap_or_else(|| "http://169.254.169.254".to_owned());
                Ok(Some(Self::Imds {
                    endpoint: format!(
                        "{}/metadata/identity/oauth2/token",
                        host.trim_end_matches('/')
                    ),
                    client_id,
                }))
            }
            RedisAuth::WorkloadIdentity => {
                let names = [
                    "AZURE_FEDERATED_TOKEN_FILE",
                    "AZURE_CLIENT_ID",
                    "AZURE_TENANT_ID",
                ];
                let missing: Vec<&str> =
                    names.iter().copied().filter(|n| var(n).is_none()).collect();
                if !missing.is_empty() {
                    return Err(StoreError::from_any(format!(
                        "session.redis_auth = \"workload-identity\" needs {} in the environment, which AKS sets in a pod whose service account is annotated azure.workload.identity/client-id and that is labelled azure.workload.identity/use: \"true\"; missing: {}",
                        names.join(", "),
                        missing.join(", ")
                    )));
                }
                let authority = var("AZURE_AUTHORITY_HOST")
                    .unwrap_or_else(|| "https://login.microsoftonline.com/".to_owned());
                Ok(Some(Self::Workload {
                    token_url: format!(
                        "{}/{}/oauth2/v2.0/token",
                        authority.trim_end_matches('/'),
                        var("AZURE_TENANT_ID").unwrap_or_default()
                    ),
                    client_id: var("AZURE_CLIENT_ID").unwrap_or_default(),
                    token_file: var("AZURE_FEDERATED_TOKEN_FILE").unwrap_or_default().into(),
                }))
            }
        }
    }

    /// What the log calls it.
    fn describe(&self) -> &'static str {
        match self {
            Self::AppService { .. } => "the managed identity (IDENTITY_ENDPOINT)",
            Self::Imds { .. } => "the managed identity (instance metadata service)",
            Self::Workload { .. } => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
        }
    }

    /// Asks for a token; its text and when it expires (unix seconds).
    async fn token(&self, http: &reqwest::Client) -> Result<(String, i64), String> {
        let request = match self {
            Self::AppService {
                endpoint,
                secret,
                client_id,
            } => http
                .get(with_query(endpoint, "2019-08-01", client_id.as_deref())?)
                .header("X-IDENTITY-HEADER", secret),
            Self::Imds {
                endpoint,
                client_id,
            } => http
                .get(with_query(endpoint, "2018-02-01", client_id.as_deref())?)
                .header("Metadata", "true"),
            Self::Workload {
                token_url,
                client_id,
                token_file,
            } => {
                // Kubernetes rotates the file: read it for every request.
                let assertion = tokio::fs::read_to_string(token_file)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", token_file.display()))?;
                http.post(token_url).form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("scope", &format!("{RESOURCE}/.default")),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.trim()),
                ])
            }
        };
        let response = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        if !status.is_success() {
            return Err(refusal(status, &body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| format!("an answer that is not a token ({e})"))?;
        let now = crate::clock::Clock::system().now();
        let expires_at = match (&answer.expires_on, answer.expires_in) {
            (Some(on), _) => on.seconds(),
            (None, Some(in_)) => Some(now + in_.seconds().unwrap_or(0)),
            (None, None) => None,
        }
        .filter(|t| *t > now)
        .ok_or("a token without a future expiry (expires_on / expires_in)")?;
        Ok((answer.access_token, expires_at))
    }
}

/// A managed-identity endpoint's URL asking for a Redis token.
fn with_query(
    endpoint: &str,
    api_version: &str,
    client_id: Option<&str>,
) -> Result<url::Url, String> {
    let mut url =
        url::Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL ({e})"))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("api-version", api_version)
            .append_pair("resource", RESOURCE);
        if let Some(id) = client_id {
            q.append_pair("client_id", id);
        }
    }
    Ok(url)
}

/// What Entra and the managed-identity endpoints answer (the endpoints give
/// `expires_on` in unix seconds, as a string or a number; Entra gives
/// `expires_in`).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_on: Option<Seconds>,
    expires_in: Option<Seconds>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(i64),
    Text(String),
}

impl Seconds {
    fn seconds(&self) -> Option<i64> {
        match self {
            Self::Number(n) => Some(*n),
            Self::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// Why a token request was refused, with Entra's explanation of an AADSTS
/// code when it gave one.
fn refusal(status: reqwest::StatusCode, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Error {
        error: Option<String>,
        error_description: Option<String>,
    }
    let raw = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    let text = match serde_json::from_slice::<Error>(body) {
        Ok(Error {
            error: Some(error),
            error_description,
        }) => format!("{error} {}", error_description.unwrap_or_default()),
        _ => raw(),
    };
    let text = text.trim();
    match crate::entra::explain_text(text) {
        Some(why) => format!("refused ({status}): {text} ({why})"),
        None => format!("refused ({status}): {text}"),
    }
}

/// The `oid` claim of an access token: the object ID Azure Cache for Redis
/// expects as the user. The token is not verified here; Redis does that.
fn object_id(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
    claims.get("oid")?.as_str().map(str::to_owned)
}

/// The newest credentials.
#[derive(Clone)]
enum State {
    /// No token yet.
    Pending,
    Ready(BasicAuth),
    /// The last attempt failed, and no token is valid.
    Failed(String),
}

/// Entra tokens as Redis credentials, renewed in the background (started
/// by the first connection); cheap to clone.
#[derive(Clone)]
pub(super) struct EntraCredentials {
    state: watch::Receiver<State>,
    /// The renewal task's end of the channel, until it starts.
    renewal: Arc<Mutex<Option<Renewal>>>,
}

struct Renewal {
    source: Source,
    user: Option<String>,
    state: watch::Sender<State>,
}

impl EntraCredentials {
    /// Credentials for `auth` (`None` for passwords), as the user `user`
    /// (else the token's `oid`), from the process environment.
    pub(super) fn new(auth: &RedisAuth, user: Option<String>) -> Result<Option<Self>, StoreError> {
        Self::with_env(auth, user, &|name| std::env::var(name).ok())
    }

    fn with_env(
        auth: &RedisAuth,
        user: Option<String>,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, StoreError> {
        let Some(source) = Source::resolve(auth, var)? else {
            return Ok(None);
        };
        let (tx, rx) = watch::channel(State::Pending);
        Ok(Some(Self {
            state: rx,
            renewal: Arc::new(Mutex::new(Some(Renewal {
                source,
                user,
                state: tx,
            }))),
        }))
    }

    /// Starts the renewal task once (it needs the runtime, which exists by
    /// the time anything connects). It ends when every copy of these
    /// credentials is gone.
    fn start(&self) {
        let Some(renewal) = self.renewal.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        tokio::spawn(renewal.run());
    }

    /// The newest credentials, waiting for the first token; why there is
    /// none when the last attempt failed and no token is valid.
    pub(super) async fn current(&self) -> Result<BasicAuth, String> {
        self.start();
        let mut rx = self.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                State::Ready(auth) => return Ok(auth.clone()),
                State::Failed(why) => return Err(why.clone()),
                State::Pending => {}
            }
            rx.changed()
                .await
                .map_err(|_| "the token renewal stopped".to_owned())?;
        }
    }

    /// Each token renewed from now on.
    pub(super) fn renewals(&self) -> impl Stream<Item = BasicAuth> + Send + 'static {
        let mut rx = self.state.clone();
        rx.borrow_and_update();
        futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                let state = rx.borrow_and_update().clone();
                if let State::Ready(auth) = state {
                    return Some((auth, rx));
                }
            }
        })
    }
}

impl Renewal {
    async fn run(self) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("aadgate/", env!("CARGO_PKG_VERSION")))
            .build();
        let Ok(http) = http else {
            let _ = self.state.send(State::Failed("no HTTP client".into()));
            return;
        };
        let mut retry = Duration::from_secs(1);
        let mut valid_until = 0;
        loop {
            let next = match self.source.token(&http).await.and_then(|(token, exp)| {
                let user = self
                    .user
                    .clone()
                    .or_else(|| object_id(&token))
                    .ok_or("a token without an oid claim; name the identity's object ID as the user in session.store (rediss://<object id>@host:6380)")?;
                Ok((BasicAuth::new(user, token), exp))
            }) {
                Ok((auth, expires_at)) => {
                    let now = crate::clock::Clock::system().now();
                    tracing::info!(
                        expires_in_secs = expires_at - now,
                        user = auth.username(),
                        "Redis: signed in with a Microsoft Entra token from {}",
                        self.source.describe()
                    );
                    valid_until = expires_at;
                    retry = Duration::from_secs(1);
                    let _ = self.state.send(State::Ready(auth));
                    // Renew when three quarters of the lifetime have passed.
                    let wait = (expires_at - now).max(4) * 3 / 4;
                    Duration::from_secs(u64::try_from(wait).unwrap_or(1))
                }
                Err(why) => {
                    let now = crate::clock::Clock::system().now();
                    tracing::warn!(
                        retry_in_secs = retry.as_secs(),
                        "Redis: cannot get a Microsoft Entra token from {} for {RESOURCE}: {why}",
                        self.source.describe()
                    );
                    if now >= valid_until {
                        let _ = self.state.send(State::Failed(why));
                    }
                    let wait = retry;
                    retry = (retry * 2).min(MAX_RETRY);
                    wait
                }
            };
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = self.state.closed() => return,
            }
        }
    }
}

impl StreamingCredentialsProvider for EntraCredentials {
    /// The newest credentials first (an error when there is no valid
    /// token, so connecting fails at once rather than hanging), then each
    /// renewed token.
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = redis::RedisResult<BasicAuth>> + Send>> {
        use futures_util::StreamExt as _;
        let renewals = self.renewals().map(Ok);
        let first = self.clone();
        Box::pin(
            futures_util::stream::once(async move {
                first.current().await.map_err(|why| {
                    redis::RedisError::from((
                        redis::ErrorKind::AuthenticationFailed,
                        "no Microsoft Entra token",
                        why,
                    ))
                })
            })
            .chain(renewals),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn the_source_follows_the_platform_variables() {
        let managed = RedisAuth::ManagedIdentity { client_id: None };
        let app_service = env(&[
            ("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token"),
            ("IDENTITY_HEADER", "s3cret"),
        ]);
        assert!(matches!(
            Source::resolve(&managed, &app_service).unwrap(),
            Some(Source::AppService { ref endpoint, client_id: None, .. }) if endpoint == "http://localhost:42356/msi/token"
        ));
        let vm = env(&[("AZURE_CLIENT_ID", "user-assigned")]);
        assert!(matches!(
            Source::resolve(&managed, &vm).unwrap(),
            Some(Source::Imds { ref endpoint, client_id: Some(ref id) })
                if endpoint == "http://169.254.169.254/metadata/identity/oauth2/token" && id == "user-assigned"
        ));
        let chosen = RedisAuth::ManagedIdentity {
            client_id: Some("from-config".into()),
        };
        assert!(matches!(
            Source::resolve(&chosen, &vm).unwrap(),
            Some(Source::Imds { client_id: Some(ref id), .. }) if id == "from-config"
        ));
        assert!(
            Source::resolve(&RedisAuth::Password, &vm)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn workload_identity_names_what_is_missing() {
        let e = Source::resolve(
            &RedisAuth::WorkloadIdentity,
            &env(&[("AZURE_CLIENT_ID", "c")]),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("missing: AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID"),
            "{e}"
        );
        let ok = Source::resolve(
            &RedisAuth::WorkloadIdentity,
            &env(&[
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/token"),
                ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
            ]),
        )
        .unwrap();
        assert!(matches!(
            ok,
            Some(Source::Workload { ref token_url, .. }) if token_url == "https://login.microsoftonline.us/t/oauth2/v2.0/token"
        ));
    }

    #[test]
    fn the_user_is_the_tokens_object_id() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"oid":"5b1c-oid","aud":"https://redis.azure.com"}"#);
        assert_eq!(
            object_id(&format!("h.{payload}.s")).as_deref(),
            Some("5b1c-oid")
        );
        assert_eq!(object_id("not a token"), None);
    }

    #[test]
    fn refusals_carry_entras_explanation() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS700016: Application with identifier 'x' was not found in the directory."}"#;
        let why = refusal(reqwest::StatusCode::BAD_REQUEST, body);
        assert!(why.contains("AADSTS700016") && why.contains("400"), "{why}");
    }
}
