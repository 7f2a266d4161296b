//! The token endpoint's code exchange: client authentication (HTTP Basic and
//! `client_secret_post`), PKCE, single-use codes, and the errors for each.

use aadgate_dev_idp::DevIdpConfig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{FULL_SCOPE, Pkce, REDIRECT_URI, assert_entra_error, start, start_with};

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
