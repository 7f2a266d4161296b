//! Real servers on loopback: the dev IdP, an echo upstream, and the proxy.

use std::net::SocketAddr;

use aadgate::Auth;
use aadgate_core::Config;
use aadgate_dev_idp::{DevIdp, DevIdpConfig};
use axum::Router;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use url::Url;

pub(crate) const SECRET: &str = "5f1c0a9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a10";

pub(crate) async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// An upstream that echoes what it received as JSON, plus a websocket echo.
/// Requests the echo app's `/slow` has begun (for tests that must act while
/// one is in flight).
pub(crate) static SLOW_STARTED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

pub(crate) async fn start_echo() -> SocketAddr {
    let (l, addr) = listener().await;
    let app = Router::new()
        .route("/ws", get(|ws: WebSocketUpgrade| async move {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    if let Message::Text(t) = msg
                        && socket.send(Message::Text(format!("echo: {t}").into())).await.is_err() {
                            break;
                        }
                }
            })
        }))
        .route("/page.html", get(|| async {
            axum::response::Html("<html><head><title>t</title></head><body>hi</body></html>")
        }))
        // Answers after `?ms=` milliseconds; counts the requests that began.
        .route("/slow", get(|q: axum::extract::RawQuery| async move {
            SLOW_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let ms = q.0.and_then(|q| q.strip_prefix("ms=").and_then(|v| v.parse().ok())).unwrap_or(1500);
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            "slow answer"
        }))
        .route("/set-cookie", get(|| async {
            (
                [("set-cookie", "aadgate=planted; Path=/"), ("set-cookie", "app=1; Path=/")],
                "ok",
            )
        }))
        .fallback(any(|req: Request| async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            axum::Json(serde_json::json!({
                "method": parts.method.as_str(),
                "uri": parts.uri.to_string(),
                "headers": headers,
                "body_len": bytes.len(),
                "body_sha": format!("{:x}", bytes.iter().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(*b as u64))),
            }))
            .into_response()
        }));
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

