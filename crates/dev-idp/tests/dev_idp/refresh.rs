//! The refresh-token grant: rotation, and directory changes (role assignments,
//! disabled accounts) reaching refreshed tokens.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{FULL_SCOPE, assert_entra_error, jwt_claims, start};

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
