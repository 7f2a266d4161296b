//! Signing-key rotation: a new `kid`, and the previous key kept in the JWKS.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{jwt_header, start};

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
