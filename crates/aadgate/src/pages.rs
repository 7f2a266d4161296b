//! The few HTML pages aadgate itself shows (refusals render through
//! [`crate::Refusal`], which uses [`page`]).
//! Every dynamic value is HTML-escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f3f4f6;color:#1f2937}\
main{max-width:560px;margin:12vh auto;background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:32px 36px}\
h1{font-size:1.35rem;margin:0 0 12px}p{line-height:1.55;margin:10px 0}.muted{color:#6b7280;font-size:.88rem}\
code{background:#f3f4f6;padding:1px 5px;border-radius:4px}.button{display:inline-block;margin-top:14px;margin-right:8px;padding:9px 16px;border-radius:8px;background:#2563eb;color:#fff;text-decoration:none;border:0;font:inherit;cursor:pointer}\
.button.secondary{background:#e5e7eb;color:#111827}.brand{font-size:.8rem;letter-spacing:.08em;text-transform:uppercase;color:#2563eb;margin-bottom:6px}";

/// A full page; `body` must already be escaped HTML.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style></head><body><main><div class=\"brand\">aadgate</div><h1>{t}</h1>{body}</main></body></html>",
        t = escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    // No other site may frame aadgate's pages (a framed "Sign out" button
    // invites a click-jacked sign-out). Front-channel logout, which the
    // provider does frame, is not one of these pages.
    headers.insert(
        axum::http::header::X_FRAME_OPTIONS,
        axum::http::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    resp
}

/// A short random id that ties a page a user reports to a log line.
pub fn correlation_id() -> String {
    aadgate_core::crypto::random_bytes::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The refusal of a sign-in that Microsoft Entra ID refused with an AADSTS
/// code aadgate can explain: what it means and the setting to fix. `ids` are
/// Entra's trace and correlation ids, when it sent them.
pub(crate) fn explained(
    status: StatusCode,
    exp: &aadgate_core::entra::Explanation,
    error: &str,
    ids: Option<(&str, &str)>,
) -> crate::Refusal {
    crate::Refusal::new(status, "signin_refused", "Sign-in was refused")
        .html(format!(
            "<p>Microsoft Entra ID refused the sign-in with <code>AADSTS{}</code> ({}).</p><p>{}</p><p><strong>How to fix it:</strong> {}</p>{}",
            exp.code,
            escape(error),
            escape(exp.meaning),
            escape(exp.fix),
            entra_ids(ids)
        ))
        .primary("Try again", aadgate_core::paths::LOGIN)
}

/// Entra's trace and correlation ids, for the administrator who looks the
/// failure up in the tenant's sign-in logs.
pub(crate) fn entra_ids(ids: Option<(&str, &str)>) -> String {
    ids.map_or(String::new(), |(trace, corr)| {
        format!(
            "<p class=\"muted\">Microsoft Entra ID: Trace id <code>{}</code>, Correlation id <code>{}</code></p>",
            escape(trace),
            escape(corr)
        )
    })
}
