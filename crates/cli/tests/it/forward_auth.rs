//! `/auth/check` (forward-auth) against the same proxy: it must decide
//! exactly as the proxy does, return sign-ins to the original URL on the
//! protected host, believe forwarded headers only from trusted proxies, and
//! keep the return-host allow-list closed to everything else.
//!
//! Hosts are `*.example.localhost` names that the client resolves to
//! loopback (as browsers do for `.localhost`), so cookie `Domain`s behave as
//! they would across real hosts.

use std::net::SocketAddr;

use aadgate_dev_idp::DevIdpConfig;
use url::Url;

use crate::harness::{Idp, Proxy, Setup, config_text, listener, location, start_echo, urlenc};

const AUTH_HOST: &str = "auth.example.localhost";
const APP_HOST: &str = "app.example.localhost";
/// The port the protected app's own reverse proxy listens on (not dialled:
/// the check is asked directly, as nginx would).
const APP_PORT: u16 = 8443;

/// aadgate at `http://auth.example.localhost:<port>` protecting
/// `app.example.localhost` too, sessions shared under `example.localhost`,
/// loopback trusted as the proxy in front.
async fn setup(extra: &str) -> Setup {
    let echo = start_echo().await;
    let (pl, paddr) = listener().await;
    let port = paddr.port();
    let idp = Idp::start_with_redirect_uris(
        DevIdpConfig::default(),
        vec![format!("http://{AUTH_HOST}:{port}/auth/callback")],
    )
    .await;
    let store_dir = tempfile::tempdir().unwrap();
    let (top, session) = extra.split_once("[session]\n").unwrap_or((extra, ""));
    let extra = format!(
        "public_url = \"http://{AUTH_HOST}:{port}\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         {top}\n[forward_auth]\nhosts = [\"{APP_HOST}\"]\n[session]\ncookie_domain = \"example.localhost\"\n{session}"
    );
    let text = config_text(
        port,
        echo,
        &idp.idp,
        &store_dir.path().join("sessions"),
        &extra,
    );
    let proxy = Proxy::start(pl, &text, &idp.idp.config().client_secret).await;
    Setup {
        idp,
        echo,
        proxy: Some(proxy),
        store_dir,
        extra,
    }
}

/// A browser for which both host names are aadgate's address, with a
/// cookie jar and no automatic redirects.
fn browser(aadgate: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(AUTH_HOST, aadgate)
        .resolve(APP_HOST, aadgate)
        .build()
        .unwrap()
}

/// What a proxy in front sends to `/auth/check` for a request it received:
/// the client's headers (its cookies for the app's host come from the jar,
/// since this "proxy" is at the app's host name) plus the forwarded ones.
struct Ask<'a> {
    method: &'a str,
    uri: &'a str,
    host: &'a str,
    navigation: bool,
}

impl Ask<'_> {
    fn get(uri: &str) -> Ask<'_> {
        Ask {
            method: "GET",
            uri,
            host: APP_HOST,
            navigation: true,
        }
    }

    async fn send(
        &self,
        client: &reqwest::Client,
        aadgate: SocketAddr,
        query: &str,
    ) -> reqwest::Response {
        let mut r = client
            .get(format!(
                "http://{APP_HOST}:{}/auth/check{query}",
                aadgate.port()
            ))
            .header("x-forwarded-method", self.method)
            .header("x-forwarded-uri", self.uri)
            .header("x-forwarded-host", format!("{}:{APP_PORT}", self.host))
            .header("x-forwarded-proto", "http");
        r = if self.navigation {
            r.header("accept", "text/html")
                .header("sec-fetch-mode", "navigate")
        } else {
            r.header("accept", "application/json")
        };
        r.send().await.unwrap()
    }
}

