//! Sign-in without a client secret: a certificate (`private_key_jwt`, the
//! assertion naming the certificate by `x5t#S256`) and a federated token
//! read from a file for every request (workload identity federation),
//! each checked by the dev IdP against what is registered for the app.

use aadgate_dev_idp::DevIdpConfig;
use aadgate_dev_idp::config::FederatedCredential;
use serde_json::json;

use crate::adversary::{Key, now};
use crate::harness::{Browser, Idp, Proxy, config_text, listener, start_echo};

/// A self-signed RSA certificate and its key, as PEM.
fn certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "aadgate test client");
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes the certificate and key under `dir`; the `[oidc]` lines naming them.
fn certificate_files(dir: &std::path::Path, cert: &str, key: &str) -> String {
    std::fs::write(dir.join("client.pem"), cert).unwrap();
    std::fs::write(dir.join("client.key"), key).unwrap();
    format!(
        "client_certificate = \"{}\"\nclient_key = \"{}\"",
        dir.join("client.pem").display(),
        dir.join("client.key").display()
    )
}

struct Setup {
    idp: Idp,
    proxy: Proxy,
    dir: tempfile::TempDir,
}

/// The dev IdP with `idp_config`, and the proxy with `oidc` lines (paths
/// under the returned directory) and no client secret at all.
async fn start(idp_config: DevIdpConfig, oidc: impl Fn(&std::path::Path) -> String) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (pl, paddr) = listener().await;
    let idp = Idp::start(idp_config, &[paddr.port()]).await;
    let echo = start_echo().await;
    let text = config_text(
        paddr.port(),
        echo,
        &idp.idp,
        &dir.path().join("sessions"),
        "",
    )
    .replace("[oidc]\n", &format!("[oidc]\n{}\n", oidc(dir.path())));
    // No AADGATE_OIDC_CLIENT_SECRET: an empty value is no secret.
    let proxy = Proxy::start(pl, &text, "").await;
    Setup { idp, proxy, dir }
}

/// The callback's status after picking `user` (302: signed in).
async fn sign_in_status(proxy: &Proxy, user: &str) -> u16 {
    let b = Browser::new(proxy.addr);
    let authorize = b.start_login("/").await;
    let callback = b.pick_user(&authorize, user).await;
    b.navigate(&callback).await.status().as_u16()
}

#[tokio::test]
async fn a_certificate_signs_the_app_in_without_a_secret() {
    let (cert, key) = certificate();
    let (other_cert, other_key) = certificate();
    let config = DevIdpConfig {
        client_certificates: vec![cert.clone()],
        ..DevIdpConfig::default()
    };
    let s = start(config.clone(), |dir| certificate_files(dir, &cert, &key)).await;
    assert_eq!(sign_in_status(&s.proxy, "reader").await, 302, "signed in");
    // The provider's client-credentials grant takes it too (check-config --online's check).
    let token = s
        .proxy
        .auth
        .provider()
        .client_credentials(Some(&format!("{}/.default", config.client_id)))
        .await;
    assert!(token.is_ok(), "{token:?}");
    let _ = &s.idp;

    // A certificate the app registration does not have is refused.
    let s = start(config, |dir| {
        certificate_files(dir, &other_cert, &other_key)
    })
    .await;
    assert_ne!(sign_in_status(&s.proxy, "reader").await, 302);
    let e = s
        .proxy
        .auth
        .provider()
        .client_credentials(Some("x/.default"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("700027") && e.contains("not registered"), "{e}");
    let _ = s.dir;
}

const ISSUER: &str = "https://oidc.aks.example/cluster-1/";
const SUBJECT: &str = "system:serviceaccount:dash:aadgate";

/// A service account token of the cluster `key` signs.
fn federated_token(key: &Key, subject: &str, exp: i64) -> String {
    key.sign(
        &json!({"alg": "RS256", "typ": "JWT", "kid": key.kid}),
        &json!({"iss": ISSUER, "sub": subject, "aud": ["api://AzureADTokenExchange"], "iat": now(), "exp": exp}),
    )
}

#[tokio::test]
async fn a_federated_token_is_read_for_every_request() {
    let cluster = Key::new("sa-key");
    let config = DevIdpConfig {
        federated_credentials: vec![FederatedCredential {
            issuer: ISSUER.into(),
            subject: SUBJECT.into(),
            audience: "api://AzureADTokenExchange".into(),
            jwks: json!({"keys": [cluster.jwk()]}).to_string(),
        }],
        ..DevIdpConfig::default()
    };
    let s = start(config, |dir| {
        let path = dir.join("azure-identity-token");
        std::fs::write(&path, federated_token(&cluster, SUBJECT, now() + 3600)).unwrap();
        format!("client_assertion_file = \"{}\"", path.display())
    })
    .await;
    let path = s.dir.path().join("azure-identity-token");
    assert_eq!(sign_in_status(&s.proxy, "writer").await, 302, "signed in");

    // The platform rotates the file: the next request presents what is
    // there now. Another service account's token is refused...
    std::fs::write(
        &path,
        federated_token(&cluster, "system:serviceaccount:other:x", now() + 3600),
    )
    .unwrap();
    assert_ne!(sign_in_status(&s.proxy, "writer").await, 302);
    // ... an expired one too ...
    std::fs::write(&path, federated_token(&cluster, SUBJECT, now() - 600)).unwrap();
    let e = s
        .proxy
        .auth
        .provider()
        .client_credentials(Some("x/.default"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("700024"), "{e}");
    // ... and a renewed one works again, without a restart.
    std::fs::write(&path, federated_token(&cluster, SUBJECT, now() + 3600)).unwrap();
    assert_eq!(sign_in_status(&s.proxy, "writer").await, 302);
    let _ = (&s.idp, &s.dir);
}
