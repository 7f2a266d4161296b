//! An adversarial OpenID provider, driven per test: it serves discovery, keys,
//! an authorization endpoint that answers at once, and a token endpoint whose
//! ID token each test shapes (valid, forged, expired, mis-signed...).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aadgate_core::crypto::b64url;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};

use crate::harness::{Proxy, listener, start_echo};

pub(crate) const CLIENT: &str = "adversary-client";
pub(crate) const SECRET: &str = "adversary-secret";

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RSA signing key with its JWK.
pub(crate) struct Key {
    pair: KeyPair,
    pub(crate) kid: String,
}

impl Key {
    pub(crate) fn new(kid: &str) -> Self {
        Self {
            pair: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: kid.to_owned(),
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        let c = PublicKeyComponents::<Vec<u8>>::from(self.pair.public_key());
        let strip = |b: &[u8]| {
            b.iter()
                .position(|x| *x != 0)
                .map_or(vec![], |i| b[i..].to_vec())
        };
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "alg": "RS256",
               "n": b64url(&strip(&c.n)), "e": b64url(&strip(&c.e))})
    }

    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64url(&sig))
    }
}

/// What the provider knows when it mints an ID token.
pub(crate) struct Ctx<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) keys: &'a [Key],
    pub(crate) refresh: bool,
}

impl Ctx<'_> {
    /// The claims of a valid token.
    pub(crate) fn claims(&self) -> Map<String, Value> {
        let t = now();
        let v = json!({
            "iss": self.issuer, "sub": "user-1", "aud": CLIENT, "iat": t, "nbf": t, "exp": t + 3600,
            "nonce": self.nonce, "name": "Ada Adversary", "email": "ada@example.test", "roles": ["App.Read"],
        });
        v.as_object().unwrap().clone()
    }

    /// A valid token, signed by the first key.
    pub(crate) fn valid(&self) -> String {
        self.sign(&self.claims())
    }

    pub(crate) fn sign(&self, claims: &Map<String, Value>) -> String {
        let k = &self.keys[0];
        k.sign(
            &json!({"typ": "JWT", "alg": "RS256", "kid": k.kid}),
            &Value::Object(claims.clone()),
        )
    }
}

type Mint = Box<dyn Fn(&Ctx<'_>) -> String + Send + Sync>;

/// One test's provider behaviour.
pub(crate) struct Scenario {
    /// `issuer` in discovery (and in valid tokens).
    pub(crate) issuer: String,
    pub(crate) keys: Vec<Key>,
    /// The JWKS served; `None`: the keys' JWKs.
    pub(crate) jwks: Option<Value>,
    pub(crate) id_token: Mint,
    pub(crate) nonce: String,
    /// Authorization header the token endpoint saw last.
    pub(crate) token_auth: Option<String>,
    pub(crate) jwks_fetches: usize,
    pub(crate) token_calls: usize,
}

#[derive(Clone)]
pub(crate) struct Adversary {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<Mutex<Scenario>>,
}

impl Adversary {
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn set(&self, mint: impl Fn(&Ctx<'_>) -> String + Send + Sync + 'static) {
        self.state.lock().unwrap().id_token = Box::new(mint);
    }

    /// Starts a provider whose discovery lives under `path` (e.g. "" or "/organizations/v2.0").
    pub(crate) async fn start(path: &str, issuer_path: &str) -> Self {
        let (l, addr) = listener().await;
        let issuer = format!("http://{addr}{issuer_path}");
        let scenario = Scenario {
            issuer,
            keys: vec![Key::new("k1")],
            jwks: None,
            id_token: Box::new(|ctx| ctx.valid()),
            nonce: String::new(),
            token_auth: None,
            jwks_fetches: 0,
            token_calls: 0,
        };
        let state = Arc::new(Mutex::new(scenario));
        let app = Router::new()
            .route(
                &format!("{path}/.well-known/openid-configuration"),
                get(discovery),
            )
            .route("/keys", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/logout", get(|| async { "signed out" }))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        Self { addr, state }
    }
}

async fn discovery(State(st): State<Arc<Mutex<Scenario>>>, headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let st = st.lock().unwrap();
    let base = format!("http://{host}");
    Json(json!({
        "issuer": st.issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/keys"),
        "end_session_endpoint": format!("{base}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(st): State<Arc<Mutex<Scenario>>>) -> Json<Value> {
    let mut st = st.lock().unwrap();
    st.jwks_fetches += 1;
    let v = st
        .jwks
        .clone()
        .unwrap_or_else(|| json!({"keys": st.keys.iter().map(Key::jwk).collect::<Vec<_>>()}));
    Json(v)
}

async fn authorize(State(st): State<Arc<Mutex<Scenario>>>, RawQuery(q): RawQuery) -> Response {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return (StatusCode::BAD_REQUEST, "PKCE S256 required").into_response();
    }
    st.lock().unwrap().nonce = get("nonce");
    let mut to = url::Url::parse(&get("redirect_uri")).unwrap();
    to.query_pairs_mut()
        .append_pair("code", "the-code")
        .append_pair("state", &get("state"));
    Redirect::to(to.as_str()).into_response()
}

async fn token(
    State(st): State<Arc<Mutex<Scenario>>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let mut st = st.lock().unwrap();
    st.token_calls += 1;
    st.token_auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let refresh = form
        .iter()
        .any(|(k, v)| k == "grant_type" && v == "refresh_token");
    let ctx = Ctx {
        issuer: &st.issuer,
        nonce: &st.nonce,
        keys: &st.keys,
        refresh,
    };
    let id_token = (st.id_token)(&ctx);
    Json(json!({
        "token_type": "Bearer",
        "access_token": format!("access-{}", st.token_calls),
        "expires_in": if refresh { 3600 } else { 30 },
        "refresh_token": format!("refresh-{}", st.token_calls),
        "id_token": id_token,
    }))
    .into_response()
}

/// A proxy in front of an echo upstream, signing in through `adv`.
pub(crate) async fn proxy_for(adv: &Adversary, oidc: &str, extra: &str) -> Proxy {
    let (pl, paddr) = listener().await;
    let echo = start_echo().await;
    let text = format!(
        r#"
public_url = "http://127.0.0.1:{port}"
upstream = "http://{echo}"
{extra}
[oidc]
client_id = "{CLIENT}"
{oidc}
[session]
store = "memory"
[authz]
roles = ["App.Read", "App.Write", "App.Admin"]
"#,
        port = paddr.port(),
    );
    let _ = adv;
    Proxy::start(pl, &text, SECRET).await
}

/// Runs one sign-in; returns the browser, the callback's status and whether a session cookie was set.
pub(crate) async fn sign_in_with(proxy: &Proxy) -> (reqwest::Client, u16, bool) {
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(proxy.url("/auth/login?rd=/")).send().await.unwrap();
    if r.status() != 302 {
        let status = r.status().as_u16();
        return (c, status, false);
    }
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c.get(&authorize).send().await.unwrap();
    assert_eq!(r.status(), 303, "adversary authorize");
    let callback = r.headers()["location"].to_str().unwrap().to_owned();
    let r = c.get(&callback).send().await.unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("aadgate="));
    (c, r.status().as_u16(), session)
}

/// Runs one sign-in; returns the callback's status and whether a session was created.
pub(crate) async fn sign_in(proxy: &Proxy) -> (u16, bool) {
    let (_, status, session) = sign_in_with(proxy).await;
    (status, session)
}
