//! The `aadgate` binary as a user runs it.

use std::process::Command;

fn aadgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aadgate"))
}

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("aadgate.toml");
    std::fs::write(&p, text).unwrap();
    p
}

const GOOD: &str = r#"
public_url = "https://dash.contoso.com"
upstream = "http://127.0.0.1:8050"
[oidc]
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
[session]
store = "memory"
[authz]
roles = ["App.Read", "App.Write", "App.Admin"]
[[route]]
path = "/admin"
role = "App.Admin"
"#;

#[test]
fn check_config_accepts_a_good_file_with_secrets_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = aadgate()
        .args(["check-config", "--config"])
        .arg(write(&dir, GOOD))
        .env("AADGATE_OIDC_CLIENT_SECRET", "s3cret")
        .env(
            "AADGATE_SESSION_SECRET",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("https://dash.contoso.com/auth/callback"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"), "secrets are not printed");
}

const SESSION: (&str, &str) = (
    "AADGATE_SESSION_SECRET",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
);
const CLIENT: (&str, &str) = ("AADGATE_OIDC_CLIENT_SECRET", "x");

struct Case {
    toml: String,
    env: Vec<(&'static str, &'static str)>,
    key: &'static str,
    fix: &'static str,
}

#[test]
fn misconfiguration_fails_naming_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let case = |env: Vec<(&'static str, &'static str)>, key, fix| Case {
        toml: GOOD.to_owned(),
        env,
        key,
        fix,
    };
    let cases = [
        case(
            vec![SESSION],
            "oidc.client_secret",
            "AADGATE_OIDC_CLIENT_SECRET",
        ),
        case(vec![CLIENT], "session.secret", "openssl rand -hex 32"),
        case(
            vec![CLIENT, ("AADGATE_SESSION_SECRET", "short")],
            "session.secret",
            "openssl rand",
        ),
        case(
            vec![CLIENT, SESSION, ("AADGATE_OIDC_CLOUD", "mars")],
            "oidc.cloud",
            "usgov",
        ),
        case(
            vec![
                CLIENT,
                SESSION,
                ("AADGATE_PUBLIC_URL", "http://dash.contoso.com"),
            ],
            "public_url",
            "https",
        ),
        Case {
            toml: GOOD.replace("App.Admin\"\n", "App.Boss\"\n"),
            env: vec![CLIENT, SESSION],
            key: "route[0].role",
            fix: "authz.roles",
        },
    ];
    for c in cases {
        let mut cmd = aadgate();
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AADGATE_")) {
            cmd.env_remove(k);
        }
        let out = cmd
            .args(["check-config", "--config"])
            .arg(write(&dir, &c.toml))
            .envs(c.env)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", c.key);
        assert!(
            stderr.contains(&format!("`{}`", c.key)),
            "{}: {stderr}",
            c.key
        );
        assert!(stderr.contains(c.fix), "{}: {stderr}", c.key);
    }
}

#[test]
fn proxy_refuses_to_start_without_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let out = aadgate()
        .args(["proxy", "--config"])
        .arg(write(
            &dir,
            &GOOD.replace("upstream = \"http://127.0.0.1:8050\"\n", ""),
        ))
        .env("AADGATE_OIDC_CLIENT_SECRET", "x")
        .env(
            "AADGATE_SESSION_SECRET",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("`upstream`"), "{stderr}");
}

/// The real `aadgate proxy` process, on a free port in front of the echo
/// app with the dev IdP, configured with the harness configuration plus
/// `extra`. `shell` (a `sh -c` prefix such as `ulimit -n 64 &&`) runs it
/// under a changed environment.
struct Binary {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
    _idp: crate::harness::Idp,
}

async fn start_binary(
    extra: &str,
    shell: &str,
    out: std::process::Stdio,
    err: std::process::Stdio,
) -> Binary {
    use crate::harness::{Idp, config_text, listener, start_echo};
    let (l, addr) = listener().await;
    drop(l); // the binary binds it again
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[addr.port()]).await;
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        addr.port(),
        echo,
        &idp.idp,
        &dir.path().join("sessions"),
        extra,
    );
    let child = Command::new("sh")
        .args(["-c", &format!("{shell} exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_aadgate"))
        .args(["proxy", "--config"])
        .arg(write(&dir, &text))
        .env(
            "AADGATE_OIDC_CLIENT_SECRET",
            &idp.idp.config().client_secret,
        )
        .env("AADGATE_SESSION_SECRET", crate::harness::SECRET)
        .env("AADGATE_LOG", "info")
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    Binary {
        child,
        addr,
        _dir: dir,
        _idp: idp,
    }
}

