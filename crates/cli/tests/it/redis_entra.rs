//! Microsoft Entra authentication to Redis, as Azure Cache for Redis does
//! it: the user is the identity's object ID, the password an Entra access
//! token for `https://redis.azure.com` that expires.
//!
//! The test plays Azure. Its managed-identity endpoint (App Service's
//! protocol) and its Entra token endpoint (for workload identity's
//! federated token) hand out real tokens, minted by the dev IdP with the
//! client-credentials grant, and make each one a password of the
//! identity's Redis user (Redis's ACL), as Azure Cache for Redis accepts
//! any unexpired token. `default` stays the test's own user. The real
//! `aadgate` binary runs with the variables the platform sets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;

use crate::harness::{Browser, Idp, config_text, start_echo};
use crate::redis_server::RedisServer;
use crate::restart::Instance;

const ADMIN: &str = "test-admin-password";
const IDENTITY_HEADER: &str = "platform-secret-1234";
/// The tokens' lifetime as Azure reports it (`expires_on`): aadgate renews
/// them after three quarters of it.
const LIFETIME: i64 = 8;

/// What the test's Azure saw and did.
#[derive(Default)]
struct Seen {
    /// Every token handed out, in order.
    tokens: Vec<String>,
    /// The federated assertions presented (workload identity).
    assertions: Vec<String>,
    /// Requests refused.
    refused: usize,
}

#[derive(Clone)]
struct Azure {
    idp_token_url: String,
    client_id: String,
    client_secret: String,
    tenant: String,
    redis: Arc<RedisServer>,
    http: reqwest::Client,
    seen: Arc<Mutex<Seen>>,
    /// While true, the managed-identity endpoint refuses every request.
    refusing: Arc<std::sync::atomic::AtomicBool>,
    /// The federated token workload identity must present.
    federated: Arc<Mutex<String>>,
    addr: SocketAddr,
}

impl Azure {
    async fn start(idp: &Idp, redis: Arc<RedisServer>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = idp.idp.config();
        let azure = Self {
            idp_token_url: format!("http://{}/{}/oauth2/v2.0/token", idp.addr, config.tenant_id),
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            tenant: config.tenant_id.clone(),
            redis,
            http: reqwest::Client::new(),
            seen: Arc::default(),
            refusing: Arc::default(),
            federated: Arc::new(Mutex::new("federated-token-1".into())),
            addr: listener.local_addr().unwrap(),
        };
        let app = axum::Router::new()
            .route("/msi/token", get(managed_identity))
            .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
            .with_state(azure.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        azure
    }

    /// A token from the dev IdP for Azure Cache for Redis, made a password
    /// of its object ID's Redis user; the token and its object ID.
    async fn issue(&self) -> (String, String) {
        let answer: serde_json::Value = self
            .http
            .post(&self.idp_token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("scope", "https://redis.azure.com/.default"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["access_token"].as_str().unwrap().to_owned();
        let claims = claims(&token);
        assert_eq!(claims["aud"], "https://redis.azure.com");
        let oid = claims["oid"].as_str().unwrap().to_owned();
        // Azure's built-in "Data Contributor" access policy.
        let set = format!(
            "ACL SETUSER {oid} on >{token} ~* &* +@all -@dangerous +cluster|info +cluster|nodes +cluster|slots"
        );
        assert_eq!(self.redis.ask(&set).await.as_deref(), Some("+OK"));
        self.seen.lock().unwrap().tokens.push(token.clone());
        (token, oid)
    }

    fn tokens(&self) -> Vec<String> {
        self.seen.lock().unwrap().tokens.clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// App Service's managed-identity endpoint (api-version 2019-08-01).
async fn managed_identity(
    State(azure): State<Azure>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let header_ok = headers
        .get("x-identity-header")
        .is_some_and(|v| v == IDENTITY_HEADER);
    if !header_ok || azure.refusing.load(std::sync::atomic::Ordering::SeqCst) {
        azure.seen.lock().unwrap().refused += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"statusCode": 401, "message": "Unauthorized request"})),
        )
            .into_response();
    }
    assert_eq!(q.get("api-version").map(String::as_str), Some("2019-08-01"));
    assert_eq!(
        q.get("resource").map(String::as_str),
        Some("https://redis.azure.com")
    );
    let (token, _) = azure.issue().await;
    axum::Json(serde_json::json!({
        "access_token": token,
        "expires_on": (now() + LIFETIME).to_string(),
        "resource": "https://redis.azure.com",
        "token_type": "Bearer",
        "client_id": azure.client_id,
    }))
    .into_response()
}

/// Entra's token endpoint, for a federated token (workload identity).
async fn entra_token(
    State(azure): State<Azure>,
    Path(tenant): Path<String>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    azure
        .seen
        .lock()
        .unwrap()
        .assertions
        .push(field("client_assertion").to_owned());
    let expected = azure.federated.lock().unwrap().clone();
    if tenant != azure.tenant
        || field("grant_type") != "client_credentials"
        || field("client_id") != azure.client_id
        || field("scope") != "https://redis.azure.com/.default"
        || field("client_assertion_type")
            != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        || field("client_assertion") != expected
    {
        azure.seen.lock().unwrap().refused += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({
                "error": "invalid_client",
                "error_description": "AADSTS700213: No matching federated identity record found for presented assertion subject."
            })),
        )
            .into_response();
    }
    let (token, _) = azure.issue().await;
    axum::Json(serde_json::json!({
        "token_type": "Bearer",
        "expires_in": LIFETIME,
        "ext_expires_in": LIFETIME,
        "access_token": token,
    }))
    .into_response()
}

