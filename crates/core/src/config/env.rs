//! The environment overlay: every key can be set as `AADGATE_<SECTION>_<KEY>`
//! or, at the top level, `AADGATE_<KEY>`, so secrets never need to be in
//! the file and containers are configured the way they usually are.

use crate::error::ConfigError;

/// Keys that hold lists: an environment value for them is split on commas
/// (or parsed as a TOML array when it starts with `[`).
const LIST_KEYS: &[&str] = &[
    "trusted_proxies",
    "oidc.scopes",
    "oidc.allowed_tenants",
    "oidc.allowed_algorithms",
    "authz.roles",
];
const BOOL_KEYS: &[&str] = &["pass_access_token", "dash.session_script"];
const INT_KEYS: &[&str] = &[
    "oidc.clock_skew_secs",
    "session.idle_timeout_secs",
    "session.lifetime_secs",
    "dash.max_body_bytes",
    "workers",
    "session.revalidate_secs",
    "session.revalidate_grace_secs",
    "limits.first_byte_secs",
    "limits.header_secs",
    "limits.keepalive_secs",
    "limits.body_idle_secs",
    "limits.request_secs",
    "limits.upstream_header_secs",
    "limits.max_connections",
    "limits.upstream_max_connections",
    "limits.signin_per_minute",
];
const SECTIONS: &[&str] = &["oidc", "session", "authz", "dash", "limits"];

/// Applies one environment variable to the parsed file, when it is one of
/// aadgate's (`AADGATE_LOG` and unknown names are left alone).
pub(super) fn apply(table: &mut toml::Table, name: &str, value: &str) -> Result<(), ConfigError> {
    let Some(rest) = name.strip_prefix("AADGATE_") else {
        return Ok(());
    };
    let lower = rest.to_ascii_lowercase();
    let (section, key) = match SECTIONS
        .iter()
        .find(|s| lower.starts_with(&format!("{s}_")))
    {
        Some(s) => (Some(*s), lower[s.len() + 1..].to_owned()),
        None => (None, lower),
    };
    let dotted = match section {
        Some(s) => format!("{s}.{key}"),
        None => key.clone(),
    };
    let known_top = [
        "listen",
        "public_url",
        "upstream",
        "trusted_proxies",
        "pass_access_token",
        "workers",
    ];
    if section.is_none() && !known_top.contains(&key.as_str()) {
        // Not ours (e.g. AADGATE_LOG): ignore.
        return Ok(());
    }
    let parsed = if LIST_KEYS.contains(&dotted.as_str()) {
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
    } else if BOOL_KEYS.contains(&dotted.as_str()) {
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
    } else if INT_KEYS.contains(&dotted.as_str()) {
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
