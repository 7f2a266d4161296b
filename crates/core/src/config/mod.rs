//! Configuration: plain serde structs whose doc comments are the reference.
//!
//! - [`schema`]: the file's keys ([`Config`] and its sections; `[authz]`,
//!   `[[route]]`, `[dash]` and `[limits]` are defined next to the rules they
//!   configure, in [`crate::policy`], [`crate::dash`] and [`crate::limits`]);
//! - `load`: TOML files merged in order (a base file, then one per
//!   environment), then the environment overlay ([`Config::load_files`],
//!   [`Config::from_files_and_env`]);
//! - `env`: the `AADGATE_*` environment overlay;
//! - `validate`: checking every key and resolving defaults into the
//!   library's [`Settings`] and the proxy's [`ProxySettings`].
//!
//! A configuration is read from TOML (none, one or several files) and then
//! overridden from the environment:
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
mod load;
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

#[cfg(test)]
mod tests;
