//! JWT/JWS parsing and claim checks on attacker-shaped tokens and keys: no panics,
//! and nothing is accepted without a signature by a listed key.
#![no_main]
use aadgate_core::token::{self, Algorithm, Expectations, VerifyingKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (jwk_text, token_text) = text.split_once('\n').unwrap_or((&text, ""));
    let keys: Vec<VerifyingKey> = serde_json::from_str::<serde_json::Value>(jwk_text)
        .ok()
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|k| VerifyingKey::from_jwk(k).ok())
        .collect();
    let Ok(header) = token::read_header(token_text, Algorithm::ALL) else { return };
    let Ok(key) = token::select_key(&header, &keys) else { return };
    let Ok(claims) = token::verify_signature(token_text, &header, key) else { return };
    let x = Expectations {
        issuer: "https://login.microsoftonline.com/{tenantid}/v2.0",
        client_id: "c",
        allowed_tenants: &["*".to_owned()],
        entra: true,
        nonce: Some("n"),
        now: 1_800_000_000,
        skew: 120,
        max_age: 3600,
    };
    let _ = token::check_claims(&claims, key, &x);
});
