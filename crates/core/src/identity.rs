//! Who signed in: the claims of a validated ID token that aadgate keeps.
//!
//! Built by [`crate::token`] from an ID token, kept in a
//! [`crate::session::Session`], read by the policy and the layer above.

use serde::{Deserialize, Serialize};

/// Who signed in. Display values (`name`, `email`, `preferred_username`) are
/// for showing, never for authorizing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Issuer of the ID token.
    pub issuer: String,
    /// Subject.
    pub sub: String,
    /// Entra object id.
    pub oid: Option<String>,
    /// Entra tenant id.
    pub tid: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Preferred username (UPN).
    pub preferred_username: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// App roles from the token.
    pub roles: Vec<String>,
    /// Group ids.
    pub groups: Vec<String>,
    /// The token signalled group overage: `groups` is incomplete.
    pub groups_overage: bool,
    /// Provider session id.
    pub sid: Option<String>,
    /// Entra login hint, sent back at logout.
    pub login_hint: Option<String>,
}

impl Identity {
    /// The stable user id: `oid`, else `sub`.
    pub fn user_id(&self) -> &str {
        self.oid.as_deref().unwrap_or(&self.sub)
    }

    /// A name to show: name, else preferred_username, else email, else the id.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.preferred_username.as_deref())
            .or(self.email.as_deref())
            .unwrap_or_else(|| self.user_id())
    }
}
