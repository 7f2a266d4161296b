//! One type for every request aadgate will not let through: what the
//! client sees (status, a page or a JSON error code, a correlation id) kept
//! apart from what the log says (the precise reason), as dropshot splits
//! external and internal messages.
//!
//! ```
//! use aadgate::Refusal;
//! use axum::http::StatusCode;
//!
//! let r = Refusal::new(StatusCode::FORBIDDEN, "forbidden", "Access denied")
//!     .message("This page needs the App.Admin role or higher, which you do not have.")
//!     .field("required_role", "App.Admin")
//!     .reason("missing role App.Admin for /admin");
//! let page = r.clone().respond(true); // a browser navigation: an HTML page
//! assert_eq!(page.status(), StatusCode::FORBIDDEN);
//! let json = r.respond(false); // anything else: {"error":"forbidden","required_role":…,"correlation_id":…}
//! assert_eq!(json.headers()["content-type"], "application/json");
//! ```

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::pages::{self, escape};

/// The correlation id a refusal was answered and logged with, in the
/// response's extensions (for an access log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// A refusal: see the module documentation.
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    /// Plain text for the page.
    message: String,
    /// Already escaped HTML for the page, instead of `message`.
    html: Option<String>,
    /// Extra public fields of the JSON answer.
    fields: Map<String, Value>,
    /// For the log only.
    reason: String,
    level: Level,
    /// The correlation id, when the caller already logged under one.
    correlation_id: Option<String>,
    /// The page's main button: (label, local URL).
    primary: (&'static str, &'static str),
    /// Extra buttons on the page: (label, local URL).
    links: Vec<(&'static str, &'static str)>,
}

/// How loud the log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// A client was refused: nothing for an operator to do.
    Info,
    /// An operator should look: the app or the provider is failing.
    Warn,
    /// aadgate itself cannot work (its store, the provider unreachable).
    Error,
}

impl Refusal {
    /// A refusal with `status`, the JSON `error` code and the page title.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str) -> Self {
        Self {
            status,
            code,
            title,
            message: String::new(),
            html: None,
            fields: Map::new(),
            reason: String::new(),
            level: Level::Info,
            correlation_id: None,
            primary: ("Home", "/"),
            links: Vec::new(),
        }
    }

    /// What the page says (plain text; escaped when rendered).
    #[must_use]
    pub fn message(mut self, text: impl Into<String>) -> Self {
        self.message = text.into();
        self
    }

    /// The page's body as HTML the caller has escaped, instead of a message.
    #[must_use]
    pub fn html(mut self, escaped: String) -> Self {
        self.html = Some(escaped);
        self
    }

    /// An extra field of the JSON answer (public: never a secret or a reason).
    #[must_use]
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// The precise reason, for the log only.
    #[must_use]
    pub fn reason(mut self, text: impl Into<String>) -> Self {
        self.reason = text.into();
        self
    }

    /// The page's main button, instead of *Home* (such as *Sign in again*).
    #[must_use]
    pub fn primary(mut self, label: &'static str, href: &'static str) -> Self {
        self.primary = (label, href);
        self
    }

    /// Answers under `id` instead of a new correlation id (when earlier log
    /// lines of the same request carry it).
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// A further button on the page, after the main one.
    #[must_use]
    pub fn link(mut self, label: &'static str, href: &'static str) -> Self {
        self.links.push((label, href));
        self
    }

    /// Logs at `warn` (an operator should look: the app or the provider is
    /// failing) instead of `info` (a client was refused).
    #[must_use]
    pub fn warn(mut self) -> Self {
        self.level = Level::Warn;
        self
    }

    /// Logs at `error`: aadgate itself cannot work (its session store, the
    /// provider unreachable).
    #[must_use]
    pub fn error(mut self) -> Self {
        self.level = Level::Error;
        self
    }

    /// Logs the reason with a new correlation id and answers with a page
    /// (`navigation`) or JSON, both carrying that id.
    pub fn respond(self, navigation: bool) -> Response {
        let cid = self.correlation_id.unwrap_or_else(pages::correlation_id);
        let status = self.status.as_u16();
        match self.level {
            Level::Info => {
                tracing::info!(correlation_id = %cid, status, reason = %self.reason, "request refused");
            }
            Level::Warn => {
                tracing::warn!(correlation_id = %cid, status, reason = %self.reason, "request refused");
            }
            Level::Error => {
                tracing::error!(correlation_id = %cid, status, reason = %self.reason, "request refused");
            }
        }
        if navigation {
            let body = self
                .html
                .unwrap_or_else(|| format!("<p>{}</p>", escape(&self.message)));
            let links: String = self
                .links
                .iter()
                .map(|(label, href)| {
                    format!(
                        "<a class=\"button secondary\" href=\"{}\">{}</a>",
                        escape(href),
                        escape(label)
                    )
                })
                .collect();
            let mut page = pages::page(
                self.status,
                self.title,
                &format!(
                    "{body}<p class=\"muted\">Correlation id: <code>{}</code>. Give it to your administrator; the details are in aadgate's log.</p><a class=\"button\" href=\"{}\">{}</a>{links}",
                    escape(&cid),
                    escape(self.primary.1),
                    escape(self.primary.0),
                ),
            );
            page.extensions_mut().insert(CorrelationId(cid));
            return page;
        }
        let mut json = Map::new();
        json.insert("error".into(), self.code.into());
        json.extend(self.fields);
        json.insert("correlation_id".into(), cid.clone().into());
        let mut resp = (self.status, axum::Json(Value::Object(json))).into_response();
        resp.extensions_mut().insert(CorrelationId(cid));
        resp
    }
}