/// Signs `user` in through the auth host, starting at `rd`; returns where
/// the callback sends the browser.
async fn sign_in(client: &reqwest::Client, aadgate: SocketAddr, user: &str, rd: &str) -> String {
    let login = format!(
        "http://{AUTH_HOST}:{}/auth/login?rd={}",
        aadgate.port(),
        urlenc(rd)
    );
    sign_in_at(client, &login, user).await
}

async fn sign_in_at(client: &reqwest::Client, login_url: &str, user: &str) -> String {
    let nav = |url: String| {
        client
            .get(url)
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate")
            .send()
    };
    let r = nav(login_url.to_owned()).await.unwrap();
    assert_eq!(r.status(), 302, "login");
    let authorize = location(&r);
    let r = nav(format!("{authorize}&login_hint={}", urlenc(user)))
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "dev IdP");
    let callback = location(&r);
    let r = nav(callback).await.unwrap();
    assert_eq!(r.status(), 302, "callback: {}", r.text().await.unwrap());
    location(&r)
}

#[tokio::test]
async fn sign_in_returns_to_the_original_url_on_the_protected_host() {
    let s = setup("").await;
    let addr = s.proxy().addr;
    let b = browser(addr);
    let original = "/reports/q3?region=emea&x=%2F";

    // Not signed in: 401 naming the sign-in URL, which returns to the
    // original URL on the app's host.
    let r = Ask::get(original).send(&b, addr, "").await;
    assert_eq!(r.status(), 401);
    let login = location(&r);
    let expected_return = format!("http://{APP_HOST}:{APP_PORT}{original}");
    let login_url = Url::parse(&login).unwrap();
    assert_eq!(login_url.host_str(), Some(AUTH_HOST));
    assert_eq!(login_url.path(), "/auth/login");
    let rd: String = login_url
        .query_pairs()
        .find(|(k, _)| k == "rd")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(rd, expected_return);
    assert!(r.text().await.unwrap().contains("Sign in"));

    // With ?redirect=1 (Caddy, Traefik): the same URL as a 302.
    let r = Ask::get(original).send(&b, addr, "?redirect=1").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), login);

    // A script's request: 401 JSON with the sign-in URL, never a redirect.
    let r = Ask {
        navigation: false,
        ..Ask::get("/api/data")
    }
    .send(&b, addr, "?redirect=1")
    .await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "login_required");
    assert!(
        body["login_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{AUTH_HOST}:"))
    );

    // Sign-in ends on the original URL, on the app's host.
    let after = sign_in_at(&b, &login, "writer").await;
    assert_eq!(after, expected_return);

    // The session cookie is shared with the app's host: the check passes
    // with the identity headers of both families.
    let r = Ask::get(original).send(&b, addr, "").await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let oid = "8d2e6b40-7c13-4f95-a1d8-5e3c9b7a2f06";
    assert_eq!(h["x-forwarded-user"], oid);
    assert_eq!(h["x-auth-request-user"], oid);
    assert_eq!(h["x-auth-request-email"], "writer@contoso.example");
    assert_eq!(
        h["x-auth-request-preferred-username"],
        "writer@contoso.example"
    );
    assert_eq!(h["x-auth-request-roles"], "App.Read,App.Write");
    assert!(h["x-auth-request-groups"].to_str().unwrap().contains(','));
    assert!(h.get("set-cookie").is_none());
}

