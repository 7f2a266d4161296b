//! Configuration files: parsing and validation never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let env = [("AADGATE_SESSION_SECRET", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")];
    if let Ok(c) = aadgate_core::Config::from_toml_and_env(data, env) {
        let _ = c.validate();
    }
});
