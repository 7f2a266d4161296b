//! Return URLs (`rd`, post-logout `state`): an accepted one never leaves the site.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    if let Some(p) = aadgate_core::flow::safe_return_path(data) {
        assert_eq!(p, data);
        assert!(p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\"));
        let base = url::Url::parse("https://site.invalid/").unwrap();
        let target = base.join(&p).expect("an accepted path resolves");
        assert_eq!(target.origin(), base.origin(), "{p:?} left the site");
    }
});