pub(crate) struct Idp {
    pub(crate) idp: DevIdp,
    pub(crate) addr: SocketAddr,
    config: DevIdpConfig,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Idp {
    pub(crate) async fn start(config: DevIdpConfig, redirect_ports: &[u16]) -> Self {
        let uris = redirect_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/auth/callback"))
            .collect();
        Self::start_with_redirect_uris(config, uris).await
    }

    /// The dev IdP with exactly these redirect URIs registered.
    pub(crate) async fn start_with_redirect_uris(
        config: DevIdpConfig,
        redirect_uris: Vec<String>,
    ) -> Self {
        let (l, addr) = listener().await;
        let config = DevIdpConfig {
            redirect_uris,
            ..config
        };
        Self::start_on(l, addr, config)
    }

    fn start_on(l: TcpListener, addr: SocketAddr, config: DevIdpConfig) -> Self {
        let idp = DevIdp::new(
            config.clone(),
            Url::parse(&format!("http://{addr}")).unwrap(),
        )
        .unwrap();
        let router = idp.router();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(l, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
        });
        Self {
            idp,
            addr,
            config,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops answering (the provider is "down").
    pub(crate) async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    /// A fresh provider at the same address: new keys, every code and token forgotten.
    pub(crate) async fn restart(&mut self) {
        self.stop().await;
        let l = TcpListener::bind(self.addr).await.unwrap();
        *self = Self::start_on(l, self.addr, self.config.clone());
    }
}

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) auth: Auth,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

pub(crate) struct Setup {
    pub(crate) idp: Idp,
    pub(crate) echo: SocketAddr,
    pub(crate) proxy: Option<Proxy>,
    pub(crate) store_dir: tempfile::TempDir,
    pub(crate) extra: String,
}

pub(crate) fn config_text(
    port: u16,
    echo: SocketAddr,
    idp: &DevIdp,
    store: &std::path::Path,
    extra: &str,
) -> String {
    // Keys for `[session]` come after a `[session]` line in `extra`.
    let (extra, session) = extra.split_once("[session]\n").unwrap_or((extra, ""));
    // `extra` may name another public URL (a host name mapped to loopback).
    let public_url = if extra.contains("public_url") {
        String::new()
    } else {
        format!("public_url = \"http://127.0.0.1:{port}\"")
    };
    format!(
        r#"
listen = "127.0.0.1:{port}"
{public_url}
upstream = "http://{echo}"
{workers}
{extra}

[oidc]
tenant = "{tenant}"
issuer = "{issuer}"
client_id = "{client_id}"

[session]
store = "file:{store}"
{session}

[authz]
roles = ["App.Read", "App.Write", "App.Admin"]

[[route]]
path = "/admin"
role = "App.Admin"

[[route]]
path = "/write"
role = "App.Write"

[[route]]
path = "/public"
public = true
"#,
        tenant = idp.config().tenant_id,
        issuer = idp.issuer(),
        client_id = idp.config().client_id,
        store = store.display(),
        workers = if extra.contains("workers") {
            ""
        } else {
            "workers = 2"
        },
    )
}

impl Proxy {
    pub(crate) async fn start(
        listener: TcpListener,
        config_text: &str,
        client_secret: &str,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let env = [
            ("AADGATE_OIDC_CLIENT_SECRET", client_secret),
            ("AADGATE_SESSION_SECRET", SECRET),
        ];
        let config = Config::from_toml_and_env(config_text, env).unwrap();
        let settings = config.proxy_settings().unwrap();
        // As the binary builds it (metrics kept when `metrics_listen` is
        // set; the address itself is served only by the binary).
        let auth = aadgate_cli::proxy::auth(&config, &settings).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        // The binary's way of serving: several single-threaded workers
        // sharing the listening socket and the `Auth` (2 unless the config says).
        let handle = tokio::spawn(aadgate_cli::proxy::serve_workers(
            listener.into_std().unwrap(),
            auth.clone(),
            settings,
            async {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            auth,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and waits until it has released everything.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Setup {
    pub(crate) async fn new() -> Self {
        Self::with_extra("").await
    }

    pub(crate) async fn with_extra(extra: &str) -> Self {
        Self::with_options(extra, DevIdpConfig::default()).await
    }

    pub(crate) async fn with_options(extra: &str, idp_config: DevIdpConfig) -> Self {
        let echo = start_echo().await;
        Self::in_front_of(echo, extra, idp_config).await
    }

    /// The proxy in front of `upstream` instead of the echo app.
    pub(crate) async fn in_front_of(
        upstream: SocketAddr,
        extra: &str,
        idp_config: DevIdpConfig,
    ) -> Self {
        let echo = upstream;
        let (pl, paddr) = listener().await;
        let idp = Idp::start(idp_config, &[paddr.port()]).await;
        let store_dir = tempfile::tempdir().unwrap();
        let text = config_text(
            paddr.port(),
            echo,
            &idp.idp,
            &store_dir.path().join("sessions"),
            extra,
        );
        let proxy = Proxy::start(pl, &text, &idp.idp.config().client_secret).await;
        Self {
            idp,
            echo,
            proxy: Some(proxy),
            store_dir,
            extra: extra.to_owned(),
        }
    }

    /// Stops the proxy and starts a new one with the same configuration and store on the same port.
    pub(crate) async fn restart_proxy(&mut self) {
        let old = self.proxy.take().expect("proxy running");
        let addr = old.addr;
        old.stop().await;
        let l = TcpListener::bind(addr).await.unwrap();
        let text = config_text(
            addr.port(),
            self.echo,
            &self.idp.idp,
            &self.store_dir.path().join("sessions"),
            &self.extra,
        );
        self.proxy = Some(Proxy::start(l, &text, &self.idp.idp.config().client_secret).await);
    }

    pub(crate) fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("proxy running")
    }

    pub(crate) fn browser(&self) -> Browser {
        Browser::new(self.proxy().addr)
    }
}

/// A client without cookies that does not follow redirects, for hand-made requests.
pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET as a script would (XHR/fetch, `Accept: application/json`), not as a
/// navigation: without a session the proxy answers 401 JSON instead of a redirect.
pub(crate) async fn api_get(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
) -> reqwest::Response {
    client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

/// A browser: a cookie jar, no automatic redirects, navigation headers.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    pub(crate) proxy: SocketAddr,
}

impl Browser {
    pub(crate) fn new(proxy: SocketAddr) -> Self {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { client, proxy }
    }

    /// A browser whose requests a trusted proxy reports as coming from `ip`.
    pub(crate) fn behind_proxy_as(proxy: SocketAddr, ip: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Self { client, proxy }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// A top-level navigation the user started (a typed URL or a bookmark).
    pub(crate) async fn navigate(&self, url: &str) -> reqwest::Response {
        self.client
            .get(url)
            .header("accept", "text/html,application/xhtml+xml")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-site", "none")
            .send()
            .await
            .unwrap()
    }

    /// Starts sign-in at the proxy; returns the provider's authorize URL.
    pub(crate) async fn start_login(&self, rd: &str) -> String {
        let r = self
            .navigate(&self.url(&format!("/auth/login?rd={}", urlenc(rd))))
            .await;
        assert_eq!(r.status(), 302, "login should redirect to the provider");
        location(&r)
    }

    /// At the provider: picks `user`, returns the callback URL.
    pub(crate) async fn pick_user(&self, authorize: &str, user: &str) -> String {
        let r = self
            .navigate(&format!("{authorize}&login_hint={}", urlenc(user)))
            .await;
        assert_eq!(
            r.status(),
            302,
            "dev IdP should redirect back: {}",
            r.text().await.unwrap_or_default()
        );
        location(&r)
    }

    /// Full sign-in; returns where the proxy sent the browser afterwards.
    pub(crate) async fn sign_in(&self, user: &str, rd: &str) -> String {
        let authorize = self.start_login(rd).await;
        let callback = self.pick_user(&authorize, user).await;
        let r = self.navigate(&callback).await;
        assert_eq!(
            r.status(),
            302,
            "callback should redirect: {}",
            r.text().await.unwrap_or_default()
        );
        location(&r)
    }

    /// GET through the proxy, returning the echo upstream's JSON.
    pub(crate) async fn echo(&self, path: &str) -> serde_json::Value {
        let r = self.navigate(&self.url(path)).await;
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }
}

pub(crate) fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .expect("location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Headers the upstream saw, lowercased names.
pub(crate) fn seen<'a>(echo: &'a serde_json::Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|p| p[1].as_str().unwrap())
        .collect()
}

/// `crates/cli/tests/apps/targets.py` (Flask routes and a Dash app that
/// count what ran) as a real process on a free loopback port; killed on drop.
pub(crate) struct Targets {
    child: std::process::Child,
    pub(crate) addr: SocketAddr,
}

impl Targets {
    pub(crate) async fn start() -> Self {
        use std::io::BufRead as _;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/targets.py");
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 (with examples/dash-app/requirements.txt installed)");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::task::spawn_blocking(move || {
                let mut line = String::new();
                std::io::BufReader::new(stdout)
                    .read_line(&mut line)
                    .map(|_| line)
            }),
        )
        .await
        .expect("targets.py did not start within 60 s")
        .unwrap()
        .unwrap();
        let port: u16 = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("targets.py said {line:?}"));
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// How often each callback and route has run so far.
    pub(crate) async fn executed(&self) -> std::collections::HashMap<String, u64> {
        reqwest::get(format!("http://{}/_executed", self.addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `raw` (a whole HTTP/1.1 request, as written) and returns the
/// response's status, for requests an HTTP client library would normalize.
pub(crate) async fn raw_status(addr: SocketAddr, raw: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = std::time::Duration::from_secs(30);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(deadline, s.read(&mut chunk))
            .await
            .expect("no response within 30 s")
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// The session cookie (`aadgate=…`) of a fresh sign-in as `reader` in `b`,
/// read from the callback's `Set-Cookie` (reqwest's jar cannot be read).
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

/// Sends SIGTERM to a child process (the binary's graceful shutdown).
pub(crate) fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(sent, "kill -TERM {}", child.id());
}

/// Waits for `child` to exit, failing with `what` after 30 s.
pub(crate) async fn exit_status(
    mut child: std::process::Child,
    what: &str,
) -> std::process::ExitStatus {
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}"))
    .unwrap()
    .unwrap()
}
