//! The access log: one line per request (`access_log = true`, the default),
//! as operators know it from nginx: method, path, status, duration, bytes,
//! the user's id, the correlation id of a refusal, the client's address and
//! the app's own status. Never a query string unless `access_log_query` says
//! so (they carry codes and tokens), never a cookie or a header.

use std::net::IpAddr;
use std::time::Duration;

use aadgate_core::config::AccessLog;
use axum::http::{Method, Request, Response, header};

/// What is known of a request before it is answered.
pub(super) struct Started {
    method: Method,
    target: String,
    client: IpAddr,
}

impl Started {
    pub(super) fn new<B>(req: &Request<B>, client: IpAddr, settings: AccessLog) -> Self {
        let uri = req.uri();
        let target = match (settings.query, uri.query()) {
            (true, Some(q)) => format!("{}?{q}", uri.path()),
            _ => uri.path().to_owned(),
        };
        Self {
            method: req.method().clone(),
            target,
            client,
        }
    }

    /// Writes the line for `resp`, answered `took` after the request arrived.
    pub(super) fn finish<B>(self, resp: &Response<B>, took: Duration) {
        let ext = resp.extensions();
        let bytes = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let user = ext.get::<aadgate::UserId>().map(|u| &*u.0);
        let correlation_id = ext.get::<aadgate::CorrelationId>().map(|c| c.0.as_str());
        let upstream_status = ext.get::<UpstreamStatus>().map(|s| s.0);
        tracing::info!(
            target: "access",
            method = %self.method,
            path = %self.target,
            status = resp.status().as_u16(),
            duration_ms = took.as_secs_f64() * 1000.0,
            bytes,
            user,
            correlation_id,
            client = %self.client,
            upstream_status,
            "request"
        );
    }
}

/// The status the app answered with, put on forwarded responses.
#[derive(Debug, Clone, Copy)]
pub(super) struct UpstreamStatus(pub(super) u16);