/// Waits (at most 30 s) until the binary accepts connections at `addr`.
async fn listening(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the proxy did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `aadgate proxy` as deployed: several worker threads share the listening
/// socket and the sessions; SIGTERM stops all of them and the process exits 0.
#[tokio::test]
async fn proxy_binary_with_three_workers_serves_signed_in_users_and_stops_on_sigterm() {
    use crate::harness::{Browser, seen};
    use std::io::BufRead;
    use std::process::Stdio;

    // Fields not moved out (the IdP, the directory) live to the end of the test.
    let bin = start_binary("workers = 3", "", Stdio::piped(), Stdio::piped()).await;
    let (mut child, addr) = (bin.child, bin.addr);
    let stdout = child.stdout.take().unwrap();
    let started = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("aadgate proxy started"))
    });
    let line = tokio::time::timeout(std::time::Duration::from_secs(30), started)
        .await
        .expect("the proxy starts within 30 s")
        .unwrap()
        .expect("a start-up line");
    assert!(
        line.contains(&format!("listen={addr}")) && line.contains("workers=3"),
        "{line}"
    );

    let b = Browser::new(addr);
    b.sign_in("admin", "/").await;
    // Concurrent requests on separate connections, accepted by whichever
    // worker wakes first (the kernel decides): all of them know the session.
    let answers = futures_util::future::join_all((0..24).map(|i| {
        let b = &b;
        async move { b.echo(&format!("/admin/{i}")).await }
    }))
    .await;
    for a in &answers {
        assert_eq!(seen(a, "x-forwarded-user").len(), 1, "{a}");
    }

    crate::harness::sigterm(&child);
    let status =
        crate::harness::exit_status(child, "every worker stops within 30 s of SIGTERM").await;
    assert!(status.success(), "{status}");
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err(),
        "port released"
    );
}

/// Out of file descriptors (`ulimit -n 64`) with a flood of idle
/// connections: the accept loop backs off instead of spinning, closes the
/// idlest connection to make room, logs the failure a few times rather than
/// once per spin, and a new client still gets `/healthz` promptly.
#[tokio::test]
async fn out_of_descriptors_the_proxy_still_answers_and_the_log_stays_small() {
    use std::io::BufRead as _;
    use std::process::Stdio;
    use std::sync::mpsc;
    use std::time::Duration;

    // A cap above the descriptor limit, so that accept itself fails.
    let bin = start_binary(
        "workers = 1\n[limits]\nmax_connections = 5000",
        "ulimit -n 64 &&",
        Stdio::piped(),
        Stdio::inherit(),
    )
    .await;
    let (mut child, addr) = (bin.child, bin.addr);
    // Every log line, as the proxy writes it; the sender closes at exit.
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    // Waits (bounded) for a log line containing `needle`.
    let mut wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no log line with {needle:?} within 30 s:\n{}",
                    log.join("\n")
                )
            });
            let found = line.contains(needle);
            log.push(line);
            if found {
                return;
            }
        }
    };
    wait_for("aadgate proxy started");
    let healthz = || async {
        tokio::time::timeout(Duration::from_secs(5), async {
            reqwest::Client::new()
                .get(format!("http://{addr}/healthz"))
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        })
        .await
        .ok()
        .flatten()
    };
    // Three times the descriptor limit in idle connections.
    let mut idle = Vec::new();
    for _ in 0..192 {
        if let Ok(c) = tokio::net::TcpStream::connect(addr).await {
            idle.push(c);
        }
    }
    let started = std::time::Instant::now();
    assert_eq!(
        healthz().await,
        Some(200),
        "a new client is served while idle connections hold every descriptor"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The exhaustion is logged...
    wait_for("accept failed");
    // ...but a few times, not once per try: the whole log, to the end.
    drop(idle);
    let _ = child.kill();
    let _ = child.wait();
    reader.join().unwrap();
    log.extend(lines.try_iter());
    let failed = log.iter().filter(|l| l.contains("accept failed")).count();
    let bytes: usize = log.iter().map(|l| l.len() + 1).sum();
    assert!(
        failed <= 5 && bytes < 20_000,
        "{failed} lines, {bytes} bytes of log"
    );
}

