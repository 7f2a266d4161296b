use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};

use crate::harness::{Browser, Setup, api_get, location, seen, urlenc};

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
async fn forbidden_page_names_user_and_lowest_role() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("norole", "/").await;
    let r = b.navigate(&b.url("/")).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("Nick NoRole"), "{html}");
    assert!(html.contains("App.Read"), "{html}");
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let html = b
        .navigate(&b.url("/admin/users"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Rita Reader") && html.contains("App.Admin"),
        "{html}"
    );
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
async fn identity_reaches_the_app_and_client_copies_are_stripped() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("writer", "/").await;
    let forged = [
        ("X-Forwarded-User", "evil"),
        ("x_forwarded_user", "evil"),
        ("X-Forwarded-Roles", "App.Admin"),
        ("X_Forwarded_Email", "evil@x"),
        ("X-MS-CLIENT-PRINCIPAL", "ZXZpbA=="),
        ("x-ms-client-principal-name", "evil"),
        ("X-Forwarded-Access-Token", "evil"),
        ("X-Original-URL", "/admin"),
    ];
    let mut req = b.client.get(b.url("/page")).header("accept", "text/html");
    for (k, v) in forged {
        req = req.header(k, v);
    }
    let echo: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
    let writer_oid = s
        .idp
        .idp
        .config()
        .users
        .iter()
        .find(|u| u.username == "writer")
        .unwrap()
        .oid
        .clone();
    assert_eq!(seen(&echo, "x-forwarded-user"), [writer_oid.as_str()]);
    assert_eq!(seen(&echo, "x-forwarded-roles"), ["App.Read,App.Write"]);
    assert_eq!(seen(&echo, "x-forwarded-email"), ["writer@contoso.example"]);
    assert_eq!(seen(&echo, "x-forwarded-name"), ["Walt Writer"]);
    assert_eq!(
        seen(&echo, "x-forwarded-preferred-username"),
        ["writer@contoso.example"]
    );
    assert!(seen(&echo, "x_forwarded_user").is_empty());
    assert!(seen(&echo, "x_forwarded_email").is_empty());
    assert!(
        seen(&echo, "x-forwarded-access-token").is_empty(),
        "access token only with pass_access_token"
    );
    assert!(seen(&echo, "x-original-url").is_empty());
    assert_eq!(
        seen(&echo, "x-ms-client-principal-id"),
        [writer_oid.as_str()]
    );
    assert_eq!(
        seen(&echo, "x-ms-client-principal-name"),
        ["writer@contoso.example"]
    );
    assert_eq!(seen(&echo, "x-ms-client-principal-idp"), ["aad"]);
    let principal = seen(&echo, "x-ms-client-principal")[0];
    let p: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(principal)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(p["auth_typ"], "aad");
    assert_eq!(p["name_typ"], "name");
    assert_eq!(p["role_typ"], "roles");
    let claims = p["claims"].as_array().unwrap();
    assert!(
        claims
            .iter()
            .any(|c| c["typ"] == "roles" && c["val"] == "App.Write")
    );
    assert!(
        claims
            .iter()
            .any(|c| c["typ"] == "name" && c["val"] == "Walt Writer")
    );

    // On a public route, with no session, forged identity is stripped too.
    let anon = s.browser();
    let echo: serde_json::Value = anon
        .client
        .get(anon.url("/public/x"))
        .header("X-Forwarded-User", "evil")
        .header("X-MS-CLIENT-PRINCIPAL-ID", "evil")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(seen(&echo, "x-forwarded-user").is_empty());
    assert!(seen(&echo, "x-ms-client-principal-id").is_empty());
}

