//! Reading a configuration: TOML files merged in order, then the
//! `AADGATE_*` environment overlay.
//!
//! - Files are merged as TOML tables, deeply: a later file's key replaces
//!   the same key of an earlier one, sections (`[oidc]`, `[session]`, …)
//!   are merged key by key, and arrays (`authz.roles`, `[[route]]`,
//!   `[[dash.callback]]`) are replaced as a whole, never appended to.
//! - The environment is applied last and wins over every file.
//! - With no file at all the configuration comes from the environment alone.
//!
//! Every mistake in a file is reported with the file's name, the line and
//! column and the line itself; a value of the wrong type also names its key.

use std::path::Path;

use super::{Config, env};
use crate::error::ConfigError;

/// Name of a TOML text given without a file (in error messages).
const INLINE: &str = "<toml>";

impl Config {
    /// Parses TOML text and applies `AADGATE_*` overrides from `env`
    /// (pass `std::env::vars()` in production, a list in tests).
    pub fn from_toml_and_env<I, K, V>(toml_text: &str, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self::from_files_and_env(&[(INLINE, toml_text)], env)
    }

    /// Merges several TOML texts in order, each given with the name its
    /// errors carry (its path), then applies `AADGATE_*` overrides from
    /// `env`. A later file overrides an earlier one key by key; arrays
    /// (`[[route]]`, `authz.roles`) are replaced whole. No file at all: the
    /// configuration is the environment's.
    ///
    /// ```
    /// use aadgate_core::config::Config;
    ///
    /// let base = "public_url = \"https://dash.contoso.com\"\n[oidc]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"base\"\n";
    /// let production = "[oidc]\nclient_id = \"production\"\n";
    /// let c = Config::from_files_and_env(
    ///     &[("base.toml", base), ("production.toml", production)],
    ///     [("AADGATE_OIDC_CLIENT_SECRET", "s")],
    /// )
    /// .unwrap();
    /// assert_eq!(c.oidc.client_id.as_deref(), Some("production"));
    /// assert_eq!(c.oidc.tenant.as_deref(), Some("contoso.onmicrosoft.com"));
    /// assert_eq!(c.oidc.client_secret.as_deref(), Some("s"));
    ///
    /// let e = Config::from_files_and_env(&[("base.toml", "[authz]\nroles = \"App.Read\"\n")], [("", "")])
    ///     .unwrap_err();
    /// assert_eq!(e.key, "authz.roles");
    /// assert!(e.problem.starts_with("in base.toml, line 2, column 9"), "{e}");
    /// ```
    pub fn from_files_and_env<I, K, V>(files: &[(&str, &str)], env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut table = toml::Table::new();
        for (name, text) in files {
            merge(&mut table, parse_file(name, text)?);
        }
        let (mut federated, mut azure_client_id) = (None, None);
        for (name, value) in env {
            match name.as_ref() {
                "AZURE_FEDERATED_TOKEN_FILE" => federated = Some(value.as_ref().to_owned()),
                "AZURE_CLIENT_ID" => azure_client_id = Some(value.as_ref().to_owned()),
                _ => {}
            }
            env::apply(&mut table, name.as_ref(), value.as_ref())?;
        }
        // AKS workload identity's token file signs the app in when nothing
        // else is configured to.
        if let Some(file) = federated.filter(|f| !f.is_empty()) {
            env::default_assertion_file(&mut table, &file, azure_client_id.as_deref());
        }
        // Each file was checked alone: what is wrong now came from the
        // environment.
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let key = key_of(e.path(), e.inner().message()).unwrap_or_default();
            ConfigError::new(env::variable(&key), e.inner().message()).with_fix(
                "check the AADGATE_* variables against the configuration reference in README.md",
            )
        })
    }

    /// Reads a TOML file and applies overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_files(&[path])
    }

    /// Reads TOML files, merged in order (later files override earlier
    /// ones, see [`Config::from_files_and_env`]), and applies overrides from
    /// the process environment. No path: the environment alone.
    pub fn load_files<P: AsRef<Path>>(paths: &[P]) -> Result<Self, ConfigError> {
        let texts = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                std::fs::read_to_string(p)
                    .map(|text| (p.display().to_string(), text))
                    .map_err(|e| {
                        ConfigError::new("--config", format!("cannot read {}: {e}", p.display()))
                            .with_fix("pass the path of an existing TOML file")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let files: Vec<(&str, &str)> = texts
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        Self::from_files_and_env(&files, std::env::vars())
    }
}

/// Parses one file and checks it alone against the schema, so that its
/// mistakes are reported with its name and line (every key has a default,
/// so a partial file is a valid one).
fn parse_file(name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    let syntax = |e: &toml::de::Error| {
        let at = Location::of(name, text, e.span());
        ConfigError::new(name, format!("is not valid TOML: {}{}", at.prefix(), e.message()))
            .with_fix("correct the TOML at that line (strings in \"quotes\", one key per line, [sections] on their own line)")
            .with_excerpt(at.excerpt)
    };
    let table: toml::Table = text.parse().map_err(|e| syntax(&e))?;
    let document = toml::de::Deserializer::parse(text).map_err(|e| syntax(&e))?;
    if let Err(e) = serde_path_to_error::deserialize::<_, Config>(document) {
        let at = Location::of(name, text, e.inner().span());
        let key = key_of(e.path(), e.inner().message()).unwrap_or_else(|| name.to_owned());
        return Err(ConfigError::new(
            key,
            format!("in {name}, {}{}", at.prefix(), e.inner().message()),
        )
        .with_fix("see the configuration reference in README.md for the keys and their types")
        .with_excerpt(at.excerpt));
    }
    Ok(table)
}

/// The dotted key an error is about: its path, plus the field a `missing
/// field` message names (an unknown field is already the path's last
/// part). `None` at the top.
fn key_of(path: &serde_path_to_error::Path, message: &str) -> Option<String> {
    let mut key = path.to_string();
    if key == "." {
        key.clear();
    }
    let field = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next());
    if let Some(field) = field.filter(|f| key.rsplit('.').next() != Some(*f)) {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
    }
    (!key.is_empty()).then_some(key)
}

/// Where in a file an error is: line and column (1-based, in characters),
/// and the excerpt shown under the message.
struct Location {
    line_column: Option<(usize, usize)>,
    excerpt: String,
}

impl Location {
    fn of(name: &str, text: &str, span: Option<std::ops::Range<usize>>) -> Self {
        let Some(span) = span else {
            return Self {
                line_column: None,
                excerpt: format!("  --> {name}"),
            };
        };
        let start = floor_char_boundary(text, span.start);
        let end = floor_char_boundary(text, span.end.max(start));
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let content = text[line_start..line_end].trim_end_matches('\r');
        let width = text[start..end.min(line_end)].chars().count().max(1);
        let gutter = " ".repeat(line.to_string().len());
        let excerpt = format!(
            "{gutter}--> {name}:{line}:{column}\n{gutter} |\n{line} | {content}\n{gutter} | {}{}",
            " ".repeat(column - 1),
            "^".repeat(width),
        );
        Self {
            line_column: Some((line, column)),
            excerpt,
        }
    }

    /// `line 3, column 9: ` (empty when the position is unknown).
    fn prefix(&self) -> String {
        self.line_column
            .map_or(String::new(), |(l, c)| format!("line {l}, column {c}: "))
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Merges `over` into `base`: tables key by key, everything else (arrays
/// included) replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
