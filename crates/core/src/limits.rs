//! `[limits]`: how long and how much a client or the app may hold the proxy.
//!
//! Every limit has a default that is safe in front of an ordinary dashboard;
//! each is a documented key so an operator can loosen it for a long upload
//! or a slow report, and tighten it on an exposed host.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// `[limits]`: timeouts and caps on connections, request bodies and sign-ins.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// A new connection that sends no byte for this long is closed, in
    /// seconds. Default 10.
    #[serde(default)]
    pub first_byte_secs: Option<u64>,
    /// A client has this long to send a request's headers once it has begun,
    /// in seconds. Default 30.
    #[serde(default)]
    pub header_secs: Option<u64>,
    /// A keep-alive connection with no request in progress is closed after
    /// this long, in seconds. Default 75 (nginx's `keepalive_timeout`).
    #[serde(default)]
    pub keepalive_secs: Option<u64>,
    /// The longest pause between two pieces of a request body, in seconds;
    /// a slower upload is ended with 408. Default 30.
    #[serde(default)]
    pub body_idle_secs: Option<u64>,
    /// A request body must be received whole within this long, in seconds
    /// (raise it for large uploads over slow links). Default 600.
    #[serde(default)]
    pub request_secs: Option<u64>,
    /// How long the app may take to answer with its response headers once
    /// the request has been sent to it, in seconds; then 504. Default 120.
    #[serde(default)]
    pub upstream_header_secs: Option<u64>,
    /// Client connections each worker keeps open at most. At the cap (or
    /// when the process runs out of file descriptors) the connection idle
    /// longest is closed to make room. Default: a share of the process's
    /// file-descriptor limit (`ulimit -n`), at most 10,000.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Connections each worker opens to the app at most; further requests
    /// wait for one to come free. Default 256.
    #[serde(default)]
    pub upstream_max_connections: Option<usize>,
    /// Sign-ins (`/auth/login` and `/auth/callback` requests) one client
    /// address may start per minute, with the same number as a burst;
    /// beyond it the client gets a 429 page. 0 turns the limit off.
    /// Default 120. The address is the connection's, or the one a
    /// `trusted_proxies` proxy reports.
    #[serde(default)]
    pub signin_per_minute: Option<u32>,
}

/// Default of the top-level `shutdown_timeout_secs`.
pub const DEFAULT_SHUTDOWN_SECS: u64 = 30;

/// `[limits]` resolved: what the proxy's connections and forwarding obey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`LimitsConfig::first_byte_secs`].
    pub first_byte: Duration,
    /// See [`LimitsConfig::header_secs`].
    pub header: Duration,
    /// See [`LimitsConfig::keepalive_secs`].
    pub keepalive: Duration,
    /// See [`LimitsConfig::body_idle_secs`].
    pub body_idle: Duration,
    /// See [`LimitsConfig::request_secs`].
    pub request: Duration,
    /// See [`LimitsConfig::upstream_header_secs`].
    pub upstream_header: Duration,
    /// See [`LimitsConfig::max_connections`]; `None`: derived from the
    /// file-descriptor limit by the proxy.
    pub max_connections: Option<usize>,
    /// See [`LimitsConfig::upstream_max_connections`].
    pub upstream_max_connections: usize,
    /// How long open requests may take to finish after a shutdown signal
    /// (the top-level `shutdown_timeout_secs`, set by
    /// [`crate::Config::proxy_settings`]; default 30 s).
    pub shutdown: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        LimitsConfig::default()
            .resolve()
            .expect("the defaults are valid")
    }
}

impl LimitsConfig {
    /// `signin_per_minute` with its default (a rule of the library's sign-in
    /// routes, not of the proxy's connections); 0: no limit.
    pub fn signin_per_minute(&self) -> u32 {
        self.signin_per_minute.unwrap_or(120)
    }

    /// Checks the keys and fills in defaults.
    pub fn resolve(&self) -> Result<Limits, ConfigError> {
        let secs = |key: &str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
            match v.unwrap_or(default) {
                0 => Err(
                    ConfigError::new(format!("limits.{key}"), "is zero").with_fix(format!(
                        "use a number of seconds greater than zero (default {default})"
                    )),
                ),
                n if n > 7 * 24 * 3600 => Err(ConfigError::new(
                    format!("limits.{key}"),
                    format!("{n} is more than a week"),
                )
                .with_fix(format!(
                    "use a number of seconds up to 604800 (default {default})"
                ))),
                n => Ok(Duration::from_secs(n)),
            }
        };
        let count = |key: &str, v: Option<usize>| -> Result<Option<usize>, ConfigError> {
            match v {
                Some(0) => Err(
                    ConfigError::new(format!("limits.{key}"), "is zero").with_fix(
                        "use a positive number of connections, or leave it out for the default",
                    ),
                ),
                other => Ok(other),
            }
        };
        Ok(Limits {
            first_byte: secs("first_byte_secs", self.first_byte_secs, 10)?,
            header: secs("header_secs", self.header_secs, 30)?,
            keepalive: secs("keepalive_secs", self.keepalive_secs, 75)?,
            body_idle: secs("body_idle_secs", self.body_idle_secs, 30)?,
            request: secs("request_secs", self.request_secs, 600)?,
            upstream_header: secs("upstream_header_secs", self.upstream_header_secs, 120)?,
            max_connections: count("max_connections", self.max_connections)?,
            upstream_max_connections: count(
                "upstream_max_connections",
                self.upstream_max_connections,
            )?
            .unwrap_or(256),
            shutdown: Duration::from_secs(DEFAULT_SHUTDOWN_SECS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values_name_the_key() {
        let l = LimitsConfig::default().resolve().unwrap();
        assert_eq!(l.first_byte, Duration::from_secs(10));
        assert_eq!(l.upstream_max_connections, 256);
        assert_eq!(LimitsConfig::default().signin_per_minute(), 120);
        let bad = LimitsConfig {
            body_idle_secs: Some(0),
            ..LimitsConfig::default()
        };
        assert_eq!(bad.resolve().unwrap_err().key, "limits.body_idle_secs");
        let bad = LimitsConfig {
            max_connections: Some(0),
            ..LimitsConfig::default()
        };
        assert_eq!(bad.resolve().unwrap_err().key, "limits.max_connections");
    }
}