/// Waits (at most `secs`) until `done`, with `what` in the failure.
async fn until(secs: u64, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One connection of `CLIENT LIST`: its id, user and whether it is
/// subscribed.
#[derive(Debug, Clone, PartialEq)]
struct Client {
    id: String,
    user: String,
    subscribed: bool,
}

async fn clients(redis: &RedisServer) -> Vec<Client> {
    let list = redis.text("CLIENT LIST").await.unwrap_or_default();
    list.lines()
        .map(|line| {
            let field = |k: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(&format!("{k}=")))
                    .unwrap_or_default()
                    .to_owned()
            };
            Client {
                id: field("id"),
                user: field("user"),
                subscribed: field("sub") != "0" && !field("sub").is_empty(),
            }
        })
        .collect()
}

async fn auth_calls(redis: &RedisServer) -> u64 {
    let info = redis.text("INFO commandstats").await.unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_auth:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// The aadgate configuration: sessions in `redis`, signing in with
/// `auth`.
fn config(
    idp: &Idp,
    port: u16,
    echo: SocketAddr,
    redis: &RedisServer,
    auth: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sessions");
    let text = config_text(port, echo, &idp.idp, &store, "log_format = \"json\"")
        .replace(
            &format!("store = \"file:{}\"", store.display()),
            &format!("store = \"{}\"\nredis_auth = \"{auth}\"", redis.url()),
        )
        .replace("[oidc]", "trusted_proxies = [\"127.0.0.1/32\"]\n\n[oidc]");
    assert!(text.contains("redis_auth"), "{text}");
    let path = dir.path().join("aadgate.toml");
    std::fs::write(&path, &text).unwrap();
    (dir, path)
}

/// The status `url` answers with (0: no answer within 5 s).
async fn status(url: &str) -> u16 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Two replicas sign in to Redis with their managed identity's tokens
/// (nothing else gets in: `default` needs the test's password), share
/// sessions, and renew their tokens: each open connection signs in again
/// with the new token instead of reconnecting, the revocation subscription
/// moves to a new connection, and once Azure drops every connection and
/// the old tokens stop working, everything comes back with the new ones.
#[tokio::test]
async fn replicas_use_renewed_managed_identity_tokens_as_redis_passwords() {
    let redis = Arc::new(RedisServer::start_with_password(ADMIN).await);
    let sockets: Vec<_> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let ports: Vec<u16> = sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port())
        .collect();
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &ports).await;
    let azure = Azure::start(&idp, redis.clone()).await;
    let echo = start_echo().await;
    let (_dir, config) = config(&idp, ports[0], echo, &redis, "managed-identity");
    let endpoint = azure.url("/msi/token");
    let env = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", IDENTITY_HEADER),
    ];
    let secret = &idp.idp.config().client_secret;
    let a = Instance::start_with_env("A", &sockets[0], &config, secret, &env);
    let b = Instance::start_with_env("B", &sockets[1], &config, secret, &env);
    let addr = |i: usize| sockets[i].local_addr().unwrap();
    for i in 0..2 {
        let readyz = format!("http://{}/readyz", addr(i));
        until(
            20,
            "each replica ready (Redis reached with a token)",
            async || status(&readyz).await == 200,
        )
        .await;
    }

    // A session made on A is one on B: both read and write Redis.
    let browser = Browser::new(addr(0));
    browser.sign_in("admin", "/admin").await;
    let at_b = Browser {
        client: browser.client.clone(),
        proxy: addr(1),
    };
    assert_eq!(at_b.navigate(&at_b.url("/admin")).await.status(), 200);
    let oid = claims(&azure.tokens()[0])["oid"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = |list: &[Client]| -> Vec<Client> {
        list.iter().filter(|c| c.user == oid).cloned().collect()
    };
    let before = theirs(&clients(&redis).await);
    assert!(
        before.iter().filter(|c| c.subscribed).count() == 2 && before.iter().any(|c| !c.subscribed),
        "each replica's commands and revocations go through connections signed in as {oid}: {before:?}"
    );

    // Renewal: by three quarters of the token's life each replica has a
    // new token and every connection uses it.
    let issued = azure.tokens().len();
    let auths = auth_calls(&redis).await;
    until(20, "both replicas renewed their token", async || {
        azure.tokens().len() >= issued + 2
    })
    .await;
    until(
        10,
        "the renewed tokens are sent on the open connections",
        async || {
            let now = theirs(&clients(&redis).await);
            let commands_kept = before
                .iter()
                .filter(|c| !c.subscribed)
                .all(|c| now.contains(c));
            let new_subscriptions = now
                .iter()
                .filter(|c| c.subscribed && !before.contains(c))
                .count();
            let old_subscriptions = now
                .iter()
                .filter(|c| c.subscribed && before.contains(c))
                .count();
            commands_kept
                && new_subscriptions == 2
                && old_subscriptions == 0
                && auth_calls(&redis).await >= auths + 4
        },
    )
    .await;

    // Azure ends every connection, and only the newest token of each
    // replica still works: the replicas come back with them.
    let tokens = azure.tokens();
    let newest: Vec<&String> = tokens.iter().rev().take(2).collect();
    let keep: String = newest.iter().map(|t| format!(" >{t}")).collect();
    assert_eq!(
        redis
            .ask(&format!("ACL SETUSER {oid} resetpass{keep}"))
            .await
            .as_deref(),
        Some("+OK")
    );
    redis.ask(&format!("CLIENT KILL USER {oid}")).await.unwrap();
    until(10, "the session works again on B", async || {
        at_b.navigate(&at_b.url("/admin")).await.status() == 200
    })
    .await;
    until(10, "both replicas subscribed again", async || {
        theirs(&clients(&redis).await)
            .iter()
            .filter(|c| c.subscribed)
            .count()
            == 2
    })
    .await;

    // Revocation still reaches the other replica within a second.
    let out = browser.navigate(&browser.url("/auth/logout")).await;
    assert!(out.status().is_redirection(), "{}", out.status());
    let t0 = Instant::now();
    until(1, "the sign-out on A ends the session on B", async || {
        at_b.navigate(&at_b.url("/admin")).await.status() != 200
    })
    .await;
    assert!(t0.elapsed() <= Duration::from_secs(1));

    // No token, cookie or platform secret in either log.
    for i in [&a, &b] {
        let log = i.log.lock().unwrap().join("\n");
        assert!(
            log.contains("signed in with a Microsoft Entra token"),
            "{log}"
        );
        assert!(!log.contains(IDENTITY_HEADER), "{log}");
        for t in &tokens {
            assert!(!log.contains(t.as_str()));
        }
    }
}