/// The differential test: for each user and request, what the proxy does
/// with the request and what `/auth/check` says about it agree.
#[tokio::test]
async fn the_check_decides_exactly_as_the_proxy() {
    let s =
        setup("[[dash.callback]]\noutput = \"admin-panel.children\"\nrole = \"App.Admin\"\n").await;
    let addr = s.proxy().addr;
    let requests: &[(&str, &str)] = &[
        ("GET", "/"),
        ("GET", "/report?x=1"),
        ("GET", "/public/logo.png"),
        ("GET", "/admin"),
        ("GET", "/ADMIN"),
        ("GET", "/%61dmin/users"),
        ("POST", "/write/item"),
        ("post", "/write/item"),
        ("DELETE", "/write/item"),
        ("GET", "/write;x=1"),
        ("GET", "/auth/me"),
        ("GET", "/healthz"),
    ];
    for user in [
        None,
        Some("norole"),
        Some("reader"),
        Some("writer"),
        Some("admin"),
    ] {
        let b = browser(addr);
        // What the proxy does with "/" (the default rule), per navigation.
        let mut root = std::collections::HashMap::new();
        if let Some(u) = user {
            sign_in(&b, addr, u, "/").await;
        }
        for &(method, uri) in requests {
            for navigation in [true, false] {
                // Through the proxy (at the auth host: it is also an app's front).
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut through = b.request(m, format!("http://{AUTH_HOST}:{}{uri}", addr.port()));
                through = if navigation {
                    through
                        .header("accept", "text/html")
                        .header("sec-fetch-mode", "navigate")
                } else {
                    through.header("accept", "application/json")
                };
                let proxied = through.send().await.unwrap().status().as_u16();
                let checked = Ask {
                    method,
                    uri,
                    host: APP_HOST,
                    navigation,
                }
                .send(&b, addr, "")
                .await
                .status()
                .as_u16();
                // aadgate's own paths are answered by the proxy itself; to the
                // check they are the app's paths under the app's default rule
                // (the one "/" gets).
                if uri == "/" {
                    root.insert(navigation, proxied);
                }
                let proxied = if aadgate::is_own_path(uri) {
                    root[&navigation]
                } else {
                    proxied
                };
                let expected = match proxied {
                    200..=299 => 200,
                    302 => 401,
                    401 => 401,
                    400 | 403 | 404 | 405 | 413 | 415 => 403,
                    other => other,
                };
                assert_eq!(
                    checked, expected,
                    "{user:?} {method} {uri} navigation={navigation}: proxy {proxied}, check {checked}"
                );
            }
        }
        // Dot segments (a client library would resolve them, so the proxy's
        // side is sent raw): the proxy answers 400, the check 403.
        for uri in ["/admin/../public/x", "/public/../admin", "/public/./x"] {
            let raw = format!(
                "GET {uri} HTTP/1.1\r\nHost: {AUTH_HOST}:{}\r\nConnection: close\r\n\r\n",
                addr.port()
            );
            assert_eq!(
                crate::harness::raw_status(addr, raw.as_bytes()).await,
                400,
                "{uri}"
            );
            let checked = Ask::get(uri).send(&b, addr, "").await.status();
            assert_eq!(checked, 403, "{user:?} {uri}");
        }
        // A Dash callback: the proxy reads its body; the check cannot, so
        // it refuses whenever callback rules exist.
        let checked = Ask {
            method: "POST",
            uri: "/_dash-update-component",
            host: APP_HOST,
            navigation: false,
        }
        .send(&b, addr, "")
        .await
        .status();
        let expected = if user.is_none() { 401 } else { 403 };
        assert_eq!(checked, expected, "{user:?} dash callback");
    }
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    // The default setup trusts no proxy: the check refuses outright.
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("admin", "/").await;
    let r = b
        .client
        .get(b.url("/auth/check"))
        .header("x-forwarded-uri", "/admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-forwarded-user").is_none());

    let s = setup("").await;
    let addr = s.proxy().addr;
    let b = browser(addr);
    sign_in(&b, addr, "admin", "/").await;
    assert_eq!(Ask::get("/admin").send(&b, addr, "").await.status(), 200);
    for bad in [
        Ask {
            host: "evil.example",
            ..Ask::get("/admin")
        },
        Ask {
            host: "app.example.localhost.evil.example",
            ..Ask::get("/admin")
        },
        Ask::get("admin"),
        Ask::get("http://evil.example/admin"),
        Ask {
            method: "G E T",
            ..Ask::get("/admin")
        },
    ] {
        let r = bad.send(&b, addr, "").await;
        assert_eq!(r.status(), 403, "{} {} {}", bad.method, bad.host, bad.uri);
        assert!(r.headers().get("x-auth-request-user").is_none());
    }
    // ingress-nginx's form: the whole URL and the method in X-Original-*.
    // (The check is sent to the app's host name only so that the jar adds
    // the session cookie, as the ingress passes the client's cookies on; the
    // host that counts is X-Original-URL's.)
    let ingress = |url: String, method: &'static str| {
        b.get(format!("http://{APP_HOST}:{}/auth/check", addr.port()))
            .header("x-original-url", url)
            .header("x-original-method", method)
            .send()
    };
    let r = ingress(format!("http://{APP_HOST}/admin?x=1"), "GET")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = ingress("http://evil.example/admin".into(), "GET")
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A callback path is refused whatever method is claimed: the check
    // never sees the body (or, with some fronts, the real method).
    let s2 = setup("[[dash.callback]]\noutput = \"x\"\nrole = \"App.Admin\"\n").await;
    let addr2 = s2.proxy().addr;
    let b2 = browser(addr2);
    sign_in(&b2, addr2, "admin", "/").await;
    for method in ["GET", "POST", "HEAD"] {
        let r = Ask {
            method,
            navigation: false,
            ..Ask::get("/_dash-update-component")
        }
        .send(&b2, addr2, "")
        .await;
        assert_eq!(r.status(), 403, "{method}");
    }
    // A header sent twice is refused, not resolved one way or the other.
    let r = b
        .get(format!("http://{APP_HOST}:{}/auth/check", addr.port()))
        .header("x-forwarded-uri", "/public/x")
        .header("x-forwarded-uri", "/admin")
        .header("x-forwarded-host", APP_HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Client-supplied identity headers never come back as the answer.
    let r = b
        .get(format!("http://{APP_HOST}:{}/auth/check", addr.port()))
        .header("x-forwarded-uri", "/")
        .header("x-forwarded-host", APP_HOST)
        .header("x-auth-request-user", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get_all("x-auth-request-user").iter().count(), 1);
    assert_ne!(r.headers()["x-auth-request-user"], "forged");
}

