//! Forwarding to the app: identity headers set and client copies stripped,
//! X-Forwarded-*, cookies, bodies, WebSockets, HTTP/2, App Service shapes.

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};

use crate::harness::{Setup, location, seen, session_cookie};

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

/// The buttons of an aadgate page: each `<a class="button…" href=…>label</a>`.
fn buttons(page: &str) -> Vec<&str> {
    page.match_indices("<a class=\"button")
        .map(|(i, _)| {
            let rest = &page[i..];
            &rest[..rest.find("</a>").map_or(rest.len(), |e| e + 4)]
        })
        .collect()
}

/// The app is down: a signed-in user gets a 502 page with a correlation id
/// and the same buttons as the other refusals (Home, Sign out); a script
/// gets JSON with the correlation id.
#[tokio::test]
async fn the_app_down_page_has_the_correlation_id_and_the_buttons_of_other_refusals() {
    let (l, down) = crate::harness::listener().await;
    drop(l);
    let s = Setup::in_front_of(down, "", aadgate_dev_idp::DevIdpConfig::default()).await;
    let b = s.browser();
    b.sign_in("reader", "/").await;

    let refused = b.navigate(&b.url("/admin")).await;
    assert_eq!(refused.status(), 403);
    let refused = refused.text().await.unwrap();

    let r = b.navigate(&b.url("/reports")).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let page = r.text().await.unwrap();
    assert!(page.contains("The app is not responding"), "{page}");
    let cid = page
        .split("Correlation id: <code>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap_or_else(|| panic!("no correlation id: {page}"));
    assert_eq!(cid.len(), 16, "{page}");
    assert!(cid.bytes().all(|c| c.is_ascii_hexdigit()), "{cid}");
    assert_eq!(buttons(&page), buttons(&refused), "{page}");
    assert!(
        buttons(&page)
            .iter()
            .any(|a| a.contains("href=\"/auth/logout\"") && a.contains("Sign out")),
        "{page}"
    );
    assert!(
        !page.contains(&down.to_string()),
        "the app's address stays in the log"
    );

    // A script (no navigation) gets JSON with a correlation id.
    let r = b
        .client
        .get(b.url("/api/data"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["error"], "bad_gateway");
    assert!(
        json["correlation_id"]
            .as_str()
            .is_some_and(|c| c.len() == 16),
        "{json}"
    );
}
