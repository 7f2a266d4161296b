//! Issue 10's classes of defect, each against real servers: dot segments
//! against a Werkzeug app that does not resolve them, forwarding headers,
//! cross-site logout, sign-in state exhaustion, connection and body limits.

use aadgate_dev_idp::DevIdpConfig;

use crate::harness::{Setup, Targets, raw_status};

/// Werkzeug routes `/admin/../public/x` to `/admin/<path:sub>` (it does not
/// resolve dot segments), so a decision made on the resolved path would let
/// anyone reach the admin handler through the public prefix.
#[tokio::test]
async fn dot_segments_never_reach_a_protected_flask_route() {
    let targets = Targets::start().await;
    let s = Setup::in_front_of(targets.addr, "", DevIdpConfig::default()).await;
    let paths = [
        "/admin/../public/x",
        "/admin/%2e%2e/public/x",
        "/admin/.%2E/public/x",
        "/admin/%252e%252e/public/x",
        "/admin/..;/public/x",
        "/admin/..%3b/public/x",
        "/admin/..%2fpublic/x",
        "/admin%2f..%2fpublic/x",
        "/admin/./../public/x",
        "/admin\\..\\public/x",
        "/public/./x",
    ];
    let admin_runs = || async { targets.executed().await.get("route:/admin").copied().unwrap_or(0) };
    // Straight at Werkzeug, the first ones reach the admin handler: the
    // test is about a real difference.
    let raw = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(raw_status(targets.addr, raw(paths[0]).as_bytes()).await, 200);
    assert_eq!(admin_runs().await, 1, "Werkzeug routes dot segments as they are");

    let host = s.proxy().addr;
    for path in paths {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_status(host, req.as_bytes()).await, 400, "{path}");
    }
    assert_eq!(admin_runs().await, 1, "no request reached the admin handler through aadgate");
    assert_eq!(targets.executed().await.get("route:/public").copied().unwrap_or(0), 0);

    // A signed-in reader gets the same answer (and a page, for a navigation).
    let reader = s.browser();
    reader.sign_in("reader", "/").await;
    let r = reader
        .client
        .get(reader.url("/admin/%252e%252e/public/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("Correlation id"), "{page}");
    assert_eq!(admin_runs().await, 1);
    // Ordinary paths with dots in names still work.
    let r = reader.client.get(reader.url("/public/a..b/.hidden")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A cross-site page cannot sign a user out (of aadgate or of Entra ID):
/// only a same-origin POST, or a navigation the user made, does.
#[tokio::test]
async fn another_site_cannot_sign_anyone_out() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let signed_in = || async {
        crate::harness::api_get(&b.client, b.url("/auth/me")).await.status() == 200
    };
    let evil = "https://evil.example";
    for path in ["/auth/logout", "/.auth/logout"] {
        // A link or image on another site: the browser says cross-site.
        let mut url = b.url(path);
        loop {
            let r = b
                .client
                .get(&url)
                .header("accept", "text/html")
                .header("sec-fetch-site", "cross-site")
                .header("sec-fetch-mode", "navigate")
                .send()
                .await
                .unwrap();
            if r.status() == 302 {
                url = b.url(&crate::harness::location(&r));
                continue;
            }
            assert_eq!(r.status(), 200, "{path}");
            let page = r.text().await.unwrap();
            assert!(page.contains("method=\"post\"") && page.contains("Sign out"), "{page}");
            break;
        }
        assert!(signed_in().await, "{path} from another site signed the user out");
    }
    // No Fetch Metadata at all (an old client): the confirmation page too.
    let r = b.client.get(b.url("/auth/logout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A form on another site posting here.
    for origin in [evil, "null", "http://127.0.0.1:1"] {
        let r = b
            .client
            .post(b.url("/auth/logout"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{origin}");
        assert!(signed_in().await, "a POST from {origin} signed the user out");
    }
    // The confirmation page's own form: same origin.
    let r = b
        .client
        .post(b.url("/auth/logout?rd=%2F"))
        .header("origin", format!("http://{}", s.proxy().addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(!signed_in().await, "the same-origin POST signs out");
}

/// A client looping over bogus sign-ins is held back with 429 pages, and
/// never stops another user's sign-in.
#[tokio::test]
async fn bogus_sign_ins_never_stop_a_real_users_sign_in() {
    let extra = "trusted_proxies = [\"127.0.0.1/32\"]\n[limits]\nsignin_per_minute = 20";
    let s = Setup::with_options(extra, DevIdpConfig::default()).await;
    let attacker = crate::harness::Browser::behind_proxy_as(s.proxy().addr, "198.51.100.66");
    let mut refused = 0;
    for i in 0..60 {
        let r = attacker.navigate(&attacker.url("/auth/login?rd=%2F")).await;
        if r.status() == 429 {
            refused += 1;
            assert!(r.headers().contains_key("retry-after"));
            let page = r.text().await.unwrap();
            assert!(page.contains("Too many sign-in attempts") && page.contains("Correlation id"), "{page}");
            continue;
        }
        assert_eq!(r.status(), 302, "login {i}");
        let authorize = crate::harness::location(&r);
        let state = url::Url::parse(&authorize)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let r = attacker
            .navigate(&attacker.url(&format!("/auth/callback?code=bogus{i}&state={state}")))
            .await;
        if r.status() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 40, "the attacker was held back ({refused} refusals)");
    // Someone else, behind the same trusted proxy, signs in as usual.
    let user = crate::harness::Browser::behind_proxy_as(s.proxy().addr, "198.51.100.7");
    assert_eq!(user.sign_in("reader", "/").await, "/");
    assert_eq!(crate::harness::api_get(&user.client, user.url("/auth/me")).await.status(), 200);
}
