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
    let admin_runs = || async {
        targets
            .executed()
            .await
            .get("route:/admin")
            .copied()
            .unwrap_or(0)
    };
    // Straight at Werkzeug, the first ones reach the admin handler: the
    // test is about a real difference.
    let raw =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_eq!(
        raw_status(targets.addr, raw(paths[0]).as_bytes()).await,
        200
    );
    assert_eq!(
        admin_runs().await,
        1,
        "Werkzeug routes dot segments as they are"
    );

    let host = s.proxy().addr;
    for path in paths {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw_status(host, req.as_bytes()).await, 400, "{path}");
    }
    assert_eq!(
        admin_runs().await,
        1,
        "no request reached the admin handler through aadgate"
    );
    assert_eq!(
        targets
            .executed()
            .await
            .get("route:/public")
            .copied()
            .unwrap_or(0),
        0
    );

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
    let r = reader
        .client
        .get(reader.url("/public/a..b/.hidden"))
        .send()
        .await
        .unwrap();
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
        crate::harness::api_get(&b.client, b.url("/auth/me"))
            .await
            .status()
            == 200
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
            // Another site cannot frame the button to trick a click on it.
            assert_eq!(r.headers()["x-frame-options"], "DENY");
            assert!(
                r.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("frame-ancestors 'none'")
            );
            let page = r.text().await.unwrap();
            assert!(
                page.contains("method=\"post\"") && page.contains("Sign out"),
                "{page}"
            );
            break;
        }
        assert!(
            signed_in().await,
            "{path} from another site signed the user out"
        );
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
        assert!(
            signed_in().await,
            "a POST from {origin} signed the user out"
        );
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
            assert!(
                page.contains("Too many sign-in attempts") && page.contains("Correlation id"),
                "{page}"
            );
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
    assert!(
        refused >= 40,
        "the attacker was held back ({refused} refusals)"
    );
    // Someone else, behind the same trusted proxy, signs in as usual.
    let user = crate::harness::Browser::behind_proxy_as(s.proxy().addr, "198.51.100.7");
    assert_eq!(user.sign_in("reader", "/").await, "/");
    assert_eq!(
        crate::harness::api_get(&user.client, user.url("/auth/me"))
            .await
            .status(),
        200
    );
}