/// SIGTERM: the proxy stops accepting, lets the request in flight finish
/// (within `shutdown_timeout_secs`) and exits 0; past the timeout it closes
/// what is left and still exits 0.
#[tokio::test]
async fn sigterm_lets_open_requests_finish_within_the_shutdown_timeout() {
    use crate::harness::{Browser, SLOW_STARTED};
    use std::process::Stdio;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    for (timeout_secs, slow_ms, finishes) in [(20, 1500, true), (1, 8000, false)] {
        let bin = start_binary(
            &format!("shutdown_timeout_secs = {timeout_secs}"),
            "",
            Stdio::null(),
            Stdio::null(),
        )
        .await;
        let (child, addr) = (bin.child, bin.addr);
        let b = Browser::new(addr);
        listening(addr).await;
        b.sign_in("reader", "/").await;
        let started = SLOW_STARTED.load(Ordering::SeqCst);
        let url = b.url(&format!("/slow?ms={slow_ms}"));
        let client = b.client.clone();
        let in_flight = tokio::spawn(async move { client.get(url).send().await });
        // Signal once the app has the request.
        let deadline = Instant::now() + Duration::from_secs(10);
        while SLOW_STARTED.load(Ordering::SeqCst) == started {
            assert!(
                Instant::now() < deadline,
                "the slow request never reached the app"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let signalled = Instant::now();
        crate::harness::sigterm(&child);
        let status = crate::harness::exit_status(child, "exits").await;
        assert!(status.success(), "{status:?}");
        let answer = in_flight.await.unwrap();
        if finishes {
            let r = answer.expect("the request in flight is answered");
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), "slow answer");
        } else {
            assert!(answer.is_err(), "closed after the timeout");
            assert!(
                signalled.elapsed() < Duration::from_millis(slow_ms),
                "did not wait for the whole slow request"
            );
        }
    }
}

/// A wrong tenant is reported as what it is, with Entra's code and the
/// setting to fix, not as an unreachable provider.
#[tokio::test]
async fn check_config_online_names_a_wrong_tenant() {
    use crate::harness::{Idp, config_text, start_echo};
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[4180]).await;
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let tenant = idp.idp.config().tenant_id.clone();
    let wrong = "0f0f0f0f-1111-2222-3333-444444444444";
    let text = config_text(4180, echo, &idp.idp, &dir.path().join("s"), "").replace(&tenant, wrong);
    let path = write(&dir, &text);
    let out = tokio::task::spawn_blocking(move || {
        aadgate()
            .args(["check-config", "--online", "--config"])
            .arg(path)
            .env("AADGATE_OIDC_CLIENT_SECRET", "x")
            .env(SESSION.0, SESSION.1)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("AADSTS90002"), "{text}");
    assert!(text.contains("oidc.tenant"), "{text}");
    assert!(!text.contains("unreachable"), "{text}");
}

