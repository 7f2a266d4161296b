//! The few HTML pages aadgate itself shows: errors, 403, signed out.
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
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A generic failure with a correlation id and nothing about why.
pub fn failure(status: StatusCode, title: &str, message: &str, correlation_id: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<p>{}</p><p class=\"muted\">Correlation id: <code>{}</code>. Give it to your administrator; the details are in aadgate's log.</p>\
<a class=\"button\" href=\"/auth/login\">Sign in again</a>",
            escape(message),
            escape(correlation_id)
        ),
    )
}

/// A short random id that ties a page a user reports to a log line.
pub fn correlation_id() -> String {
    aadgate_core::crypto::random_bytes::<8>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A page explaining an Entra ID AADSTS error and the setting to fix.
pub(crate) fn explained(
    status: StatusCode,
    exp: aadgate_core::entra::Explanation,
    error: &str,
    ids: Option<(&str, &str)>,
    cid: &str,
) -> Response {
    let ids_html = match ids {
        Some((trace, corr)) => format!(
            "<p class=\"muted\">Trace id: <code>{}</code><br>Correlation id: <code>{}</code><br>aadgate id: <code>{}</code></p>",
            escape(trace),
            escape(corr),
            escape(cid)
        ),
        None => format!(
            "<p class=\"muted\">aadgate id: <code>{}</code></p>",
            escape(cid)
        ),
    };
    page(
        status,
        "Sign-in was refused",
        &format!(
            "<p>Microsoft Entra ID refused the sign-in with <code>AADSTS{}</code> ({}).</p><p>{}</p><p><strong>How to fix it:</strong> {}</p>{ids_html}\
<a class=\"button\" href=\"/auth/login\">Try again</a>",
            exp.code,
            escape(error),
            escape(exp.meaning),
            escape(exp.fix)
        ),
    )
}
