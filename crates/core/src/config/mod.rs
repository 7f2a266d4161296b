//! Configuration: plain serde structs whose doc comments are the reference.
//!
//! - [`schema`]: the file's keys ([`Config`] and its sections; `[authz]`,
//!   `[[route]]`, `[dash]` and `[limits]` are defined next to the rules they
//!   configure, in [`crate::policy`], [`crate::dash`] and [`crate::limits`]);
//! - `env`: the `AADGATE_*` environment overlay;
//! - `validate`: checking every key and resolving defaults into the
//!   library's [`Settings`] and the proxy's [`ProxySettings`].
//!
//! A configuration is read from TOML and then overridden from the environment:
//! every key can be set as `AADGATE_<SECTION>_<KEY>` (for example
//! `AADGATE_OIDC_CLIENT_SECRET` or `AADGATE_SESSION_SECRET`), and top-level keys
//! as `AADGATE_<KEY>` (`AADGATE_UPSTREAM`). Secrets therefore never need to be
//! in the file.
//!
//! ```
//! use aadgate_core::config::Config;
//!
//! let toml = r#"
//! public_url = "http://127.0.0.1:4180"
//! upstream = "http://127.0.0.1:8050"
//!
//! [oidc]
//! tenant = "contoso.onmicrosoft.com"
//! client_id = "00000000-0000-0000-0000-000000000001"
//!
//! [session]
//! store = "memory"
//!
//! [authz]
//! roles = ["App.Read", "App.Write", "App.Admin"]
//!
//! [[route]]
//! path = "/admin"
//! role = "App.Admin"
//! "#;
//! let env = [
//!     ("AADGATE_OIDC_CLIENT_SECRET", "from-the-environment"),
//!     ("AADGATE_SESSION_SECRET", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
//! ];
//! let config = Config::from_toml_and_env(toml, env).unwrap();
//! assert_eq!(config.oidc.client_secret.as_deref(), Some("from-the-environment"));
//! let settings = config.validate().unwrap();
//! assert_eq!(settings.redirect_uri.as_str(), "http://127.0.0.1:4180/auth/callback");
//! let proxy = config.proxy_settings().unwrap();
//! assert_eq!(proxy.upstream.as_str(), "http://127.0.0.1:8050/");
//! ```

mod env;
pub mod schema;
mod settings;
mod validate;

pub use crate::dash::DashConfig;
pub use crate::limits::LimitsConfig;
pub use crate::policy::{AuthzConfig, RouteConfig};
pub use crate::session::StoreKind;
pub use schema::{Config, ForwardAuthConfig, OidcConfig, SessionConfig};
pub use settings::{AccessLog, HeaderFamilies, LogFormat, ProviderKind, ProxySettings, Settings};
pub use validate::is_loopback_url;

use serde::Deserialize as _;

use crate::error::ConfigError;

impl Config {
    /// Parses TOML text and applies `AADGATE_*` overrides from `env`
    /// (pass `std::env::vars()` in production, a list in tests).
    pub fn from_toml_and_env<I, K, V>(toml_text: &str, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let at = |e: &toml::de::Error| {
            e.span().map_or(String::new(), |span| {
                let before = &toml_text[..span.start.min(toml_text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            })
        };
        let mut table: toml::Table = toml_text.parse().map_err(|e: toml::de::Error| {
            ConfigError::new("(file)", format!("is not valid TOML: {}{}", at(&e), e.message()))
                .with_fix("correct the TOML at that line (strings in \"quotes\", one key per line, [sections] on their own line)")
        })?;
        // The file alone first, so that its mistakes are reported with their
        // line (a wrong key, a string where a number belongs).
        if let Err(e) = toml::from_str::<Config>(toml_text) {
            return Err(
                ConfigError::new("(file)", format!("{}{}", at(&e), e.message())).with_fix(
                    "see the configuration reference in README.md for the keys and their types",
                ),
            );
        }
        for (name, value) in env {
            env::apply(&mut table, name.as_ref(), value.as_ref())?;
        }
        Config::deserialize(toml::Value::Table(table)).map_err(|e| {
            let msg = e.message().to_owned();
            ConfigError::new("(environment)", msg).with_fix(
                "check the AADGATE_* variables against the configuration reference in README.md",
            )
        })
    }

    /// Reads a TOML file and applies overrides from the process environment.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
                .with_fix("pass the path of an existing TOML file")
        })?;
        Self::from_toml_and_env(&text, std::env::vars())
    }
}

#[cfg(test)]
mod tests;
