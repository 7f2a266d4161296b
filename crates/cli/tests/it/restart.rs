//! Restarting the real `aadgate` process under steady load, as systemd
//! does with a `.socket` unit: the listening socket is held by the test (in
//! systemd's place) and passed to each process as descriptor 3
//! (`LISTEN_FDS=1`, `LISTEN_PID`), so it outlives every process.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use command_fds::{CommandFdExt as _, FdMapping};
use http_body_util::{BodyExt as _, Empty};

use crate::harness::{Browser, Idp, SECRET, config_text, session_cookie, start_echo};
use crate::redis_server::RedisServer;

/// One `aadgate proxy` process serving the shared socket, and what its
/// log says.
pub(crate) struct Instance {
    name: &'static str,
    child: Option<Child>,
    /// Access-log lines (one per request it answered).
    served: Arc<AtomicUsize>,
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    /// Starts the binary with `socket` as its descriptor 3, as systemd does.
    pub(crate) fn start(
        name: &'static str,
        socket: &std::net::TcpListener,
        config: &std::path::Path,
        client_secret: &str,
    ) -> Self {
        Self::start_with_env(name, socket, config, client_secret, &[])
    }

    /// [`Self::start`] with further environment variables.
    pub(crate) fn start_with_env(
        name: &'static str,
        socket: &std::net::TcpListener,
        config: &std::path::Path,
        client_secret: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let fd = std::os::fd::OwnedFd::from(socket.try_clone().unwrap());
        let mut child = Command::new("sh")
            // `exec` keeps the shell's pid, which is what LISTEN_PID must name.
            .args(["-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_aadgate"))
            .args(["proxy", "--config"])
            .arg(config)
            .fd_mappings(vec![FdMapping {
                parent_fd: fd,
                child_fd: 3,
            }])
            .unwrap()
            .env("AADGATE_SESSION_SECRET", SECRET)
            .env("AADGATE_OIDC_CLIENT_SECRET", client_secret)
            .env("AADGATE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let (served, log) = (served.clone(), log.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if line.contains("\"message\":\"request\"") {
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                    log.lock().unwrap().push(line);
                }
            })
        };
        Self {
            name,
            child: Some(child),
            served,
            log,
            reader: Some(reader),
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Waits (at most 30 s) until it has answered `n` requests in all.
    async fn until_served(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.served() < n {
            assert!(
                Instant::now() < deadline,
                "{} answered {} requests, not {n}, within 30 s; its log:\n{}",
                self.name,
                self.served(),
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then waits (at most 30 s) for it to exit 0 and for its
    /// whole log.
    async fn stop(&mut self) {
        let child = self.child.take().unwrap();
        crate::harness::sigterm(&child);
        let status = crate::harness::exit_status(
            child,
            &format!("{} exits within 30 s of SIGTERM", self.name),
        )
        .await;
        assert!(status.success(), "{}: {status}", self.name);
        let reader = self.reader.take().unwrap();
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the load generator saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    /// Requests sent again on a new connection because a reused keep-alive
    /// connection closed before any answer (what browsers do).
    retried: AtomicUsize,
    failures: Mutex<Vec<String>>,
    slowest_ms: AtomicUsize,
}

/// Why an attempt failed; `Unanswered` on a reused connection may be retried.
enum Failed {
    Unanswered(String),
    Other(String),
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One request on `conn` (a new connection when there is none), keeping the
/// connection for the next request unless the proxy said `Connection: close`
/// or `keep` is false.
async fn attempt(
    conn: &mut Option<Sender>,
    addr: SocketAddr,
    path: &str,
    cookie: Option<&str>,
    keep: bool,
) -> Result<(), Failed> {
    if conn.is_none() {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| Failed::Other(format!("connect: {e}")))?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .map_err(|e| Failed::Other(format!("handshake: {e}")))?;
        tokio::spawn(connection);
        *conn = Some(sender);
    }
    let sender = conn.as_mut().unwrap();
    let mut req = hyper::Request::get(path).header("host", addr.to_string());
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if !keep {
        req = req.header("connection", "close");
    }
    let req = req.body(Empty::new()).unwrap();
    let answered = async {
        sender
            .ready()
            .await
            .map_err(|e| Failed::Unanswered(format!("closed while idle: {e}")))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| Failed::Unanswered(format!("no answer: {e}")))
    };
    let resp = match tokio::time::timeout(Duration::from_secs(20), answered).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            *conn = None;
            return Err(e);
        }
        Err(_) => {
            *conn = None;
            return Err(Failed::Other("no answer within 20 s".into()));
        }
    };
    let status = resp.status();
    let close = resp
        .headers()
        .get("connection")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
        .await
        .map_err(|_| Failed::Other("body not read within 20 s".into()))
        .and_then(|b| b.map_err(|e| Failed::Other(format!("body: {e}"))));
    if close || !keep || body.is_err() {
        *conn = None;
    }
    let body = body?.to_bytes();
    if status != 200 {
        return Err(Failed::Other(format!("{path}: status {status}")));
    }
    if cookie.is_some() && !String::from_utf8_lossy(&body).contains("x-forwarded-user") {
        return Err(Failed::Other(format!("{path}: not signed in")));
    }
    Ok(())
}

/// A client sending requests one after the other until `stop`: on one
/// keep-alive connection (`keep`) or a new connection each time, signed in
/// (`cookie`) or to a public path. Every failure is recorded; a request on a
/// reused connection that closed before any answer is sent once more on a
/// new connection, as browsers do (RFC 9112, section 9.3.1), and counted.
async fn client(
    addr: SocketAddr,
    keep: bool,
    cookie: Option<String>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let mut conn: Option<Sender> = None;
    let path = if cookie.is_some() {
        "/reports"
    } else {
        "/public/x"
    };
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let reused = conn.is_some();
        let mut result = attempt(&mut conn, addr, path, cookie.as_deref(), keep).await;
        if reused && matches!(result, Err(Failed::Unanswered(_))) {
            tally.retried.fetch_add(1, Ordering::SeqCst);
            result = attempt(&mut conn, addr, path, cookie.as_deref(), keep).await;
        }
        match result {
            Ok(()) => {
                tally.ok.fetch_add(1, Ordering::SeqCst);
                let ms = started.elapsed().as_millis() as usize;
                tally.slowest_ms.fetch_max(ms, Ordering::SeqCst);
            }
            Err(Failed::Unanswered(e) | Failed::Other(e)) => {
                tally.failures.lock().unwrap().push(format!(
                    "{} {path}: {e}",
                    if keep { "keep-alive" } else { "new connection" }
                ));
            }
        }
    }
}

