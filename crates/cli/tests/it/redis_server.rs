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
        }
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
        let Ok(mut c) = tokio::net::TcpStream::connect(self.addr).await else {
            return false;
        };
        if c.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), c.read_exact(&mut buf)).await,
            Ok(Ok(_)) if &buf == b"+PONG\r\n"
        )
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