/// Headers a client may use to change what the app believes: `_` spellings
/// of forwarding headers, a `Connection` header naming framing or aadgate's
/// own headers, and a `Host` other than `public_url`'s.
#[tokio::test]
async fn forwarding_headers_cannot_be_smuggled_past_the_proxy() {
    use crate::harness::seen;
    let s = Setup::new().await;
    let host = s.proxy().addr;
    // Raw, so that underscores and odd Connection values go out as written.
    let raw = |extra: &str, body: &str| {
        format!(
            "POST /public/echo HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let echo = |req: String| async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut c = tokio::net::TcpStream::connect(host).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            c.read_to_string(&mut out),
        )
        .await
        .unwrap()
        .unwrap();
        let status: u16 = out.split(' ').nth(1).unwrap().parse().unwrap();
        let json = out.split("\r\n\r\n").nth(1).and_then(|b| {
            // chunked or not, the JSON object is the part between the outer braces
            let start = b.find('{')?;
            let end = b.rfind('}')?;
            serde_json::from_str::<serde_json::Value>(&b[start..=end]).ok()
        });
        (status, json)
    };
    let (status, seen_by_app) = echo(raw(
        "X_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Host: evil.example\r\nX_Forwarded_Proto: https\r\nX_Real_IP: 6.6.6.6\r\nx_forwarded_user: admin\r\n\
X-Forwarded-Ssl: on\r\nX-Forwarded-Scheme: https\r\nX-Forwarded-Server: evil\r\nFront-End-Https: on\r\nX-Url-Scheme: https\r\nX-Scheme: https\r\nX-Host: evil.example\r\nX-Script-Name: /evil\r\nScript-Name: /evil\r\n",
        "hello",
    ))
    .await;
    assert_eq!(status, 200);
    let app = seen_by_app.unwrap();
    let names: Vec<String> = app["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap().to_ascii_lowercase())
        .collect();
    for other in [
        "x-forwarded-ssl",
        "x-forwarded-scheme",
        "x-forwarded-server",
        "front-end-https",
        "x-url-scheme",
        "x-scheme",
        "x-host",
        "x-script-name",
        "script-name",
    ] {
        assert!(
            !names.iter().any(|n| n == other),
            "{other} reached the app: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.contains('_')),
        "underscore spellings reached the app: {names:?}"
    );
    assert_eq!(seen(&app, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&app, "x-forwarded-host"), [host.to_string().as_str()]);

    // `Connection` may not remove the host, the framing or aadgate's headers.
    let (status, seen_by_app) = echo(raw(
        "Connection: Host, Content-Length, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, X-Real-IP\r\n",
        "hello",
    ))
    .await;
    assert_eq!(status, 200);
    let app = seen_by_app.unwrap();
    assert_eq!(app["body_len"], 5, "the body arrived whole");
    assert_eq!(seen(&app, "host").len(), 1, "{app}");
    assert_eq!(seen(&app, "content-length"), ["5"]);
    assert_eq!(seen(&app, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&app, "x-forwarded-host"), [host.to_string().as_str()]);
    assert_eq!(seen(&app, "x-real-ip"), ["127.0.0.1"]);

    // Two Host headers: the app would join them into one of the client's choosing.
    let two_hosts = format!(
        "GET /public/x HTTP/1.1\r\nHost: {host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        crate::harness::raw_status(host, two_hosts.as_bytes()).await,
        400
    );

    // A Host that is not public_url's: 421 with a link to public_url, and
    // the app never sees it. Health checks by address still work.
    let c = crate::harness::no_redirects();
    for bad in ["evil.example", "127.0.0.1", "localhost:1", "127.0.0.1:1"] {
        let r = c
            .get(s.proxy().url("/public/x"))
            .header("host", bad)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421, "{bad}");
        let page = r.text().await.unwrap();
        assert!(
            page.contains(&format!("http://{host}")) && page.contains("Correlation id"),
            "{page}"
        );
        // A script gets the same answer as JSON.
        let r = c
            .get(s.proxy().url("/public/x"))
            .header("host", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 421);
        let json: serde_json::Value = r.json().await.unwrap();
        assert_eq!(json["error"], "misdirected_request");
        assert_eq!(json["correlation_id"].as_str().map(str::len), Some(16));
    }
    let r = c
        .get(s.proxy().url("/healthz"))
        .header("host", "10.1.2.3:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let upper = format!("127.0.0.1:{}", host.port());
    let r = c
        .get(s.proxy().url("/public/x"))
        .header("host", upper)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Reads until the server closes the connection; `Err` after `within`.
async fn closed_within(
    c: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Result<Vec<u8>, tokio::time::error::Elapsed> {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        // A reset counts as closed too.
        while let Ok(n) = c.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await?;
    Ok(buf)
}

/// Connections that never speak, and keep-alive connections left idle, are
/// closed (`limits.first_byte_secs`, `limits.keepalive_secs`).
#[tokio::test]
async fn silent_and_idle_connections_are_closed() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt as _;
    let s = Setup::with_extra("[limits]\nfirst_byte_secs = 1\nkeepalive_secs = 2").await;
    let addr = s.proxy().addr;
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(10))
            .await
            .is_ok(),
        "a silent connection was kept"
    );

    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let got = closed_within(&mut idle, Duration::from_secs(15))
        .await
        .expect("an idle keep-alive connection was kept");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "answered first, then closed: {text}"
    );
}

/// A request body that stalls, or trickles for too long, ends with 408
/// (`limits.body_idle_secs`, `limits.request_secs`), and the app's
/// connection with it.
#[tokio::test]
async fn slow_request_bodies_time_out() {
    use std::time::Duration;
    use tokio::io::AsyncWriteExt as _;
    let s = Setup::with_extra("[limits]\nbody_idle_secs = 1\nrequest_secs = 3").await;
    let addr = s.proxy().addr;
    let head = |len: usize| {
        format!(
            "POST /public/upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        )
    };

    // Stalls after ten bytes.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(head(100).as_bytes()).await.unwrap();
    c.write_all(&[b'x'; 10]).await.unwrap();
    let got = closed_within(&mut c, Duration::from_secs(10))
        .await
        .expect("a stalled upload was kept");
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // Trickles a byte every 300 ms (the injected fault: a client that is
    // never idle for long, but never done): the whole-body limit ends it.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(head(1000).as_bytes()).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if wr.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::io::AsyncReadExt::read_to_end(&mut rd, &mut got),
    )
    .await;
    trickle.abort();
    assert!(
        read.is_ok(),
        "a trickling upload was kept past limits.request_secs"
    );
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // An ordinary upload is unaffected.
    let body = vec![b'y'; 200_000];
    let r = crate::harness::no_redirects()
        .post(s.proxy().url("/public/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["body_len"], 200_000);
}

/// An app that accepts the connection and never answers: 504 after
/// `limits.upstream_header_secs`, not a request held forever.
#[tokio::test]
async fn an_app_that_never_answers_gets_a_504() {
    use std::time::Duration;
    let (l, silent_app) = crate::harness::listener().await;
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((c, _)) = l.accept().await {
            kept.push(c);
        }
    });
    let s = Setup::in_front_of(
        silent_app,
        "[limits]\nupstream_header_secs = 1",
        DevIdpConfig::default(),
    )
    .await;
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        crate::harness::no_redirects()
            .get(s.proxy().url("/public/x"))
            .header("accept", "text/html")
            .send(),
    )
    .await
    .expect("the proxy answered")
    .unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.text().await.unwrap().contains("Correlation id"));
    assert!(started.elapsed() < Duration::from_secs(10));
    held.abort();
}

