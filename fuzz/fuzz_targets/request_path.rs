//! Request paths: normalization never panics and yields a clean absolute path;
//! a public decision is never reachable through a path that normalizes to a protected one.
#![no_main]
use std::sync::LazyLock;

use aadgate_core::config::{AuthzConfig, RouteConfig};
use aadgate_core::policy::{Policy, Requirement, normalize_path};
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let authz = AuthzConfig { roles: vec!["App.Read".into(), "App.Admin".into()] };
    let r = |path: &str, role: Option<&str>, public| RouteConfig { path: path.into(), role: role.map(Into::into), public, groups: vec![] };
    Policy::from_config(&authz, &[r("/admin", Some("App.Admin"), false), r("/assets", None, true)]).unwrap()
});

fuzz_target!(|data: &str| {
    let decision = POLICY.decide(data);
    if let Some(n) = normalize_path(data) {
        assert!(n.starts_with('/'));
        assert!(!n.contains("//") && !n.split('/').any(|s| s == ".." || s == "."), "{n:?}");
        // Whatever the raw form, the decision is at least as strict as for the clean path.
        let clean = POLICY.requirement(&n);
        if clean != Requirement::Public {
            assert_ne!(decision.requirement, Requirement::Public, "{data:?} -> {n:?}");
        }
    } else {
        assert!(decision.malformed);
    }
});