/// A managed-identity endpoint that refuses: sign-ins and `/readyz` answer
/// 503 (never 500), the log says why, and service starts on its own once
/// tokens come.
#[tokio::test]
async fn a_refused_managed_identity_is_a_503_until_tokens_come() {
    let redis = Arc::new(RedisServer::start_with_password(ADMIN).await);
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[addr.port()]).await;
    let azure = Azure::start(&idp, redis.clone()).await;
    azure
        .refusing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let echo = start_echo().await;
    let (_dir, config) = config(&idp, addr.port(), echo, &redis, "managed-identity");
    let endpoint = azure.url("/msi/token");
    let env = [
        ("IDENTITY_ENDPOINT", endpoint.as_str()),
        ("IDENTITY_HEADER", IDENTITY_HEADER),
    ];
    let a = Instance::start_with_env("A", &socket, &config, &idp.idp.config().client_secret, &env);
    let readyz = format!("http://{addr}/readyz");
    // `/readyz` makes aadgate connect, which needs a token.
    until(20, "a refused token request and /readyz 503", async || {
        let ready = status(&readyz).await;
        let refused = azure.seen.lock().unwrap().refused;
        refused > 0 && ready == 503
    })
    .await;
    // The sign-in cannot be completed without the store: a 503 page.
    let browser = Browser::new(addr);
    let authorize = browser.start_login("/").await;
    let callback = browser.pick_user(&authorize, "reader").await;
    let r = browser.navigate(&callback).await;
    assert_eq!(r.status(), 503, "a sign-in needs the store");
    until(5, "the log names the cause", async || {
        a.log.lock().unwrap().iter().any(|l| {
            l.contains("cannot get a Microsoft Entra token")
                && l.contains("401")
                && l.contains("IDENTITY_ENDPOINT")
        })
    })
    .await;

    azure
        .refusing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    until(20, "ready once tokens come", async || {
        status(&readyz).await == 200
    })
    .await;
    browser.sign_in("reader", "/").await;
    assert_eq!(browser.navigate(&browser.url("/")).await.status(), 200);
}