/// The open-redirect corpus, and host-confusion vectors built on the
/// allowed host, never send a signed-in browser off the protected hosts.
#[tokio::test]
async fn no_vector_leaves_the_protected_hosts() {
    let s = setup("[limits]\nsignin_per_minute = 0\n").await;
    let addr = s.proxy().addr;
    let mut vectors: Vec<String> = include_str!("data/open_redirects.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .collect();
    for v in [
        "http://app.example.localhost.evil.example/",
        "http://app.example.localhost@evil.example/",
        "http://evil.example#app.example.localhost",
        "http://evil.example?app.example.localhost",
        "http://evil.example\\app.example.localhost",
        "http://evil.example/\\app.example.localhost",
        "http:/\\evil.example",
        "http://app.example.localhost%2f@evil.example/",
        "http://app.example.localhost%00.evil.example/",
        "http://app.example.localhost%252f@evil.example/",
        "http://evil.example%23@app.example.localhost/",
        "http://u:p@app.example.localhost/",
        "http://xapp.example.localhost/",
        "http://example.localhost/",
        "http://evil.localhost/",
        "javascript://app.example.localhost/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "ftp://app.example.localhost/",
        "https://app.example.localhost:443@evil.example/",
        "http://[::1]/",
        "http://127.0.0.1/",
        "http://app.example.localhost\t.evil.example/",
        "http://app.example.localhost/..//evil.example",
        "http://app.example.localhost//evil.example",
    ] {
        vectors.push(v.to_owned());
    }
    let allowed = [AUTH_HOST, APP_HOST];
    let b = browser(addr);
    let base = Url::parse(&format!("http://{AUTH_HOST}:{}/", addr.port())).unwrap();
    for v in &vectors {
        let after = sign_in(&b, addr, "reader", v).await;
        let target = base
            .join(&after)
            .unwrap_or_else(|_| panic!("{v:?} -> {after:?}"));
        assert!(
            matches!(target.scheme(), "http" | "https")
                && target.username().is_empty()
                && target.password().is_none()
                && target.host_str().is_some_and(|h| allowed.contains(&h))
                && !after.starts_with("//")
                && !after.contains('\\'),
            "rd {v:?} sent the browser to {after:?}"
        );
    }
    // And the allowed form does work.
    let ok = format!("http://{APP_HOST}:{APP_PORT}/x?y=1");
    assert_eq!(sign_in(&b, addr, "reader", &ok).await, ok);
}

/// The first value of a header the echo app saw.
fn first_seen(echo: &serde_json::Value, name: &str) -> Option<String> {
    crate::harness::seen(echo, name)
        .first()
        .map(|v| v.to_string())
}

#[tokio::test]
async fn identity_header_families_are_chosen_and_groups_fit_app_servers() {
    // 200 groups: the most Entra ID puts in a token.
    let groups: Vec<String> = (0..200)
        .map(|i| format!("{i:08x}-0000-4000-8000-000000000000"))
        .collect();
    let mut idp = DevIdpConfig::default();
    let mut many = aadgate_dev_idp::DevUser::new("many", "Manny Groups");
    many.roles = vec!["App.Read".into()];
    many.groups = groups.clone();
    idp.users.push(many);

    let s = Setup::with_options("", idp.clone()).await;
    let b = s.browser();
    b.sign_in("many", "/").await;
    let echo = b.echo("/").await;
    let seen = |name: &str| first_seen(&echo, name);
    let header_lines = echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().len())
        .max()
        .unwrap();
    assert!(
        header_lines <= aadgate::headers::MAX_HEADER_VALUE,
        "{header_lines}"
    );
    let sent_groups = seen("x-forwarded-groups").unwrap();
    assert_eq!(sent_groups.split(',').count(), 200);
    // The principal is still sent, without the 200 group claims.
    let principal = seen("x-ms-client-principal").unwrap();
    use base64::Engine as _;
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(principal)
            .unwrap(),
    )
    .unwrap();
    let claims = json["claims"].as_array().unwrap();
    assert!(claims.iter().any(|c| c["typ"] == "roles"));
    assert!(!claims.iter().any(|c| c["typ"] == "groups"));
    assert!(seen("x-auth-request-user").is_none());

    // Only oauth2-proxy's family.
    let s = Setup::with_options("identity_headers = [\"oauth2-proxy\"]", idp).await;
    let b = s.browser();
    b.sign_in("many", "/").await;
    let echo = b.echo("/").await;
    let seen = |name: &str| first_seen(&echo, name);
    assert_eq!(
        seen("x-auth-request-user").as_deref(),
        Some(aadgate_dev_idp::DevUser::new("many", "x").oid.as_str())
    );
    assert_eq!(
        seen("x-auth-request-groups").unwrap().split(',').count(),
        200
    );
    assert!(seen("x-forwarded-user").is_none());
    assert!(seen("x-ms-client-principal").is_none());
    assert!(seen("x-ms-client-principal-id").is_none());
}

#[tokio::test]
async fn logout_clears_the_shared_cookie() {
    let s = setup("").await;
    let addr = s.proxy().addr;
    let b = browser(addr);
    sign_in(&b, addr, "reader", "/").await;
    assert_eq!(Ask::get("/").send(&b, addr, "").await.status(), 200);
    let r = b
        .get(format!("http://{AUTH_HOST}:{}/auth/logout", addr.port()))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    let cleared = r.headers().get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("aadgate=;") && c.contains("Domain=example.localhost")
    });
    assert!(cleared, "{:?}", r.headers());
    assert_eq!(Ask::get("/").send(&b, addr, "").await.status(), 401);
}
