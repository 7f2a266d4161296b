//! Role rules for individual Plotly Dash callbacks.
//!
//! Every server-side Dash callback is a `POST …/_dash-update-component` whose
//! JSON body names the callback twice:
//!
//! - `output`, a string such as `"write-result.children"` or
//!   `"..a.children...write-result.children.."`, is the key Dash looks the
//!   callback up by (`Dash._prepare_callback`: `callback_map[body["output"]]`).
//!   It decides **which function runs**.
//! - `outputs`, one `{id, property}` or a list of them (nested lists for
//!   `ALL` wildcards), names the concrete components written. Dash only
//!   checks that each entry given matches the declared output
//!   (`_validate.validate_output_spec`); an empty list is not checked at all.
//!
//! aadgate therefore decides on both, in the way Dash reads them: the
//! declared outputs parsed from `output`, and every concrete output id in
//! `outputs`, compared with Python's equality (`1 == 1.0 == True`). It
//! refuses a body whose `outputs` do not account for every output `output`
//! declares (so no empty list can stand in for an output), whose entries do
//! not match their declared output, or that Python and aadgate could read
//! differently (duplicate keys, non-finite numbers, encodings other than
//! UTF-8). A rule names an output component id; when it matches, the rule's
//! role is required. Pattern-matching ids (`{"type": "row", "index": 3}`)
//! are matched by a rule whose `output` is a JSON object: every key/value of
//! the rule must appear in the id; a declared `ALL` wildcard matches any
//! value, since such a callback writes every matching component.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ConfigError;
use crate::policy::{Policy, Requirement};

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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashCallbackConfig {
    /// Output component id (`"write-result"`), or a JSON object for
    /// pattern-matching ids (`'{"type": "row"}'`).
    pub output: String,
    /// At least this role of `authz.roles` (or a higher one).
    #[serde(default)]
    pub role: Option<String>,
    /// Any one of these app roles, as for a `[[route]]`: instead of `role`.
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Id(String),
    Pattern(Map<String, Value>),
}

impl Matcher {
    /// Whether the rule names this id. `declared`: the id comes from the
    /// callback's declaration (the `output` string), where `["ALL"]` is
    /// Dash's wildcard for "every such component".
    fn matches(&self, id: &Value, declared: bool) -> bool {
        match (self, id) {
            (Matcher::Id(want), Value::String(got)) => want == got,
            (Matcher::Pattern(want), Value::Object(got)) => want.iter().all(|(k, v)| {
                got.get(k)
                    .is_some_and(|g| py_eq(v, g) || (declared && wildcard(g) == Some("ALL")))
            }),
            _ => false,
        }
    }
}

/// Checked callback rules.
#[derive(Debug, Clone, Default)]
pub struct CallbackRules {
    rules: Vec<(Matcher, Requirement)>,
    /// Body limit.
    pub max_body_bytes: usize,
}

/// Why a callback request could not be judged (it is refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// Not JSON as both aadgate and Python read it, no `output`, or
    /// `outputs` that do not match `output`.
    #[error("callback body is not a Dash callback request aadgate can judge: {0}")]
    Unreadable(String),
}

fn unreadable(why: impl Into<String>) -> CallbackError {
    CallbackError::Unreadable(why.into())
}

