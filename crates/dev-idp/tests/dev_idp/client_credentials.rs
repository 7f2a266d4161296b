//! The client-credentials grant: an application token for the app's own
//! API, and Entra's errors for a wrong secret, an unknown client and a
//! scope that is not `<resource>/.default`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{Harness, assert_entra_error, start};

async fn client_credentials(
    h: &Harness,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> reqwest::Response {
    h.token(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", scope),
    ])
    .await
}

#[tokio::test]
async fn an_application_token_for_the_apps_own_api() {
    let h = start().await;
    let (id, secret) = (h.client_id(), h.secret());
    for scope in [format!("{id}/.default"), format!("api://{id}/.default")] {
        let response = client_credentials(&h, &id, &secret, &scope).await;
        assert_eq!(response.status(), StatusCode::OK, "{scope}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert!(body.get("id_token").is_none(), "no user, no ID token");
        assert!(body.get("refresh_token").is_none(), "no refresh token");
        let token = body["access_token"].as_str().expect("access_token");
        let claims = h.verify(token).await.expect("signed with a published key");
        assert_eq!(claims["aud"], id.as_str());
        assert_eq!(claims["azp"], id.as_str());
        assert_eq!(claims["idtyp"], "app");
        assert_eq!(claims["tid"], h.tenant().as_str());
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(claims["iss"], h.idp.issuer().as_str());
        assert_eq!(claims["oid"], claims["sub"]);
        assert!(claims.get("name").is_none() && claims.get("scp").is_none());
    }
}

#[tokio::test]
async fn http_basic_authenticates_too() {
    let h = start().await;
    let id = h.client_id();
    let response = h
        .http
        .post(h.tenant_url("oauth2/v2.0/token"))
        .basic_auth(&id, Some(h.secret()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", &format!("{id}/.default")),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_secret_is_401_aadsts7000215() {
    let h = start().await;
    let id = h.client_id();
    let response = client_credentials(
        &h,
        &id,
        "the-secret-id-not-its-value",
        &format!("{id}/.default"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_client", 7_000_215);
}

#[tokio::test]
async fn an_unknown_client_is_aadsts700016() {
    let h = start().await;
    let other = "99999999-8888-4777-8666-555555555555";
    let response = client_credentials(&h, other, &h.secret(), &format!("{other}/.default")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "unauthorized_client", 700_016);
}

#[tokio::test]
async fn a_wrong_tenant_is_aadsts90002() {
    let h = start().await;
    let id = h.client_id();
    let response = h
        .http
        .post(h.url("/0f0f0f0f-1111-2222-3333-444444444444/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id.as_str()),
            ("client_secret", h.secret().as_str()),
            ("scope", &format!("{id}/.default")),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.expect("json");
    assert_entra_error(&body, "invalid_tenant", 90_002);
}

#[tokio::test]
async fn the_scope_must_be_one_known_resource_with_default() {
    let h = start().await;
    let (id, secret) = (h.client_id(), h.secret());
    let cases = [
        (None, "invalid_request", 900_144),
        (Some(format!("{id}/User.Read")), "invalid_scope", 1_002_012),
        (Some("openid".to_owned()), "invalid_scope", 1_002_012),
        (
            Some(format!("{id}/.default openid")),
            "invalid_scope",
            70_011,
        ),
        (
            Some("https://graph.example/.default".to_owned()),
            "invalid_resource",
            500_011,
        ),
    ];
    for (scope, error, code) in cases {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", id.clone()),
            ("client_secret", secret.clone()),
        ];
        if let Some(s) = &scope {
            form.push(("scope", s.clone()));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = h.token(&pairs).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{scope:?}");
        let body: Value = response.json().await.expect("json");
        assert_entra_error(&body, error, code);
    }
}
