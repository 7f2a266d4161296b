//! End-to-end tests: the dev IdP served on 127.0.0.1:0, driven over HTTP the
//! way a relying party and a browser would.

mod common;

use aadgate_dev_idp::{DevIdpConfig, DevUser};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{
    Pkce, REDIRECT_URI, jwt_claims, jwt_header, location, location_query, start, start_with,
    with_query,
};
use reqwest::StatusCode;
use serde_json::Value;

const FULL_SCOPE: &str = "openid profile email offline_access";

fn assert_entra_error(body: &Value, error: &str, code: u64) {
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

// ---------------------------------------------------------------- discovery

#[tokio::test]
async fn discovery_document_points_at_this_idp() {
    let h = start().await;
    let response = h
        .http
        .get(h.tenant_url("v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery");
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.expect("json");
    let t = h.tenant();
    assert_eq!(doc["issuer"], format!("{}/{t}/v2.0", h.base));
    assert_eq!(doc["issuer"], h.idp.issuer());
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/{t}/oauth2/v2.0/authorize", h.base)
    );
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{t}/oauth2/v2.0/token", h.base)
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/{t}/discovery/v2.0/keys", h.base)
    );
    assert_eq!(
        doc["end_session_endpoint"],
        format!("{}/{t}/oauth2/v2.0/logout", h.base)
    );
    assert_eq!(
        doc["userinfo_endpoint"],
        format!("{}/oidc/userinfo", h.base)
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["response_modes_supported"],
        serde_json::json!(["query", "form_post"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_post", "client_secret_basic"])
    );
    assert!(
        doc["claims_supported"]
            .as_array()
            .is_some_and(|c| c.contains(&Value::from("roles")))
    );
    assert!(doc["tenant_region_scope"].is_string());
}

#[tokio::test]
async fn jwks_publishes_an_rsa_signing_key() {
    let h = start().await;
    let jwks = h.jwks().await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["issuer"], h.idp.issuer());
    assert_eq!(common::b64(key["n"].as_str().expect("n")).len(), 256);
    assert_eq!(key["e"], "AQAB");
}

#[tokio::test]
async fn unknown_tenant_is_aadsts90002() {
    let h = start().await;
    let response = h
        .http
        .get(h.url("/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"))
        .send()
        .await
        .expect("discovery");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_tenant", 90_002);
}

#[tokio::test]
async fn home_page_describes_the_tenant_and_users() {
    let h = start().await;
    let response = h.http.get(h.url("/")).send().await.expect("home");
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("text");
    assert!(html.contains(&h.tenant()));
    assert!(html.contains(&h.idp.discovery_url()));
    assert!(html.contains("Ada Admin"));
    assert!(html.contains("Development identity provider"));
}

// ---------------------------------------------------------------- authorize

#[tokio::test]
async fn login_hint_redirects_with_code_state_and_session_state() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", "s t&a=te"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "writer@contoso.example"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(location(&response).starts_with(&format!("{REDIRECT_URI}?")));
    let query = location_query(&response);
    assert!(query.get("code").is_some_and(|c| c.len() > 40));
    assert_eq!(query.get("state").map(String::as_str), Some("s t&a=te"));
    assert!(query.contains_key("session_state"));
    assert!(!query.contains_key("error"));
}

#[tokio::test]
async fn without_login_hint_the_account_picker_continues_the_request() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "<b>\"state\""),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("text");
    assert!(html.contains(&format!("Sign in to {} (aadgate dev IdP)", h.tenant())));
    for name in ["Rita Reader", "Walt Writer", "Ada Admin", "Nick NoRole"] {
        assert!(html.contains(name), "{name}");
    }
    assert!(html.contains("name=\"login_hint\" value=\"reader\""));
    assert!(html.contains("value=\"error:50105\""));
    // The request's parameters are carried along, escaped.
    assert!(html.contains("name=\"state\" value=\"&lt;b&gt;&quot;state&quot;\""));
    assert!(html.contains(&format!("value=\"{}\"", pkce.challenge)));
    assert!(!html.contains("<b>\"state\""));
}

