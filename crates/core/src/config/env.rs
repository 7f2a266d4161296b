//! The environment overlay: every key can be set as `AADGATE_<SECTION>_<KEY>`
//! or, at the top level, `AADGATE_<KEY>`, so secrets never need to be in
//! the file and containers are configured the way they usually are.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_reflection::{ContainerFormat, Format, Named, Tracer, TracerConfig};

use crate::error::ConfigError;

/// How an environment value is read: decided by the key's type in the
/// configuration structs ([`super::Config`] and its sections), so a key added
/// there can be set from the environment with nothing else to keep in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Split on commas, or read as a TOML array when it starts with `[`.
    List,
    Bool,
    Int,
    Text,
    /// A table or a list of tables (`[[route]]`): only in the file.
    FileOnly,
}

/// The sections (`AADGATE_<SECTION>_<KEY>`) and every key's [`Kind`], traced
/// once from the serde structs (serde-reflection walks their `Deserialize`).
struct Schema {
    /// Section name -> its keys; `""` holds the top-level keys.
    sections: BTreeMap<String, BTreeMap<String, Kind>>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        // Enums first: the tracer learns their variants one at a time.
        tracer
            .trace_simple_type::<crate::policy::RouteAuth>()
            .expect("the configuration structs are plain serde structs");
        tracer
            .trace_simple_type::<super::Config>()
            .expect("the configuration structs are plain serde structs");
        let registry = tracer
            .registry()
            .expect("the configuration structs are plain serde structs");
        let fields = |container: &str| -> Vec<Named<Format>> {
            match registry.get(container) {
                Some(ContainerFormat::Struct(fields)) => fields.clone(),
                _ => Vec::new(),
            }
        };
        let mut sections = BTreeMap::new();
        let mut top = BTreeMap::new();
        for field in fields("Config") {
            match section_type(&field.value) {
                Some(name) => {
                    let keys = fields(name)
                        .iter()
                        .map(|f| (f.name.clone(), kind(&f.value)))
                        .collect();
                    sections.insert(field.name.clone(), keys);
                }
                None => {
                    top.insert(field.name.clone(), kind(&field.value));
                }
            }
        }
        sections.insert(String::new(), top);
        Schema { sections }
    })
}

/// Whether `AADGATE_…` names a configuration key.
fn is_key(variable: &str) -> bool {
    let Some(rest) = variable.strip_prefix("AADGATE_") else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    schema().sections.iter().any(|(section, keys)| {
        let key = if section.is_empty() {
            Some(lower.as_str())
        } else {
            lower.strip_prefix(&format!("{section}_"))
        };
        key.is_some_and(|k| keys.contains_key(k))
    })
}

/// The struct a top-level key holds, when it is a section (`[oidc]`).
fn section_type(format: &Format) -> Option<&str> {
    match format {
        Format::TypeName(name) => Some(name),
        Format::Option(inner) => section_type(inner),
        _ => None,
    }
}

fn kind(format: &Format) -> Kind {
    match format {
        Format::Option(inner) => kind(inner),
        Format::Bool => Kind::Bool,
        Format::U8
        | Format::U16
        | Format::U32
        | Format::U64
        | Format::I8
        | Format::I16
        | Format::I32
        | Format::I64 => Kind::Int,
        Format::Str => Kind::Text,
        Format::Seq(item) if kind(item) == Kind::Text => Kind::List,
        _ => Kind::FileOnly,
    }
}

/// Sets `oidc.client_assertion_file` to `file` (`AZURE_FEDERATED_TOKEN_FILE`)
/// unless the configuration already names a way to authenticate.
pub(super) fn default_assertion_file(
    table: &mut toml::Table,
    file: &str,
    azure_client_id: Option<&str>,
) {
    let oidc = table
        .entry("oidc")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(oidc) = oidc.as_table_mut() else {
        return;
    };
    let configured = [
        "client_secret",
        "client_certificate",
        "client_assertion_file",
    ]
    .iter()
    .any(|k| {
        oidc.get(*k)
            .and_then(toml::Value::as_str)
            .is_some_and(|v| !v.trim().is_empty())
    });
    // AKS injects the token of the pod's identity, named by AZURE_CLIENT_ID:
    // it signs in only the app registration of that ID.
    let same_app = azure_client_id.is_none_or(|id| {
        oidc.get("client_id")
            .and_then(toml::Value::as_str)
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(id.trim()))
    });
    if !configured && same_app {
        oidc.insert(
            "client_assertion_file".to_owned(),
            toml::Value::String(file.to_owned()),
        );
    }
}