/// `log_format = "json"`: every line is one JSON object, and no secret,
/// cookie or token reaches the log.
#[tokio::test]
async fn json_logs_are_one_object_per_line_without_secrets() {
    use crate::harness::{Browser, session_cookie};
    use std::io::Read;
    use std::process::Stdio;

    let bin = start_binary("log_format = \"json\"", "", Stdio::piped(), Stdio::piped()).await;
    let client_secret = bin._idp.idp.config().client_secret.clone();
    let (mut child, addr) = (bin.child, bin.addr);
    listening(addr).await;
    let b = Browser::new(addr);
    let cookie = session_cookie(&b).await;
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    // A refusal (403: reader on an admin route) is logged with its reason.
    assert_eq!(
        b.navigate(&b.url("/admin?code=QUERY-SECRET"))
            .await
            .status(),
        403
    );
    assert_eq!(b.navigate(&b.url("/reports")).await.status(), 200);
    crate::harness::sigterm(&child);
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let text = tokio::task::spawn_blocking(move || {
        stdout.read_to_string(&mut out).unwrap();
        stderr.read_to_string(&mut err).unwrap();
        child.wait().unwrap();
        out + &err
    })
    .await
    .unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(text.contains("aadgate proxy started"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request refused") && l.contains("correlation_id")),
        "{text}"
    );
    // The access log: a line per request, without the query string.
    let access: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["message"] == "request")
        .collect();
    let refused = access
        .iter()
        .find(|v| v["path"] == "/admin")
        .unwrap_or_else(|| panic!("no access line for /admin: {text}"));
    assert_eq!(refused["status"], 403);
    assert!(refused["correlation_id"].is_string(), "{refused}");
    let served = access
        .iter()
        .find(|v| v["path"] == "/reports")
        .unwrap_or_else(|| panic!("no access line for /reports: {text}"));
    assert_eq!(served["status"], 200);
    assert_eq!(served["upstream_status"], 200);
    assert_eq!(served["method"], "GET");
    assert!(
        served["user"].as_str().is_some_and(|u| !u.is_empty()),
        "{served}"
    );
    assert!(
        served["duration_ms"].is_number() && served["client"] == "127.0.0.1",
        "{served}"
    );
    for secret in [
        crate::harness::SECRET,
        client_secret.as_str(),
        cookie_value.as_str(),
        "eyJ",
        "QUERY-SECRET",
    ] {
        assert!(!text.contains(secret), "the log holds a secret: {secret}");
    }
}

/// `access_log = false`: no line per request.
#[tokio::test]
async fn the_access_log_can_be_turned_off() {
    use crate::harness::Browser;
    use std::io::Read;
    use std::process::Stdio;

    let bin = start_binary(
        "log_format = \"json\"\naccess_log = false",
        "",
        Stdio::piped(),
        Stdio::null(),
    )
    .await;
    let (mut child, addr) = (bin.child, bin.addr);
    listening(addr).await;
    let b = Browser::new(addr);
    assert_eq!(b.navigate(&b.url("/public/x")).await.status(), 200);
    crate::harness::sigterm(&child);
    let mut stdout = child.stdout.take().unwrap();
    let text = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        child.wait().unwrap();
        out
    })
    .await
    .unwrap();
    assert!(text.contains("aadgate proxy started"), "{text}");
    assert!(!text.contains("\"message\":\"request\""), "{text}");
}

