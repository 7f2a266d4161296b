//! RSA signing keys, their JWKS publication, and JWS (RS256) signing.
//!
//! The JWS compact serialization is built by hand: the dev IdP only ever
//! signs, with a key it generated itself in aws-lc-rs. A JWT library such as
//! `jsonwebtoken` would need the private key re-encoded (PKCS#8/PEM) and
//! would bring validation machinery this crate never uses; a signed token is
//! just `base64url(header) . base64url(claims) . base64url(signature)`.

use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde_json::{Map, Value, json};

use crate::ids::b64url;

/// Signing failed inside aws-lc-rs (never expected in practice).
#[derive(Debug, thiserror::Error)]
#[error("RS256 signing failed")]
pub(crate) struct SignError;

/// One RSA-2048 key pair with its key id and public components.
pub(crate) struct SigningKey {
    kid: String,
    key_pair: KeyPair,
    /// Modulus, big-endian without leading zeros, base64url.
    n: String,
    /// Public exponent, big-endian without leading zeros, base64url.
    e: String,
}

impl SigningKey {
    /// Generates a new RSA-2048 key. Slow-ish in debug builds (~0.1–1 s).
    pub(crate) fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let key_pair = KeyPair::generate(KeySize::Rsa2048)?;
        let components = PublicKeyComponents::<Vec<u8>>::from(key_pair.public_key());
        let n_bytes = strip_leading_zeros(&components.n);
        let e_bytes = strip_leading_zeros(&components.e);
        // kid: like Entra's 27-character key ids; derived from the modulus so
        // it identifies the key.
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, n_bytes);
        let kid = b64url(&hash.as_ref()[..20]);
        Ok(Self {
            kid,
            n: b64url(n_bytes),
            e: b64url(e_bytes),
            key_pair,
        })
    }

    /// The key id (`kid` in the JWS header and the JWKS).
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWK of the public key as Entra ID publishes it.
    fn jwk(&self, issuer: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
            "alg": "RS256",
            "issuer": issuer,
        })
    }

    /// Signs `claims` as an RS256 JWT. The header carries `typ`, `alg`, `kid`
    /// and any `extra_header` members.
    pub(crate) fn sign_jwt(
        &self,
        extra_header: &Map<String, Value>,
        claims: &Value,
    ) -> Result<String, SignError> {
        let header = self.encode_header(extra_header)?;
        let claims = b64url(&serde_json::to_vec(claims).map_err(|_| SignError)?);
        let signing_input = format!("{header}.{claims}");
        let signature = self.sign(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{signature}"))
    }

    /// Signs `claims` the way Microsoft Graph access tokens are signed: the
    /// header shows `nonce`, but the signature covers a header whose `nonce`
    /// is the SHA-256 of it. Ordinary JWT validation therefore fails, which
    /// is the point: only the resource (here, this IdP's Graph endpoint)
    /// consumes the token, and a relying party must not try to.
    pub(crate) fn sign_jwt_with_hashed_nonce(
        &self,
        nonce: &str,
        claims: &Value,
    ) -> Result<String, SignError> {
        let mut signed_header = Map::new();
        signed_header.insert(
            "nonce".to_owned(),
            Value::from(crate::ids::sha256_b64url(nonce.as_bytes())),
        );
        let signed = self.sign_jwt(&signed_header, claims)?;
        let mut shown_header = Map::new();
        shown_header.insert("nonce".to_owned(), Value::from(nonce));
        let shown = self.encode_header(&shown_header)?;
        let rest = signed.split_once('.').map_or("", |(_, rest)| rest);
        Ok(format!("{shown}.{rest}"))
    }

    fn encode_header(&self, extra_header: &Map<String, Value>) -> Result<String, SignError> {
        let mut header = Map::new();
        header.insert("typ".to_owned(), Value::from("JWT"));
        header.extend(extra_header.iter().map(|(k, v)| (k.clone(), v.clone())));
        header.insert("alg".to_owned(), Value::from("RS256"));
        header.insert("kid".to_owned(), Value::from(self.kid.as_str()));
        let header = serde_json::to_vec(&Value::Object(header)).map_err(|_| SignError)?;
        Ok(b64url(&header))
    }

    fn sign(&self, input: &[u8]) -> Result<String, SignError> {
        let mut signature = vec![0u8; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input,
                &mut signature,
            )
            .map_err(|_| SignError)?;
        Ok(b64url(&signature))
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The published keys: the signing key and the one before it, like Entra ID
/// during a key rollover (a token signed just before a rotation still
/// verifies).
pub(crate) struct KeySet {
    keys: Mutex<Published>,
}

struct Published {
    current: Arc<SigningKey>,
    previous: Option<Arc<SigningKey>>,
}

impl KeySet {
    /// A key set holding one freshly generated key.
    pub(crate) fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        Ok(Self {
            keys: Mutex::new(Published {
                current: Arc::new(SigningKey::generate()?),
                previous: None,
            }),
        })
    }

    /// The key new tokens are signed with.
    pub(crate) fn current(&self) -> Arc<SigningKey> {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&keys.current)
    }

    /// Makes `key` the signing key; the old signing key stays published and
    /// the one before it is dropped.
    pub(crate) fn push(&self, key: SigningKey) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut keys.current, Arc::new(key));
        keys.previous = Some(old);
    }

    /// The JWKS document: `{"keys": [...]}` with every published key,
    /// the signing key first.
    pub(crate) fn jwks(&self, issuer: &str) -> Value {
        let keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let jwks: Vec<Value> = std::iter::once(&keys.current)
            .chain(keys.previous.as_ref())
            .map(|k| k.jwk(issuer))
            .collect();
        json!({ "keys": jwks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn signed_jwt_verifies_with_published_components() {
        let keys = KeySet::generate().expect("keygen");
        let key = keys.current();
        let jwt = key
            .sign_jwt(&Map::new(), &json!({"sub": "x"}))
            .expect("sign");
        let (input, sig) = jwt.rsplit_once('.').expect("three parts");
        let jwks = keys.jwks("https://issuer.example/v2.0");
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kid"], key.kid());
        assert_eq!(jwk["issuer"], "https://issuer.example/v2.0");
        let decode = |v: &Value| {
            URL_SAFE_NO_PAD
                .decode(v.as_str().expect("str"))
                .expect("b64")
        };
        let n = decode(&jwk["n"]);
        assert_eq!(n.len(), 256, "2048-bit modulus without a leading zero");
        assert_ne!(n[0], 0);
        let public = RsaPublicKeyComponents {
            n,
            e: decode(&jwk["e"]),
        };
        public
            .verify(
                &RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(sig).expect("b64"),
            )
            .expect("signature verifies");
    }

    #[test]
    fn push_keeps_the_previous_key_only() {
        let keys = KeySet::generate().expect("keygen");
        let first = keys.current().kid().to_owned();
        keys.push(SigningKey::generate().expect("keygen"));
        let second = keys.current().kid().to_owned();
        assert_ne!(first, second);
        keys.push(SigningKey::generate().expect("keygen"));
        let jwks = keys.jwks("i");
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[1], second);
        assert!(!kids.contains(&first.as_str()));
    }

    #[test]
    fn leading_zeros_are_stripped() {
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(strip_leading_zeros(&[0]), &[] as &[u8]);
    }
}
