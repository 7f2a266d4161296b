//! `dash.session_script`: `<script src="/auth/session.js">` put into the
//! app's HTML pages, so an expired session sends the user through sign-in
//! instead of breaking Dash callbacks.

use axum::http::{HeaderMap, header};

/// HTML pages up to this size get the session script injected.
pub(super) const MAX_INJECT: usize = 4 * 1024 * 1024;
const SESSION_SCRIPT_TAG: &[u8] = b"<script src=\"/auth/session.js\"></script>";

/// Only uncompressed HTML with a known, modest length is rewritten; anything
/// else streams through untouched.
pub(super) fn injectable(headers: &HeaderMap) -> bool {
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    let plain = headers
        .get(header::CONTENT_ENCODING)
        .is_none_or(|v| v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let small = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n <= MAX_INJECT);
    html && plain && small
}

/// Puts the session script tag before `</head>` (or at the start of the page).
pub(super) fn inject_session_script(page: &[u8]) -> Vec<u8> {
    if page.windows(16).any(|w| w == b"/auth/session.js") {
        return page.to_vec();
    }
    let lower: Vec<u8> = page.iter().map(u8::to_ascii_lowercase).collect();
    let at = lower.windows(7).position(|w| w == b"</head>").unwrap_or(0);
    let mut out = Vec::with_capacity(page.len() + SESSION_SCRIPT_TAG.len());
    out.extend_from_slice(&page[..at]);
    out.extend_from_slice(SESSION_SCRIPT_TAG);
    out.extend_from_slice(&page[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_script_goes_before_head_end_once() {
        let out = inject_session_script(b"<html><HEAD><title>x</title></HEAD><body></body></html>");
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("<title>x</title><script src=\"/auth/session.js\"></script></HEAD>"),
            "{text}"
        );
        assert_eq!(inject_session_script(&out), out, "not twice");
        let bare = String::from_utf8(inject_session_script(b"<p>hi</p>")).unwrap();
        assert!(bare.starts_with("<script src=\"/auth/session.js\"></script><p>"));
    }
}
