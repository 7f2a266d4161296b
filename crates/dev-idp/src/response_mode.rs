//! How the authorize endpoint answers the relying party, codes and
//! redirected errors alike: the `response_mode` (`query`: a 302 to the
//! redirect URI with a query string; `form_post`: an auto-submitting form)
//! and the return address it applies to.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use url::Url;

use crate::aadsts::{AadError, Diagnostics};
use crate::html::{self, escape};

/// Where and how the response goes back to the relying party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseMode {
    /// A 302 redirect with the parameters in the query string.
    Query,
    /// An auto-submitting HTML form that POSTs the parameters.
    FormPost,
}

impl ResponseMode {
    /// The mode a `response_mode` parameter asks for (`query` if absent).
    pub(crate) fn from_param(value: Option<&str>) -> Result<Self, AadError> {
        match value {
            None | Some("query") => Ok(Self::Query),
            Some("form_post") => Ok(Self::FormPost),
            Some(other) => Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                70_007,
                format!(
                    "The value '{other}' of the 'response_mode' parameter is not supported. This dev IdP supports 'query' and 'form_post'."
                ),
            )),
        }
    }
}

/// The relying party's return address: a registered redirect URI, the
/// response mode, and the `state` to echo.
pub(crate) struct Client<'a> {
    pub(crate) redirect_uri: &'a str,
    pub(crate) mode: ResponseMode,
    pub(crate) state: Option<&'a str>,
}

impl Client<'_> {
    /// Sends `params` back to the client.
    pub(crate) fn send(&self, params: &[(&str, String)]) -> Response {
        respond(self.redirect_uri, self.mode, params)
    }

    /// Redirects an Entra-style error back to the client.
    pub(crate) fn error(&self, err: &AadError) -> Response {
        let diag = Diagnostics::new();
        tracing::info!(
            error = err.error,
            code = err.code,
            trace_id = %diag.trace_id,
            "dev IdP authorize error redirected: {}",
            err.message
        );
        let mut params = err.redirect_params(&diag);
        if let Some(state) = self.state {
            params.push(("state", state.to_owned()));
        }
        self.send(&params)
    }
}

/// Sends `params` to `redirect_uri`: a 302 with a query string, or an
/// auto-submitting form for `form_post`.
fn respond(redirect_uri: &str, mode: ResponseMode, params: &[(&str, String)]) -> Response {
    match mode {
        ResponseMode::Query => {
            let Ok(mut url) = Url::parse(redirect_uri) else {
                // Registered redirect URIs are validated as absolute URLs.
                return html::page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sign in - error",
                    "<h1>Sign in</h1><div class=\"error\">The redirect URI could not be parsed.</div>",
                );
            };
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
            let mut response = StatusCode::FOUND.into_response();
            if let Ok(location) = HeaderValue::from_str(url.as_str()) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        ResponseMode::FormPost => {
            let inputs: String = params
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\" />",
                        escape(k),
                        escape(v)
                    )
                })
                .collect();
            let page = format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Working...</title></head><body>\
<form method=\"POST\" name=\"hiddenform\" action=\"{action}\">{inputs}\
<noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" /></noscript>\
</form><script>document.forms[0].submit();</script></body></html>",
                action = escape(redirect_uri),
            );
            html::with_page_headers(
                Html(page).into_response(),
                "default-src 'none'; script-src 'unsafe-inline'; form-action *; frame-ancestors 'none'; base-uri 'none'",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn form_post_escapes_values() {
        let response = respond(
            "https://rp.example/cb?x=\"",
            ResponseMode::FormPost,
            &[("state", "\"><script>".to_owned())],
        );
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("value=\"&quot;&gt;&lt;script&gt;\""),
            "{body}"
        );
        assert!(
            body.contains("action=\"https://rp.example/cb?x=&quot;\""),
            "{body}"
        );
    }
}
