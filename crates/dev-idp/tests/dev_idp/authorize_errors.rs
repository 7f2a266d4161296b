//! Authorize errors: a bad client or redirect URI is an error page and never
//! a redirect; every other protocol error (and a simulated one) is redirected
//! back with Entra's error parameters.

use reqwest::StatusCode;

use crate::common::{Pkce, REDIRECT_URI, location, location_query, start};

#[tokio::test]
async fn unregistered_redirect_uri_is_an_error_page_never_a_redirect() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let evil = "https://evil.example/cb?<script>alert(1)</script>";
    for mode in ["query", "form_post"] {
        let response = h
            .authorize(&[
                ("client_id", client_id.as_str()),
                ("redirect_uri", evil),
                ("response_type", "code"),
                ("response_mode", mode),
                ("scope", "openid"),
                ("state", "s"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("login_hint", "reader"),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(reqwest::header::LOCATION).is_none());
        let html = response.text().await.expect("text");
        assert!(html.contains("AADSTS50011"));
        assert!(html.contains("https://evil.example/cb?&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script>alert(1)"));
        assert!(!html.contains("action=\"https://evil.example"));
    }
    // A near miss (trailing slash) is not registered either: exact match only.
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", &format!("{REDIRECT_URI}/")),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "reader"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.expect("text").contains("AADSTS50011"));
}

#[tokio::test]
async fn unknown_client_id_is_aadsts700016_page() {
    let h = start().await;
    let pkce = Pkce::new();
    let response = h
        .authorize(&[
            ("client_id", "11111111-2222-4333-8444-555555555555"),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "reader"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get(reqwest::header::LOCATION).is_none());
    assert!(
        response
            .text()
            .await
            .expect("text")
            .contains("AADSTS700016")
    );
}

#[tokio::test]
async fn protocol_errors_redirect_back_with_entra_parameters() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let base: Vec<(&str, &str)> = vec![
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("state", "keep-me"),
        ("login_hint", "reader"),
    ];
    // (extra parameters, expected error, expected AADSTS code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case<'_>> = vec![
        // No PKCE at all.
        (
            vec![("response_type", "code"), ("scope", "openid")],
            "invalid_request",
            "AADSTS900144",
        ),
        // PKCE "plain" (explicit, and implied by a missing method).
        (
            vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
            "AADSTS90100",
        ),
        (
            vec![
                ("response_type", "code"),
                ("scope", "openid"),
                ("code_challenge", pkce.challenge.as_str()),
            ],
            "invalid_request",
            "AADSTS90100",
        ),
        // Hybrid / implicit response types.
        (
            vec![
                ("response_type", "code id_token"),
                ("scope", "openid"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
            "unsupported_response_type",
            "AADSTS70005",
        ),
        // No openid scope.
        (
            vec![
                ("response_type", "code"),
                ("scope", "profile email"),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
            "invalid_scope",
            "AADSTS70011",
        ),
    ];
    for (extra, error, code) in cases {
        let params: Vec<(&str, &str)> = base.iter().copied().chain(extra).collect();
        let response = h.authorize(&params).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{code}");
        assert!(location(&response).starts_with(REDIRECT_URI));
        let query = location_query(&response);
        assert_eq!(query.get("error").map(String::as_str), Some(error));
        assert!(
            query
                .get("error_description")
                .is_some_and(|d| d.starts_with(&format!("{code}: "))),
            "{query:?}"
        );
        assert_eq!(query.get("state").map(String::as_str), Some("keep-me"));
        assert!(query.get("trace_id").is_some_and(|v| v.len() == 36));
        assert!(query.get("correlation_id").is_some_and(|v| v.len() == 36));
        assert!(!query.contains_key("code"));
    }
}

#[tokio::test]
async fn error_login_hint_simulates_an_entra_error() {
    let h = start().await;
    let pkce = Pkce::new();
    let client_id = h.client_id();
    let response = h
        .authorize(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", REDIRECT_URI),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
            ("code_challenge", pkce.challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("login_hint", "error:50105"),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let query = location_query(&response);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("access_denied")
    );
    assert!(query["error_description"].starts_with("AADSTS50105: "));
    assert_eq!(query.get("error_codes").map(String::as_str), Some("50105"));
    assert_eq!(query.get("state").map(String::as_str), Some("st"));
    assert!(query.contains_key("trace_id"));
    assert!(query.contains_key("correlation_id"));
    assert!(!query.contains_key("code"));
}
