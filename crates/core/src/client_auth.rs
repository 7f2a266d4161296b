//! How aadgate proves to the token endpoint that it is the app: a client
//! secret, a certificate (`private_key_jwt`: a client assertion signed with
//! the certificate's key, as Entra requires, RFC 7523), or a federated token
//! read from a file for every request (workload identity federation: AKS and
//! other platforms mount a short-lived token Entra trusts; no secret at all).

use std::path::PathBuf;
use std::sync::Arc;

use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

use crate::error::{ConfigError, ProviderError};

/// `client_assertion_type` of RFC 7523 client assertions.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client assertion is valid for this long.
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// How the app authenticates at the token endpoint.
#[derive(Clone)]
pub enum ClientAuth {
    /// `oidc.client_secret` (HTTP Basic, or in the form when the provider
    /// supports only that).
    Secret(String),
    /// `oidc.client_certificate` + `oidc.client_key`: `private_key_jwt`.
    Certificate(Arc<Certificate>),
    /// `oidc.client_assertion_file` (or `AZURE_FEDERATED_TOKEN_FILE`): the
    /// file's token is the client assertion, read again for every request
    /// because the platform renews it.
    AssertionFile(PathBuf),
}

impl ClientAuth {
    /// What the app authenticates with, in words (`secret`, `certificate`,
    /// `federated token`).
    pub fn what(&self) -> &'static str {
        match self {
            Self::Secret(_) => "secret",
            Self::Certificate(_) => "certificate",
            Self::AssertionFile(_) => "federated token",
        }
    }

    /// The name of `check-config --online`'s check of it.
    pub fn check_name(&self) -> &'static str {
        match self {
            Self::Secret(_) => "client id and secret",
            Self::Certificate(_) => "client id and certificate",
            Self::AssertionFile(_) => "client id and federated token",
        }
    }
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::Certificate(c) => write!(f, "Certificate(x5t#S256 {})", c.thumbprint),
            Self::AssertionFile(p) => write!(f, "AssertionFile({})", p.display()),
        }
    }
}

/// A certificate registered with the app and its private key.
pub struct Certificate {
    key: EncodingKey,
    /// `x5t#S256`: base64url of the SHA-256 of the certificate's DER.
    thumbprint: String,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("x5t#S256", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl Certificate {
    /// Reads the PEM certificate at `cert` and the PEM private key (RSA,
    /// PKCS#8 or PKCS#1) at `key`, naming the configuration key at fault.
    pub fn load(cert: &str, key: &str) -> Result<Self, ConfigError> {
        let read = |name: &str, path: &str| {
            if path.contains("-----BEGIN") {
                return Err(ConfigError::new(name, "holds PEM text, not a path")
                    .with_fix("give the path of the PEM file (the text never belongs in the configuration)"));
            }
            std::fs::read(path).map_err(|e| {
                ConfigError::new(name, format!("cannot read {path:?}: {e}"))
                    .with_fix("give the path of a PEM file aadgate can read")
            })
        };
        let cert_pem = read("oidc.client_certificate", cert)?;
        let der = pem_block(&cert_pem, "CERTIFICATE").ok_or_else(|| {
            ConfigError::new(
                "oidc.client_certificate",
                format!("{cert:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            )
            .with_fix("use the certificate uploaded to the app registration (Certificates & secrets), in PEM form")
        })?;
        let key_pem = read("oidc.client_key", key)?;
        let key = EncodingKey::from_rsa_pem(&key_pem).map_err(|e| {
            ConfigError::new(
                "oidc.client_key",
                format!("{key:?} is not an RSA private key in PEM form ({e})"),
            )
            .with_fix("use the RSA private key of oidc.client_certificate (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
        })?;
        // The key must be the certificate's: sign, and verify with the
        // certificate's public key.
        let matches = jsonwebtoken::DecodingKey::from_rsa_pem(&cert_pem)
            .ok()
            .and_then(|public| {
                let probe = jsonwebtoken::encode(
                    &Header::new(jsonwebtoken::Algorithm::RS256),
                    &json!({}),
                    &key,
                )
                .ok()?;
                let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                v.required_spec_claims.clear();
                v.validate_exp = false;
                v.validate_aud = false;
                jsonwebtoken::decode::<serde_json::Value>(&probe, &public, &v).ok()
            })
            .is_some();
        if !matches {
            return Err(ConfigError::new(
                "oidc.client_key",
                "is not the private key of oidc.client_certificate (or the certificate has no RSA key)",
            )
            .with_fix("give the RSA key the certificate was made with"));
        }
        Ok(Self {
            key,
            thumbprint: crate::crypto::b64url(&crate::crypto::sha256(&der)),
        })
    }

    /// The certificate's `x5t#S256` thumbprint.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A client assertion for `token_endpoint`: RS256, `x5t#S256` in the
    /// header; `iss` = `sub` = the client ID, `aud` the token endpoint, a
    /// fresh `jti`, valid for five minutes.
    pub fn assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: i64,
    ) -> Result<String, ProviderError> {
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5t_s256 = Some(self.thumbprint.clone());
        let claims = json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": crate::crypto::random_token(),
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| ProviderError::Invalid {
            what: "client assertion (oidc.client_key)",
            reason: e.to_string(),
        })
    }
}

/// The DER of the first PEM block labelled `label` in `text`.
fn pem_block(text: &[u8], label: &str) -> Option<Vec<u8>> {
    pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|p| p.tag() == label)
        .map(pem::Pem::into_contents)
}

/// The token in a federated token file, read now.
pub async fn read_assertion(path: &std::path::Path) -> Result<String, ProviderError> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| ProviderError::Invalid {
            what: "federated token (oidc.client_assertion_file)",
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ProviderError::Invalid {
            what: "federated token (oidc.client_assertion_file)",
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_found_by_label() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_block(pem, "CERTIFICATE"), Some(vec![0, 1, 2, 3]));
        assert_eq!(pem_block(pem, "PRIVATE KEY"), None);
    }
}
