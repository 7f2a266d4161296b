//! Sign-in, sign-out and the provider: every default user's decisions, redirects
//! versus 401 JSON, state and fixation, return URLs, key rotation, provider errors
//! and outages.

use crate::harness::{Browser, Setup, location, session_cookie, urlenc};

#[tokio::test]
async fn each_default_user_signs_in_and_gets_role_decisions() {
    let s = Setup::new().await;
    // (user, /, /write, /admin)
    let cases = [
        ("reader", 200, 403, 403),
        ("writer", 200, 200, 403),
        ("admin", 200, 200, 200),
        ("norole", 403, 403, 403),
    ];
    for (user, root, write, admin) in cases {
        let b = s.browser();
        assert_eq!(
            b.sign_in(user, "/reports?x=1").await,
            "/reports?x=1",
            "{user} returns to rd"
        );
        for (path, want) in [("/", root), ("/write/x", write), ("/admin", admin)] {
            let r = b.navigate(&b.url(path)).await;
            assert_eq!(r.status().as_u16(), want, "{user} {path}");
        }
        let me: serde_json::Value = b
            .client
            .get(b.url("/auth/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["preferred_username"], format!("{user}@contoso.example"));
        assert!(me["oid"].as_str().unwrap().len() == 36);
        assert_eq!(me["tid"], s.idp.idp.config().tenant_id);
    }
}

#[tokio::test]
async fn not_signed_in_navigation_redirects_and_xhr_gets_401_json() {
    let s = Setup::new().await;
    let b = s.browser();
    let r = b.navigate(&b.url("/dash/?tab=2")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        location(&r),
        format!("/auth/login?rd={}", urlenc("/dash/?tab=2"))
    );

    // A Dash callback: POST with JSON.
    let r = b
        .client
        .post(b.url("/_dash-update-component"))
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["error"], "login_required");
    assert!(
        j["login_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/auth/login?rd=", s.proxy().addr))
    );

    for (k, v) in [
        ("x-requested-with", "XMLHttpRequest"),
        ("sec-fetch-mode", "cors"),
    ] {
        let r = b
            .client
            .get(b.url("/data"))
            .header("accept", "text/html")
            .header(k, v)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{k}");
    }
    // Public routes pass without sign-in.
    assert_eq!(b.navigate(&b.url("/public/app.css")).await.status(), 200);
}

#[tokio::test]
async fn logout_ends_the_session_and_signs_out_at_the_provider() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let cookie = session_cookie(&b).await;
    let r = b.navigate(&b.url("/auth/logout")).await;
    assert_eq!(r.status(), 302);
    let to = location(&r);
    let end_session = format!(
        "{}/oauth2/v2.0/logout?",
        s.idp.idp.issuer().trim_end_matches("/v2.0")
    );
    assert!(to.starts_with(&end_session), "{to}");
    assert!(to.contains("id_token_hint="), "{to}");
    assert!(
        to.contains(&format!(
            "post_logout_redirect_uri={}",
            urlenc(&format!("http://{}/auth/signed-out", s.proxy().addr))
        )),
        "{to}"
    );
    // The provider sends the browser back to the signed-out page.
    let back = b.navigate(&to).await;
    assert_eq!(back.status(), 302);
    let signed_out = b.navigate(&location(&back)).await;
    assert_eq!(signed_out.status(), 200);
    assert!(signed_out.text().await.unwrap().contains("signed out"));
    // The old cookie is dead server-side, even if replayed.
    let r = crate::harness::no_redirects()
        .get(s.proxy().url("/"))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(b.navigate(&b.url("/")).await.status(), 302);
}

#[tokio::test]
async fn return_urls_stay_on_the_site() {
    let s = Setup::new().await;
    let evil = [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "/%09/evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/%5C%5Cevil.example",
        "http:/evil.example",
    ];
    for rd in evil {
        let b = s.browser();
        assert_eq!(b.sign_in("reader", rd).await, "/", "{rd}");
    }
    let b = s.browser();
    assert_eq!(b.sign_in("reader", "/ok/path?a=b").await, "/ok/path?a=b");
}

#[tokio::test]
async fn key_rotation_at_the_provider_is_accepted_without_restart() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let old_kid = current_kid(&s).await;
    let new_kid = s.idp.idp.rotate_keys();
    assert_ne!(old_kid, new_kid);
    let b2 = s.browser();
    assert_eq!(
        b2.sign_in("writer", "/").await,
        "/",
        "token signed with the new key is accepted"
    );
    assert_eq!(b2.navigate(&b2.url("/write")).await.status(), 200);
}

