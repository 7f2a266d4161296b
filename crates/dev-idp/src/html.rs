//! HTML pages: escaping, the shared layout, and the sign-in error page.
//!
//! Pages are self-contained (inline CSS, no external assets) and every
//! request-derived string goes through [`escape`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::aadsts::{AadError, Diagnostics};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 "Segoe UI", system-ui, -apple-system, sans-serif; background: #f2f2f2; color: #1b1b1b; }
.devbar { background: #8a2be2; color: #fff; padding: 6px 16px; font-size: 13px; letter-spacing: .02em; }
.devbar strong { text-transform: uppercase; }
main { max-width: 560px; margin: 40px auto; background: #fff; padding: 32px 40px; box-shadow: 0 2px 6px rgba(0,0,0,.2); }
main.wide { max-width: 880px; }
h1 { font-size: 24px; font-weight: 600; margin: 0 0 8px; }
h2 { font-size: 17px; font-weight: 600; margin: 24px 0 8px; }
p.sub, .muted { color: #605e5c; font-size: 13px; }
.notice { background: #fff4ce; border-left: 4px solid #c19c00; padding: 8px 12px; margin: 12px 0; }
.error { background: #fde7e9; border-left: 4px solid #a4262c; padding: 8px 12px; margin: 12px 0; word-break: break-word; }
form { margin: 0; }
button.account { display: flex; width: 100%; align-items: center; gap: 14px; text-align: left; background: #fff; border: 1px solid #e1dfdd; padding: 12px 14px; margin: 8px 0; cursor: pointer; font: inherit; }
button.account:hover, button.account:focus { background: #f3f2f1; border-color: #0067b8; outline: none; }
.avatar { flex: none; width: 40px; height: 40px; border-radius: 50%; background: #0067b8; color: #fff; display: flex; align-items: center; justify-content: center; font-weight: 600; }
.who { flex: 1; }
.who .name { font-weight: 600; }
.who .upn { color: #605e5c; font-size: 13px; }
.role { display: inline-block; background: #deecf9; color: #004578; border-radius: 3px; padding: 0 6px; margin: 2px 4px 0 0; font-size: 12px; }
.role.none { background: #f3f2f1; color: #605e5c; }
.badge { font-size: 12px; color: #107c10; }
button.simulate { background: #fff; border: 1px solid #a4262c; color: #a4262c; padding: 4px 10px; margin: 4px 4px 0 0; cursor: pointer; font: inherit; font-size: 13px; }
code, .mono { font-family: Consolas, "Cascadia Mono", monospace; font-size: 13px; word-break: break-all; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #edebe9; vertical-align: top; }
dl.diag { font-size: 12px; color: #605e5c; display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
dl.diag dd { margin: 0; font-family: Consolas, monospace; }
"#;

/// A complete page in the dev IdP's layout. `title` is escaped; `body` is
/// trusted HTML assembled by the caller.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    page_with_class(status, title, "", body)
}

/// Like [`page`], with a CSS class on `<main>` (e.g. `wide`).
pub(crate) fn page_with_class(
    status: StatusCode,
    title: &str,
    main_class: &str,
    body: &str,
) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>{title}</title><style>{STYLE}</style></head><body>\
<div class=\"devbar\"><strong>Development identity provider</strong> &middot; aadgate dev IdP imitating Microsoft Entra ID &middot; not for production use</div>\
<main class=\"{main_class}\">{body}</main></body></html>",
        title = escape(title),
        main_class = escape(main_class),
    );
    with_page_headers(
        (status, Html(html)).into_response(),
        "default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'; base-uri 'none'",
    )
}

/// Adds `Cache-Control: no-store`, a Content-Security-Policy and
/// anti-framing headers.
pub(crate) fn with_page_headers(mut response: Response, csp: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Entra's "we're having trouble signing you in" page for errors that must
/// not be redirected (unknown client, unregistered redirect URI, ...).
/// `extra` is trusted HTML appended below the message.
pub(crate) fn error_page(err: &AadError, extra: &str) -> Response {
    let diag = Diagnostics::new();
    tracing::info!(
        error = err.error,
        code = err.code,
        trace_id = %diag.trace_id,
        "dev IdP sign-in error page: {}",
        err.message
    );
    let body = format!(
        "<h1>Sign in</h1>\
<p>Sorry, but we&rsquo;re having trouble signing you in.</p>\
<div class=\"error\"><strong>{headline}</strong></div>{extra}\
<h2>Troubleshooting details</h2>\
<dl class=\"diag\"><dt>Error code</dt><dd>AADSTS{code} ({error})</dd>\
<dt>Request Id</dt><dd>{trace}</dd><dt>Correlation Id</dt><dd>{corr}</dd>\
<dt>Timestamp</dt><dd>{ts}</dd></dl>",
        headline = escape(&err.headline()),
        code = err.code,
        error = escape(err.error),
        trace = escape(&diag.trace_id),
        corr = escape(&diag.correlation_id),
        ts = escape(&diag.timestamp),
    );
    page(err.status, "Sign in - error", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;"
        );
    }
}
