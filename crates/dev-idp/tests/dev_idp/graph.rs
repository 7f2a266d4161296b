//! The Microsoft Graph and userinfo endpoints: bearer access tokens, `/me`,
//! and groups overage via `getMemberObjects`.

use aadgate_dev_idp::{DevIdpConfig, DevUser};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{FULL_SCOPE, jwt_claims, start, start_with};

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
    // Without a permission to read memberships, Graph refuses.
    let (_, narrow) = h.tokens("many", FULL_SCOPE).await;
    let (_, tokens) = h
        .tokens("many", &format!("{FULL_SCOPE} GroupMember.Read.All"))
        .await;
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
    let refused = h
        .http
        .post(endpoint)
        .bearer_auth(narrow["access_token"].as_str().expect("access_token"))
        .json(&serde_json::json!({ "securityEnabledOnly": false }))
        .send()
        .await
        .expect("getMemberObjects");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
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
