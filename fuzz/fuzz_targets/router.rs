//! The sign-in layer and routes on arbitrary paths, queries, cookies and
//! headers (callback parameters, session and pending-login cookies, identity
//! and forwarded headers): never a panic, never a 5xx, never an identity
//! header passed on.
#![no_main]
use std::sync::LazyLock;

use aadgate::Auth;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

static AUTH: LazyLock<Auth> = LazyLock::new(|| {
    let text = r#"
public_url = "http://127.0.0.1:4180"
[oidc]
issuer = "http://127.0.0.1:9/unreachable"
client_id = "c"
client_secret = "s"
[session]
store = "memory"
[authz]
roles = ["App.Read", "App.Admin"]
[[route]]
path = "/public"
public = true
"#;
    let env = [("AADGATE_SESSION_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")];
    Auth::from_config(&aadgate_core::Config::from_toml_and_env(text, env).unwrap()).unwrap()
});
static RT: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let target = parts.next().unwrap_or("/");
    let cookie = parts.next().unwrap_or("");
    let name = parts.next().unwrap_or("x-forwarded-user");
    let value = parts.next().unwrap_or("evil");
    let Ok(req) = Request::builder()
        .uri(if target.starts_with('/') { target.to_owned() } else { format!("/{target}") })
        .header("cookie", cookie)
        .header(name, value)
        .body(Body::empty())
    else {
        return;
    };
    let app = axum::Router::new()
        .fallback(|req: Request<Body>| async move {
            // The app must never see an identity header the client sent.
            let leaked = req.headers().keys().any(|k| aadgate::headers::is_identity_header(k.as_str()));
            assert!(!leaked, "identity header reached the app");
            "app"
        })
        .merge(AUTH.routes())
        .layer(AUTH.require_login());
    let status = RT.block_on(async { app.oneshot(req).await.unwrap().status() });
    assert!(!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::BAD_GATEWAY, "{status}");
});
