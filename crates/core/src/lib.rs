//! # aadgate-core
//!
//! The relying-party core of aadgate: configuration, OpenID Connect discovery
//! and Microsoft Entra ID rules, signing keys, ID-token validation, server-side
//! sessions and role policy. It contains no HTTP server: the `aadgate` crate
//! puts it behind tower/axum middleware, and the `aadgate` binary behind a
//! reverse proxy.

#![deny(missing_docs)]

pub mod client_auth;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod dash;
pub mod entra;
pub mod error;
pub mod flow;
pub mod hosts;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod paths;
pub mod policy;
pub mod provider;
pub mod session;
pub mod token;

pub use config::{Config, ProxySettings, Settings};
pub use error::{ConfigError, ProviderError, TokenError};
pub use identity::Identity;
pub use policy::{Policy, Requirement};
pub use provider::Provider;
pub use session::{Session, SessionStore, Tokens};
