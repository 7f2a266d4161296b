//! Dash callback bodies built from the shapes that broke the rules before
//! (empty and nested `outputs`, duplicate keys, numeric forms of ids,
//! `output`/`outputs` disagreements), checked against a model of how Dash
//! 4.4.1 decides to run a callback (`Dash._prepare_callback` looks the
//! function up by `output`; `_validate.validate_output_spec` checks only the
//! entries of `outputs` it is given, with Python equality and wildcards).
//!
//! The property: whenever the model says Dash runs a protected callback,
//! aadgate's `required_role` refuses the body or requires at least the
//! callback's role. The model is written from Dash's source, not from
//! aadgate's parser, so the two can disagree; the differential test in
//! `crates/cli/tests/it/dash_differential.rs` checks the model's premises
//! against the real Dash.
#![no_main]
use std::sync::LazyLock;

use aadgate_core::dash::{CallbackRules, DashCallbackConfig, DashConfig, py_eq};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// The callbacks of `crates/cli/tests/apps/targets.py`: `output` key,
/// declared outputs (id, property), whether declared as several, role index.
struct Cb {
    key: &'static str,
    declared: Vec<(Value, &'static str)>,
    multi: bool,
    role: usize,
}

static CALLBACKS: LazyLock<Vec<Cb>> = LazyLock::new(|| {
    let w = |s: &str| json!([s]);
    vec![
        Cb { key: "..write-result.children...data-version.data..", declared: vec![(json!("write-result"), "children"), (json!("data-version"), "data")], multi: true, role: 1 },
        Cb { key: "write-result.children@4e2e", declared: vec![(json!("write-result"), "children")], multi: false, role: 1 },
        Cb { key: "{\"index\":[\"MATCH\"],\"type\":\"row\"}.children", declared: vec![(json!({"index": w("MATCH"), "type": "row"}), "children")], multi: false, role: 0 },
        Cb { key: "{\"index\":[\"ALL\"],\"type\":\"admin-row\"}.children", declared: vec![(json!({"index": w("ALL"), "type": "admin-row"}), "children")], multi: false, role: 2 },
        Cb { key: "{\"kind\":\"secret\",\"n\":2}.children", declared: vec![(json!({"kind": "secret", "n": 2}), "children")], multi: false, role: 2 },
        Cb { key: "open-result.children", declared: vec![(json!("open-result"), "children")], multi: false, role: 0 },
    ]
});

static RULES: LazyLock<CallbackRules> = LazyLock::new(|| {
    let rule = |output: &str, role: &str| DashCallbackConfig { output: output.into(), role: role.into() };
    let cfg = DashConfig {
        callback: vec![
            rule("write-result", "App.Write"),
            rule(r#"{"type": "row", "index": 1}"#, "App.Write"),
            rule(r#"{"type": "admin-row"}"#, "App.Admin"),
            rule(r#"{"kind": "secret"}"#, "App.Admin"),
        ],
        ..DashConfig::default()
    };
    CallbackRules::from_config(&cfg, &["App.Read".into(), "App.Write".into(), "App.Admin".into()]).unwrap()
});

/// The role Dash's own code would need for the request to be refused:
/// `Some(role)` when Dash runs a protected callback, else `None`.
fn dash_runs(body: &str) -> Option<usize> {
    // Python's json keeps the last of duplicate keys; so does serde_json's Value.
    let v: Value = serde_json::from_str(body).ok()?;
    let output = v.get("output")?.as_str()?;
    let cb = CALLBACKS.iter().find(|c| c.key == output)?;
    let outputs = v.get("outputs").cloned().unwrap_or(json!([]));
    let (declared, specs): (Vec<&(Value, &str)>, Vec<Value>) = if cb.multi {
        let Value::Array(items) = outputs else { return None };
        if items.len() != cb.declared.len() {
            return None;
        }
        (cb.declared.iter().collect(), items)
    } else {
        (vec![&cb.declared[0]], vec![outputs])
    };
    let mut concrete = Vec::new();
    for ((id, prop), spec) in declared.into_iter().zip(specs) {
        let entries = match spec {
            Value::Array(items) => items,
            other => vec![other],
        };
        for e in entries {
            let (Some(rid), Some(Value::String(rprop))) = (e.get("id"), e.get("property")) else { return None };
            if rprop.split('@').next() != Some(*prop) || !id_matches(rid, id) {
                return None;
            }
            concrete.push(rid.clone());
        }
    }
    // Dash runs the callback. Which rule does the app's intent say applies?
    let pinned_row = |id: &Value| id.get("type") == Some(&json!("row")) && id.get("index").is_some_and(|i| py_eq(i, &json!(1)));
    let role = match cb.key {
        k if k.starts_with("{\"index\":[\"MATCH\"]") => concrete.iter().any(pinned_row).then_some(1),
        _ => (cb.role > 0).then_some(cb.role),
    };
    role
}

/// `DashDependency._id_matches(request, declared)`.
fn id_matches(got: &Value, declared: &Value) -> bool {
    match (got, declared) {
        (Value::Object(g), Value::Object(d)) => {
            g.len() == d.len()
                && g.iter().all(|(k, v)| d.get(k).is_some_and(|dv| py_eq(v, dv) || is_wildcard(dv)))
        }
        (Value::Object(_), _) | (_, Value::Object(_)) => false,
        (g, d) => py_eq(g, d),
    }
}

fn is_wildcard(v: &Value) -> bool {
    matches!(v.as_array().map(Vec::as_slice), Some([Value::String(s)]) if ["MATCH", "ALL", "ALLSMALLER"].contains(&s.as_str()))
}

/// Picks pieces from the input bytes.
struct Gen<'a>(&'a [u8]);

impl Gen<'_> {
    fn pick(&mut self, n: usize) -> usize {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b as usize % n
            }
            None => 0,
        }
    }
}

