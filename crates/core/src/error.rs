//! Error types at the library boundary.
//!
//! Every error that can reach a browser has two faces: a fixed, non-revealing
//! message for the browser and a precise reason for the log.

use thiserror::Error;

/// A configuration problem: names the key and says how to fix it.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key, dotted (`oidc.client_id`), an environment
    /// variable, or the file when the file itself is not valid TOML.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
    /// What to do.
    pub fix: String,
    /// When the problem is in a file: `--> file:line:column` and that line
    /// with the spot underlined, as compilers show it. Empty otherwise.
    pub excerpt: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "configuration error: `{}` {}. Fix: {}",
            self.key, self.problem, self.fix
        )?;
        if !self.excerpt.is_empty() {
            write!(f, "\n{}", self.excerpt)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// A new error for `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
            fix: String::new(),
            excerpt: String::new(),
        }
    }

    /// Adds the fix.
    #[must_use]
    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    /// Adds where in a file the problem is (see [`ConfigError::excerpt`]).
    #[must_use]
    pub fn with_excerpt(mut self, excerpt: impl Into<String>) -> Self {
        self.excerpt = excerpt.into();
        self
    }
}

/// The identity provider could not be used (discovery, keys or token endpoint).
///
/// Each variant says what happened, so a provider that answered is never
/// reported as unreachable: [`Unreachable`](Self::Unreachable) is for no
/// answer at all, [`Failing`](Self::Failing) for a server error, and
/// [`Refused`](Self::Refused) / [`TokenEndpoint`](Self::TokenEndpoint) for a
/// refusal of aadgate's request, with the setting to fix when the AADSTS
/// code says (see [`crate::entra`]).
#[derive(Debug, Error)]
pub enum ProviderError {
    /// The provider did not answer (connection refused, timeout, DNS, TLS).
    #[error("identity provider unreachable at {url}: {reason}")]
    Unreachable {
        /// What was asked for.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The provider answered with a server error (5xx): an outage on its
    /// side, not a setting of aadgate's.
    #[error("identity provider failing at {url}: it answered HTTP {status}{}", detail(.description))]
    Failing {
        /// What was asked for.
        url: String,
        /// HTTP status.
        status: u16,
        /// The provider's `error_description` (first line), if any.
        description: String,
    },
    /// The provider answered, with an error about the request itself: for
    /// Entra ID, usually a wrong tenant or cloud (AADSTS90002), not an outage.
    #[error("identity provider refused {url}: HTTP {status}{}{}", detail(.description), fix(.explanation))]
    Refused {
        /// What was asked for.
        url: String,
        /// HTTP status.
        status: u16,
        /// The provider's `error_description` (or `error`), first line.
        description: String,
        /// What the AADSTS code means and what to fix, when aadgate knows it.
        explanation: Option<&'static crate::entra::Explanation>,
    },
    /// The provider answered with something unusable.
    #[error("identity provider sent an invalid {what}: {reason}")]
    Invalid {
        /// Which document.
        what: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The discovery document names another issuer than configured (mix-up defence).
    #[error("discovery issuer {found:?} does not match the configured issuer {expected:?}")]
    IssuerMismatch {
        /// Configured.
        expected: String,
        /// Found in discovery.
        found: String,
    },
    /// The token endpoint refused the request (HTTP 4xx with an OAuth error).
    #[error("token endpoint refused the request: HTTP {status} {error}{}{}{}", detail(.description), ids(.trace_id, .correlation_id), fix(.explanation))]
    TokenEndpoint {
        /// OAuth error code.
        error: String,
        /// The provider's description, first line (logged only).
        description: String,
        /// HTTP status.
        status: u16,
        /// What the AADSTS code means and what to fix, when aadgate knows it.
        explanation: Option<&'static crate::entra::Explanation>,
        /// Entra's `trace_id`, for the tenant's sign-in logs (may be empty).
        trace_id: String,
        /// Entra's `correlation_id` (may be empty).
        correlation_id: String,
    },
}

impl ProviderError {
    /// The setting to change, when the provider's answer names one
    /// (`oidc.tenant`, `oidc.client_id`, `oidc.client_secret`, `public_url`).
    pub fn key(&self) -> Option<&'static str> {
        match self {
            Self::Refused { explanation, .. } | Self::TokenEndpoint { explanation, .. } => {
                explanation.and_then(|e| e.key)
            }
            _ => None,
        }
    }

    /// Whether the provider gave no usable answer (no answer, or a server
    /// error): sign-ins may work again later without any change.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Failing { .. })
    }
}

