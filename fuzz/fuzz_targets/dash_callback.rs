//! Dash callback bodies: rule matching never panics.
#![no_main]
use std::sync::LazyLock;

use aadgate_core::dash::{CallbackRules, DashCallbackConfig, DashConfig};
use libfuzzer_sys::fuzz_target;

static RULES: LazyLock<CallbackRules> = LazyLock::new(|| {
    let cfg = DashConfig {
        callback: vec![
            DashCallbackConfig { output: "write-result".into(), role: "App.Write".into() },
            DashCallbackConfig { output: r#"{"type":"row"}"#.into(), role: "App.Write".into() },
        ],
        ..DashConfig::default()
    };
    CallbackRules::from_config(&cfg, &["App.Read".into(), "App.Write".into()]).unwrap()
});

fuzz_target!(|data: &[u8]| {
    let _ = RULES.required_role(data);
});
