//! Configuration: users and settings from TOML, and invalid configuration or
//! base URL rejected with the key named.

use aadgate_dev_idp::DevIdpConfig;

use crate::common::start_with;

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