/// At `limits.max_connections`, the connection idle longest makes room: a
/// flood of idle connections never keeps a health check out.
#[tokio::test]
async fn at_the_connection_cap_the_idlest_connection_makes_room() {
    use std::time::Duration;
    let s = Setup::with_extra("workers = 1\n[limits]\nmax_connections = 8").await;
    let addr = s.proxy().addr;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        crate::harness::no_redirects()
            .get(s.proxy().url("/healthz"))
            .send(),
    )
    .await
    .expect("/healthz answered within 5 s")
    .unwrap();
    assert_eq!(r.status(), 200);
    // The oldest idle connections were the ones closed.
    let mut first = idle.remove(0);
    assert!(
        closed_within(&mut first, Duration::from_secs(5))
            .await
            .is_ok()
    );
}

/// A role removed in Entra ID stops working within `session.revalidate_secs`
/// (the session's roles are re-derived from a refreshed ID token), and a
/// disabled user's session ends. The session clock is moved forward instead
/// of waiting.
#[tokio::test]
async fn roles_removed_at_the_provider_stop_working_within_revalidate_secs() {
    use crate::harness::api_get;
    let s = Setup::new().await;
    let clock = s.proxy().auth.clock().clone();
    let writer = s.browser();
    writer.sign_in("writer", "/").await;
    let write_status = || async {
        api_get(&writer.client, writer.url("/write/x"))
            .await
            .status()
            .as_u16()
    };
    assert_eq!(write_status().await, 200);

    assert!(s.idp.idp.assign_roles("writer", &["App.Read"]));
    clock.advance(899);
    assert_eq!(
        write_status().await,
        200,
        "not revalidated before session.revalidate_secs (900)"
    );
    clock.advance(2);
    assert_eq!(
        write_status().await,
        403,
        "the removed role stops working once revalidated"
    );
    let me: serde_json::Value = api_get(&writer.client, writer.url("/auth/me"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], serde_json::json!(["App.Read"]));
    assert_eq!(
        api_get(&writer.client, writer.url("/")).await.status(),
        200,
        "the session goes on with the roles left"
    );

    let reader = s.browser();
    reader.sign_in("reader", "/").await;
    assert!(s.idp.idp.disable_user("reader"));
    clock.advance(901);
    assert_eq!(
        api_get(&reader.client, reader.url("/")).await.status(),
        401,
        "a disabled user's session ended"
    );
}

/// While the provider is down, a session due for revalidation is kept for
/// `session.revalidate_grace_secs` (3600), then ended.
#[tokio::test]
async fn a_provider_outage_keeps_sessions_for_the_grace_period_only() {
    use crate::harness::api_get;
    let mut s = Setup::new().await;
    let clock = s.proxy().auth.clock().clone();
    let b = s.browser();
    b.sign_in("reader", "/").await;
    s.idp.stop().await;
    clock.advance(901);
    assert_eq!(
        api_get(&b.client, b.url("/")).await.status(),
        200,
        "kept during the outage"
    );
    clock.advance(3600 - 2);
    assert_eq!(
        api_get(&b.client, b.url("/")).await.status(),
        200,
        "still inside the grace period"
    );
    clock.advance(3);
    assert_eq!(
        api_get(&b.client, b.url("/")).await.status(),
        401,
        "ended after the grace period"
    );
}