#[tokio::test]
async fn forwarding_sets_x_forwarded_and_hides_aadgate_cookies() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    // An explicit Cookie header replaces reqwest's jar: send the session along by hand.
    let session = session_cookie(&b).await;
    let echo: serde_json::Value = b
        .client
        .get(b.url("/page?q=1"))
        .header("accept", "text/html")
        .header("cookie", format!("app_pref=dark; {session}"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["uri"], "/page?q=1");
    assert_eq!(
        seen(&echo, "x-forwarded-for"),
        ["127.0.0.1"],
        "untrusted peers' X-Forwarded-For is replaced"
    );
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(
        seen(&echo, "x-forwarded-host"),
        [s.proxy().addr.to_string().as_str()]
    );
    let cookies = seen(&echo, "cookie").join("; ");
    assert!(cookies.contains("app_pref=dark"), "{cookies}");
    assert!(
        !cookies.contains("aadgate"),
        "aadgate's own cookies never reach the app: {cookies}"
    );

    // The app cannot overwrite aadgate's session cookie.
    let r = b.navigate(&b.url("/set-cookie")).await;
    let set: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set, ["app=1; Path=/"]);
    assert_eq!(
        b.navigate(&b.url("/")).await.status(),
        200,
        "still signed in"
    );
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("writer", "/").await;
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expected = format!(
        "{:x}",
        body.iter()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(*b as u64))
    );
    let r = b
        .client
        .post(b.url("/upload"))
        .header("accept", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["body_len"], body.len());
    assert_eq!(echo["body_sha"], expected);
}

#[tokio::test]
async fn websocket_upgrades_pass_for_signed_in_users_only() {
    let s = Setup::new().await;
    let url = format!("ws://{}/ws", s.proxy().addr);
    // Without a session: refused before reaching the app.
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    let b = s.browser();
    b.sign_in("reader", "/").await;
    // Reuse the browser's session cookie on the websocket handshake.
    let jar_cookie = session_cookie(&b).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("cookie", jar_cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text("hi".into()))
        .await
        .unwrap();
    let msg = ws.next().await.unwrap().unwrap();
    assert_eq!(msg.into_text().unwrap().as_str(), "echo: hi");
}

