//! What the IdP publishes: the OpenID Connect discovery document, the JWKS,
//! the home page, and the error for an unknown tenant.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{assert_entra_error, b64, start};

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
        serde_json::json!([
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic"
        ])
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
    assert_eq!(b64(key["n"].as_str().expect("n")).len(), 256);
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
