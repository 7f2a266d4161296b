//! `aadgate check-config --online`, the binary, against a real dev IdP and
//! app: one line per check, the AADSTS code, its meaning and the key to fix;
//! a non-zero exit when a check failed; never a secret in the output.

use std::net::SocketAddr;
use std::process::Command;

use aadgate_dev_idp::DevIdpConfig;

use crate::harness::{Idp, SECRET, config_text, listener, start_echo};

/// The proxy's port in the configuration (nothing listens there: the
/// checks never ask the proxy itself).
const PORT: u16 = 4180;

struct Run {
    ok: bool,
    stdout: String,
    all: String,
}

impl Run {
    /// The report line of check `name`.
    fn line(&self, name: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| {
                let rest = l.trim_start();
                rest.split_once(' ')
                    .is_some_and(|(_, after)| after.trim_start().starts_with(name))
            })
            .unwrap_or_else(|| panic!("no line for {name}: {}", self.all))
    }

    fn outcome(&self, name: &str) -> &str {
        self.line(name)
            .split_whitespace()
            .next()
            .unwrap_or_default()
    }
}

/// Runs `check-config --online` with `text` and the client secret `secret`.
async fn check(text: String, secret: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aadgate.toml");
    std::fs::write(&path, text).unwrap();
    let secret = secret.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aadgate"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AADGATE_")) {
            cmd.env_remove(k);
        }
        cmd.args(["check-config", "--online", "--config"])
            .arg(&path)
            .env("AADGATE_OIDC_CLIENT_SECRET", secret)
            .env("AADGATE_SESSION_SECRET", SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Run {
        ok: out.status.success(),
        stdout,
        all,
    }
}

/// A dev IdP that registered `public_url` (port [`PORT`]), and the
/// configuration of a proxy in front of `upstream`.
async fn setup(upstream: SocketAddr) -> (Idp, String) {
    let idp = Idp::start(DevIdpConfig::default(), &[PORT]).await;
    let text = config(&idp, upstream);
    (idp, text)
}

/// The harness configuration with sessions in memory (nothing is stored).
fn config(idp: &Idp, upstream: SocketAddr) -> String {
    let store = std::path::Path::new("/nonexistent");
    config_text(PORT, upstream, &idp.idp, store, "").replace("file:/nonexistent", "memory")
}

/// A loopback address nothing listens on.
async fn closed_port() -> SocketAddr {
    let (l, addr) = listener().await;
    drop(l);
    addr
}

const CHECKS: [&str; 5] = [
    "discovery and keys",
    "tenant",
    "client id and secret",
    "redirect URI",
    "upstream",
];

#[tokio::test]
async fn a_working_configuration_passes_every_check() {
    let (idp, text) = setup(start_echo().await).await;
    let secret = idp.idp.config().client_secret.clone();
    let run = check(text, &secret).await;
    assert!(run.ok, "{}", run.all);
    for name in CHECKS {
        assert_eq!(run.outcome(name), "OK", "{name}: {}", run.all);
    }
    assert!(
        run.line("client id and secret")
            .contains("the id and the secret are right"),
        "{}",
        run.all
    );
    assert!(
        run.line("redirect URI").contains(&format!(
            "http://127.0.0.1:{PORT}/auth/callback is registered"
        )),
        "{}",
        run.all
    );
    assert!(
        run.line("upstream").contains("answered HTTP"),
        "{}",
        run.all
    );
    assert!(run.all.contains("all online checks passed"), "{}", run.all);
    assert!(!run.all.contains(&secret), "the secret is never printed");
    assert!(!run.all.contains("eyJ"), "no token is printed");
}

#[tokio::test]
async fn a_wrong_tenant_is_aadsts90002_naming_oidc_tenant() {
    let (idp, text) = setup(start_echo().await).await;
    let tenant = idp.idp.config().tenant_id.clone();
    let text = text.replace(&tenant, "0f0f0f0f-1111-2222-3333-444444444444");
    let run = check(text, &idp.idp.config().client_secret).await;
    assert!(!run.ok, "{}", run.all);
    let line = run.line("tenant");
    assert!(line.starts_with("  FAIL"), "{}", run.all);
    assert!(line.contains("AADSTS90002"), "{}", run.all);
    assert!(line.contains("oidc.tenant does not exist"), "{}", run.all);
    // The provider answered: it is not reported as unreachable.
    assert!(!run.all.contains("unreachable"), "{}", run.all);
    assert!(!run.all.contains("no answer"), "{}", run.all);
    // What depends on the tenant is not run; the app is still checked.
    assert_eq!(run.outcome("client id and secret"), "SKIP", "{}", run.all);
    assert_eq!(run.outcome("redirect URI"), "SKIP", "{}", run.all);
    assert_eq!(run.outcome("upstream"), "OK", "{}", run.all);
    assert!(
        run.all
            .contains("online checks failed: discovery and keys, tenant"),
        "{}",
        run.all
    );
}