const IDS: &[&str] = &[
    r#""write-result""#, r#""data-version""#, r#""open-result""#, r#""write\u002dresult""#,
    r#"{"type":"row","index":1}"#, r#"{"type":"row","index":1.0}"#, r#"{"type":"row","index":true}"#,
    r#"{"type":"row","index":1e0}"#, r#"{"type":"row","index":2}"#, r#"{"index":10e-1,"type":"row"}"#,
    r#"{"type":"admin-row","index":0}"#, r#"{"type":"admin-row","index":false}"#, r#"{"kind":"secret","n":2.0}"#,
    r#"{"kind":"secret","n":2}"#, r#"{"type":"row"}"#, r#"{"type":"row","index":1,"x":1}"#, "1", "null",
];
const PROPS: &[&str] = &["children", "data", "children@4e2e", "figure", "value"];

fn entry(g: &mut Gen) -> String {
    match g.pick(8) {
        0 => "[]".into(),
        1 => "{}".into(),
        2 => format!("[{}]", entry(g)),
        3 => format!("[{},{}]", entry(g), entry(g)),
        4 => format!(r#"{{"id":{},"id":{},"property":"{}"}}"#, IDS[g.pick(IDS.len())], IDS[g.pick(IDS.len())], PROPS[g.pick(PROPS.len())]),
        _ => format!(r#"{{"id":{},"property":"{}"}}"#, IDS[g.pick(IDS.len())], PROPS[g.pick(PROPS.len())]),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut g = Gen(data);
    let mut fields = Vec::new();
    for _ in 0..=g.pick(4) {
        match g.pick(4) {
            0 | 1 => {
                let key = CALLBACKS[g.pick(CALLBACKS.len())].key;
                fields.push(format!(r#""output":{}"#, serde_json::to_string(key).unwrap()));
            }
            2 => fields.push(format!(r#""outputs":{}"#, entry(&mut g))),
            _ => fields.push(format!(r#""outputs":[{},{}]"#, entry(&mut g), entry(&mut g))),
        }
    }
    let body = format!("{{{}}}", fields.join(","));
    if let Some(needed) = dash_runs(&body) {
        match RULES.required_role(body.as_bytes()) {
            Err(_) => {}
            Ok(Some(r)) if r >= needed => {}
            other => panic!("Dash runs a callback needing role {needed}, aadgate says {other:?}: {body}"),
        }
    }
});
