//! A real `redis-server` (Debian's) on a free loopback port, started and
//! stopped by the tests that need one.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) struct RedisServer {
    pub(crate) addr: SocketAddr,
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// With TLS only: the CA that signed the server's certificate (PEM file).
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// Further `redis-server` arguments (a cluster node's).
    args: Vec<String>,
    /// The `default` user's password, which [`Self::ask`] signs in with.
    admin_password: Option<String>,
}

impl RedisServer {
    /// Starts a server without persistence on a free port and waits until
    /// it answers `PING`.
    pub(crate) async fn start() -> Self {
        let mut server = Self::new();
        server.run().await;
        server
    }

    /// A server that speaks TLS only, with a certificate for `localhost`
    /// and `127.0.0.1` signed by a CA generated here ([`Self::ca_file`]).
    pub(crate) async fn start_tls() -> Self {
        let mut server = Self::new();
        let dir = server.dir.path();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "aadgate test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        server.ca_file = Some(dir.join("ca.pem"));
        server.run().await;
        server
    }

    fn new() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
            dir: tempfile::tempdir().unwrap(),
            ca_file: None,
            args: Vec::new(),
            admin_password: None,
        }
    }

    /// A server whose `default` user (the tests' own, for administration)
    /// needs `admin_password`; other users are made with `ACL SETUSER`.
    pub(crate) async fn start_with_password(admin_password: &str) -> Self {
        let mut server = Self::new();
        server.args = vec!["--requirepass".into(), admin_password.into()];
        server.admin_password = Some(admin_password.into());
        server.run().await;
        server
    }

    async fn run(&mut self) {
        let port = self.addr.port().to_string();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1"]);
        if self.ca_file.is_some() {
            let dir = self.dir.path();
            command
                .args(["--port", "0", "--tls-port", &port])
                .arg("--tls-cert-file")
                .arg(dir.join("server.pem"))
                .arg("--tls-key-file")
                .arg(dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            command.args(["--port", &port]);
        }
        let child = command
            .args(["--save", "", "--appendonly", "no"])
            .args(&self.args)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is missing: apt-get install redis-server (.ci/run does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.is_up().await {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Plain: answers `PING`. TLS: accepts connections (the handshake is
    /// the client's test to pass).
    async fn is_up(&self) -> bool {
        if self.ca_file.is_some() {
            return tokio::net::TcpStream::connect(self.addr).await.is_ok();
        }
        self.answers_ping().await
    }

    async fn answers_ping(&self) -> bool {
        self.ask("PING").await.as_deref() == Some("+PONG")
    }

    /// The first line of the server's answer to an inline command (`None`
    /// when it does not answer within a second).
    pub(crate) async fn ask(&self, command: &str) -> Option<String> {
        let answer = self.exchange(command, |got| got.contains("\r\n")).await?;
        answer.split("\r\n").next().map(str::to_owned)
    }

    /// The text of a command's bulk-string answer (`INFO`, `CLIENT LIST`).
    pub(crate) async fn text(&self, command: &str) -> Option<String> {
        let complete = |got: &str| {
            let Some((head, body)) = got.split_once("\r\n") else {
                return false;
            };
            match head.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => body.len() >= n + 2,
                None => true,
            }
        };
        let answer = self.exchange(command, complete).await?;
        let (head, body) = answer.split_once("\r\n")?;
        head.starts_with('$').then(|| body.trim_end().to_owned())
    }

    /// Sends an inline command and reads its answer until `done` accepts
    /// what came so far (`None` if it does not within a second per read).
    async fn exchange(&self, command: &str, done: impl Fn(&str) -> bool) -> Option<String> {
        let mut c = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        if let Some(pw) = &self.admin_password {
            c.write_all(format!("AUTH {pw}\r\n").as_bytes())
                .await
                .ok()?;
            let mut ok = [0u8; 5];
            c.read_exact(&mut ok).await.ok()?;
            if &ok != b"+OK\r\n" {
                return None;
            }
        }
        c.write_all(format!("{command}\r\n").as_bytes())
            .await
            .ok()?;
        let mut got = String::new();
        let mut buf = [0u8; 1024];
        while !done(&got) {
            let n = tokio::time::timeout(Duration::from_secs(1), c.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        Some(got)
    }

    /// `redis://` (or, with TLS, `rediss://`) URL of the server.
    pub(crate) fn url(&self) -> String {
        match self.ca_file {
            Some(_) => format!("rediss://localhost:{}", self.addr.port()),
            None => format!("redis://{}", self.addr),
        }
    }

    /// Kills the server (its data is gone: no persistence).
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of `n` primaries (no replicas) on free loopback ports,
/// made by `redis-cli --cluster create` as an operator would.
pub(crate) struct RedisCluster {
    pub(crate) nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub(crate) async fn start(n: usize) -> Self {
        let mut nodes = Vec::new();
        for _ in 0..n {
            let mut node = RedisServer::new();
            node.args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
                .map(str::to_owned)
                .to_vec();
            node.args.push("--cluster-config-file".into());
            node.args
                .push(node.dir.path().join("nodes.conf").display().to_string());
            node.run().await;
            nodes.push(node);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdin(Stdio::null())
                .output()
                .expect("redis-cli is missing: apt-get install redis-tools (.ci/run installs redis-server, which brings it)")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &cluster.nodes {
            while !node.cluster_ok().await {
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become ready"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        cluster
    }

    /// `redis-cluster://host:port,…` of every node.
    pub(crate) fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.addr.to_string()).collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// Keys each node holds.
    pub(crate) async fn keys_per_node(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let answer = node.ask("DBSIZE").await.unwrap_or_default();
            out.push(answer.trim_start_matches(':').parse().unwrap_or(0));
        }
        out
    }
}

impl RedisServer {
    /// Whether this cluster node sees every slot served (the answer's
    /// first field is `cluster_state:ok` or `:fail`).
    async fn cluster_ok(&self) -> bool {
        let state = |got: &str| {
            got.split_once("cluster_state:")
                .map(|(_, rest)| rest.to_owned())
        };
        let Some(answer) = self
            .exchange("CLUSTER INFO", |got| {
                state(got).is_some_and(|r| r.contains("\r\n"))
            })
            .await
        else {
            return false;
        };
        state(&answer).is_some_and(|r| r.starts_with("ok"))
    }
}
