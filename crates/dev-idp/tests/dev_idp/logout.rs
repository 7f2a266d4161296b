//! RP-initiated logout: which `post_logout_redirect_uri`s are redirected to.

use aadgate_dev_idp::DevIdpConfig;
use reqwest::StatusCode;

use crate::common::{location, start, start_with, with_query};

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
