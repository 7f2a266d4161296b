//! Random and derived identifiers: GUIDs, opaque tokens, base64url.

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) {
    // AWS-LC's RAND_bytes aborts the process rather than report a failure, so
    // the error branch cannot be reached; it is not derived from any input.
    SystemRandom::new()
        .fill(buf)
        .expect("the system random number generator failed");
}

/// A random version-4 GUID in Entra's lower-case textual form.
pub(crate) fn guid() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    format_guid(bytes)
}

/// A GUID derived from `seed` (stable: the same seed gives the same GUID).
pub(crate) fn guid_from_seed(seed: &str) -> String {
    let hash = digest::digest(&digest::SHA256, seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    format_guid(bytes)
}

fn format_guid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Whether `s` looks like a GUID: 8-4-4-4-12 hexadecimal digits.
pub(crate) fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A random opaque token of `bytes` random bytes, base64url-encoded.
pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill_random(&mut buf);
    b64url(&buf)
}

/// Base64url without padding (RFC 7515 §2).
pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `data`, base64url-encoded (the PKCE S256 transformation).
pub(crate) fn sha256_b64url(data: &[u8]) -> String {
    b64url(digest::digest(&digest::SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_well_formed_and_distinct() {
        let a = guid();
        let b = guid();
        assert!(is_guid(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn seeded_guids_are_stable() {
        assert_eq!(guid_from_seed("x"), guid_from_seed("x"));
        assert_ne!(guid_from_seed("x"), guid_from_seed("y"));
        assert!(is_guid(&guid_from_seed("x")));
    }

    #[test]
    fn is_guid_rejects_near_misses() {
        assert!(!is_guid("not-a-guid"));
        assert!(!is_guid("3f9c1e27-5a84-4d1b-9e6c-2a7b8d0f4c5"));
        assert!(!is_guid("3f9c1e27-5a84-4d1b-9e6c-2a7b8d0f4c5g"));
        assert!(is_guid("3F9C1E27-5A84-4D1B-9E6C-2A7B8D0F4C51"));
    }

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        // RFC 7636 Appendix B.
        assert_eq!(
            sha256_b64url(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
