//! Errors at the library boundary. Each has two faces: its `Display` is the
//! precise reason, for the log; [`SignInError::public_message`] is the fixed
//! text a browser sees, which never says why a check failed.

use aadgate_core::ConfigError;
use aadgate_core::error::{ProviderError, TokenError};
use aadgate_core::session::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{Refusal, pages};

/// Errors building an [`crate::Auth`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The session store could not be opened.
    #[error(
        "session.store: {0}. Fix: check the directory exists and is writable, and that no other aadgate process uses it"
    )]
    Store(#[from] StoreError),
}

/// Why a sign-in could not be completed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// The callback's query is oversized or repeats `code`/`state`.
    #[error("callback query oversized or has duplicated parameters")]
    MalformedCallback,
    /// No `code` or no `state`.
    #[error("callback without code or state")]
    MissingParameters,
    /// `state` matches no sign-in started in this browser.
    #[error("state does not match a sign-in started in this browser (missing, expired or foreign)")]
    UnknownState,
    /// `state` was used before.
    #[error("state was already used")]
    StateReused,
    /// The sign-in was started against another issuer (mix-up).
    #[error("sign-in was started with issuer {started:?}, callback names {now:?}")]
    IssuerMixUp {
        /// Issuer at the start.
        started: String,
        /// Issuer now.
        now: String,
    },
    /// The provider could not be used.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The ID token failed validation.
    #[error("ID token rejected: {0}")]
    Token(#[from] TokenError),
    /// The token response had no ID token.
    #[error("token response without id_token")]
    NoIdToken,
    /// The session could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SignInError {
    /// HTTP status for the browser.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Provider(e) if e.is_outage() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Provider(_) | Self::NoIdToken => StatusCode::BAD_GATEWAY,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A fixed word for the reason, the `reason` label of
    /// `aadgate_signins_total` (never the details, which only the log has).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedCallback => "malformed_callback",
            Self::MissingParameters => "missing_parameters",
            Self::UnknownState => "unknown_state",
            Self::StateReused => "state_reused",
            Self::IssuerMixUp { .. } => "issuer_mix_up",
            Self::Provider(ProviderError::Unreachable { .. }) => "provider_unreachable",
            Self::Provider(ProviderError::TokenEndpoint { .. }) => "code_refused",
            Self::Provider(_) => "provider_invalid",
            Self::Token(_) => "id_token_invalid",
            Self::NoIdToken => "no_id_token",
            Self::Store(_) => "session_store",
        }
    }

    /// The fixed message a browser sees.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::Provider(ProviderError::Unreachable { .. }) => {
                "The sign-in service cannot be reached right now. Please try again in a minute."
            }
            Self::Provider(ProviderError::Failing { .. }) => {
                "The sign-in service is having a problem right now. Please try again in a minute."
            }
            Self::Provider(
                ProviderError::IssuerMismatch { .. }
                | ProviderError::Invalid { .. }
                | ProviderError::Refused { .. },
            ) => {
                "The identity provider answered with settings aadgate cannot trust. An administrator must check oidc.tenant / oidc.issuer."
            }
            Self::Store(_) => "Your session could not be saved. Please try again.",
            _ => "Sign-in could not be completed. Please start again.",
        }
    }

    /// The refusal: the page shows the public message (or, for an AADSTS
    /// code aadgate knows, what it means and the setting to fix, as
    /// `aadgate check-config --online` says it); the log gets the precise
    /// error, with the same explanation.
    pub fn refusal(&self) -> Refusal {
        let explained = match self {
            Self::Provider(ProviderError::TokenEndpoint {
                error,
                explanation: Some(exp),
                trace_id,
                correlation_id,
                ..
            }) => Some(pages::explained(
                StatusCode::BAD_GATEWAY,
                exp,
                error,
                (!trace_id.is_empty() || !correlation_id.is_empty())
                    .then_some((trace_id.as_str(), correlation_id.as_str())),
            )),
            Self::Provider(ProviderError::Refused {
                explanation: Some(exp),
                status,
                ..
            }) => Some(pages::explained(
                StatusCode::BAD_GATEWAY,
                exp,
                &format!("HTTP {status}"),
                None,
            )),
            _ => None,
        };
        let refusal = explained.unwrap_or_else(|| {
            let title = match self.status() {
                StatusCode::SERVICE_UNAVAILABLE => "Sign-in is unavailable",
                StatusCode::BAD_GATEWAY => "Sign-in is misconfigured",
                _ => "Sign-in failed",
            };
            Refusal::new(self.status(), "signin_failed", title)
                .message(self.public_message())
                .primary("Sign in again", aadgate_core::paths::LOGIN)
        });
        let refusal = refusal.reason(format!("sign-in failed: {self}"));
        match self {
            Self::Provider(e) if e.is_outage() => refusal.error(),
            Self::Store(_) => refusal.error(),
            _ => refusal.warn(),
        }
    }

    /// Renders the page and logs the precise reason under `correlation_id`.
    pub fn into_page(self, correlation_id: &str) -> Response {
        self.refusal().correlation_id(correlation_id).respond(true)
    }
}

impl IntoResponse for SignInError {
    fn into_response(self) -> Response {
        self.into_page(&pages::correlation_id())
    }
}
