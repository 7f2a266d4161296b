//! The pending sign-in cookie: forged values decode to an empty jar, never a panic.
#![no_main]
use aadgate_core::crypto::Sealer;
use aadgate_core::flow::PendingJar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let sealer = Sealer::new(&[7u8; 32], "pending login");
    let jar = PendingJar::from_cookie(Some(data), &sealer, 1_800_000_000);
    assert!(jar.is_empty(), "a forged cookie decoded to pending sign-ins");
});
