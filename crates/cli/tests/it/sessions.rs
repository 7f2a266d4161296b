//! Sessions: restarts, forged and malformed cookies, token refresh and passing
//! the access token on.

use crate::harness::{Browser, Setup, api_get, seen};

#[tokio::test]
async fn a_session_survives_a_proxy_restart() {
    let mut s = Setup::new().await;
    let b = s.browser();
    b.sign_in("admin", "/").await;
    assert_eq!(b.navigate(&b.url("/admin")).await.status(), 200);
    s.restart_proxy().await;
    let b2 = Browser {
        client: b.client.clone(),
        proxy: s.proxy().addr,
    };
    assert_eq!(
        b2.navigate(&b2.url("/admin")).await.status(),
        200,
        "session kept across restart"
    );
    let me: serde_json::Value = b2
        .client
        .get(b2.url("/auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "Ada Admin");
}

#[tokio::test]
async fn forged_and_malformed_cookies_are_signed_out_never_500() {
    let s = Setup::new().await;
    let c = crate::harness::no_redirects();
    let long = "A".repeat(5000);
    let values = [
        "aadgate=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "aadgate=".to_owned(),
        "aadgate=%00%ff".to_owned(),
        "aadgate=\"quoted\"".to_owned(),
        format!("aadgate={long}"),
        "aadgate_login=garbage; aadgate=x".to_owned(),
        "aadgate=a; aadgate=b; aadgate=c".to_owned(),
    ];
    for v in values {
        let r = c
            .get(s.proxy().url("/"))
            .header("cookie", v.as_str())
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{v}");
        let r = c
            .get(s.proxy().url("/auth/me"))
            .header("cookie", v.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{v}");
    }
    // Callback with a forged pending-login cookie.
    let r = c
        .get(s.proxy().url("/auth/callback?code=x&state=y"))
        .header("cookie", "aadgate_login=Zm9yZ2Vk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn thousands_of_forged_session_cookies_cost_nothing() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let before = s.proxy().auth.sessions().disk_writes();
    let many: Vec<String> = (0..2000).map(|i| format!("aadgate={:0>43}", i)).collect();
    let cookie = many.join("; ");
    let c = crate::harness::no_redirects();
    for path in ["/auth/logout", "/", "/auth/me"] {
        let r = c
            .get(s.proxy().url(path))
            .header("cookie", cookie.as_str())
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_redirection() || r.status() == 401,
            "{path}: {}",
            r.status()
        );
    }
    assert_eq!(
        s.proxy().auth.sessions().disk_writes(),
        before,
        "no store writes for forged ids"
    );
}

#[tokio::test]
async fn access_tokens_are_refreshed_once_at_a_time_and_a_dead_grant_ends_the_session() {
    // Access tokens that live 30 s are always "about to expire": every request refreshes.
    let idp_config = aadgate_dev_idp::DevIdpConfig {
        access_token_lifetime_secs: 30,
        ..Default::default()
    };
    let mut s = Setup::with_options("pass_access_token = true", idp_config).await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let first = b.echo("/a").await;
    let second = b.echo("/b").await;
    let t1 = seen(&first, "x-forwarded-access-token")[0].to_owned();
    let t2 = seen(&second, "x-forwarded-access-token")[0].to_owned();
    assert_ne!(t1, t2, "refreshed");

    // Concurrent requests of one session: refreshes run one after another with the
    // latest refresh token. Two at once would reuse a rotated refresh token, which
    // the provider refuses, and the session would end.
    let results = futures_util::future::join_all((0..8).map(|i| {
        let c = b.client.clone();
        let url = b.url(&format!("/c{i}"));
        async move { api_get(&c, url).await.status() }
    }))
    .await;
    assert!(results.iter().all(|st| *st == 200), "{results:?}");
    let after = b.echo("/d").await;
    assert_eq!(
        seen(&after, "x-forwarded-access-token").len(),
        1,
        "session alive with a token"
    );

    // The provider forgets every grant (a revoked user, say): the next refresh ends the session.
    s.idp.restart().await;
    let r = api_get(&b.client, b.url("/e")).await;
    assert_eq!(r.status(), 200, "this request was already admitted");
    let r = api_get(&b.client, b.url("/f")).await;
    assert_eq!(r.status(), 401, "session ended after invalid_grant");
}

#[tokio::test]
async fn access_token_is_passed_only_when_configured() {
    let s = Setup::with_extra("pass_access_token = true").await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let echo = b.echo("/x").await;
    let token = seen(&echo, "x-forwarded-access-token");
    assert_eq!(token.len(), 1);
    // The token works at the provider's Graph endpoint.
    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/v1.0/me", s.idp.addr))
        .bearer_auth(token[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["displayName"], "Rita Reader");
}

/// The claims of a JWT, unverified (the test reads what it was given).
fn jwt_claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = aadgate_core::crypto::b64url_decode(payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn app_service_token_headers_and_auth_refresh_work_as_on_app_service() {
    let mut s = Setup::with_extra("pass_access_token = true").await;
    let b = s.browser();
    // Signed out: nothing to refresh.
    let r = api_get(&b.client, b.url("/.auth/refresh")).await;
    assert_eq!(r.status(), 401);
    b.sign_in("reader", "/").await;
    // Another site cannot make the browser redeem the tokens.
    let r = b
        .client
        .get(b.url("/.auth/refresh"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = b
        .client
        .get(b.url("/x"))
        .header("x-ms-token-aad-access-token", "forged")
        .header("X-MS-TOKEN-AAD-EXPIRES-ON", "forged")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = r.json().await.unwrap();
    let access = seen(&echo, "x-ms-token-aad-access-token");
    assert_eq!(
        access,
        seen(&echo, "x-forwarded-access-token"),
        "the same token, not the forged one"
    );
    let id = seen(&echo, "x-ms-token-aad-id-token");
    assert_eq!(id.len(), 1);
    let claims = jwt_claims(id[0]);
    assert_eq!(claims["aud"], s.idp.idp.config().client_id.as_str());
    assert_eq!(claims["name"], "Rita Reader");
    let expires = seen(&echo, "x-ms-token-aad-expires-on");
    assert_eq!(expires.len(), 1, "{expires:?}");
    let e = expires[0];
    assert!(
        e.len() == 28 && e.ends_with(".0000000Z") && e.as_bytes()[10] == b'T',
        "App Service's format, 2026-12-02T10:15:00.0000000Z: {e}"
    );
    let first = access[0].to_owned();

    // /.auth/refresh redeems the refresh token now: the next request and
    // /.auth/me carry the new tokens.
    let r = api_get(&b.client, b.url("/.auth/refresh")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let echo = b.echo("/y").await;
    let second = seen(&echo, "x-ms-token-aad-access-token")[0].to_owned();
    assert_ne!(first, second, "refreshed");
    let me: serde_json::Value = api_get(&b.client, b.url("/.auth/me"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me[0]["access_token"], second.as_str());
    assert_eq!(
        me[0]["expires_on"].as_str().unwrap(),
        seen(&echo, "x-ms-token-aad-expires-on")[0]
    );

    // The provider forgets every grant: /.auth/refresh says sign in again,
    // and the session has ended.
    s.idp.restart().await;
    let r = api_get(&b.client, b.url("/.auth/refresh")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(api_get(&b.client, b.url("/z")).await.status(), 401);
}

#[tokio::test]
async fn app_service_token_headers_need_pass_access_token_and_the_family() {
    for extra in [
        "",
        "pass_access_token = true\nidentity_headers = [\"aadgate\"]",
    ] {
        let s = Setup::with_extra(extra).await;
        let b = s.browser();
        b.sign_in("reader", "/").await;
        let echo = b.echo("/x").await;
        for h in [
            "x-ms-token-aad-access-token",
            "x-ms-token-aad-id-token",
            "x-ms-token-aad-expires-on",
        ] {
            assert!(seen(&echo, h).is_empty(), "{extra:?}: {h}");
        }
        assert_eq!(
            seen(&echo, "x-forwarded-access-token").len(),
            usize::from(!extra.is_empty())
        );
    }
}