/// `metrics_listen`: the binary serves Prometheus metrics on a port of its
/// own, `GET /metrics` and nothing else, counting what it was asked (own
/// routes, forwarded and refused requests by status, sign-ins, requests to
/// the provider, session-store operations, the app's latency, live
/// sessions) with bounded labels and no secret; the port closes when
/// SIGTERM stops the proxy.
#[tokio::test]
async fn metrics_listen_serves_prometheus_metrics_until_sigterm() {
    use crate::harness::{Browser, api_get, listener, no_redirects, session_cookie};
    use crate::metrics::Scrape;
    use std::process::Stdio;

    let (l, metrics_addr) = listener().await;
    drop(l); // the binary binds it again
    let bin = start_binary(
        &format!("metrics_listen = \"{metrics_addr}\""),
        "",
        Stdio::null(),
        Stdio::null(),
    )
    .await;
    let client_secret = bin._idp.idp.config().client_secret.clone();
    let (child, addr) = (bin.child, bin.addr);
    listening(addr).await;
    listening(metrics_addr).await;
    let metrics_url = format!("http://{metrics_addr}/metrics");
    let scrape = || async {
        let r = reqwest::get(&metrics_url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = r.text().await.unwrap();
        (Scrape::parse(&text), text)
    };
    let (before, _) = scrape().await;
    let requests = "aadgate_request_duration_seconds_count";
    assert_eq!(before.all(requests).count(), 0, "nothing asked yet");

    // Own routes: sign-in (login and callback: 302), /auth/me and /healthz (200).
    let b = Browser::new(addr);
    let cookie = session_cookie(&b).await;
    assert_eq!(b.navigate(&b.url("/auth/me")).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(reqwest::get(b.url("/healthz")).await.unwrap().status(), 200);
    }
    // A callback no sign-in started: own route, 400, a failed sign-in.
    let stranger = Browser::new(addr);
    let bad_callback = stranger.url("/auth/callback?code=c&state=s");
    assert_eq!(stranger.navigate(&bad_callback).await.status(), 400);
    // Forwarded: the app's answers.
    for _ in 0..3 {
        b.echo("/reports").await;
    }
    // Refused: not the reader's page (403), not signed in (302 for a
    // browser, 401 for a script), another host (421).
    assert_eq!(b.navigate(&b.url("/admin")).await.status(), 403);
    assert_eq!(
        stranger.navigate(&stranger.url("/reports")).await.status(),
        302
    );
    assert_eq!(
        api_get(&no_redirects(), b.url("/reports")).await.status(),
        401
    );
    let misdirected = no_redirects()
        .get(b.url("/reports"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(misdirected.status(), 421);

    let (after, text) = scrape().await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.get(name, labels) - before.get(name, labels);
    let expected = [
        ("own", "302", 2.0),
        ("own", "200", 3.0),
        ("own", "400", 1.0),
        ("forwarded", "200", 3.0),
        ("refused", "403", 1.0),
        ("refused", "302", 1.0),
        ("refused", "401", 1.0),
        ("refused", "421", 1.0),
    ];
    for (kind, status, n) in expected {
        assert_eq!(
            delta(requests, &[("kind", kind), ("status", status)]),
            n,
            "{kind} {status}:\n{text}"
        );
    }
    let counted: f64 = after.all(requests).map(|s| s.value).sum();
    assert_eq!(counted, 13.0, "no other request was counted:\n{text}");
    // Every series has the same 19 buckets (18 bounds and +Inf).
    for s in after.all(requests) {
        let buckets = after
            .all("aadgate_request_duration_seconds_bucket")
            .filter(|b| {
                let mut l = b.labels.clone();
                l.remove("le");
                l == s.labels
            })
            .count();
        assert_eq!(buckets, 19, "{:?}", s.labels);
    }

    let signins = "aadgate_signins_total";
    assert_eq!(delta(signins, &[("result", "ok"), ("reason", "none")]), 1.0);
    assert_eq!(
        delta(signins, &[("result", "error"), ("reason", "unknown_state")]),
        1.0
    );
    assert_eq!(after.all(signins).count(), 2, "{text}");
    let fetches = "aadgate_provider_fetches_total";
    for what in ["discovery", "jwks", "token"] {
        assert_eq!(
            after.get(fetches, &[("what", what), ("result", "ok")]),
            1.0,
            "{what}"
        );
    }
    let store = "aadgate_session_store_operation_duration_seconds_count";
    assert_eq!(delta(store, &[("op", "claim_once"), ("result", "ok")]), 1.0);
    assert_eq!(delta(store, &[("op", "put"), ("result", "ok")]), 1.0);
    assert!(
        after.all(store).all(|s| s.labels["result"] == "ok"),
        "no store error:\n{text}"
    );
    assert_eq!(
        delta("aadgate_upstream_request_duration_seconds_count", &[]),
        3.0
    );
    assert!(
        after
            .all("aadgate_upstream_request_duration_seconds_sum")
            .all(|s| s.value > 0.0)
    );
    assert_eq!(after.all("aadgate_upstream_errors_total").count(), 0);
    assert_eq!(after.get("aadgate_active_sessions", &[]), 1.0);
    assert_eq!(
        after.get(
            "aadgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Labels are fixed words, status codes and bucket bounds: never a path,
    // a user or anything else a client chose.
    for s in &after.samples {
        for (k, v) in &s.labels {
            let fine = match k.as_str() {
                "le" => v == "+Inf" || v.parse::<f64>().is_ok(),
                "version" => v == env!("CARGO_PKG_VERSION"),
                "kind" | "status" | "result" | "reason" | "op" | "what" => v
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                _ => false,
            };
            assert!(fine, "label {k}={v:?} on {}", s.name);
        }
    }
    let cookie_value = cookie.split_once('=').unwrap().1;
    for secret in [
        crate::harness::SECRET,
        client_secret.as_str(),
        cookie_value,
        "eyJ",
        "evil",
    ] {
        assert!(!text.contains(secret), "the metrics hold {secret:?}");
    }

    // Nothing else is served there.
    let other = reqwest::get(format!("http://{metrics_addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    let post = reqwest::Client::new()
        .post(&metrics_url)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);

    crate::harness::sigterm(&child);
    let status = crate::harness::exit_status(child, "the proxy stops within 30 s of SIGTERM").await;
    assert!(status.success(), "{status}");
    assert!(
        tokio::net::TcpStream::connect(metrics_addr).await.is_err(),
        "the metrics port is closed with the proxy"
    );
}

/// `aadgate` with every `AADGATE_*` variable of the test's own environment
/// removed, so that only what a test sets is seen.
fn clean_aadgate() -> Command {
    let mut cmd = aadgate();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AADGATE_")) {
        cmd.env_remove(k);
    }
    cmd
}

fn write_named(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A production file over the base file: its keys win, the base's others
/// stay; given with repeated `--config` or as `AADGATE_CONFIG`.
#[test]
fn config_files_layer_in_order_from_flags_or_aadgate_config() {
    let dir = tempfile::tempdir().unwrap();
    let base = write_named(&dir, "base.toml", GOOD);
    let prod = write_named(
        &dir,
        "production.toml",
        "public_url = \"https://dash.prod.contoso.com\"\n[oidc]\nclient_id = \"99999999-2222-3333-4444-555555555555\"\n",
    );
    let check = |cmd: &mut Command| {
        let out = cmd.envs([CLIENT, SESSION]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let stdout = check(
        clean_aadgate()
            .args(["check-config", "--config"])
            .arg(&base)
            .arg("-c")
            .arg(&prod),
    );
    // The later file's public_url, the base's upstream and roles.
    assert!(
        stdout.contains("https://dash.prod.contoso.com/auth/callback"),
        "{stdout}"
    );
    assert!(stdout.contains("http://127.0.0.1:8050/"), "{stdout}");
    assert!(stdout.contains("App.Admin"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}, then {}, then the environment",
            base.display(),
            prod.display()
        )),
        "{stdout}"
    );

    // The same two files from AADGATE_CONFIG, separated as in PATH.
    let both = std::env::join_paths([&base, &prod]).unwrap();
    let stdout = check(
        clean_aadgate()
            .arg("check-config")
            .env("AADGATE_CONFIG", &both),
    );
    assert!(
        stdout.contains("https://dash.prod.contoso.com/auth/callback"),
        "{stdout}"
    );
    // --config wins over AADGATE_CONFIG.
    let stdout = check(
        clean_aadgate()
            .args(["check-config", "--config"])
            .arg(&base)
            .env("AADGATE_CONFIG", &both),
    );
    assert!(
        stdout.contains("https://dash.contoso.com/auth/callback"),
        "{stdout}"
    );

    // A mistake in the later file names that file, the line, the column,
    // the key, and shows the line.
    let bad = write_named(
        &dir,
        "staging.toml",
        "[session]\nidle_timeout_secs = \"eight hours\"\n",
    );
    let out = clean_aadgate()
        .args(["check-config", "--config"])
        .arg(&base)
        .arg("--config")
        .arg(&bad)
        .envs([CLIENT, SESSION])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("`session.idle_timeout_secs`"), "{stderr}");
    assert!(
        stderr.contains(&format!("in {}, line 2, column 21", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--> {}:2:21", bad.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 | idle_timeout_secs = \"eight hours\"\n"),
        "{stderr}"
    );

    // A file that is not there is named.
    let out = clean_aadgate()
        .args(["check-config", "--config"])
        .arg(&base)
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("missing.toml"), "{stderr}");
}

/// No file at all: the environment is the configuration, and a missing
/// required key is named as the file's key and as its variable.
#[test]
fn check_config_reads_the_environment_alone() {
    let env = [
        ("AADGATE_PUBLIC_URL", "https://dash.contoso.com"),
        ("AADGATE_UPSTREAM", "http://127.0.0.1:8050"),
        ("AADGATE_OIDC_TENANT", "contoso.onmicrosoft.com"),
        (
            "AADGATE_OIDC_CLIENT_ID",
            "11111111-2222-3333-4444-555555555555",
        ),
        ("AADGATE_SESSION_STORE", "memory"),
        ("AADGATE_AUTHZ_ROLES", "App.Read,App.Admin"),
        CLIENT,
        SESSION,
    ];
    let out = clean_aadgate()
        .arg("check-config")
        .envs(env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the environment only"), "{stdout}");
    assert!(
        stdout.contains("https://dash.contoso.com/auth/callback"),
        "{stdout}"
    );
    assert!(stdout.contains("[\"App.Read\", \"App.Admin\"]"), "{stdout}");

    let out = clean_aadgate()
        .arg("check-config")
        .envs(
            env.iter()
                .filter(|(k, _)| *k != "AADGATE_OIDC_CLIENT_ID")
                .copied(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("`oidc.client_id` is missing") && stderr.contains("AADGATE_OIDC_CLIENT_ID"),
        "{stderr}"
    );
}

/// `aadgate proxy` as a container runs it: no file, the environment only
/// (the client secret from a mounted file); users sign in.
#[tokio::test]
async fn proxy_runs_from_the_environment_alone() {
    use crate::harness::{Browser, Idp, listener, seen, start_echo};
    let (l, addr) = listener().await;
    drop(l); // the binary binds it again
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[addr.port()]).await;
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = write_named(&dir, "client-secret", &idp.idp.config().client_secret);
    let mut child = clean_aadgate()
        .arg("proxy")
        .env("AADGATE_LISTEN", addr.to_string())
        .env("AADGATE_PUBLIC_URL", format!("http://{addr}"))
        .env("AADGATE_UPSTREAM", format!("http://{echo}"))
        .env("AADGATE_OIDC_TENANT", &idp.idp.config().tenant_id)
        .env("AADGATE_OIDC_ISSUER", idp.idp.issuer())
        .env("AADGATE_OIDC_CLIENT_ID", &idp.idp.config().client_id)
        .env("AADGATE_OIDC_CLIENT_SECRET_FILE", &secret)
        .env("AADGATE_SESSION_SECRET", crate::harness::SECRET)
        .env("AADGATE_SESSION_STORE", "memory")
        .env("AADGATE_AUTHZ_ROLES", "App.Read,App.Write,App.Admin")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    listening(addr).await;
    let b = Browser::new(addr);
    b.sign_in("writer", "/").await;
    let echoed = b.echo("/anything").await;
    assert_eq!(
        seen(&echoed, "x-forwarded-roles"),
        ["App.Read,App.Write"],
        "{echoed}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A wrong client secret at sign-in: the page says what AADSTS7000215
/// means and the key to fix, the log names `oidc.client_secret` in the
/// same words as `check-config --online`, and neither holds the secret.
#[tokio::test]
async fn a_wrong_secret_at_sign_in_names_oidc_client_secret_on_the_page_and_in_the_log() {
    use crate::harness::Browser;
    use std::io::Read;
    use std::process::Stdio;

    const WRONG: &str = "Qx8~not-the-value-but-the-id";
    let bin = start_binary(
        "",
        &format!("AADGATE_OIDC_CLIENT_SECRET='{WRONG}'"),
        Stdio::piped(),
        Stdio::piped(),
    )
    .await;
    let (mut child, addr) = (bin.child, bin.addr);
    listening(addr).await;
    let b = Browser::new(addr);
    let authorize = b.start_login("/").await;
    let callback = b.pick_user(&authorize, "reader").await;
    let page = b.navigate(&callback).await;
    assert_eq!(page.status(), 502);
    let page = page.text().await.unwrap();
    assert!(page.contains("AADSTS7000215"), "{page}");
    assert!(
        page.contains("oidc.client_secret is wrong: use the secret&#39;s Value, not its Secret ID"),
        "{page}"
    );
    assert!(page.contains("Correlation id"), "{page}");
    crate::harness::sigterm(&child);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::task::spawn_blocking(move || {
        let (mut out, mut err) = (String::new(), String::new());
        stdout.read_to_string(&mut out).unwrap();
        stderr.read_to_string(&mut err).unwrap();
        child.wait().unwrap();
        out + &err
    })
    .await
    .unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("AADSTS7000215"))
        .unwrap_or_else(|| panic!("no log line with the code: {log}"));
    assert!(
        line.contains("oidc.client_secret is wrong: use the secret's Value, not its Secret ID"),
        "{line}"
    );
    assert!(!line.contains("unreachable"), "{line}");
    assert!(!log.contains(WRONG), "the secret is never logged");
    assert!(!page.contains(WRONG), "nor shown");
}