/// Applies one environment variable to the parsed file, when it is one of
/// aadgate's (`AADGATE_LOG` and unknown names are left alone).
pub(super) fn apply(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    // `AADGATE_SESSION_SECRET_FILE=/run/secrets/session`: the value is the
    // file's content (mounted secrets, as official container images do).
    if let Some(variable) = name.strip_suffix("_FILE")
        && variable.starts_with("AADGATE_")
        && is_key(variable)
    {
        // These keys hold paths already: reading the file into them would
        // put a private key where a path belongs (and into error messages).
        const PATHS: [&str; 3] = [
            "AADGATE_OIDC_CLIENT_CERTIFICATE",
            "AADGATE_OIDC_CLIENT_KEY",
            "AADGATE_OIDC_CLIENT_ASSERTION",
        ];
        if PATHS.contains(&variable) {
            return Err(ConfigError::new(name, "names a key that is a path already")
                .with_fix(format!("set {variable} to the file's path instead")));
        }
        let content = std::fs::read_to_string(value).map_err(|e| {
            ConfigError::new(name, format!("cannot read {value:?}: {e}"))
                .with_fix("mount the secret file at that path, or unset the variable")
        })?;
        return apply(table, variable, content.trim_end_matches(['\n', '\r']));
    }
    let Some(rest) = name.strip_prefix("AADGATE_") else {
        return Ok(());
    };
    let lower = rest.to_ascii_lowercase();
    let schema = schema();
    // The longest section name that prefixes it (none is a prefix of
    // another today; longest-first keeps it so if one ever is).
    let section = schema
        .sections
        .keys()
        .filter(|s| !s.is_empty() && lower.starts_with(&format!("{s}_")))
        .max_by_key(|s| s.len());
    let (section, key) = match section {
        Some(s) => (Some(s.as_str()), lower[s.len() + 1..].to_owned()),
        None => (None, lower),
    };
    let kind = schema.sections[section.unwrap_or("")].get(&key).copied();
    let kind = match (section, kind) {
        // Not ours (e.g. AADGATE_LOG): ignore.
        (None, None) => return Ok(()),
        // A mistyped key of a section: kept, so the file's reader names it.
        (Some(_), None) => Kind::Text,
        (_, Some(Kind::FileOnly)) => {
            return Err(ConfigError::new(name, "cannot be set from the environment")
                .with_fix("write it in the configuration file"));
        }
        (_, Some(k)) => k,
    };
    let dotted = match section {
        Some(s) => format!("{s}.{key}"),
        None => key.clone(),
    };
    let parsed = if kind == Kind::List {
        if value.trim_start().starts_with('[') {
            let wrapped: toml::Table = format!("v = {value}").parse().map_err(|_| {
                ConfigError::new(name, "is not a TOML array")
                    .with_fix("use comma-separated values, e.g. App.Read,App.Write")
            })?;
            wrapped
                .get("v")
                .cloned()
                .unwrap_or(toml::Value::Array(vec![]))
        } else {
            toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            )
        }
    } else if kind == Kind::Bool {
        toml::Value::Boolean(match value {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" | "" => false,
            _ => {
                return Err(
                    ConfigError::new(name, format!("{value:?} is not a boolean"))
                        .with_fix("use true or false"),
                );
            }
        })
    } else if kind == Kind::Int {
        toml::Value::Integer(value.parse().map_err(|_| {
            ConfigError::new(name, format!("{value:?} is not a whole number")).with_fix(
                if dotted.ends_with("_secs") {
                    "use a number of seconds"
                } else {
                    "use a whole number, e.g. 2"
                },
            )
        })?)
    } else {
        toml::Value::String(value.to_owned())
    };
    let target = match section {
        Some(s) => table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| {
                ConfigError::new(s, "is not a table").with_fix(format!("write it as [{s}]"))
            })?,
        None => table,
    };
    target.insert(key, parsed);
    Ok(())
}

/// The environment variable that sets a dotted key:
/// `oidc.client_id` → `AADGATE_OIDC_CLIENT_ID`.
pub(super) fn variable(key: &str) -> String {
    if key.is_empty() {
        return "(environment)".to_owned();
    }
    format!("AADGATE_{}", key.replace('.', "_").to_ascii_uppercase())
}
