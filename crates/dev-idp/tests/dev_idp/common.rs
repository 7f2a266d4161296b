//! Test harness: serves a dev IdP on 127.0.0.1:0 and drives it with reqwest;
//! the assertions the test modules share.

#![allow(dead_code)]

use std::collections::HashMap;

use aadgate_dev_idp::{DevIdp, DevIdpConfig};
use aws_lc_rs::digest;
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:4180/auth/callback";

/// Every scope a relying party usually asks for.
pub(crate) const FULL_SCOPE: &str = "openid profile email offline_access";

pub(crate) struct Harness {
    pub(crate) idp: DevIdp,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

/// One PKCE pair.
pub(crate) struct Pkce {
    pub(crate) verifier: String,
    pub(crate) challenge: String,
}

impl Pkce {
    pub(crate) fn new() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("random");
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

/// A code obtained from the authorize endpoint, with what it is bound to.
pub(crate) struct Authorized {
    pub(crate) code: String,
    pub(crate) pkce: Pkce,
    pub(crate) nonce: String,
    pub(crate) state: String,
}

pub(crate) async fn start() -> Harness {
    start_with(DevIdpConfig::default()).await
}

pub(crate) async fn start_with(config: DevIdpConfig) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let idp = DevIdp::new(config, Url::parse(&base).expect("url")).expect("dev idp");
    let router = idp.router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Harness { idp, base, http }
}

impl Harness {
    pub(crate) fn tenant(&self) -> String {
        self.idp.config().tenant_id.clone()
    }

    pub(crate) fn client_id(&self) -> String {
        self.idp.config().client_id.clone()
    }

    pub(crate) fn secret(&self) -> String {
        self.idp.config().client_secret.clone()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn tenant_url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base, self.tenant())
    }

    /// GET the authorize endpoint with `params`.
    pub(crate) async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(with_query(
                &self.tenant_url("oauth2/v2.0/authorize"),
                params,
            ))
            .send()
            .await
            .expect("authorize request")
    }

    /// Signs `user` in with `scope` and returns the code from the redirect.
    pub(crate) async fn sign_in(&self, user: &str, scope: &str) -> Authorized {
        let pkce = Pkce::new();
        let nonce = format!("nonce-{}", random_string());
        let state = format!("state-{}", random_string());
        let client_id = self.client_id();
        let response = self
            .authorize(&[
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("response_type", "code"),
                ("scope", scope),
                ("state", state.as_str()),
                ("nonce", nonce.as_str()),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("login_hint", user),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::FOUND, "sign-in redirects");
        let query = location_query(&response);
        assert_eq!(query.get("state"), Some(&state));
        Authorized {
            code: query.get("code").expect("code in redirect").clone(),
            pkce,
            nonce,
            state,
        }
    }

    /// Redeems a code with client_secret_post.
    pub(crate) async fn redeem(&self, code: &str, verifier: &str) -> reqwest::Response {
        let client_id = self.client_id();
        let secret = self.secret();
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", verifier),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .await
    }

    /// POSTs `form` to the token endpoint.
    pub(crate) async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.tenant_url("oauth2/v2.0/token"))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    /// Signs `user` in and redeems the code; returns the token response JSON.
    pub(crate) async fn tokens(&self, user: &str, scope: &str) -> (Authorized, Value) {
        let authorized = self.sign_in(user, scope).await;
        let response = self
            .redeem(&authorized.code, &authorized.pkce.verifier)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("json");
        (authorized, body)
    }

    pub(crate) async fn jwks(&self) -> Value {
        self.http
            .get(self.tenant_url("discovery/v2.0/keys"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json")
    }

    /// Verifies `jwt`'s RS256 signature against the published JWKS (key
    /// chosen by `kid`); returns its claims, or `None` if it does not verify.
    pub(crate) async fn verify(&self, jwt: &str) -> Option<Value> {
        let header = jwt_header(jwt);
        let jwks = self.jwks().await;
        let key = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == header["kid"])?;
        assert_eq!(key["kty"], "RSA");
        let public = RsaPublicKeyComponents {
            n: b64(key["n"].as_str().expect("n")),
            e: b64(key["e"].as_str().expect("e")),
        };
        let (input, signature) = jwt.rsplit_once('.').expect("jwt");
        public
            .verify(
                &RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &b64(signature),
            )
            .ok()?;
        Some(jwt_claims(jwt))
    }
}

/// `url` with `params` appended as a query string.
pub(crate) fn with_query<K: AsRef<str>, V: AsRef<str>>(url: &str, params: &[(K, V)]) -> String {
    let mut url = Url::parse(url).expect("url");
    url.query_pairs_mut()
        .extend_pairs(params.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
    url.into()
}

pub(crate) fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).expect("base64url")
}

pub(crate) fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).expect("jwt part");
    serde_json::from_slice(&b64(part)).expect("jwt json")
}

pub(crate) fn jwt_header(jwt: &str) -> Value {
    jwt_part(jwt, 0)
}

pub(crate) fn jwt_claims(jwt: &str) -> Value {
    jwt_part(jwt, 1)
}

pub(crate) fn random_string() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).expect("random");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The `Location` header of a redirect.
pub(crate) fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("Location header")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// The query parameters of the `Location` of a redirect.
pub(crate) fn location_query(response: &reqwest::Response) -> HashMap<String, String> {
    Url::parse(&location(response))
        .expect("absolute Location")
        .query_pairs()
        .into_owned()
        .collect()
}

/// Asserts that `body` is Entra's JSON error with `error` and AADSTS `code`.
pub(crate) fn assert_entra_error(body: &Value, error: &str, code: u64) {
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"][0], code, "{body}");
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["trace_id", "correlation_id", "timestamp"] {
        assert!(
            body[field].as_str().is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }
}
