//! Dash callback role rules, the session script and its injection.

use crate::harness::{Setup, api_get, seen};

const DASH: &str = r#"
[dash]
session_script = true
max_body_bytes = 4096

[[dash.callback]]
output = "write-result"
role = "App.Write"
"#;

fn callback(output_id: &str) -> String {
    serde_json::json!({
        "output": format!("{output_id}.children"),
        "outputs": {"id": output_id, "property": "children"},
        "inputs": [{"id": "write-button", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["write-button.n_clicks"],
    })
    .to_string()
}

async fn post(b: &crate::harness::Browser, path: &str, body: String) -> reqwest::Response {
    b.client
        .post(b.url(path))
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn write_callbacks_need_the_write_role() {
    let s = Setup::with_extra(DASH).await;
    let reader = s.browser();
    reader.sign_in("reader", "/dash/").await;
    let r = post(
        &reader,
        "/dash/_dash-update-component",
        callback("write-result"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["required_role"], "App.Write");
    assert_eq!(
        j["correlation_id"].as_str().map(str::len),
        Some(16),
        "refusals carry a correlation id"
    );
    // Other callbacks pass, body intact.
    let body = callback("sales-chart");
    let r = post(&reader, "/dash/_dash-update-component", body.clone()).await;
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["body_len"], body.len());

    // Other spellings of the callback path are the same endpoint to the app's router.
    for path in [
        "/dash/_dash-update-c%6Fmponent",
        "/dash/%5Fdash%2Dupdate-component",
        "/dash/_DASH-update-component",
        "/dash/_dash-update-component/",
        "/dash/x/../_dash-update-component",
    ] {
        let r = post(&reader, path, callback("write-result")).await;
        assert_eq!(r.status(), 403, "{path}");
    }

    let writer = s.browser();
    writer.sign_in("writer", "/dash/").await;
    let body = callback("write-result");
    let r = post(&writer, "/dash/_dash-update-component", body.clone()).await;
    assert_eq!(r.status(), 200);
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(echo["body_len"], body.len(), "the app gets the whole body");
    assert_eq!(seen(&echo, "x-forwarded-roles"), ["App.Read,App.Write"]);
}

#[tokio::test]
async fn unreadable_oversized_and_websocket_callbacks_fail_closed() {
    let s = Setup::with_extra(DASH).await;
    let b = s.browser();
    b.sign_in("admin", "/").await;
    assert_eq!(
        post(&b, "/dash/_dash-update-component", "not json".into())
            .await
            .status(),
        400
    );
    assert_eq!(
        post(&b, "/dash/_dash-update-component", "{}".into())
            .await
            .status(),
        400
    );
    let huge = format!(
        r#"{{"outputs":{{"id":"a","property":"b"}},"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    assert_eq!(
        post(&b, "/dash/_dash-update-component", huge)
            .await
            .status(),
        413
    );
    let r = api_get(&b.client, b.url("/dash/_dash-ws-callback")).await;
    assert_eq!(r.status(), 403);
    // A compressed body cannot be read as Dash would read it.
    let r = b
        .client
        .post(b.url("/dash/_dash-update-component"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(callback("write-result"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // Dash's MCP server runs callbacks as tools, with no callback body to inspect.
    for path in ["/dash/_mcp", "/dash/_MCP/"] {
        let r = post(
            &b,
            path,
            "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"id\":1}".into(),
        )
        .await;
        assert_eq!(r.status(), 403, "{path}");
    }
    // Not signed in: the 401 JSON comes first, as for any callback.
    let anon = s.browser();
    assert_eq!(
        post(
            &anon,
            "/dash/_dash-update-component",
            callback("write-result")
        )
        .await
        .status(),
        401
    );
}

#[tokio::test]
async fn session_script_is_served_and_injected_into_pages() {
    let s = Setup::with_extra(DASH).await;
    let anon = s.browser();
    let r = anon
        .client
        .get(anon.url("/auth/session.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "public");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = r.text().await.unwrap();
    assert!(js.contains("login_required") && js.contains("\"/auth/login\"") && js.contains("?rd="));

    let b = s.browser();
    b.sign_in("reader", "/").await;
    let r = b.navigate(&b.url("/page.html")).await;
    let len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let html = r.text().await.unwrap();
    assert_eq!(html.len(), len);
    assert!(
        html.contains(r#"<title>t</title><script src="/auth/session.js"></script></head>"#),
        "{html}"
    );
    // JSON is never touched.
    let echo = b.echo("/data.json").await;
    assert!(echo.get("uri").is_some());
}

#[tokio::test]
async fn without_rules_callbacks_stream_untouched() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let r = post(&b, "/dash/_dash-update-component", "not json at all".into()).await;
    assert_eq!(r.status(), 200, "no rules: no inspection");
    let r = b.navigate(&b.url("/page.html")).await;
    assert!(
        !r.text().await.unwrap().contains("session.js"),
        "no injection unless asked"
    );
}

/// A callback body that stalls is ended with 408, not held (and not passed on).
#[tokio::test]
async fn a_stalled_callback_body_gets_408() {
    use tokio::io::AsyncWriteExt as _;
    let s = Setup::with_extra(&format!("{DASH}\n[limits]\nbody_idle_secs = 1")).await;
    let b = s.browser();
    let session = crate::harness::session_cookie(&b).await;
    let addr = s.proxy().addr;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(
        format!(
            "POST /dash/_dash-update-component HTTP/1.1\r\nHost: {addr}\r\nCookie: {session}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: 500\r\n\r\n{{\"output\":"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::io::AsyncReadExt::read(&mut c, &mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the stalled callback was held");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
}
