//! The dev IdP's own sign-in session (SSO cookie): `prompt=none` reuses it,
//! logout ends it.

use crate::common::{Pkce, REDIRECT_URI, location_query, start, with_query};

#[tokio::test]
async fn prompt_none_uses_the_dev_idp_session_cookie() {
    let h = start().await;
    let client_id = h.client_id();
    let pkce = Pkce::new();
    let params = |hint: Option<&'static str>, prompt: Option<&'static str>| {
        let mut p: Vec<(&str, String)> = vec![
            ("client_id", client_id.clone()),
            ("redirect_uri", REDIRECT_URI.to_owned()),
            ("response_type", "code".to_owned()),
            ("scope", "openid".to_owned()),
            ("state", "x".to_owned()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        p.extend(hint.map(|v| ("login_hint", v.to_owned())));
        p.extend(prompt.map(|v| ("prompt", v.to_owned())));
        p
    };
    let url = h.tenant_url("oauth2/v2.0/authorize");

    // No session: login_required.
    let response = h
        .http
        .get(with_query(&url, &params(None, Some("none"))))
        .send()
        .await
        .expect("authorize");
    let query = location_query(&response);
    assert_eq!(
        query.get("error").map(String::as_str),
        Some("login_required")
    );
    assert!(query["error_description"].starts_with("AADSTS50058: "));

    // Sign in: the dev IdP sets its session cookie.
    let response = h
        .http
        .get(with_query(&url, &params(Some("admin"), None)))
        .send()
        .await
        .expect("authorize");
    let first_sid = location_query(&response)["session_state"].clone();
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .expect("session cookie")
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    assert!(cookie.starts_with("aadgate_dev_idp_session="));

    // With the cookie, prompt=none signs the same user in silently, same sid.
    let response = h
        .http
        .get(with_query(&url, &params(None, Some("none"))))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    let query = location_query(&response);
    assert!(query.contains_key("code"), "{query:?}");
    assert_eq!(query["session_state"], first_sid);

    // After logout the cookie no longer works.
    h.http
        .get(h.tenant_url("oauth2/v2.0/logout"))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("logout");
    let response = h
        .http
        .get(with_query(&url, &params(None, Some("none"))))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("authorize");
    assert_eq!(
        location_query(&response).get("error").map(String::as_str),
        Some("login_required")
    );
}
