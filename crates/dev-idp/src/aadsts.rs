//! Entra ID-style errors: an OAuth `error` code plus an `AADSTSnnnnn` code
//! and message, with the `trace_id`, `correlation_id` and `timestamp`
//! diagnostics Entra attaches to every error.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{clock, ids};

/// Per-error diagnostics, fresh for each error like Entra's.
#[derive(Debug, Clone)]
pub(crate) struct Diagnostics {
    pub(crate) trace_id: String,
    pub(crate) correlation_id: String,
    pub(crate) timestamp: String,
}

impl Diagnostics {
    pub(crate) fn new() -> Self {
        Self {
            trace_id: ids::guid(),
            correlation_id: ids::guid(),
            timestamp: clock::entra_timestamp(clock::now_secs()),
        }
    }
}

/// An error as the Entra ID v2 endpoints report it.
#[derive(Debug, Clone)]
pub(crate) struct AadError {
    /// HTTP status when returned as JSON (token endpoint) or as a page.
    pub(crate) status: StatusCode,
    /// OAuth 2.0 `error` value, e.g. `invalid_grant`.
    pub(crate) error: &'static str,
    /// The AADSTS number, e.g. 54005.
    pub(crate) code: u32,
    /// The message after `AADSTSnnnnn: `.
    pub(crate) message: String,
}

impl AadError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    /// `invalid_request` / AADSTS900144 for a missing parameter.
    pub(crate) fn missing_parameter(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// `invalid_request` / AADSTS90002 for a tenant this IdP does not serve.
    pub(crate) fn tenant_not_found(tenant: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. (This dev IdP serves a single tenant; see its home page.)"
            ),
        )
    }

    /// `AADSTSnnnnn: message`, the first line of `error_description`.
    pub(crate) fn headline(&self) -> String {
        format!("AADSTS{}: {}", self.code, self.message)
    }

    /// The full `error_description`, with Entra's diagnostic trailer.
    pub(crate) fn description(&self, diag: &Diagnostics) -> String {
        format!(
            "{}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.headline(),
            diag.trace_id,
            diag.correlation_id,
            diag.timestamp
        )
    }

    /// Entra's public error lookup page for this code.
    pub(crate) fn error_uri(&self) -> String {
        format!("https://login.microsoftonline.com/error?code={}", self.code)
    }

    /// The JSON body of a token-endpoint error.
    pub(crate) fn json_body(&self, diag: &Diagnostics) -> Value {
        json!({
            "error": self.error,
            "error_description": self.description(diag),
            "error_codes": [self.code],
            "timestamp": diag.timestamp,
            "trace_id": diag.trace_id,
            "correlation_id": diag.correlation_id,
            "error_uri": self.error_uri(),
        })
    }

    /// The parameters of an error redirect back to the relying party
    /// (without `state`, which the caller appends).
    pub(crate) fn redirect_params(&self, diag: &Diagnostics) -> Vec<(&'static str, String)> {
        vec![
            ("error", self.error.to_owned()),
            ("error_description", self.description(diag)),
            ("error_codes", self.code.to_string()),
            ("error_uri", self.error_uri()),
            ("trace_id", diag.trace_id.clone()),
            ("correlation_id", diag.correlation_id.clone()),
        ]
    }
}

impl IntoResponse for AadError {
    /// A JSON error response, as the token and discovery endpoints send.
    fn into_response(self) -> Response {
        let diag = Diagnostics::new();
        tracing::info!(
            error = self.error,
            code = self.code,
            trace_id = %diag.trace_id,
            "dev IdP error: {}",
            self.message
        );
        let mut response = (self.status, Json(self.json_body(&diag))).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The error a `login_hint=error:<code>` simulates: OAuth `error` and message.
pub(crate) fn simulated(code: u32, user: &str, client_id: &str) -> (&'static str, String) {
    match code {
        50_105 => (
            "access_denied",
            format!(
                "The signed in user '{user}' is not assigned to a role for the application '{client_id}'(aadgate dev app)."
            ),
        ),
        65_001 => (
            "consent_required",
            format!(
                "The user or administrator has not consented to use the application with ID '{client_id}' named 'aadgate dev app'. Send an interactive authorization request for this user and resource."
            ),
        ),
        50_058 => (
            "login_required",
            "A silent sign-in request was sent but no user is signed in.".to_owned(),
        ),
        50_076 => (
            "interaction_required",
            "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access the application.".to_owned(),
        ),
        50_079 => (
            "interaction_required",
            "Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multi-factor authentication to access the application.".to_owned(),
        ),
        53_003 => (
            "access_denied",
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.".to_owned(),
        ),
        50_020 | 50_034 | 16_000 => (
            "access_denied",
            format!(
                "User account '{user}' from identity provider 'live.com' does not exist in tenant 'aadgate dev tenant' and cannot access the application '{client_id}'(aadgate dev app) in that tenant."
            ),
        ),
        90_094 | 90_095 => (
            "consent_required",
            "Admin consent is required for the permissions requested by this application.".to_owned(),
        ),
        50_011 => (
            "invalid_request",
            "The redirect URI specified in the request does not match the redirect URIs configured for the application.".to_owned(),
        ),
        700_016 => (
            "unauthorized_client",
            format!(
                "Application with identifier '{client_id}' was not found in the directory 'aadgate dev tenant'."
            ),
        ),
        90_002 => (
            "invalid_request",
            "Tenant not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.".to_owned(),
        ),
        _ => (
            "access_denied",
            format!("Simulated sign-in error {code} (requested with login_hint=error:{code})."),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_starts_with_the_aadsts_code() {
        let err = AadError::new(StatusCode::BAD_REQUEST, "invalid_grant", 54_005, "used");
        let diag = Diagnostics::new();
        let body = err.json_body(&diag);
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.starts_with("AADSTS54005: used\r\nTrace ID: "));
        assert_eq!(body["error_codes"][0], 54_005);
        assert_eq!(body["trace_id"], diag.trace_id.as_str());
    }
}
