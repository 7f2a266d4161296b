//! Hostile input: oversized and slow requests get a 4xx or a closed
//! connection, never a panic, a 500 or unbounded memory.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::adversary::{Adversary, proxy_for, sign_in};
use crate::harness::{Setup, listener};

#[tokio::test]
async fn slow_clients_are_disconnected() {
    let s = Setup::new().await;
    // A proxy with a 1 s header timeout, same app.
    let (l, addr) = listener().await;
    let limits = aadgate_core::limits::Limits {
        header: Duration::from_secs(1),
        ..Default::default()
    };
    let settings = aadgate_core::ProxySettings {
        listen: addr,
        metrics_listen: None,
        upstream: url::Url::parse(&format!("http://{}", s.echo)).unwrap(),
        workers: 1,
        session_script: false,
        limits: limits.clone(),
        log_format: Default::default(),
        access_log: Default::default(),
    };
    let app = aadgate_cli::proxy::app(&s.proxy().auth, &settings).unwrap();
    tokio::spawn(async move {
        aadgate_cli::proxy::serve_with(l, app, std::future::pending(), &limits).await
    });
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Waits for the server to close the connection (bounded so a regression fails instead of hanging).
    let closed = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server kept a half-sent request open");
}

#[tokio::test]
async fn oversized_headers_cookies_and_parameters_get_4xx() {
    let s = Setup::new().await;
    let c = crate::harness::no_redirects();
    let huge = "a".repeat(512 * 1024);
    let r = c
        .get(s.proxy().url("/"))
        .header("x-big", huge.as_str())
        .send()
        .await;
    // hyper answers 431 or closes the connection; either way no 5xx.
    if let Ok(r) = r {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    let cookie = format!(
        "aadgate={}; other={}",
        "b".repeat(60_000),
        "c".repeat(60_000)
    );
    let r = c
        .get(s.proxy().url("/"))
        .header("cookie", cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(s.proxy().url(&format!(
            "/auth/callback?code={}&state=x",
            "d".repeat(30_000)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(
            s.proxy()
                .url(&format!("/auth/login?rd=/{}", "e".repeat(30_000))),
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error() || r.status() == 302,
        "{}",
        r.status()
    );
    let r = c
        .get(s.proxy().url("/auth/callback?code=a&state=b&state=c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn an_oversized_id_token_is_rejected() {
    let adv = Adversary::start("", "").await;
    let proxy = proxy_for(&adv, &format!("issuer = \"{}\"", adv.base()), "").await;
    adv.set(|ctx| {
        let mut c = ctx.claims();
        c.insert("padding".into(), serde_json::json!("p".repeat(100_000)));
        ctx.sign(&c)
    });
    assert_eq!(sign_in(&proxy).await, (400, false));
}

#[tokio::test]
async fn error_pages_never_reflect_input_unescaped() {
    let s = Setup::new().await;
    let b = s.browser();
    let xss = "<img src=x onerror=alert(1)>";
    for path in [
        format!(
            "/auth/callback?error={0}&error_description={0}&trace_id={0}&correlation_id={0}",
            crate::harness::urlenc(xss)
        ),
        format!(
            "/auth/callback?error=access_denied&error_description=AADSTS50105:{0}&trace_id={0}",
            crate::harness::urlenc(xss)
        ),
        format!("/auth/signed-out?state={}", crate::harness::urlenc(xss)),
    ] {
        let html = b.navigate(&b.url(&path)).await.text().await.unwrap();
        assert!(!html.contains("<img"), "{path}: {html}");
    }
}
