//! Role rules for individual Plotly Dash callbacks.
//!
//! Every server-side Dash callback is a `POST …/_dash-update-component` whose
//! JSON body names the callback's outputs:
//! `{"output": "...", "outputs": {"id": "write-result", "property": "children"}, ...}`
//! (`outputs` is a list when there are several). A rule names an output
//! component id; when any output of a callback matches, the rule's role is
//! required. Pattern-matching ids (`{"type": "row", "index": 3}`) are matched
//! by a rule whose `output` is a JSON object: every key/value of the rule must
//! appear in the id.
//!
//! Anything that cannot be understood while rules exist is refused (fail
//! closed): an unparseable body, a body without `outputs`, or an oversized one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;

/// `[dash]`: Dash-specific behaviour.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashConfig {
    /// Inject `<script src="/auth/session.js">` into HTML responses, so an
    /// expired session sends the user through sign-in and back instead of
    /// breaking callbacks. Default `false` (an app can add the script itself
    /// with Dash's `external_scripts=["/auth/session.js"]`).
    #[serde(default)]
    pub session_script: bool,
    /// Largest callback body inspected, in bytes. Larger callback requests are
    /// refused with 413 while callback rules exist. Default 1 MiB.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Per-callback role rules.
    #[serde(default)]
    pub callback: Vec<DashCallbackConfig>,
}

/// `[[dash.callback]]`: a role needed to run callbacks with this output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashCallbackConfig {
    /// Output component id (`"write-result"`), or a JSON object for
    /// pattern-matching ids (`'{"type": "row"}'`).
    pub output: String,
    /// At least this role of `authz.roles`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Id(String),
    Pattern(serde_json::Map<String, Value>),
}

impl Matcher {
    fn matches(&self, id: &Value) -> bool {
        match (self, id) {
            (Matcher::Id(want), Value::String(got)) => want == got,
            (Matcher::Pattern(want), Value::Object(got)) => {
                want.iter().all(|(k, v)| got.get(k) == Some(v))
            }
            _ => false,
        }
    }
}

/// Checked callback rules.
#[derive(Debug, Clone, Default)]
pub struct CallbackRules {
    rules: Vec<(Matcher, usize)>,
    /// Body limit.
    pub max_body_bytes: usize,
}

/// Why a callback request could not be judged (it is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not JSON, or no `outputs`.
    #[error("callback body is not a Dash callback request: {0}")]
    Unreadable(String),
}

impl CallbackRules {
    /// Builds the rules; roles must be in `roles`.
    pub fn from_config(config: &DashConfig, roles: &[String]) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        for (i, r) in config.callback.iter().enumerate() {
            let idx = roles.iter().position(|x| x == &r.role).ok_or_else(|| {
                ConfigError::new(
                    format!("dash.callback[{i}].role"),
                    format!("{:?} is not in authz.roles", r.role),
                )
                .with_fix(format!("use one of {roles:?}"))
            })?;
            let trimmed = r.output.trim();
            let matcher = if trimmed.starts_with('{') {
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(Value::Object(m)) if !m.is_empty() => Matcher::Pattern(m),
                    _ => {
                        return Err(ConfigError::new(format!("dash.callback[{i}].output"), "is not a JSON object")
                            .with_fix("write a component id, or a pattern id as JSON such as '{\"type\": \"row\"}'"));
                    }
                }
            } else if trimmed.is_empty() {
                return Err(
                    ConfigError::new(format!("dash.callback[{i}].output"), "is empty")
                        .with_fix("name the component id of the callback's output"),
                );
            } else {
                Matcher::Id(trimmed.to_owned())
            };
            rules.push((matcher, idx));
        }
        Ok(Self {
            rules,
            max_body_bytes: config.max_body_bytes.unwrap_or(1024 * 1024),
        })
    }

    /// Whether any rule exists (bodies are inspected only then).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The highest role index any matching rule requires, or `None` when no rule matches.
    pub fn required_role(&self, body: &[u8]) -> Result<Option<usize>, CallbackError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| CallbackError::Unreadable(e.to_string()))?;
        // `outputs` is one {id, property}, a list of them, or (with wildcard
        // `ALL` outputs) lists nested inside the list.
        let mut outputs = Vec::new();
        match v.get("outputs") {
            Some(o) => collect_outputs(o, &mut outputs, 0)?,
            None => return Err(CallbackError::Unreadable("no outputs".into())),
        }
        if outputs.is_empty() && !matches!(v.get("outputs"), Some(Value::Array(_))) {
            return Err(CallbackError::Unreadable("no outputs".into()));
        }
        let mut needed: Option<usize> = None;
        for id in outputs {
            for (m, idx) in &self.rules {
                if m.matches(id) {
                    needed = Some(needed.map_or(*idx, |n| n.max(*idx)));
                }
            }
        }
        Ok(needed)
    }
}