/// A restart under steady load loses nothing. Six clients (keep-alive and
/// a new connection per request, signed in and public) send requests
/// without pause while: proxy A serves; proxy B starts on the same socket
/// and serves beside A; A is sent SIGTERM and exits 0; B serves alone; then,
/// as `systemctl restart` does, B is stopped first and C started after it
/// exited (connections wait in the socket's queue meanwhile). Not one
/// request fails, and each process answered some.
#[tokio::test]
async fn a_restart_under_steady_load_fails_no_request() {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let redis = RedisServer::start().await;
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[addr.port()]).await;
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sessions");
    // Sessions in Redis: A and B run at the same time (a file store is
    // locked by one process).
    let text = config_text(addr.port(), echo, &idp.idp, &store, "log_format = \"json\"").replace(
        &format!("store = \"file:{}\"", store.display()),
        &format!("store = \"{}\"", redis.url()),
    );
    assert!(text.contains("store = \"redis"), "{text}");
    // `listen` names the test's socket: binding it would fail (it is in
    // use), so a proxy that answers serves the socket it was given.
    let config = dir.path().join("aadgate.toml");
    let secret = &idp.idp.config().client_secret;
    std::fs::write(&config, &text).unwrap();

    let mut a = Instance::start("A", &socket, &config, secret);
    let cookie = session_cookie(&Browser::new(addr)).await;
    {
        let log = a.log.lock().unwrap();
        let started = log
            .iter()
            .find(|l| l.contains("aadgate proxy started"))
            .expect("A has logged its start before answering");
        assert!(started.contains("\"socket_activated\":true"), "{started}");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = [
        (true, true),
        (true, false),
        (true, true),
        (false, true),
        (false, false),
        (false, true),
    ]
    .into_iter()
    .map(|(keep, signed_in)| {
        tokio::spawn(client(
            addr,
            keep,
            signed_in.then(|| cookie.clone()),
            stop.clone(),
            tally.clone(),
        ))
    })
    .collect();

    a.until_served(200).await;
    // B beside A: the kernel hands each new connection to whichever accepts.
    let mut b = Instance::start("B", &socket, &config, secret);
    b.until_served(20).await;
    a.stop().await;
    let b_alone = b.served();
    b.until_served(b_alone + 500).await;
    // `systemctl restart`: stop, then start; nobody accepts in between.
    b.stop().await;
    let c = Instance::start("C", &socket, &config, secret);
    c.until_served(300).await;

    stop.store(true, Ordering::SeqCst);
    for t in clients {
        t.await.unwrap();
    }
    let mut c = c;
    c.stop().await;

    let failures = tally.failures.lock().unwrap().clone();
    let served = BTreeMap::from([("A", a.served()), ("B", b.served()), ("C", c.served())]);
    let ok = tally.ok.load(Ordering::SeqCst);
    eprintln!(
        "restart under load: {ok} requests answered, {} failed, {} retried after a keep-alive close, slowest {} ms; answered by {served:?}",
        failures.len(),
        tally.retried.load(Ordering::SeqCst),
        tally.slowest_ms.load(Ordering::SeqCst),
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, first ones: {:#?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(served.values().all(|&n| n > 0), "{served:?}");
    // Every answer was logged by exactly one of them (plus the sign-in).
    assert!(served.values().sum::<usize>() >= ok, "{served:?} < {ok}");
}

/// Socket activation set up wrongly (two sockets, or `Accept=yes`, which
/// passes a connection instead of the listening socket): the proxy does not
/// start, and says what to change in the `.socket` unit.
#[tokio::test]
async fn wrong_socket_activation_fails_at_start_naming_the_fix() {
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = std::net::TcpStream::connect(listening.local_addr().unwrap()).unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let idp = Idp::start(aadgate_dev_idp::DevIdpConfig::default(), &[4180]).await;
    let echo = start_echo().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aadgate.toml");
    std::fs::write(
        &config,
        config_text(4180, echo, &idp.idp, &dir.path().join("s"), ""),
    )
    .unwrap();
    let cases: [(Vec<std::os::fd::OwnedFd>, &str); 2] = [
        (
            vec![
                listening.try_clone().unwrap().into(),
                other.try_clone().unwrap().into(),
            ],
            "LISTEN_FDS=2",
        ),
        (
            vec![connected.try_clone().unwrap().into()],
            "not a listening socket",
        ),
    ];
    for (fds, expected) in cases {
        let n = fds.len();
        let mappings = fds
            .into_iter()
            .enumerate()
            .map(|(i, fd)| FdMapping {
                parent_fd: fd,
                child_fd: 3 + i as i32,
            })
            .collect();
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                &format!("LISTEN_PID=$$ LISTEN_FDS={n} exec \"$0\" \"$@\""),
            ])
            .arg(env!("CARGO_BIN_EXE_aadgate"))
            .args(["proxy", "--config"])
            .arg(&config)
            .fd_mappings(mappings)
            .unwrap()
            .env("AADGATE_SESSION_SECRET", SECRET)
            .env(
                "AADGATE_OIDC_CLIENT_SECRET",
                &idp.idp.config().client_secret,
            );
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || command.output().unwrap()),
        )
        .await
        .expect("the proxy gives up within 30 s")
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{expected}: {stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(stderr.contains("ListenStream="), "{stderr}");
    }
}
