//! What the tokens carry: the ID token's Entra claims and signature, scope-gated
//! claims, and the Graph-shaped access token.

use crate::common::{FULL_SCOPE, jwt_claims, jwt_header, start};

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