#[tokio::test]
async fn unknown_login_hint_shows_the_picker_with_a_notice() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "<i>mallory</i>"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.expect("text");
    assert!(html.contains("There is no user"));
    assert!(html.contains("&lt;i&gt;mallory&lt;/i&gt;"));
    assert!(!html.contains("<i>mallory"));
}

#[tokio::test]
async fn form_post_response_mode_posts_code_and_state() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("response_mode", "form_post"),
            ("scope", "openid"),
            ("state", "st-1"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "reader"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(reqwest::header::LOCATION).is_none());
    let html = response.text().await.expect("text");
    assert!(html.contains(&format!(
        "method=\"POST\" name=\"hiddenform\" action=\"{REDIRECT_URI}\""
    )));
    assert!(html.contains("name=\"code\" value=\"1."));
    assert!(html.contains("name=\"state\" value=\"st-1\""));
    assert!(html.contains("document.forms[0].submit()"));
}

#[tokio::test]
async fn unregistered_redirect_uri_is_an_error_page_never_a_redirect() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let evil = "https://evil.example/cb?<script>alert(1)</script>";
    for mode in ["query", "form_post"] {
        let response = h
            .authorize(&[
                ("client_id", client_id.as_str()),
                ("redirect_uri", evil),
                ("response_type", "code"),
                ("response_mode", mode),
                ("scope", "openid"),
                ("state", "s"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("login_hint", "reader"),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(reqwest::header::LOCATION).is_none());
        let html = response.text().await.expect("text");
        assert!(html.contains("AADSTS50011"));
        assert!(html.contains("https://evil.example/cb?&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert(1)"));
        assert!(!html.contains("action=\"https://evil.example"));
    }
    // A near miss (trailing slash) is not registered either: exact match only.
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", &format!("{REDIRECT_URI}/")),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "reader"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("text").contains("AADSTS50011"));
}

#[tokio::test]
async fn unknown_client_id_is_aadsts700016_page() {
    let h = start().await;
    let pkce = Pkce::new();
    let response = h
        .authorize(&[
            ("client_id", "11111111-2222-4333-8444-555555555555"),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "reader"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(reqwest::header::LOCATION).is_none());
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("AADSTS700016")
    );
}

#[tokio::test]
async fn protocol_errors_redirect_back_with_entra_parameters() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let base: Vec<(&str, &str)> = vec![
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("state", "keep-me"),
        ("login_hint", "reader"),
    ];
    // (extra parameters, expected error, expected AADSTS code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        // No PKCE at all.
        (
            vec![("response_type", "code"), ("scope", "openid")],
            "invalid_request",
            "AADSTS900144",
        ),
        // PKCE "plain" (explicit, and implied by a missing method).
        (
            vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
            "AADSTS90100",
        ),
        (
            vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", pkce.challenge.as_str()),
            ],
            "invalid_request",
            "AADSTS90100",
        ),
        // Hybrid / implicit response types.
        (
            vec![
                ("response_type", "code id_token"),
                ("scope", "openid"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
            "AADSTS70005",
        ),
        // No openid scope.
        (
            vec![
                ("response_type", "code"),
                ("scope", "profile email"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
            "invalid_scope",
            "AADSTS70011",
        ),
    ];
    for (extra, error, code) in cases {
        let params: Vec<(&str, &str)> = base.iter().copied().chain(extra).collect();
        let response = h.authorize(&params).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{code}");
        assert!(location(&response).starts_with(REDIRECT_URI));
        let query = location_query(&response);
        assert_eq!(query.get("error").map(String::as_str), Some(error));
        assert!(
            query
                .get("error_description")
                .is_some_and(|d| d.starts_with(&format!("{code}: "))),
            "{query:?}"
        );
        assert_eq!(query.get("state").map(String::as_str), Some("keep-me"));
        assert!(query.get("trace_id").is_some_and(|v| v.len() == 36));
        assert!(query.get("correlation_id").is_some_and(|v| v.len() == 36));
        assert!(!query.contains_key("code"));
    }
}

#[tokio::test]
async fn error_login_hint_simulates_an_entra_error() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "error:50105"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let query = location_query(&response);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert!(query["error_description"].starts_with("AADSTS50105: "));
    assert_eq!(query.get("error_codes").map(String::as_str), Some("50105"));
    assert_eq!(query.get("state").map(String::as_str), Some("st"));
    assert!(query.contains_key("trace_id"));
    assert!(query.contains_key("correlation_id"));
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn prompt_none_uses_the_dev_idp_session_cookie() {
    let h = start().await;
    let client_id = h.client_id();
    let pkce = Pkce::new();
    let params = |hint: Option<&'static str>, prompt: Option<&'static str>| {
        let mut p: Vec<(&str, String)> = vec![
            ("client_id", client_id.clone()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("response_type", "code".to_owned()),
            ("scope", "openid".to_owned()),
            ("state", "x".to_owned()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        p.extend(hint.map(|v| ("login_hint", v.to_owned())));
        p.extend(prompt.map(|v| ("prompt", v.to_owned())));
        p
    };
    let url = h.tenant_url("oauth2/v2.0/authorize");

    // No session: login_required.
    let response = h
        .http
        .get(with_query(&url, &params(None, Some("none"))))
        .send()
        .await
        .expect("authorize");
    let query = location_query(&response);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("login_required")
    );
    assert!(query["error_description"].starts_with("AADSTS50058: "));

    // Sign in: the dev IdP sets its session cookie.
    let response = h
        .http
        .get(with_query(&url, &params(Some("admin"), None)))
        .send()
        .await
        .expect("authorize");
    let first_sid = location_query(&response)["session_state"].clone();
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("session cookie")
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    assert!(cookie.starts_with("aadgate_dev_idp_session="));

    // With the cookie, prompt=none signs the same user in silently, same sid.
    let response = h
        .http
        .get(with_query(&url, &params(None, Some("none"))))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    let query = location_query(&response);
    assert!(query.contains_key("code"), "{query:?}");
    assert_eq!(query["session_state"], first_sid);

    // After logout the cookie no longer works.
    h.http
        .get(h.tenant_url("oauth2/v2.0/logout"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("logout");
    let response = h
        .http
        .get(with_query(&url, &params(None, Some("none"))))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        location_query(&response).get("error").map(String::as_str),
        Some("login_required")
    );
}

// ---------------------------------------------------------------- token

#[tokio::test]
async fn code_exchange_with_http_basic() {
    let h = start().await;
    let authorized = h.sign_in("reader", FULL_SCOPE).await;
    let response = h
        .http
        .post(h.tenant_url("oauth2/v2.0/token"))
        .basic_auth(h.client_id(), Some(h.secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", authorized.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", authorized.pkce.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .map(|v| v.as_bytes()),
        Some(&b"no-store"[..])
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["ext_expires_in"], 3600);
    assert!(body["scope"].as_str().is_some_and(|s| s.contains("openid")));
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        body["id_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded() {
    // A secret with characters that RFC 6749 2.3.1 requires to be encoded.
    let config = DevIdpConfig {
        client_secret: "s3cr:t+ /%".to_owned(),
        ..DevIdpConfig::default()
    };
    let h = start_with(config).await;
    let authorized = h.sign_in("reader", "openid").await;
    let encoded = STANDARD.encode(format!("{}:s3cr%3At%2B+%2F%25", h.client_id()));
    let response = h
        .http
        .post(h.tenant_url("oauth2/v2.0/token"))
        .header(reqwest::header::AUTHORIZATION, format!("Basic {encoded}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", authorized.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", authorized.pkce.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn code_exchange_with_client_secret_post_and_no_offline_access() {
    let h = start().await;
    let authorized = h.sign_in("reader", "openid profile").await;
    let response = h.redeem(&authorized.code, &authorized.pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert!(body["id_token"].is_string());
    assert!(body["access_token"].is_string());
    assert!(
        body.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
}

#[tokio::test]
async fn wrong_client_secret_is_401_aadsts7000215() {
    let h = start().await;
    let authorized = h.sign_in("reader", "openid").await;
    let client_id = h.client_id();
    // In the body.
    let response = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", authorized.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", authorized.pkce.verifier.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", "not-the-secret"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_client", 7_000_215);

    // With HTTP Basic.
    let response = h
        .http
        .post(h.tenant_url("oauth2/v2.0/token"))
        .basic_auth(&client_id, Some("not-the-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", authorized.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", authorized.pkce.verifier.as_str()),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .contains_key(reqwest::header::WWW_AUTHENTICATE)
    );
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_client", 7_000_215);

    // The failed attempts did not use up the code.
    let response = h.redeem(&authorized.code, &authorized.pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_client_secret_is_401_aadsts7000218() {
    let h = start().await;
    let authorized = h.sign_in("reader", "openid").await;
    let client_id = h.client_id();
    let response = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", authorized.code.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", authorized.pkce.verifier.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_client", 7_000_218);
}

#[tokio::test]
async fn pkce_verifier_mismatch_is_invalid_grant_aadsts501481() {
    let h = start().await;
    let authorized = h.sign_in("reader", "openid").await;
    let other = Pkce::new();
    let response = h.redeem(&authorized.code, &other.verifier).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_grant", 501_481);
    // Sending the challenge itself as the verifier ("plain") fails too.
    let response = h.redeem(&authorized.code, &authorized.pkce.challenge).await;
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_grant", 501_481);
}

#[tokio::test]
async fn code_reuse_is_invalid_grant_aadsts54005() {
    let h = start().await;
    let authorized = h.sign_in("reader", "openid").await;
    let first = h.redeem(&authorized.code, &authorized.pkce.verifier).await;
    assert_eq!(first.status(), StatusCode::OK);
    let second = h.redeem(&authorized.code, &authorized.pkce.verifier).await;
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    let body: Value = second.json().await.expect("json");
    assert_entra_error(&body, "invalid_grant", 54_005);
}

#[tokio::test]
async fn token_redirect_uri_must_match_the_authorize_request() {
    let h = start().await;
    let authorized = h.sign_in("reader", "openid").await;
    let client_id = h.client_id();
    let secret = h.secret();
    let response = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", authorized.code.as_str()),
            ("redirect_uri", "http://localhost:4180/auth/callback"),
            ("code_verifier", authorized.pkce.verifier.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_grant", 500_112);
}

#[tokio::test]
async fn unknown_code_and_grant_type_are_rejected() {
    let h = start().await;
    let pkce = Pkce::new();
    let response = h.redeem("1.not-a-code", &pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    let client_id = h.client_id();
    let secret = h.secret();
    let response = h
        .token(&[
            ("grant_type", "password"),
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
        ])
        .await;
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "unsupported_grant_type", 70_003);
}

#[tokio::test]
async fn id_token_verifies_against_the_jwks_and_carries_entra_claims() {
    let h = start().await;
    let (authorized, body) = h.tokens("reader", FULL_SCOPE).await;
    let id_token = body["id_token"].as_str().expect("id_token");
    let header = jwt_header(id_token);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
    assert!(header.get("nonce").is_none());
    let claims = h.verify(id_token).await.expect("signature verifies");

    let config = h.idp.config();
    let reader = &config.users[0];
    assert_eq!(claims["aud"], config.client_id);
    assert_eq!(claims["iss"], h.idp.issuer());
    assert_eq!(claims["tid"], config.tenant_id);
    assert_eq!(claims["oid"], reader.oid);
    assert_eq!(claims["roles"], serde_json::json!(["App.Read"]));
    assert_eq!(claims["groups"], serde_json::json!(reader.groups));
    assert_eq!(claims["nonce"], authorized.nonce);
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["name"], "Rita Reader");
    assert_eq!(claims["preferred_username"], "reader@contoso.example");
    assert_eq!(claims["email"], "reader@contoso.example");
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|s| s.len() == 43 && s != reader.oid)
    );
    assert!(claims["sid"].as_str().is_some_and(|s| s.len() == 36));
    for opaque in ["uti", "rh", "aio", "login_hint"] {
        assert!(claims[opaque].is_string(), "{opaque}");
    }
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 3600));
}

#[tokio::test]
async fn id_token_omits_roles_without_assignments_and_gates_profile_claims() {
    let h = start().await;
    let (_, body) = h.tokens("norole", "openid").await;
    let claims = h
        .verify(body["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert!(claims.get("roles").is_none(), "{claims}");
    // Without the profile and email scopes, as in Entra ID.
    for claim in ["name", "preferred_username", "oid", "email"] {
        assert!(claims.get(claim).is_none(), "{claim}");
    }
    assert!(claims.get("nonce").is_some());
    assert!(claims.get("sub").is_some());
}

#[tokio::test]
async fn access_token_is_graph_shaped_and_not_validatable_by_the_rp() {
    let h = start().await;
    let (_, body) = h.tokens("writer", FULL_SCOPE).await;
    let access_token = body["access_token"].as_str().expect("access_token");
    let header = jwt_header(access_token);
    assert!(header["nonce"].is_string(), "Graph-style nonce header");
    let claims = jwt_claims(access_token);
    assert_eq!(claims["aud"], "00000003-0000-0000-c000-000000000000");
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{}/", h.tenant())
    );
    assert_eq!(claims["oid"], h.idp.config().users[1].oid);
    assert_eq!(claims["tid"], h.tenant());
    assert!(
        claims["scp"]
            .as_str()
            .is_some_and(|s| s.contains("User.Read"))
    );
    assert!(
        h.verify(access_token).await.is_none(),
        "a relying party cannot validate the access token's signature"
    );
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let h = start().await;
    let (_, body) = h.tokens("admin", FULL_SCOPE).await;
    let first_refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
    let first_claims = jwt_claims(body["id_token"].as_str().expect("id_token"));
    let client_id = h.client_id();
    let secret = h.secret();
    let refresh = |token: String| {
        let client_id = client_id.clone();
        let secret = secret.clone();
        let h = &h;
        async move {
            h.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
            ])
            .await
        }
    };

    let response = refresh(first_refresh.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let second_refresh = body["refresh_token"]
        .as_str()
        .expect("new refresh")
        .to_owned();
    assert_ne!(second_refresh, first_refresh);
    let id_token = body["id_token"].as_str().expect("refreshed id_token");
    let claims = h.verify(id_token).await.expect("verifies");
    assert!(claims.get("nonce").is_none(), "no nonce on refresh");
    for same in ["sub", "oid", "tid", "aud", "iss", "sid"] {
        assert_eq!(claims[same], first_claims[same], "{same}");
    }
    assert_eq!(claims["roles"], serde_json::json!(["App.Admin"]));

    // The old refresh token is spent.
    let response = refresh(first_refresh).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_grant", 70_000);

    // The new one works.
    assert_eq!(refresh(second_refresh).await.status(), StatusCode::OK);
}

/// An administrator's changes in the directory reach the next tokens: new
/// role assignments in refreshed ID tokens, and a disabled account's
/// refresh (and codes) refused with AADSTS50057, as Entra ID does.
#[tokio::test]
async fn directory_changes_reach_refreshed_tokens_and_a_disabled_user_is_refused() {
    let h = start().await;
    let (_, body) = h.tokens("writer", FULL_SCOPE).await;
    let refresh_token = body["refresh_token"].as_str().expect("refresh").to_owned();
    let (client_id, secret) = (h.client_id(), h.secret());
    let refresh = |token: String| {
        let (client_id, secret, h) = (client_id.clone(), secret.clone(), &h);
        async move {
            h.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", token.as_str()),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.as_str()),
            ])
            .await
        }
    };
    assert!(h.idp.assign_roles("writer", &["App.Read"]));
    assert!(
        !h.idp.assign_roles("nobody", &["App.Read"]),
        "unknown users are not invented"
    );
    let response = refresh(refresh_token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    let claims = h
        .verify(body["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert_eq!(claims["roles"], serde_json::json!(["App.Read"]));

    assert!(h.idp.disable_user("writer"));
    let next = body["refresh_token"].as_str().expect("refresh").to_owned();
    let response = refresh(next).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_grant", 50_057);
    // A code issued to the disabled user is refused too.
    let authorized = h.sign_in("writer", FULL_SCOPE).await;
    let response = h.redeem(&authorized.code, &authorized.pkce.verifier).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- keys

#[tokio::test]
async fn rotate_keys_changes_the_kid_and_keeps_the_previous_key() {
    let h = start().await;
    let (_, before) = h.tokens("reader", "openid").await;
    let old_token = before["id_token"].as_str().expect("id_token").to_owned();
    let old_kid = jwt_header(&old_token)["kid"]
        .as_str()
        .expect("kid")
        .to_owned();

    let response = h
        .http
        .post(h.url("/_dev/rotate-keys"))
        .send()
        .await
        .expect("rotate");
    assert_eq!(response.status(), StatusCode::OK);
    let new_kid = response.json::<Value>().await.expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert_ne!(new_kid, old_kid);

    let jwks = h.jwks().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()]);

    // New tokens use the new key; the old token still verifies.
    let (_, after) = h.tokens("reader", "openid").await;
    let new_token = after["id_token"].as_str().expect("id_token");
    assert_eq!(jwt_header(new_token)["kid"], new_kid.as_str());
    assert!(h.verify(new_token).await.is_some());
    assert!(h.verify(&old_token).await.is_some());

    // From Rust as well; the oldest key then leaves the JWKS.
    let third_kid = h.idp.rotate_keys();
    let jwks = h.jwks().await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, vec![third_kid.as_str(), new_kid.as_str()]);
    assert!(h.verify(&old_token).await.is_none());
}

// ---------------------------------------------------------------- graph

#[tokio::test]
async fn graph_me_requires_a_token_this_idp_issued() {
    let h = start().await;
    let response = h.http.get(h.url("/v1.0/me")).send().await.expect("me");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .contains_key(reqwest::header::WWW_AUTHENTICATE)
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["innerError"]["request-id"].is_string());

    let (_, tokens) = h.tokens("admin", FULL_SCOPE).await;
    // An ID token is not an access token.
    let response = h
        .http
        .get(h.url("/v1.0/me"))
        .bearer_auth(tokens["id_token"].as_str().expect("id_token"))
        .send()
        .await
        .expect("me");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let response = h
        .http
        .get(h.url("/v1.0/me"))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("me");
    assert_eq!(response.status(), StatusCode::OK);
    let me: Value = response.json().await.expect("json");
    let admin = &h.idp.config().users[2];
    assert_eq!(me["id"], admin.oid);
    assert_eq!(me["displayName"], "Ada Admin");
    assert_eq!(me["givenName"], "Ada");
    assert_eq!(me["surname"], "Admin");
    assert_eq!(me["mail"], "admin@contoso.example");
    assert_eq!(me["userPrincipalName"], "admin@contoso.example");
    assert_eq!(me["businessPhones"], serde_json::json!([]));
    assert!(
        me["@odata.context"]
            .as_str()
            .is_some_and(|c| c.ends_with("$metadata#users/$entity"))
    );
}

#[tokio::test]
async fn userinfo_subject_matches_the_id_token() {
    let h = start().await;
    let (_, tokens) = h.tokens("writer", FULL_SCOPE).await;
    let id_claims = jwt_claims(tokens["id_token"].as_str().expect("id_token"));
    let response = h
        .http
        .get(h.url("/oidc/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .send()
        .await
        .expect("userinfo");
    assert_eq!(response.status(), StatusCode::OK);
    let info: Value = response.json().await.expect("json");
    assert_eq!(info["sub"], id_claims["sub"]);
    assert_eq!(info["name"], "Walt Writer");
    assert_eq!(info["email"], "writer@contoso.example");

    let response = h
        .http
        .get(h.url("/oidc/userinfo"))
        .bearer_auth("a.b.c")
        .send()
        .await
        .expect("userinfo");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn groups_overage_points_at_get_member_objects() {
    let mut config = DevIdpConfig::default();
    let mut many = DevUser::new("many", "Manny Groups");
    many.oid = "0d9b7c61-2f4e-4a8b-9c3d-5e6f7a8b9c0d".to_owned();
    many.roles = vec!["App.Read".to_owned()];
    many.groups = vec!["aaaaaaaa-0000-4000-8000-000000000001".to_owned()];
    many.groups_overage = true;
    config.users.push(many);
    let h = start_with(config).await;
    let (_, tokens) = h.tokens("many", FULL_SCOPE).await;
    let claims = h
        .verify(tokens["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert!(claims.get("groups").is_none());
    assert_eq!(claims["_claim_names"]["groups"], "src1");
    let endpoint = claims["_claim_sources"]["src1"]["endpoint"]
        .as_str()
        .expect("endpoint");
    assert_eq!(
        endpoint,
        format!(
            "{}/v1.0/users/0d9b7c61-2f4e-4a8b-9c3d-5e6f7a8b9c0d/getMemberObjects",
            h.base
        )
    );
    let response = h
        .http
        .post(endpoint)
        .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
        .json(&serde_json::json!({ "securityEnabledOnly": false }))
        .send()
        .await
        .expect("getMemberObjects");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["value"],
        serde_json::json!(["aaaaaaaa-0000-4000-8000-000000000001"])
    );
}

// ---------------------------------------------------------------- logout

#[tokio::test]
async fn logout_redirects_only_to_allowed_uris() {
    let h = start().await;
    let logout = h.tenant_url("oauth2/v2.0/logout");
    // Same origin as a registered redirect URI: allowed, state appended.
    let response = h
        .http
        .get(with_query(
            &logout,
            &[
                (
                    "post_logout_redirect_uri",
                    "http://127.0.0.1:4180/signed-out",
                ),
                ("state", "bye"),
            ],
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(
        location(&response),
        "http://127.0.0.1:4180/signed-out?state=bye"
    );

    // Another origin: a signed-out page, no redirect.
    let response = h
        .http
        .get(with_query(
            &logout,
            &[("post_logout_redirect_uri", "https://evil.example/\"><x>")],
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(reqwest::header::LOCATION).is_none());
    let html = response.text().await.expect("text");
    assert!(html.contains("You have signed out"));
    assert!(html.contains("https://evil.example/&quot;&gt;&lt;x&gt;"));

    // No redirect requested.
    let response = h.http.get(&logout).send().await.expect("logout");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn configured_post_logout_uris_are_matched_exactly() {
    let config =
        DevIdpConfig::from_toml_str("post_logout_redirect_uris = [\"http://127.0.0.1:4180/bye\"]")
            .expect("config");
    let h = start_with(config).await;
    let logout = h.tenant_url("oauth2/v2.0/logout");
    let allowed = h
        .http
        .get(with_query(
            &logout,
            &[("post_logout_redirect_uri", "http://127.0.0.1:4180/bye")],
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(allowed.status(), StatusCode::FOUND);
    let same_origin = h
        .http
        .get(with_query(
            &logout,
            &[("post_logout_redirect_uri", "http://127.0.0.1:4180/other")],
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(same_origin.status(), StatusCode::OK);
}

// ---------------------------------------------------------------- config

#[tokio::test]
async fn toml_users_sign_in_with_their_roles() {
    let config = DevIdpConfig::from_toml_str(
        r#"
        tenant_id = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
        app_roles = ["Orders.Read"]
        id_token_lifetime_secs = 600

        [[users]]
        username = "olga"
        name = "Olga Orders"
        roles = ["Orders.Read"]
        "#,
    )
    .expect("config");
    let h = start_with(config).await;
    assert!(
        h.idp
            .issuer()
            .ends_with("/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/v2.0")
    );
    let (_, tokens) = h.tokens("olga", "openid profile email").await;
    let claims = h
        .verify(tokens["id_token"].as_str().expect("id_token"))
        .await
        .expect("verifies");
    assert_eq!(claims["roles"], serde_json::json!(["Orders.Read"]));
    assert_eq!(claims["email"], "olga@contoso.example");
    assert_eq!(claims["tid"], "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
    let iat = claims["iat"].as_u64().expect("iat");
    assert_eq!(claims["exp"].as_u64(), Some(iat + 600));
}

#[test]
fn invalid_config_and_base_are_rejected_with_the_key_named() {
    let err = DevIdpConfig::from_toml_str("[[users]]\nusername = \"x\"\nroles = [\"Nope\"]")
        .expect_err("undefined role");
    assert!(err.to_string().contains("users[0].roles[0]"), "{err}");
    let base = url::Url::parse("http://127.0.0.1:1/?q=1").expect("url");
    let err = aadgate_dev_idp::DevIdp::new(DevIdpConfig::default(), base).expect_err("query");
    assert!(err.to_string().contains("base"), "{err}");
}
