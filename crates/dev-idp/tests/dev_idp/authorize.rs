//! The authorize endpoint's happy paths: `login_hint` signs in at once, the
//! account picker carries the request along, and `form_post` answers with a
//! self-submitting form.

use reqwest::StatusCode;

use crate::common::{Pkce, REDIRECT_URI, location, location_query, start};

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