/// The session cookie a signed-in browser holds (read back via a fresh sign-in flow's Set-Cookie).
pub(crate) async fn session_cookie(b: &Browser) -> String {
    // reqwest's jar is not readable; sign in again manually and capture the Set-Cookie.
    let authorize = b.start_login("/").await;
    let callback = b.pick_user(&authorize, "reader").await;
    let r = b.navigate(&callback).await;
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("aadgate="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
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

#[tokio::test]
async fn app_service_endpoints_have_app_service_shapes() {
    let s = Setup::new().await;
    let b = s.browser();
    let r = b
        .navigate(&b.url("/.auth/login/aad?post_login_redirect_uri=/home"))
        .await;
    assert_eq!(location(&r), "/auth/login?rd=%2Fhome");
    assert_eq!(
        b.client
            .get(b.url("/.auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    b.sign_in("admin", "/").await;
    let me: serde_json::Value = b
        .client
        .get(b.url("/.auth/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &me[0];
    assert_eq!(entry["provider_name"], "aad");
    assert_eq!(entry["user_id"], "admin@contoso.example");
    let claims = entry["user_claims"].as_array().unwrap();
    assert!(
        claims
            .iter()
            .any(|c| c["typ"] == "roles" && c["val"] == "App.Admin")
    );
    assert!(
        entry.get("access_token").is_none(),
        "tokens only with pass_access_token"
    );
    assert_eq!(
        b.client
            .get(b.url("/healthz"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
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

/// Sends a request with the path exactly as given (HTTP clients normalize `..`).
async fn raw_get(addr: std::net::SocketAddr, path: &str, cookie: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).unwrap_or("0").parse().unwrap()
}

#[tokio::test]
async fn route_rules_cannot_be_talked_past() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let cookie = session_cookie(&b).await;
    let addr = s.proxy().addr;
    assert_eq!(raw_get(addr, "/", &cookie).await, 200, "the cookie works");
    for path in [
        "/admin",
        "/auth/../admin",
        "/auth/%2e%2e/admin",
        "/public/../admin",
        "/public/..%2fadmin",
        "/public/%252e%252e/admin",
        "/public\\..\\admin",
        "//admin",
        "/./admin",
        "/ADMIN",
        "/Admin/users",
        "/admin?next=/public",
        "/admin#/public",
        "/public/..;/admin",
        "/public/..%3B/admin",
        "/admin;x/users",
    ] {
        // 400 for dot segments (refused outright), 403 for the rest.
        let status = raw_get(addr, path, &cookie).await;
        let dots = path.contains("..") || path.contains("2e") || path.contains("/./");
        assert_eq!(
            status,
            if dots { 400 } else { 403 },
            "reader must not reach {path}"
        );
    }
    // Without a session, none of these reach the app either.
    for path in [
        "/auth/../admin",
        "/public/../x",
        "/auth/",
        "/auth/unknown",
        "/.auth/../x",
    ] {
        let status = raw_get(addr, path, "x=y").await;
        assert_eq!(
            status,
            if path.contains("..") { 400 } else { 401 },
            "{path}"
        );
    }
    // Client headers cannot change the decision.
    let r = b
        .client
        .get(b.url("/admin"))
        .header("accept", "application/json")
        .header("x-original-url", "/public")
        .header("x-forwarded-uri", "/public")
        .header("user-agent", "GoogleHC/1.0 kube-probe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
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
async fn forwarded_headers_from_trusted_proxies_are_kept() {
    let s = Setup::with_extra("trusted_proxies = [\"127.0.0.0/8\"]").await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let session = session_cookie(&b).await;
    let echo: serde_json::Value = b
        .client
        .get(b.url("/x"))
        .header("accept", "text/html")
        .header("cookie", session)
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "dash.contoso.com")
        .header("x-forwarded-user", "evil")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen(&echo, "x-forwarded-for"), ["203.0.113.7, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["https"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["dash.contoso.com"]);
    // Identity headers are still never taken from a trusted proxy's request.
    let reader = s
        .idp
        .idp
        .config()
        .users
        .iter()
        .find(|u| u.username == "reader")
        .unwrap();
    assert_eq!(seen(&echo, "x-forwarded-user"), [reader.oid.as_str()]);
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
async fn identity_headers_are_stripped_on_every_path_and_method() {
    let s = Setup::new().await;
    let c = crate::harness::no_redirects();
    // A CORS preflight to a public path, with duplicated and underscore copies.
    let r = c
        .request(reqwest::Method::OPTIONS, s.proxy().url("/public/api"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header("X-Forwarded-User", "evil")
        .header("X-Forwarded-User", "evil2")
        .header("x_forwarded_roles", "App.Admin")
        .header("X-Ms-Client-Principal-Id", "evil")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["method"], "OPTIONS");
    for h in [
        "x-forwarded-user",
        "x_forwarded_roles",
        "x-ms-client-principal-id",
    ] {
        assert!(seen(&echo, h).is_empty(), "{h} leaked: {echo}");
    }
    // Health checks and the callback are answered by aadgate itself, never forwarded.
    let r = c
        .get(s.proxy().url("/healthz"))
        .header("x-forwarded-user", "evil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = c
        .get(s.proxy().url("/auth/callback?code=x"))
        .header("x-forwarded-user", "evil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "missing state is refused");
    let r = c
        .get(s.proxy().url("/auth/callback?state=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "missing code is refused");
}

#[tokio::test]
async fn untrusted_forwarded_headers_never_shape_the_redirect_uri() {
    let s = Setup::new().await;
    let c = crate::harness::no_redirects();
    let r = c
        .get(s.proxy().url("/auth/login?rd=/"))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "host=evil.example;proto=https")
        .send()
        .await
        .unwrap();
    let to = location(&r);
    let u = url::Url::parse(&to).unwrap();
    let redirect_uri = u
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(redirect_uri, s.proxy().url("/auth/callback"));
}

/// HTTP/2 clients name the host in `:authority`, not in a `Host` header; the
/// app (spoken to in HTTP/1.1) still gets `Host` and `X-Forwarded-Host`.
#[tokio::test]
async fn http2_clients_host_reaches_the_app_as_host_and_x_forwarded_host() {
    let s = Setup::new().await;
    let addr = s.proxy().addr;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}/public/h2"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let echo: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let host = addr.to_string();
    assert_eq!(seen(&echo, "host"), [host.as_str()], "{echo}");
    assert_eq!(seen(&echo, "x-forwarded-host"), [host.as_str()], "{echo}");
    assert_eq!(echo["uri"], "/public/h2");
}
