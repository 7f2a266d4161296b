//! Small cryptographic helpers over aws-lc-rs (already in the tree through
//! rustls): random identifiers, key derivation and authenticated encryption.
//!
//! Written here rather than pulled from another crate because each is a few
//! lines over aws-lc-rs, and keeping one crypto backend keeps audits simple.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hkdf, hmac};
use base64::Engine as _;

/// URL-safe base64 without padding.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes URL-safe base64 without padding.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

/// `n` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // SystemRandom only fails when the OS has no entropy source at all; there
    // is nothing safe to do then but stop.
    SystemRandom::new()
        .fill(&mut out)
        .expect("the operating system's random number generator failed");
    out
}

/// A random token of 256 bits, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    b64url(&random_bytes::<32>())
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Constant-time equality.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// Derives a 32-byte subkey for `purpose` from the configured secret (HKDF-SHA256).
pub fn derive_key(secret: &[u8], purpose: &str) -> [u8; 32] {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"aadgate v1");
    let prk = salt.extract(secret);
    let info = [purpose.as_bytes()];
    let mut out = [0u8; 32];
    prk.expand(&info, Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output of 32 bytes is always valid");
    out
}

/// An HMAC-SHA256 key prepared once: signing runs only the message blocks,
/// not the key schedule (half the cost of a session lookup otherwise).
/// Used for keyed lookup ids, so stored keys are not usable cookie values.
pub struct MacKey(hmac::Key);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(<redacted>)")
    }
}

impl MacKey {
    /// Prepares `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// HMAC-SHA256 of `data`.
    pub fn sign(&self, data: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.0, data);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// AES-256-GCM with a fresh random nonce per message.
#[derive(Clone)]
pub struct Sealer {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer keyed for `purpose` from the configured secret.
    pub fn new(secret: &[u8], purpose: &str) -> Self {
        let key = derive_key(secret, purpose);
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &key).expect("32-byte AES key");
        Self {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        }
    }

    /// Encrypts `plain`, binding `context` as associated data. Output: nonce || ciphertext || tag.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<12>();
        let mut buf = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut buf,
            )
            .expect("AES-GCM sealing of in-memory data cannot fail");
        let mut out = Vec::with_capacity(12 + buf.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        out
    }

    /// Decrypts what [`Sealer::seal`] produced with the same context; `None` if tampered with.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, rest) = sealed.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let s = Sealer::new(&[1u8; 32], "test");
        let sealed = s.seal(b"hello", b"ctx");
        assert_eq!(s.open(&sealed, b"ctx").unwrap(), b"hello");
        assert!(s.open(&sealed, b"other").is_none());
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(s.open(&bad, b"ctx").is_none());
        assert_ne!(s.seal(b"hello", b"ctx"), sealed, "fresh nonce per message");
        let other = Sealer::new(&[2u8; 32], "test");
        assert!(other.open(&sealed, b"ctx").is_none());
    }

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}