async fn current_kid(s: &Setup) -> String {
    let jwks: serde_json::Value = reqwest::get(format!(
        "{}/discovery/v2.0/keys",
        s.idp.idp.issuer().trim_end_matches("/v2.0")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    jwks["keys"][0]["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn unknown_kid_refetch_is_rate_limited() {
    let s = Setup::new().await;
    s.browser().sign_in("reader", "/").await;
    s.idp.idp.rotate_keys();
    // First unknown kid: one refetch, accepted.
    s.browser().sign_in("reader", "/").await;
    s.idp.idp.rotate_keys();
    // A second unknown kid within five minutes does not trigger another fetch.
    let b = s.browser();
    let authorize = b.start_login("/").await;
    let callback = b.pick_user(&authorize, "reader").await;
    assert_eq!(b.navigate(&callback).await.status(), 400);
}

#[tokio::test]
async fn state_is_single_use_and_bound_to_the_browser() {
    let s = Setup::new().await;
    let alice = s.browser();
    let authorize = alice.start_login("/").await;
    let callback = alice.pick_user(&authorize, "reader").await;
    // Another browser presenting Alice's callback is refused.
    let mallory = s.browser();
    assert_eq!(mallory.navigate(&callback).await.status(), 400);
    // Alice completes; replaying the same callback fails.
    assert_eq!(alice.navigate(&callback).await.status(), 302);
    assert_eq!(alice.navigate(&callback).await.status(), 400);
    // Duplicated state is refused outright.
    let dup = format!("{callback}&state=again");
    assert_eq!(alice.navigate(&dup).await.status(), 400);
}

#[tokio::test]
async fn concurrent_sign_ins_in_several_tabs_all_succeed() {
    let s = Setup::new().await;
    let b = s.browser();
    let mut callbacks = Vec::new();
    for i in 0..3 {
        let authorize = b.start_login(&format!("/tab{i}")).await;
        callbacks.push(b.pick_user(&authorize, "reader").await);
    }
    for (i, cb) in callbacks.iter().enumerate() {
        let r = b.navigate(cb).await;
        assert_eq!(r.status(), 302, "tab {i}");
        assert_eq!(location(&r), format!("/tab{i}"));
    }
}

#[tokio::test]
async fn session_fixation_a_planted_id_is_never_used() {
    let s = Setup::new().await;
    // A cookie-less client so the Cookie header is exactly what we plant.
    let c = crate::harness::no_redirects();
    let planted = "aadgate=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = c
        .get(s.proxy().url("/auth/login?rd=/"))
        .header("cookie", planted)
        .send()
        .await
        .unwrap();
    let pending = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("aadgate_login="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let authorize = location(&r);
    let r = c
        .get(format!("{authorize}&login_hint=reader"))
        .send()
        .await
        .unwrap();
    let callback = location(&r);
    let r = c
        .get(&callback)
        .header("cookie", format!("{planted}; {pending}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("aadgate="))
        .unwrap();
    assert!(!set.starts_with(planted), "{set}");
    let fresh = set.split(';').next().unwrap().to_owned();
    // The planted id is not a session; the issued one is.
    let me = |cookie: String| {
        c.get(s.proxy().url("/auth/me"))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(me(planted.to_owned()).await.unwrap().status(), 401);
    assert_eq!(me(fresh).await.unwrap().status(), 200);
}

#[tokio::test]
async fn provider_errors_are_explained_with_aadsts_codes() {
    let s = Setup::new().await;
    let b = s.browser();
    let authorize = b.start_login("/").await;
    let r = b
        .navigate(&format!("{authorize}&login_hint=error:50105"))
        .await;
    let callback = location(&r);
    let r = b.navigate(&callback).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("AADSTS50105"), "{html}");
    assert!(html.contains("Users and groups"), "names the fix: {html}");
    assert!(
        html.contains("Trace id") && html.contains("Correlation id"),
        "{html}"
    );

    // Reflected input is escaped.
    let r = b
        .navigate(
            &b.url("/auth/callback?error=%3Cscript%3Ealert(1)%3C/script%3E&error_description=x"),
        )
        .await;
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"));
}

#[tokio::test]
async fn provider_down_gives_503_at_sign_in_while_sessions_keep_working() {
    let mut s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    s.idp.stop().await;
    // A fresh proxy that never saw the provider: sign-in is a clear 503.
    s.restart_proxy().await;
    let b = Browser {
        client: b.client.clone(),
        proxy: s.proxy().addr,
    };
    assert_eq!(
        b.navigate(&b.url("/")).await.status(),
        200,
        "existing session still works"
    );
    let fresh = s.browser();
    let r = fresh.navigate(&fresh.url("/auth/login?rd=/")).await;
    assert_eq!(r.status(), 503);
    let html = r.text().await.unwrap();
    assert!(html.contains("cannot be reached"), "{html}");
    assert!(html.contains("Correlation id"));
}

/// A wrong tenant at sign-in: the provider answered, so the page is not
/// "cannot be reached" but AADSTS90002 explained, naming `oidc.tenant`.
#[tokio::test]
async fn a_wrong_tenant_at_sign_in_is_explained_naming_oidc_tenant() {
    use crate::harness::{Idp, Proxy, config_text, listener, start_echo};
    let (pl, paddr) = listener().await;
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[paddr.port()]).await;
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = idp.idp.config().tenant_id.clone();
    let text = config_text(paddr.port(), echo, &idp.idp, &dir.path().join("s"), "")
        .replace(&tenant, "0f0f0f0f-1111-2222-3333-444444444444");
    let proxy = Proxy::start(pl, &text, &idp.idp.config().client_secret).await;
    let b = Browser::new(proxy.addr);
    let r = b.navigate(&b.url("/auth/login?rd=/")).await;
    assert_eq!(r.status(), 502);
    let html = r.text().await.unwrap();
    assert!(html.contains("AADSTS90002"), "{html}");
    assert!(html.contains("oidc.tenant does not exist"), "{html}");
    assert!(!html.contains("cannot be reached"), "{html}");
    assert!(html.contains("Correlation id"), "{html}");
    proxy.stop().await;
}