#[tokio::test]
async fn a_wrong_secret_is_aadsts7000215_naming_oidc_client_secret() {
    let (idp, text) = setup(start_echo().await).await;
    let wrong = "9b2e~the-secret-id-not-its-value";
    let run = check(text, wrong).await;
    assert!(!run.ok, "{}", run.all);
    let line = run.line("client id and secret");
    assert!(line.starts_with("  FAIL"), "{}", run.all);
    assert!(line.contains("AADSTS7000215"), "{}", run.all);
    assert!(
        line.contains("oidc.client_secret is wrong: use the secret's Value, not its Secret ID"),
        "{}",
        run.all
    );
    for name in ["discovery and keys", "tenant", "redirect URI", "upstream"] {
        assert_eq!(run.outcome(name), "OK", "{name}: {}", run.all);
    }
    assert!(
        run.all
            .contains("1 of 5 online checks failed: client id and secret"),
        "{}",
        run.all
    );
    assert!(
        !run.all.contains(wrong),
        "the wrong secret is not printed either"
    );
    assert!(!run.all.contains(&idp.idp.config().client_secret));
}

#[tokio::test]
async fn an_unknown_client_id_is_aadsts700016_naming_oidc_client_id() {
    let (idp, text) = setup(start_echo().await).await;
    let client_id = idp.idp.config().client_id.clone();
    let text = text.replace(&client_id, "99999999-8888-4777-8666-555555555555");
    let run = check(text, &idp.idp.config().client_secret).await;
    assert!(!run.ok, "{}", run.all);
    let line = run.line("client id and secret");
    assert!(line.starts_with("  FAIL"), "{}", run.all);
    assert!(line.contains("AADSTS700016"), "{}", run.all);
    assert!(
        line.contains("oidc.client_id is not an app of this tenant"),
        "{}",
        run.all
    );
    // The authorization endpoint says the same.
    let redirect = run.line("redirect URI");
    assert!(
        redirect.starts_with("  FAIL") && redirect.contains("AADSTS700016"),
        "{}",
        run.all
    );
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_aadsts50011_naming_public_url() {
    let echo = start_echo().await;
    // The app registration knows another port's callback only.
    let idp = Idp::start(DevIdpConfig::default(), &[PORT + 1]).await;
    let text = config(&idp, echo);
    let run = check(text, &idp.idp.config().client_secret).await;
    assert!(!run.ok, "{}", run.all);
    let line = run.line("redirect URI");
    assert!(line.starts_with("  FAIL"), "{}", run.all);
    assert!(line.contains("AADSTS50011"), "{}", run.all);
    assert!(
        line.contains(&format!(
            "http://127.0.0.1:{PORT}/auth/callback is not registered"
        )),
        "{}",
        run.all
    );
    assert!(line.contains("public_url"), "{}", run.all);
    assert_eq!(run.outcome("client id and secret"), "OK", "{}", run.all);
}

#[tokio::test]
async fn an_app_that_is_down_is_named_with_the_upstream_key() {
    let down = closed_port().await;
    let (idp, text) = setup(down).await;
    let run = check(text, &idp.idp.config().client_secret).await;
    assert!(!run.ok, "{}", run.all);
    let line = run.line("upstream");
    assert!(line.starts_with("  FAIL"), "{}", run.all);
    assert!(line.contains("connection refused"), "{}", run.all);
    assert!(line.contains("`upstream`"), "{}", run.all);
    assert!(line.contains(&down.to_string()), "{}", run.all);
    for name in [
        "discovery and keys",
        "tenant",
        "client id and secret",
        "redirect URI",
    ] {
        assert_eq!(run.outcome(name), "OK", "{name}: {}", run.all);
    }
}

#[tokio::test]
async fn a_provider_that_is_down_is_unreachable_and_the_rest_is_skipped() {
    let down = closed_port().await;
    let (idp, text) = setup(start_echo().await).await;
    let text = text.replace(&idp.addr.to_string(), &down.to_string());
    let run = check(text, &idp.idp.config().client_secret).await;
    assert!(!run.ok, "{}", run.all);
    let line = run.line("discovery and keys");
    assert!(
        line.starts_with("  FAIL") && line.contains("no answer from"),
        "{}",
        run.all
    );
    assert_eq!(run.outcome("tenant"), "SKIP", "{}", run.all);
    assert_eq!(run.outcome("client id and secret"), "SKIP", "{}", run.all);
}

#[tokio::test]
async fn a_certificate_is_checked_online_and_an_unregistered_one_fails() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("c.key"), key.serialize_pem()).unwrap();
    let upstream = start_echo().await;
    for registered in [true, false] {
        let config = DevIdpConfig {
            client_certificates: if registered { vec![cert.pem()] } else { vec![] },
            ..DevIdpConfig::default()
        };
        let idp = Idp::start(config, &[PORT]).await;
        let text = self::config(&idp, upstream).replace(
            "[oidc]\n",
            &format!(
                "[oidc]\nclient_certificate = \"{}\"\nclient_key = \"{}\"\n",
                dir.path().join("c.pem").display(),
                dir.path().join("c.key").display()
            ),
        );
        // No secret: the certificate is the credential.
        let run = check(text, "").await;
        let line = run.line("client id and certificate");
        if registered {
            assert!(run.ok, "{}", run.all);
            assert!(
                line.contains("the id and the certificate are right"),
                "{}",
                run.all
            );
        } else {
            assert!(!run.ok);
            assert_eq!(
                run.outcome("client id and certificate"),
                "FAIL",
                "{}",
                run.all
            );
            assert!(
                line.contains("AADSTS700027")
                    && line.contains("upload oidc.client_certificate to the app registration"),
                "{}",
                run.all
            );
        }
    }
}