fn detail(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

fn ids(trace_id: &str, correlation_id: &str) -> String {
    if trace_id.is_empty() && correlation_id.is_empty() {
        String::new()
    } else {
        format!(" (trace id {trace_id}, correlation id {correlation_id})")
    }
}

fn fix(explanation: &Option<&'static crate::entra::Explanation>) -> String {
    explanation.map_or(String::new(), |e| format!(". {} Fix: {}", e.meaning, e.fix))
}

/// Why a token was rejected. For an ID token logged, never shown to the
/// browser; for a bearer token also told to the caller (RFC 6750
/// `error_description`), who holds the token anyway.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWS.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `alg` not on the allow-list.
    #[error("algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// No key with that `kid`, even after refetching.
    #[error("no signing key with kid {0:?}")]
    UnknownKey(Option<String>),
    /// Several keys and no `kid`.
    #[error("token has no kid and the provider publishes several keys")]
    AmbiguousKey,
    /// Key type does not fit `alg`.
    #[error("key {kid:?} of type {kty} cannot verify {alg}")]
    KeyTypeMismatch {
        /// The key id.
        kid: Option<String>,
        /// The key's type.
        kty: String,
        /// The token's algorithm.
        alg: String,
    },
    /// Bad signature.
    #[error("signature does not verify")]
    BadSignature,
    /// A required claim is missing.
    #[error("claim {0} is missing")]
    MissingClaim(&'static str),
    /// `iss` wrong.
    #[error("issuer {found:?} is not {expected:?}")]
    Issuer {
        /// Expected issuer.
        expected: String,
        /// Found.
        found: String,
    },
    /// `aud` wrong.
    #[error("audience {0:?} does not contain the client id")]
    Audience(Vec<String>),
    /// Several audiences and `azp` missing or wrong.
    #[error("azp {0:?} is not the client id")]
    AuthorizedParty(Option<String>),
    /// Expired.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// exp claim.
        exp: i64,
        /// now.
        now: i64,
    },
    /// Not yet valid.
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// nbf claim.
        nbf: i64,
        /// now.
        now: i64,
    },
    /// iat in the future or too old.
    #[error("token issued at {iat} is out of range (now {now})")]
    IssuedAt {
        /// iat claim.
        iat: i64,
        /// now.
        now: i64,
    },
    /// nonce mismatch.
    #[error("nonce does not match the sign-in request")]
    Nonce,
    /// Tenant not allowed or malformed.
    #[error("tenant {0:?} is not allowed")]
    Tenant(Option<String>),
    /// `ver` is not 2.0 for Entra.
    #[error("token version {0:?} is not 2.0")]
    Version(Option<String>),
    /// An Entra v1.0 access token where only v2.0 ones are accepted.
    #[error(
        "a v1.0 access token (issuer {0}); this API accepts v2.0 tokens: set \"accessTokenAcceptedVersion\": 2 in the API's app registration manifest (Entra admin center > App registrations > Manifest), or oidc.accept_v1_tokens = true in aadgate"
    )]
    V1AccessToken(String),
    /// An access token's audience is not this API.
    #[error(
        "audience {0:?} is not this API (its client ID, api://<client ID>, or one of oidc.audiences): request the token for this API's scope"
    )]
    AccessAudience(Vec<String>),
    /// A token presented as an access token is something else.
    #[error("not an access token: {0}")]
    NotAnAccessToken(&'static str),
    /// A refreshed token changed identity.
    #[error("refreshed ID token changed {0}")]
    IdentityChanged(&'static str),
}

/// Why a bearer token was not accepted.
#[derive(Debug, Error)]
pub enum BearerError {
    /// The token is not valid for this API (RFC 6750 `invalid_token`).
    #[error(transparent)]
    Invalid(#[from] TokenError),
    /// The provider's discovery or keys cannot be read, so no token can be
    /// checked now.
    #[error("cannot check tokens now: {0}")]
    Unavailable(ProviderError),
}
