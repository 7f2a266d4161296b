//! A minimal Microsoft Graph client for the signed-in user's own profile —
//! the downstream call most dashboards make first. Enabled by the `graph`
//! feature (on by default).
//!
//! ```no_run
//! use aadgate::AccessToken;
//! use aadgate::graph::Graph;
//!
//! async fn profile(token: AccessToken) -> String {
//!     let graph = Graph::new(Graph::MICROSOFT); // or the dev IdP's base URL
//!     match graph.me(token.secret()).await {
//!         Ok(me) => format!("{} <{}>", me.display_name.unwrap_or_default(), me.mail.unwrap_or_default()),
//!         Err(e) => format!("Graph said no: {e}"),
//!     }
//! }
//! ```

use std::time::Duration;

use serde::Deserialize;

/// The signed-in user as Graph's `GET /v1.0/me` returns it (the common fields).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GraphUser {
    /// Object id.
    pub id: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Surname.
    pub surname: Option<String>,
    /// Mail address.
    pub mail: Option<String>,
    /// User principal name.
    pub user_principal_name: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Office location.
    pub office_location: Option<String>,
}

/// Why a Graph call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Graph could not be reached.
    #[error("Microsoft Graph unreachable: {0}")]
    Unreachable(String),
    /// Graph refused the call (`code` is Graph's error code, e.g. `InvalidAuthenticationToken`).
    #[error("Microsoft Graph refused the call with HTTP {status}: {code}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Graph's error code.
        code: String,
    },
    /// The answer was not a user.
    #[error("Microsoft Graph sent an unexpected answer: {0}")]
    Invalid(String),
}

/// A Graph client bound to a base URL.
#[derive(Debug, Clone)]
pub struct Graph {
    base: String,
    http: reqwest::Client,
}

impl Graph {
    /// Microsoft Graph in the public cloud.
    pub const MICROSOFT: &'static str = "https://graph.microsoft.com";

    /// A client for `base` (e.g. [`Graph::MICROSOFT`], `https://graph.microsoft.us`,
    /// or the dev IdP's URL, which serves `/v1.0/me` for its own tokens).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a reqwest client with rustls builds");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// `GET /v1.0/me` with the user's access token.
    pub async fn me(&self, access_token: &str) -> Result<GraphUser, GraphError> {
        let resp = self
            .http
            .get(format!("{}/v1.0/me", self.base))
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| GraphError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| GraphError::Invalid(e.to_string()))?;
        if !status.is_success() {
            let code = body["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned();
            return Err(GraphError::Refused {
                status: status.as_u16(),
                code,
            });
        }
        serde_json::from_value(body).map_err(|e| GraphError::Invalid(e.to_string()))
    }
}