/// Gathers output ids from `outputs`, descending into nested lists (bounded depth).
fn collect_outputs<'a>(
    v: &'a Value,
    out: &mut Vec<&'a Value>,
    depth: usize,
) -> Result<(), CallbackError> {
    if depth > 4 {
        return Err(CallbackError::Unreadable("outputs nested too deep".into()));
    }
    match v {
        Value::Array(items) => items
            .iter()
            .try_for_each(|i| collect_outputs(i, out, depth + 1)),
        Value::Object(o) => {
            let id = o
                .get("id")
                .ok_or_else(|| CallbackError::Unreadable("an output without id".into()))?;
            out.push(id);
            Ok(())
        }
        _ => Err(CallbackError::Unreadable(
            "an output that is not an object".into(),
        )),
    }
}

/// Whether a request path is Dash's callback endpoint.
pub fn is_callback_path(path: &str) -> bool {
    path.ends_with("/_dash-update-component")
}

/// Whether a request path is Dash's WebSocket callback endpoint (refused while
/// callback rules exist: its messages are not inspected).
pub fn is_websocket_callback_path(path: &str) -> bool {
    path.ends_with("/_dash-ws-callback")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> CallbackRules {
        let cfg = DashConfig {
            callback: vec![
                DashCallbackConfig {
                    output: "write-result".into(),
                    role: "App.Write".into(),
                },
                DashCallbackConfig {
                    output: r#"{"type": "admin-row"}"#.into(),
                    role: "App.Admin".into(),
                },
            ],
            ..DashConfig::default()
        };
        let roles = ["App.Read", "App.Write", "App.Admin"].map(String::from);
        CallbackRules::from_config(&cfg, &roles).unwrap()
    }

    #[test]
    fn matches_single_multiple_and_pattern_outputs() {
        let r = rules();
        let one = br#"{"output":"write-result.children","outputs":{"id":"write-result","property":"children"},"inputs":[]}"#;
        assert_eq!(r.required_role(one).unwrap(), Some(1));
        let many = br#"{"output":"..a.children...write-result.children..","outputs":[{"id":"a","property":"children"},{"id":"write-result","property":"children"}]}"#;
        assert_eq!(r.required_role(many).unwrap(), Some(1));
        let pattern = br#"{"outputs":[{"id":{"type":"admin-row","index":3},"property":"value"}]}"#;
        assert_eq!(r.required_role(pattern).unwrap(), Some(2));
        let wildcard = br#"{"outputs":[[{"id":{"type":"admin-row","index":1},"property":"value"},{"id":{"type":"admin-row","index":2},"property":"value"}],{"id":"x","property":"children"}]}"#;
        assert_eq!(r.required_role(wildcard).unwrap(), Some(2));
        let empty_wildcard = br#"{"outputs":[[],{"id":"x","property":"children"}]}"#;
        assert_eq!(r.required_role(empty_wildcard).unwrap(), None);
        let other = br#"{"outputs":{"id":"sales-chart","property":"figure"}}"#;
        assert_eq!(r.required_role(other).unwrap(), None);
        // An id that merely contains the rule's id does not match.
        let near = br#"{"outputs":{"id":"write-result-2","property":"children"}}"#;
        assert_eq!(r.required_role(near).unwrap(), None);
    }

    #[test]
    fn unreadable_bodies_fail_closed() {
        let r = rules();
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"outputs": 3}"#,
            br#"{"outputs": [{"property": "x"}]}"#,
        ] {
            assert!(
                r.required_role(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bad_rules_fail_at_start_up() {
        let roles = ["App.Read".to_owned()];
        let cfg = |output: &str, role: &str| DashConfig {
            callback: vec![DashCallbackConfig {
                output: output.into(),
                role: role.into(),
            }],
            ..DashConfig::default()
        };
        assert_eq!(
            CallbackRules::from_config(&cfg("x", "App.Nope"), &roles)
                .unwrap_err()
                .key,
            "dash.callback[0].role"
        );
        assert_eq!(
            CallbackRules::from_config(&cfg("{bad", "App.Read"), &roles)
                .unwrap_err()
                .key,
            "dash.callback[0].output"
        );
    }
}