/// AKS workload identity: the federated token in the file is exchanged at
/// Entra (`AZURE_AUTHORITY_HOST`) for a Redis token, read again for every
/// renewal (Kubernetes rotates it); without the variables AKS sets, the
/// proxy does not start and says which are missing.
#[tokio::test]
async fn workload_identity_exchanges_the_federated_token_it_reads_each_time() {
    let redis = Arc::new(RedisServer::start_with_password(ADMIN).await);
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[addr.port()]).await;
    let azure = Azure::start(&idp, redis.clone()).await;
    let echo = start_echo().await;
    let (dir, config) = config(&idp, addr.port(), echo, &redis, "workload-identity");
    let secret = idp.idp.config().client_secret.clone();

    // Not in an AKS pod: the store cannot be opened, and the error names
    // what is missing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aadgate"))
        .args(["sessions", "list", "--config"])
        .arg(&config)
        .env("AADGATE_SESSION_SECRET", crate::harness::SECRET)
        .env("AADGATE_OIDC_CLIENT_SECRET", &secret)
        .env("AZURE_CLIENT_ID", &azure.client_id)
        .env_remove("AZURE_TENANT_ID")
        .env_remove("AZURE_FEDERATED_TOKEN_FILE")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("session.redis_auth")
            && said.contains("missing: AZURE_FEDERATED_TOKEN_FILE, AZURE_TENANT_ID"),
        "{said}"
    );

    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, "federated-token-1\n").unwrap();
    let authority = azure.url("/");
    let env = [
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        ("AZURE_TENANT_ID", azure.tenant.as_str()),
        ("AZURE_CLIENT_ID", azure.client_id.as_str()),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.to_str().unwrap()),
    ];
    let _a = Instance::start_with_env("A", &socket, &config, &secret, &env);
    let readyz = format!("http://{addr}/readyz");
    until(20, "ready with a token", async || {
        status(&readyz).await == 200
    })
    .await;
    let browser = Browser::new(addr);
    browser.sign_in("admin", "/admin").await;
    assert_eq!(browser.navigate(&browser.url("/admin")).await.status(), 200);

    // Kubernetes rotates the file; the next renewal presents the new one.
    *azure.federated.lock().unwrap() = "federated-token-2".into();
    std::fs::write(&token_file, "federated-token-2\n").unwrap();
    until(
        20,
        "a renewal with the rotated federated token",
        async || {
            azure
                .seen
                .lock()
                .unwrap()
                .assertions
                .last()
                .map(String::as_str)
                == Some("federated-token-2")
        },
    )
    .await;
    assert_eq!(
        azure.seen.lock().unwrap().assertions[0],
        "federated-token-1"
    );
    assert_eq!(browser.navigate(&browser.url("/admin")).await.status(), 200);
}