impl CallbackRules {
    /// Builds the rules: a `role` must be in the policy's hierarchy; a
    /// `roles` list is kept in the policy.
    pub fn from_config(config: &DashConfig, policy: &mut Policy) -> Result<Self, ConfigError> {
        let mut rules = Vec::new();
        for (i, r) in config.callback.iter().enumerate() {
            let requirement = match (&r.role, r.roles.is_empty()) {
                (Some(role), true) => policy.at_least(role, &format!("dash.callback[{i}].role"))?,
                (None, false) => policy.any_of(&r.roles, &format!("dash.callback[{i}].roles"))?,
                (Some(_), false) => {
                    return Err(ConfigError::new(format!("dash.callback[{i}]"), "has both `role` and `roles`")
                        .with_fix("use `role` for that role or higher, or `roles = [...]` for any one of a list"));
                }
                (None, true) => {
                    return Err(ConfigError::new(format!("dash.callback[{i}].role"), "is missing")
                        .with_fix("name the role the callback needs: role = \"App.Write\" (or higher), or roles = [...] (any one)"));
                }
            };
            let trimmed = r.output.trim();
            let matcher = if trimmed.starts_with('{') {
                match strict_json(trimmed.as_bytes()) {
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
            rules.push((matcher, requirement));
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

    /// What the matching rules require, all of it: the highest role of the
    /// hierarchy any of them names, and each role list; empty when no rule
    /// matches. Errors are refusals: the body is not something aadgate can
    /// be sure Dash reads the same way.
    pub fn required(&self, body: &[u8]) -> Result<Vec<Requirement>, CallbackError> {
        let request = CallbackRequest::parse(body)?;
        let mut highest: Option<usize> = None;
        let mut lists = Vec::new();
        for (m, requirement) in &self.rules {
            let hit = request.declared.iter().any(|d| m.matches(&d.id, true))
                || request.concrete.iter().any(|id| m.matches(id, false));
            if !hit {
                continue;
            }
            match *requirement {
                Requirement::SignedIn(Some(i)) => highest = Some(highest.map_or(i, |h| h.max(i))),
                r @ Requirement::AnyRole(_) if !lists.contains(&r) => lists.push(r),
                _ => {}
            }
        }
        Ok(highest
            .map(|i| Requirement::SignedIn(Some(i)))
            .into_iter()
            .chain(lists)
            .collect())
    }
}

/// A callback request as Dash will execute it.
#[derive(Debug)]
struct CallbackRequest {
    /// The outputs the callback was declared with (from `output`); empty for
    /// a callback without outputs.
    declared: Vec<Declared>,
    /// Every concrete output id in `outputs`.
    concrete: Vec<Value>,
}

#[derive(Debug)]
struct Declared {
    id: Value,
    property: String,
}

impl CallbackRequest {
    fn parse(body: &[u8]) -> Result<Self, CallbackError> {
        let v = strict_json(body)?;
        let Value::Object(mut body) = v else {
            return Err(unreadable("the body is not a JSON object"));
        };
        let Some(Value::String(output)) = body.remove("output") else {
            return Err(unreadable("no `output` string"));
        };
        let (declared, multi) = parse_output(&output)?;
        if declared.is_empty() {
            // A callback without outputs (Dash ≥ 2.17): Dash ignores `outputs`.
            return Ok(Self {
                declared,
                concrete: Vec::new(),
            });
        }
        let outputs = body
            .remove("outputs")
            .ok_or_else(|| unreadable("no `outputs`"))?;
        let specs: Vec<Value> = match (multi, outputs) {
            (true, Value::Array(items)) if items.len() == declared.len() => items,
            (true, _) => {
                return Err(unreadable(
                    "`outputs` is not a list with one entry per output `output` declares",
                ));
            }
            (false, one) => vec![one],
        };
        let mut concrete = Vec::new();
        for (decl, spec) in declared.iter().zip(specs) {
            let leaves = match spec {
                Value::Array(items) => items,
                obj @ Value::Object(_) => vec![obj],
                _ => return Err(unreadable("an output that is not an object")),
            };
            if leaves.is_empty() && !has_all_wildcard(&decl.id) {
                return Err(unreadable(format!(
                    "`outputs` leaves out the declared output {}",
                    decl.property
                )));
            }
            for leaf in leaves {
                let Value::Object(mut leaf) = leaf else {
                    return Err(unreadable("an output that is not an object"));
                };
                let (Some(id), Some(Value::String(property))) =
                    (leaf.remove("id"), leaf.remove("property"))
                else {
                    return Err(unreadable("an output without id or property"));
                };
                if clean_property(&property) != clean_property(&decl.property)
                    || !id_matches_declared(&decl.id, &id)
                {
                    return Err(unreadable("`outputs` do not match `output`"));
                }
                concrete.push(id);
            }
        }
        concrete.extend(match_instances(&declared, &body));
        Ok(Self { declared, concrete })
    }
}

/// For outputs declared with `MATCH`, the instances the inputs, state and
/// `changedPropIds` name. Dash does not check that a request's `MATCH`
/// values agree between `outputs`, `inputs` and `changedPropIds` (its
/// renderer always sends them alike), and the callback may act on any of
/// them (`ctx.triggered_id` comes from `changedPropIds`), so each id there
/// carrying a `MATCH` key yields the output id with that value too.
fn match_instances(declared: &[Declared], body: &Map<String, Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for d in declared {
        let Value::Object(id) = &d.id else { continue };
        let keys: Vec<&String> = id
            .iter()
            .filter(|(_, v)| wildcard(v) == Some("MATCH"))
            .map(|(k, _)| k)
            .collect();
        if keys.is_empty() {
            continue;
        }
        let entries = ["inputs", "state"]
            .into_iter()
            .filter_map(|section| body.get(section).and_then(Value::as_array))
            .flatten()
            .filter_map(|entry| entry.get("id").cloned());
        // `changedPropIds` (`"<id>.<property>"`) is what Dash builds
        // `ctx.triggered` and `ctx.triggered_id` from.
        let triggered = body
            .get("changedPropIds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|prop_id| prop_id.rsplit_once('.'))
            .filter(|(id, _)| id.starts_with('{'))
            .filter_map(|(id, _)| strict_json(id.as_bytes()).ok());
        for given in entries.chain(triggered) {
            let Value::Object(given) = given else {
                continue;
            };
            let mut instance = id.clone();
            let mut named = false;
            for k in &keys {
                if let Some(v) = given.get(*k) {
                    instance.insert((*k).clone(), v.clone());
                    named = true;
                }
            }
            if named {
                out.push(Value::Object(instance));
            }
        }
    }
    out
}

/// Dash's `clean_property_name`: `allow_duplicate` adds `@<hash>`.
fn clean_property(p: &str) -> &str {
    p.split('@').next().unwrap_or(p)
}

/// Parses `output` as `dash._utils.create_callback_id` writes it: one
/// `<id>.<property>`, or `..<id>.<prop>...<id>.<prop>..` for several, with
/// dots inside ids escaped as `\.` and dict ids as sorted-key JSON. A string
/// without any dot is the input hash of a callback without outputs.
fn parse_output(output: &str) -> Result<(Vec<Declared>, bool), CallbackError> {
    if output.len() >= 4 && output.starts_with("..") && output.ends_with("..") {
        let inner = &output[2..output.len() - 2];
        let declared = inner
            .split("...")
            .map(parse_one_output)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok((declared, true));
    }
    if !output.contains('.') {
        return Ok((Vec::new(), false));
    }
    Ok((vec![parse_one_output(output)?], false))
}

fn parse_one_output(s: &str) -> Result<Declared, CallbackError> {
    let Some((escaped, property)) = s.rsplit_once('.') else {
        return Err(unreadable("an `output` entry without a property"));
    };
    if escaped.is_empty() || property.is_empty() {
        return Err(unreadable("an `output` entry without id or property"));
    }
    let id = escaped.replace("\\.", ".");
    let id = if id.starts_with('{') {
        match strict_json(id.as_bytes())? {
            obj @ Value::Object(_) => obj,
            _ => return Err(unreadable("a pattern id in `output` that is not an object")),
        }
    } else {
        Value::String(id)
    };
    Ok(Declared {
        id,
        property: property.to_owned(),
    })
}

/// Dash serialises wildcards in declared ids as `["MATCH"]`, `["ALL"]`,
/// `["ALLSMALLER"]` (lists are not allowed as id values otherwise).
fn wildcard(v: &Value) -> Option<&str> {
    match v {
        Value::Array(a) if a.len() == 1 => match a[0].as_str() {
            Some(w @ ("MATCH" | "ALL" | "ALLSMALLER")) => Some(w),
            _ => None,
        },
        _ => None,
    }
}

fn has_all_wildcard(id: &Value) -> bool {
    id.as_object().is_some_and(|o| {
        o.values()
            .any(|v| matches!(wildcard(v), Some("ALL" | "ALLSMALLER")))
    })
}

/// `DashDependency._id_matches` for a declared id against a requested one:
/// strings equal; dicts with the same keys whose values are Python-equal or
/// declared as a wildcard.
fn id_matches_declared(declared: &Value, got: &Value) -> bool {
    match (declared, got) {
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter().all(|(k, v)| {
                    b.get(k)
                        .is_some_and(|g| wildcard(v).is_some() || py_eq(v, g))
                })
        }
        _ => false,
    }
}

/// A JSON value as a Python number, when it is one (`bool` is an `int`).
enum PyNum {
    Int(i128),
    Float(f64),
}

fn py_num(v: &Value) -> Option<PyNum> {
    match v {
        Value::Bool(b) => Some(PyNum::Int(i128::from(*b))),
        Value::Number(n) => n
            .as_i64()
            .map(|i| PyNum::Int(i128::from(i)))
            .or_else(|| n.as_u64().map(|u| PyNum::Int(i128::from(u))))
            .or_else(|| n.as_f64().map(PyNum::Float)),
        _ => None,
    }
}

/// Python's `==` on values `json.loads` produced: `1 == 1.0 == True`,
/// `0 == False`, exact comparison between integers and floats, lists and
/// dicts compared element by element.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (py_num(a), py_num(b)) {
        return match (x, y) {
            (PyNum::Int(i), PyNum::Int(j)) => i == j,
            (PyNum::Float(f), PyNum::Float(g)) => f == g,
            (PyNum::Int(i), PyNum::Float(f)) | (PyNum::Float(f), PyNum::Int(i)) => {
                // Exact, as Python compares them: an integral float within
                // i128's range converts without loss.
                f.is_finite() && f.fract() == 0.0 && f.abs() < 1.7e38 && f as i128 == i
            }
        };
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => false,
    }
}

/// Parses JSON, refusing what Python's `json` would read differently or
/// what aadgate cannot be sure about: duplicate object keys (Python keeps
/// the last, a reviewer the first), and anything `serde_json` refuses
/// (`NaN`, `Infinity`, lone surrogates, a byte-order mark, UTF-16) although
/// Python accepts it.
pub fn strict_json(bytes: &[u8]) -> Result<Value, CallbackError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue::deserialize(&mut de).map_err(|e| unreadable(e.to_string()))?;
    de.end().map_err(|e| unreadable(e.to_string()))?;
    Ok(v.0)
}

/// `serde_json::Value` with duplicate keys refused. Written by hand because
/// `serde_json` keeps the last duplicate silently and has no option to refuse.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// Whether a request path is Dash's callback endpoint.
pub fn is_callback_path(path: &str) -> bool {
    path.ends_with("/_dash-update-component")
}

/// Whether a request path is a Dash endpoint that runs callbacks without a
/// `_dash-update-component` body to inspect: WebSocket callbacks
/// (`…/_dash-ws-callback`) and Dash's MCP server (`…/_mcp`, which exposes
/// callbacks as tools). Refused while callback rules exist.
pub fn is_uninspectable_callback_path(path: &str) -> bool {
    path.ends_with("/_dash-ws-callback") || path.ends_with("/_mcp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> CallbackRules {
        let cfg = DashConfig {
            callback: vec![
                DashCallbackConfig {
                    output: "write-result".into(),
                    role: Some("App.Write".into()),
                    ..DashCallbackConfig::default()
                },
                DashCallbackConfig {
                    output: r#"{"type": "admin-row"}"#.into(),
                    role: Some("App.Admin".into()),
                    ..DashCallbackConfig::default()
                },
                DashCallbackConfig {
                    output: r#"{"type": "row", "index": 1}"#.into(),
                    role: Some("App.Write".into()),
                    ..DashCallbackConfig::default()
                },
            ],
            ..DashConfig::default()
        };
        CallbackRules::from_config(&cfg, &mut ladder()).unwrap()
    }

    fn ladder() -> Policy {
        let authz = crate::policy::AuthzConfig {
            roles: ["App.Read", "App.Write", "App.Admin"]
                .map(String::from)
                .to_vec(),
            ..crate::policy::AuthzConfig::default()
        };
        Policy::from_config(&authz, &[]).unwrap()
    }

    /// The hierarchy's role index the rules need (they name no lists).
    fn role(body: &str) -> Result<Option<usize>, CallbackError> {
        let needed = rules().required(body.as_bytes())?;
        Ok(match needed.as_slice() {
            [] => None,
            [Requirement::SignedIn(i)] => *i,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn matches_single_multiple_and_pattern_outputs() {
        let one = r#"{"output":"write-result.children","outputs":{"id":"write-result","property":"children"},"inputs":[]}"#;
        assert_eq!(role(one).unwrap(), Some(1));
        let many = r#"{"output":"..a.children...write-result.children..","outputs":[{"id":"a","property":"children"},{"id":"write-result","property":"children"}]}"#;
        assert_eq!(role(many).unwrap(), Some(1));
        let pattern = r#"{"output":"{\"index\":[\"MATCH\"],\"type\":\"admin-row\"}.value","outputs":{"id":{"type":"admin-row","index":3},"property":"value"}}"#;
        assert_eq!(role(pattern).unwrap(), Some(2));
        let wildcard = r#"{"output":"..{\"index\":[\"ALL\"],\"type\":\"admin-row\"}.value...x.children..","outputs":[[{"id":{"type":"admin-row","index":1},"property":"value"},{"id":{"type":"admin-row","index":2},"property":"value"}],{"id":"x","property":"children"}]}"#;
        assert_eq!(role(wildcard).unwrap(), Some(2));
        let other =
            r#"{"output":"sales-chart.figure","outputs":{"id":"sales-chart","property":"figure"}}"#;
        assert_eq!(role(other).unwrap(), None);
        // An id that merely contains the rule's id does not match.
        let near = r#"{"output":"write-result-2.children","outputs":{"id":"write-result-2","property":"children"}}"#;
        assert_eq!(role(near).unwrap(), None);
        // `allow_duplicate` outputs carry an @hash suffix in `output`.
        let dup = r#"{"output":"write-result.children@0a1b","outputs":{"id":"write-result","property":"children@0a1b"}}"#;
        assert_eq!(role(dup).unwrap(), Some(1));
        // Dots inside ids are escaped in `output`.
        let dotted = r#"{"output":"a\\.b.children","outputs":{"id":"a.b","property":"children"}}"#;
        assert_eq!(role(dotted).unwrap(), None);
    }

    #[test]
    fn the_declared_output_decides_even_when_outputs_are_empty() {
        // Dash runs the callback `output` names; with `outputs` empty it checks nothing.
        for outputs in ["[]", "[[]]", "[[], []]"] {
            let body = format!(r#"{{"output":"write-result.children","outputs":{outputs}}}"#);
            assert!(role(&body).is_err(), "{body}");
        }
        let multi =
            r#"{"output":"..write-result.children...data-version.data..","outputs":[[],[]]}"#;
        assert!(role(multi).is_err());
        let missing = r#"{"output":"write-result.children"}"#;
        assert!(role(missing).is_err());
        // An empty list where the declaration has an ALL wildcard is legitimate, and still protected.
        let all_empty =
            r#"{"output":"{\"index\":[\"ALL\"],\"type\":\"admin-row\"}.value","outputs":[]}"#;
        assert_eq!(role(all_empty).unwrap(), Some(2));
        // A declared ALL covers every index, including a pinned one.
        let all_rows = r#"{"output":"{\"index\":[\"ALL\"],\"type\":\"row\"}.value","outputs":[]}"#;
        assert_eq!(role(all_rows).unwrap(), Some(1));
    }

    #[test]
    fn output_and_outputs_must_agree() {
        for body in [
            // The write callback named, another component declared in outputs.
            r#"{"output":"write-result.children","outputs":{"id":"sales-chart","property":"figure"}}"#,
            r#"{"output":"write-result.children","outputs":{"id":"write-result","property":"figure"}}"#,
            r#"{"output":"..write-result.children...x.data..","outputs":[{"id":"write-result","property":"children"}]}"#,
            r#"{"output":"..write-result.children...x.data..","outputs":{"id":"write-result","property":"children"}}"#,
            r#"{"output":"write-result.children","outputs":[[{"id":"write-result","property":"children"}]]}"#,
            r#"{"output":"{\"index\":[\"MATCH\"],\"type\":\"row\"}.value","outputs":{"id":{"type":"row"},"property":"value"}}"#,
            r#"{"output":"{\"index\":[\"MATCH\"],\"type\":\"row\"}.value","outputs":[]}"#,
            r#"{"output":"{\"index\":[\"MATCH\"],\"type\":\"row\"}.value","outputs":{"id":"row","property":"value"}}"#,
        ] {
            assert!(role(body).is_err(), "{body}");
        }
    }

    #[test]
    fn a_match_callback_is_judged_on_the_instance_its_inputs_name_too() {
        // Outputs name row 2, the triggering input row 1: the callback may act on row 1.
        let body = r#"{"output":"{\"index\":[\"MATCH\"],\"type\":\"row\"}.value","outputs":{"id":{"type":"row","index":2},"property":"value"},"inputs":[{"id":{"type":"row-button","index":1},"property":"n_clicks","value":1}]}"#;
        assert_eq!(role(body).unwrap(), Some(1));
        let consistent = body.replace("\"index\":1}", "\"index\":2}");
        assert_eq!(role(&consistent).unwrap(), None);
    }

    #[test]
    fn a_match_callback_is_judged_on_the_instance_changed_prop_ids_name() {
        let body = r#"{"output":"{\"index\":[\"MATCH\"],\"type\":\"row\"}.value","outputs":{"id":{"type":"row","index":2},"property":"value"},"inputs":[{"id":{"type":"row-button","index":2},"property":"n_clicks","value":1}],"changedPropIds":["{\"index\":1,\"type\":\"row-button\"}.n_clicks"]}"#;
        assert_eq!(role(body).unwrap(), Some(1));
    }

    #[test]
    fn decimals_parse_correctly_rounded_as_python_parses_them() {
        // Each is exactly 1.0 to Python; a parser that rounds the wrong way
        // would read 1.0000000000000002 and miss the rule for index 1.
        for index in [
            "1.0000000000000001110223024625156",
            "1.00000000000000011102230246251565",
            "10000000000000001110e-19",
            "100000000000000011102230246251565e-32",
        ] {
            let body = format!(
                r#"{{"output":"{{\"index\":[\"MATCH\"],\"type\":\"row\"}}.value","outputs":{{"id":{{"type":"row","index":{index}}},"property":"value"}}}}"#
            );
            assert_eq!(role(&body).unwrap(), Some(1), "{index}");
        }
    }

    #[test]
    fn numbers_compare_as_python_compares_them() {
        for index in ["1", "1.0", "true", "1e0", "10e-1", "1.00000000000000001"] {
            let body = format!(
                r#"{{"output":"{{\"index\":[\"MATCH\"],\"type\":\"row\"}}.value","outputs":{{"id":{{"type":"row","index":{index}}},"property":"value"}}}}"#
            );
            assert_eq!(role(&body).unwrap(), Some(1), "{index}");
        }
        for index in ["2", "0", "false", "\"1\"", "1.5", "null", "[1]"] {
            let body = format!(
                r#"{{"output":"{{\"index\":[\"MATCH\"],\"type\":\"row\"}}.value","outputs":{{"id":{{"type":"row","index":{index}}},"property":"value"}}}}"#
            );
            assert_eq!(role(&body).unwrap(), None, "{index}");
        }
        assert!(py_eq(
            &Value::from(9_007_199_254_740_993_u64),
            &Value::from(9_007_199_254_740_993_i64)
        ));
        assert!(!py_eq(
            &Value::from(9_007_199_254_740_993_u64),
            &serde_json::json!(9_007_199_254_740_992.0)
        ));
    }

    #[test]
    fn bodies_python_could_read_differently_are_refused() {
        for bad in [
            &b"not json"[..],
            b"{}",
            b"[]",
            br#"{"outputs": {"id":"write-result","property":"children"}}"#,
            br#"{"output": 3, "outputs": {"id":"write-result","property":"children"}}"#,
            br#"{"output":"x.children","outputs":{"id":"x","property":"children"},"outputs":[]}"#,
            br#"{"output":"x.children","output":"write-result.children","outputs":{"id":"x","property":"children"}}"#,
            br#"{"output":"x.children","outputs":{"id":"x","id":"write-result","property":"children"}}"#,
            br#"{"output":"x.children","outputs":{"id":"x","property":"children"},"inputs":[{"value":NaN}]}"#,
            b"\xef\xbb\xbf{\"output\":\"x.children\",\"outputs\":{\"id\":\"x\",\"property\":\"children\"}}",
            br#"{"output":"x.children","outputs":{"id":"x","property":"children"}} trailing"#,
            br#"{"output":"{bad.value","outputs":{"id":"x","property":"value"}}"#,
            br#"{"output":".children","outputs":{"id":"","property":"children"}}"#,
        ] {
            assert!(
                rules().required(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn callbacks_without_outputs_match_no_rule() {
        let body = r#"{"output":"3b1f0d5e9a0c4b7e8f2a6d1c5e9b3a7f0d4c8e2b6a1f5d9c3e7b0a4f8d2c6e1a","outputs":[],"inputs":[]}"#;
        assert_eq!(role(body).unwrap(), None);
    }

    #[test]
    fn bad_rules_fail_at_start_up() {
        let cfg = |output: &str, role: Option<&str>, roles: &[&str]| DashConfig {
            callback: vec![DashCallbackConfig {
                output: output.into(),
                role: role.map(Into::into),
                roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            }],
            ..DashConfig::default()
        };
        for (bad, key) in [
            (cfg("x", Some("App.Nope"), &[]), "dash.callback[0].role"),
            (
                cfg("{bad", Some("App.Read"), &[]),
                "dash.callback[0].output",
            ),
            (cfg("x", None, &[]), "dash.callback[0].role"),
            (cfg("x", Some("App.Read"), &["X"]), "dash.callback[0]"),
            (cfg("x", None, &["X", "X"]), "dash.callback[0].roles"),
        ] {
            assert_eq!(
                CallbackRules::from_config(&bad, &mut ladder())
                    .unwrap_err()
                    .key,
                key
            );
        }
    }

    #[test]
    fn role_lists_are_required_beside_the_highest_role() {
        let mut policy = ladder();
        let cfg = DashConfig {
            callback: vec![
                DashCallbackConfig {
                    output: "export".into(),
                    roles: vec!["Reports.Export".into(), "App.Admin".into()],
                    ..DashCallbackConfig::default()
                },
                DashCallbackConfig {
                    output: "export".into(),
                    role: Some("App.Write".into()),
                    ..DashCallbackConfig::default()
                },
            ],
            ..DashConfig::default()
        };
        let rules = CallbackRules::from_config(&cfg, &mut policy).unwrap();
        let body = r#"{"output":"export.data","outputs":{"id":"export","property":"data"}}"#;
        let needed = rules.required(body.as_bytes()).unwrap();
        assert_eq!(needed.len(), 2, "{needed:?}");
        let may = |roles: &[&str]| {
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            needed.iter().all(|r| policy.allows(*r, &roles))
        };
        assert!(may(&["App.Admin"]));
        assert!(may(&["App.Write", "Reports.Export"]));
        assert!(!may(&["Reports.Export"]), "App.Write is needed too");
        assert!(!may(&["App.Write"]), "and one of the list");
    }
}
