//! Configuration of the development identity provider: the one registered
//! application (client), its app roles, and the users who can sign in.
//!
//! Every key has a default, so an empty TOML file is a valid configuration and
//! gives the built-in tenant, client and four users (`reader`, `writer`,
//! `admin`, `norole`).
//!
//! ```toml
//! tenant_id = "7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47"
//! client_id = "2b8f6e14-9c3d-4a7e-b5f1-0d6c8e4a9b23"
//! client_secret = "dev-secret-change-me"
//! redirect_uris = ["http://127.0.0.1:4180/auth/callback"]
//! app_roles = ["App.Read", "App.Write", "App.Admin"]
//!
//! [[users]]
//! username = "alice"
//! name = "Alice Example"
//! roles = ["App.Read"]
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::ids;

/// The built-in tenant id (a made-up GUID; no such Entra tenant exists).
pub const DEFAULT_TENANT_ID: &str = "7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47";
/// The built-in application (client) id (a made-up GUID).
pub const DEFAULT_CLIENT_ID: &str = "2b8f6e14-9c3d-4a7e-b5f1-0d6c8e4a9b23";
/// The built-in client secret. Fine for a laptop; change it anywhere else.
pub const DEFAULT_CLIENT_SECRET: &str = "dev-secret-change-me";
/// Client ID of the built-in client application `reporting-job`.
pub const DEFAULT_CLIENT_APP_ID: &str = "6d0b3f2e-8a4c-4f17-9e25-c1a7d3b9e048";
/// Client secret of the built-in client application `reporting-job`.
pub const DEFAULT_CLIENT_APP_SECRET: &str = "dev-client-secret-change-me";
/// The domain of the built-in users' e-mail addresses and user principal names.
pub const DEFAULT_EMAIL_DOMAIN: &str = "contoso.example";

/// Object id of the built-in group "All dev users" (every built-in user).
pub const GROUP_ALL_USERS: &str = "5c0e8a1f-3d74-4b29-9f6a-1e8b2d4c7a30";
/// Object id of the built-in group "Editors" (`writer` and `admin`).
pub const GROUP_EDITORS: &str = "9a4f2c6e-8b1d-4e53-a7c0-3f5e9d1b6a84";
/// Object id of the built-in group "Administrators" (`admin` only).
pub const GROUP_ADMINISTRATORS: &str = "1e7b3d5a-9c2f-4a86-b0d4-6c8e2f4a1b97";

/// Upper bound for the token lifetimes, in seconds (one day, as in Entra ID).
const MAX_LIFETIME_SECS: u64 = 86_400;
/// Upper bound for the refresh-token lifetime, in seconds (90 days, as in Entra ID).
const MAX_REFRESH_LIFETIME_SECS: u64 = 90 * 86_400;

/// An error in the dev IdP's configuration, or in setting it up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML text could not be parsed, or it has an unknown key or a value
    /// of the wrong type.
    #[error("dev IdP configuration is not valid TOML for this schema: {0}")]
    Toml(#[from] toml::de::Error),
    /// A key has a value that is not allowed.
    #[error("dev IdP configuration key `{key}`: {message}")]
    Invalid {
        /// The offending key, e.g. `users[2].roles`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The RSA signing key could not be generated.
    #[error("dev IdP could not generate its RSA signing key: {0}")]
    Crypto(String),
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Configuration of the development identity provider.
///
/// It describes one tenant with one registered confidential application (the
/// relying party under development) and the users who can sign in to it.
/// All keys are optional; missing keys take the defaults documented below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevIdpConfig {
    /// Tenant (directory) id: a GUID, used in every endpoint path and in the
    /// `tid` claim. Default: a fixed made-up GUID (`7e1d5a2c-…`).
    /// Only letters, digits, `.` and `-` are allowed; the multi-tenant aliases
    /// `common`, `organizations` and `consumers` are not supported.
    pub tenant_id: String,
    /// Application (client) id of the single registered application; the
    /// `aud` of every ID token. Default: a fixed made-up GUID (`2b8f6e14-…`).
    pub client_id: String,
    /// Client secret the application authenticates with at the token
    /// endpoint (HTTP Basic or `client_secret` in the form body).
    /// Default: `dev-secret-change-me`.
    pub client_secret: String,
    /// Certificates registered for the application (Entra: Certificates &
    /// secrets > Certificates), as PEM text: the app may authenticate with a
    /// client assertion signed by one's key (`private_key_jwt`, naming it
    /// by `x5t#S256`) instead of the secret. Default: none.
    pub client_certificates: Vec<String>,
    /// Federated credentials of the application (Entra: Certificates &
    /// secrets > Federated credentials): a token from a trusted external
    /// issuer (a Kubernetes cluster's service account token) with this
    /// subject and audience is accepted as the app's client assertion.
    /// Default: none.
    pub federated_credentials: Vec<FederatedCredential>,
    /// Registered redirect (reply) URIs. The authorize endpoint accepts a
    /// `redirect_uri` only if it equals one of these exactly, character for
    /// character, as Entra ID does. Default:
    /// `["http://127.0.0.1:4180/auth/callback", "http://localhost:4180/auth/callback"]`.
    pub redirect_uris: Vec<String>,
    /// URIs the logout endpoint may redirect to (`post_logout_redirect_uri`),
    /// compared exactly. Default: empty, which allows any URI whose origin
    /// (scheme, host and port) equals the origin of a registered redirect URI.
    pub post_logout_redirect_uris: Vec<String>,
    /// The application's front-channel logout URL, as registered in Entra
    /// (Authentication > Front-channel logout URL). When a browser signs out
    /// at this dev IdP, the signed-out page loads it in a hidden iframe with
    /// the ended session's `sid`, as Entra does (only `sid`, no `iss`).
    /// Default: none.
    pub frontchannel_logout_url: Option<String>,
    /// App roles defined by the application; users' `roles` must be among
    /// them. Default: `["App.Read", "App.Write", "App.Admin"]`.
    pub app_roles: Vec<String>,
    /// Delegated permissions the application's API exposes (Entra: Expose
    /// an API > Scopes). A client requesting `api://<client_id>/<scope>`
    /// (or `<client_id>/<scope>`) gets an access token for the API with
    /// these names in `scp`; `api://<client_id>/.default` asks for all of
    /// them. Default: `["access_as_user"]`.
    pub api_scopes: Vec<String>,
    /// Other applications registered in the tenant that call the API:
    /// scripts, notebooks, services. Each authenticates with its own secret;
    /// the client-credentials grant gives it an application token for the
    /// API carrying its application roles, and the authorization-code flow
    /// (with its own redirect URIs) gives it delegated tokens for the API's
    /// scopes. Default: one, `reporting-job` (client ID `6d0b3f2e-…`,
    /// secret `dev-client-secret-change-me`, the first of `app_roles`
    /// (`App.Read`), redirect URI `http://localhost:8400/`); none when the
    /// file sets its own `client_secret` (the built-in secret is public).
    pub client_apps: Vec<DevClientApp>,
    /// Lifetime of ID tokens in seconds (`exp - iat`). Default: 3600.
    pub id_token_lifetime_secs: u64,
    /// Lifetime of access tokens in seconds (`expires_in`). Default: 3600.
    pub access_token_lifetime_secs: u64,
    /// Lifetime of refresh tokens in seconds. Default: 86400 (one day).
    pub refresh_token_lifetime_secs: u64,
    /// Users who can sign in. Setting this key replaces the built-in users:
    /// `reader` (Rita Reader, role `App.Read`), `writer` (Walt Writer,
    /// `App.Write`), `admin` (Ada Admin, `App.Admin`) and `norole`
    /// (Nick NoRole, no roles).
    pub users: Vec<DevUser>,
}

impl Default for DevIdpConfig {
    fn default() -> Self {
        Self {
            tenant_id: DEFAULT_TENANT_ID.to_owned(),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            redirect_uris: vec![
                "http://127.0.0.1:4180/auth/callback".to_owned(),
                "http://localhost:4180/auth/callback".to_owned(),
            ],
            post_logout_redirect_uris: Vec::new(),
            client_certificates: Vec::new(),
            federated_credentials: Vec::new(),
            frontchannel_logout_url: None,
            app_roles: vec![
                "App.Read".to_owned(),
                "App.Write".to_owned(),
                "App.Admin".to_owned(),
            ],
            api_scopes: vec!["access_as_user".to_owned()],
            client_apps: vec![DevClientApp {
                name: "reporting-job".to_owned(),
                client_id: DEFAULT_CLIENT_APP_ID.to_owned(),
                client_secret: DEFAULT_CLIENT_APP_SECRET.to_owned(),
                roles: vec!["App.Read".to_owned()],
                redirect_uris: vec!["http://localhost:8400/".to_owned()],
            }],
            id_token_lifetime_secs: 3600,
            access_token_lifetime_secs: 3600,
            refresh_token_lifetime_secs: 86_400,
            users: builtin_users(),
        }
    }
}

/// A federated credential: which external tokens count as the app's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    /// The external issuer (`iss`), e.g. the AKS cluster's OIDC issuer URL.
    pub issuer: String,
    /// The subject (`sub`), e.g. `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    /// The audience (`aud`). Default `api://AzureADTokenExchange`, Entra's.
    #[serde(default = "default_federated_audience")]
    pub audience: String,
    /// The issuer's signing keys, a JWKS as JSON text (Entra reads them
    /// from the issuer's discovery document; this dev IdP is told them).
    pub jwks: String,
}

fn default_federated_audience() -> String {
    "api://AzureADTokenExchange".to_owned()
}

/// A registered application, as the endpoints see it.
#[derive(Debug, Clone, Copy)]
pub struct RegisteredClient<'a> {
    /// Its client ID.
    pub client_id: &'a str,
    /// Its secret.
    pub secret: &'a str,
    /// Its redirect URIs.
    pub redirect_uris: &'a [String],
    /// Application roles of the API it holds.
    pub roles: &'a [String],
    /// `true` for the registered application (the relying party) itself.
    pub is_app: bool,
}

/// A client application of the dev tenant that calls the registered
/// application's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevClientApp {
    /// A name for logs and pages.
    pub name: String,
    /// Its application (client) ID: the `azp` of its tokens.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// Application roles of the API granted to it (Entra: API permissions >
    /// Application permissions, with admin consent): the `roles` of its
    /// client-credentials tokens. Each must be listed in `app_roles`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Redirect URIs for its sign-ins (delegated tokens). Default: none.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// One user of the dev tenant.
///
/// In TOML only `username` is required; the other keys default as documented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DevUserToml")]
pub struct DevUser {
    /// Sign-in name, used as `login_hint` to skip the account picker.
    /// Must be unique (case-insensitively) and must not start with `error:`.
    pub username: String,
    /// Display name (`name` claim, Graph `displayName`). Default: the username.
    pub name: String,
    /// E-mail address and user principal name (`email` and
    /// `preferred_username` claims, Graph `mail` and `userPrincipalName`).
    /// Default: `<username>@contoso.example`.
    pub email: String,
    /// Object id: a GUID, the `oid` claim. Default: a GUID derived from the
    /// username, so it is stable across restarts.
    pub oid: String,
    /// App roles assigned to the user (`roles` claim; omitted when empty).
    /// Each must be listed in `app_roles`. Default: none.
    pub roles: Vec<String>,
    /// Object ids of the groups the user is a member of (`groups` claim).
    /// Default: none.
    pub groups: Vec<String>,
    /// Given name (Graph `givenName`). Default: the first word of `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Surname (Graph `surname`). Default: the rest of `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    /// Job title (Graph `jobTitle`). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    /// Office location (Graph `officeLocation`). Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub office_location: Option<String>,
    /// Simulate Entra ID's groups overage: when `true`, ID tokens carry no
    /// `groups` claim but `_claim_names`/`_claim_sources` pointing at this
    /// IdP's Graph `getMemberObjects` endpoint, as Entra ID does for users in
    /// more than 200 groups. Default: `false`.
    pub groups_overage: bool,
}

impl DevUser {
    /// A user with the defaults a TOML entry with only `username` and `name`
    /// gets: e-mail `<username>@contoso.example`, an object id derived from
    /// the username, no roles and no groups. Set the public fields to change
    /// the rest.
    pub fn new(username: &str, name: &str) -> Self {
        Self::from(DevUserToml {
            username: username.to_owned(),
            name: Some(name.to_owned()),
            email: None,
            oid: None,
            roles: Vec::new(),
            groups: Vec::new(),
            given_name: None,
            surname: None,
            job_title: None,
            office_location: None,
            groups_overage: false,
        })
    }

    /// The given name: `given_name` if set, else the first word of `name`.
    pub fn given_name(&self) -> &str {
        match &self.given_name {
            Some(given) => given,
            None => self.name.split_whitespace().next().unwrap_or_default(),
        }
    }

    /// The surname: `surname` if set, else everything after the first word of `name`.
    pub fn surname(&self) -> &str {
        match &self.surname {
            Some(surname) => surname,
            None => self
                .name
                .trim()
                .split_once(char::is_whitespace)
                .map(|(_, rest)| rest.trim())
                .unwrap_or_default(),
        }
    }
}

/// The TOML shape of a user, whose defaults depend on `username`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevUserToml {
    username: String,
    name: Option<String>,
    email: Option<String>,
    oid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    given_name: Option<String>,
    surname: Option<String>,
    job_title: Option<String>,
    office_location: Option<String>,
    #[serde(default)]
    groups_overage: bool,
}

impl From<DevUserToml> for DevUser {
    fn from(raw: DevUserToml) -> Self {
        let email = raw
            .email
            .unwrap_or_else(|| format!("{}@{DEFAULT_EMAIL_DOMAIN}", raw.username));
        let oid = raw.oid.unwrap_or_else(|| {
            ids::guid_from_seed(&format!("aadgate-dev-idp user {}", raw.username))
        });
        Self {
            name: raw.name.unwrap_or_else(|| raw.username.clone()),
            username: raw.username,
            email,
            oid,
            roles: raw.roles,
            groups: raw.groups,
            given_name: raw.given_name,
            surname: raw.surname,
            job_title: raw.job_title,
            office_location: raw.office_location,
            groups_overage: raw.groups_overage,
        }
    }
}

fn builtin_user(
    username: &str,
    name: &str,
    oid: &str,
    roles: &[&str],
    groups: &[&str],
    job_title: &str,
) -> DevUser {
    DevUser {
        username: username.to_owned(),
        name: name.to_owned(),
        email: format!("{username}@{DEFAULT_EMAIL_DOMAIN}"),
        oid: oid.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        given_name: None,
        surname: None,
        job_title: Some(job_title.to_owned()),
        office_location: Some("Building 1, Dev Lab".to_owned()),
        groups_overage: false,
    }
}

/// The four built-in users.
fn builtin_users() -> Vec<DevUser> {
    vec![
        builtin_user(
            "reader",
            "Rita Reader",
            "3f9c1e27-5a84-4d1b-9e6c-2a7b8d0f4c51",
            &["App.Read"],
            &[GROUP_ALL_USERS],
            "Analyst",
        ),
        builtin_user(
            "writer",
            "Walt Writer",
            "8d2e6b40-7c13-4f95-a1d8-5e3c9b7a2f06",
            &["App.Write"],
            &[GROUP_ALL_USERS, GROUP_EDITORS],
            "Editor",
        ),
        builtin_user(
            "admin",
            "Ada Admin",
            "c57a0f38-2e9d-4b6c-8f41-7d1e3a5b9c82",
            &["App.Admin"],
            &[GROUP_ALL_USERS, GROUP_EDITORS, GROUP_ADMINISTRATORS],
            "Administrator",
        ),
        builtin_user(
            "norole",
            "Nick NoRole",
            "e4b18c93-6f2a-4d07-b3e5-9a8c1f6d0e74",
            &[],
            &[GROUP_ALL_USERS],
            "Visitor",
        ),
    ]
}

impl DevIdpConfig {
    /// Parses a TOML configuration and validates it (see [`DevIdpConfig::validate`]).
    ///
    /// # Errors
    /// [`ConfigError::Toml`] for syntax errors, unknown keys and wrong types;
    /// [`ConfigError::Invalid`] for values that fail validation.
    pub fn from_toml_str(s: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(s)?;
        // The built-in client application holds the lowest app role, of
        // the file's `app_roles` when it names its own. Its secret is
        // published: a file that changes the app's secret gets no such
        // client unless it lists it.
        if config.client_apps == Self::default().client_apps {
            if config.client_secret == DEFAULT_CLIENT_SECRET {
                for app in &mut config.client_apps {
                    app.roles = config.app_roles.iter().take(1).cloned().collect();
                }
            } else {
                config.client_apps.clear();
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration for values the dev IdP cannot work with.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first offending key and how to fix it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_application()?;
        self.validate_lifetimes()?;
        self.validate_users()
    }

    fn validate_application(&self) -> Result<(), ConfigError> {
        let tenant = self.tenant_id.as_str();
        if tenant.is_empty() {
            return Err(ConfigError::invalid(
                "tenant_id",
                "must not be empty; use a GUID such as the default, or remove the key",
            ));
        }
        if !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConfigError::invalid(
                "tenant_id",
                format!("{tenant:?} may only contain letters, digits, '.' and '-' (use a GUID)"),
            ));
        }
        if ["common", "organizations", "consumers"]
            .iter()
            .any(|alias| tenant.eq_ignore_ascii_case(alias))
        {
            return Err(ConfigError::invalid(
                "tenant_id",
                format!(
                    "{tenant:?} is a multi-tenant alias, which the dev IdP does not imitate; use a GUID"
                ),
            ));
        }
        check_token("client_id", &self.client_id)?;
        if self.client_secret.is_empty() {
            return Err(ConfigError::invalid(
                "client_secret",
                "must not be empty; set a secret or remove the key to use the default",
            ));
        }
        if self.redirect_uris.is_empty() {
            return Err(ConfigError::invalid(
                "redirect_uris",
                "must list at least one redirect URI, e.g. [\"http://127.0.0.1:4180/auth/callback\"]",
            ));
        }
        for (i, uri) in self.redirect_uris.iter().enumerate() {
            let url = check_absolute_url(&format!("redirect_uris[{i}]"), uri)?;
            if url.fragment().is_some() {
                return Err(ConfigError::invalid(
                    format!("redirect_uris[{i}]"),
                    format!("{uri:?} must not contain a fragment ('#...')"),
                ));
            }
        }
        if let Some(uri) = &self.frontchannel_logout_url {
            check_absolute_url("frontchannel_logout_url", uri)?;
        }
        for (i, uri) in self.post_logout_redirect_uris.iter().enumerate() {
            check_absolute_url(&format!("post_logout_redirect_uris[{i}]"), uri)?;
        }
        let mut seen = HashSet::new();
        for (i, role) in self.app_roles.iter().enumerate() {
            check_token(&format!("app_roles[{i}]"), role)?;
            if !seen.insert(role.as_str()) {
                return Err(ConfigError::invalid(
                    format!("app_roles[{i}]"),
                    format!("role {role:?} is listed twice; remove the duplicate"),
                ));
            }
        }
        for (i, scope) in self.api_scopes.iter().enumerate() {
            check_token(&format!("api_scopes[{i}]"), scope)?;
            if scope == ".default" || scope.contains('/') {
                return Err(ConfigError::invalid(
                    format!("api_scopes[{i}]"),
                    format!("{scope:?} must be a plain scope name such as \"Dashboards.Read\""),
                ));
            }
        }
        let mut ids = HashSet::from([self.client_id.to_ascii_lowercase()]);
        for (i, app) in self.client_apps.iter().enumerate() {
            let key = |k: &str| format!("client_apps[{i}].{k}");
            check_token(&key("client_id"), &app.client_id)?;
            if !ids.insert(app.client_id.to_ascii_lowercase()) {
                return Err(ConfigError::invalid(
                    key("client_id"),
                    format!(
                        "{:?} is registered twice; give each application its own ID",
                        app.client_id
                    ),
                ));
            }
            if app.client_secret.is_empty() {
                return Err(ConfigError::invalid(
                    key("client_secret"),
                    "must not be empty",
                ));
            }
            for role in &app.roles {
                if !self.app_roles.contains(role) {
                    return Err(ConfigError::invalid(
                        key("roles"),
                        format!("{role:?} is not one of app_roles {:?}", self.app_roles),
                    ));
                }
            }
            for (j, uri) in app.redirect_uris.iter().enumerate() {
                check_absolute_url(&key(&format!("redirect_uris[{j}]")), uri)?;
            }
        }
        Ok(())
    }

    /// The registered application with this client ID: the relying party
    /// itself, or one of `client_apps`.
    pub fn client(&self, client_id: &str) -> Option<RegisteredClient<'_>> {
        if client_id == self.client_id {
            return Some(RegisteredClient {
                client_id: &self.client_id,
                secret: &self.client_secret,
                redirect_uris: &self.redirect_uris,
                roles: &[],
                is_app: true,
            });
        }
        self.client_apps
            .iter()
            .find(|a| a.client_id == client_id)
            .map(|a| RegisteredClient {
                client_id: &a.client_id,
                secret: &a.client_secret,
                redirect_uris: &a.redirect_uris,
                roles: &a.roles,
                is_app: false,
            })
    }

    fn validate_lifetimes(&self) -> Result<(), ConfigError> {
        for (key, value, max) in [
            (
                "id_token_lifetime_secs",
                self.id_token_lifetime_secs,
                MAX_LIFETIME_SECS,
            ),
            (
                "access_token_lifetime_secs",
                self.access_token_lifetime_secs,
                MAX_LIFETIME_SECS,
            ),
            (
                "refresh_token_lifetime_secs",
                self.refresh_token_lifetime_secs,
                MAX_REFRESH_LIFETIME_SECS,
            ),
        ] {
            if value == 0 || value > max {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} is out of range; use a number of seconds from 1 to {max}"),
                ));
            }
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        if self.users.is_empty() {
            return Err(ConfigError::invalid(
                "users",
                "must list at least one user (or remove the key to get the built-in users)",
            ));
        }
        let mut usernames = HashSet::new();
        let mut emails = HashSet::new();
        let mut oids = HashSet::new();
        for (i, user) in self.users.iter().enumerate() {
            let key = |field: &str| format!("users[{i}].{field}");
            check_token(&key("username"), &user.username)?;
            if user.username.to_ascii_lowercase().starts_with("error:") {
                return Err(ConfigError::invalid(
                    key("username"),
                    "must not start with \"error:\", which is reserved for simulated sign-in errors",
                ));
            }
            if !usernames.insert(user.username.to_lowercase()) {
                return Err(ConfigError::invalid(
                    key("username"),
                    format!(
                        "{:?} is used by two users; usernames must be unique (ignoring case)",
                        user.username
                    ),
                ));
            }
            check_token(&key("email"), &user.email)?;
            if !user.email.contains('@') {
                return Err(ConfigError::invalid(
                    key("email"),
                    format!("{:?} is not an e-mail address (missing '@')", user.email),
                ));
            }
            if !emails.insert(user.email.to_lowercase()) {
                return Err(ConfigError::invalid(
                    key("email"),
                    format!(
                        "{:?} is used by two users; e-mail addresses must be unique",
                        user.email
                    ),
                ));
            }
            if !ids::is_guid(&user.oid) {
                return Err(ConfigError::invalid(
                    key("oid"),
                    format!(
                        "{:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx); remove the key to derive one from the username",
                        user.oid
                    ),
                ));
            }
            if !oids.insert(user.oid.to_lowercase()) {
                return Err(ConfigError::invalid(
                    key("oid"),
                    format!(
                        "{:?} is used by two users; object ids must be unique",
                        user.oid
                    ),
                ));
            }
            if user.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    key("name"),
                    "must not be empty; remove the key to use the username",
                ));
            }
            for (j, role) in user.roles.iter().enumerate() {
                if !self.app_roles.contains(role) {
                    return Err(ConfigError::invalid(
                        format!("users[{i}].roles[{j}]"),
                        format!(
                            "role {role:?} is not defined; add it to `app_roles` (currently {:?}) or remove it from the user",
                            self.app_roles
                        ),
                    ));
                }
            }
            for (j, group) in user.groups.iter().enumerate() {
                check_token(&format!("users[{i}].groups[{j}]"), group)?;
            }
        }
        Ok(())
    }

    /// Finds a user by `login_hint`: the exact username or e-mail address,
    /// ignoring case.
    pub fn find_user(&self, hint: &str) -> Option<&DevUser> {
        self.users.iter().find(|user| {
            user.username.eq_ignore_ascii_case(hint) || user.email.eq_ignore_ascii_case(hint)
        })
    }

    /// Finds a user by object id (`oid`), ignoring case.
    pub fn find_user_by_oid(&self, oid: &str) -> Option<&DevUser> {
        self.users
            .iter()
            .find(|user| user.oid.eq_ignore_ascii_case(oid))
    }
}

/// A non-empty value without whitespace or control characters.
fn check_token(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} must not contain spaces or control characters"),
        ));
    }
    Ok(())
}

fn check_absolute_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| {
        ConfigError::invalid(
            key,
            format!("{value:?} is not an absolute URL ({e}); write it like \"http://127.0.0.1:4180/auth/callback\""),
        )
    })?;
    if url.cannot_be_a_base() || !url.has_host() {
        return Err(ConfigError::invalid(
            key,
            format!("{value:?} has no host; write it like \"http://127.0.0.1:4180/auth/callback\""),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        let config = DevIdpConfig::from_toml_str("").expect("empty config is valid");
        assert_eq!(config, DevIdpConfig::default());
        assert_eq!(config.users.len(), 4);
        assert_eq!(config.users[0].email, "reader@contoso.example");
    }

    #[test]
    fn user_defaults_derive_from_username() {
        let config = DevIdpConfig::from_toml_str(
            "[[users]]\nusername = \"alice\"\nroles = [\"App.Read\"]\n",
        )
        .expect("valid");
        let alice = &config.users[0];
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.email, "alice@contoso.example");
        assert!(ids::is_guid(&alice.oid));
        let again =
            DevIdpConfig::from_toml_str("[[users]]\nusername = \"alice\"\n").expect("valid");
        assert_eq!(again.users[0].oid, alice.oid, "oid is stable");
    }

    #[test]
    fn new_user_matches_a_minimal_toml_entry() {
        let config =
            DevIdpConfig::from_toml_str("[[users]]\nusername = \"bob\"\nname = \"Bob Builder\"\n")
                .expect("valid");
        assert_eq!(config.users[0], DevUser::new("bob", "Bob Builder"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(matches!(
            DevIdpConfig::from_toml_str("tenant = \"x\""),
            Err(ConfigError::Toml(_))
        ));
        assert!(matches!(
            DevIdpConfig::from_toml_str("[[users]]\nusername = \"a\"\nrole = [\"App.Read\"]\n"),
            Err(ConfigError::Toml(_))
        ));
    }

    #[test]
    fn undefined_role_is_named() {
        let err =
            DevIdpConfig::from_toml_str("[[users]]\nusername = \"a\"\nroles = [\"App.Nope\"]\n")
                .expect_err("undefined role");
        let text = err.to_string();
        assert!(text.contains("users[0].roles[0]"), "{text}");
        assert!(text.contains("app_roles"), "{text}");
    }

    #[test]
    fn duplicate_usernames_are_rejected() {
        let err = DevIdpConfig::from_toml_str(
            "[[users]]\nusername = \"a\"\n[[users]]\nusername = \"A\"\nemail = \"other@x.example\"\n",
        )
        .expect_err("duplicate");
        assert!(err.to_string().contains("users[1].username"), "{err}");
    }

    #[test]
    fn relative_redirect_uri_is_rejected() {
        let err = DevIdpConfig::from_toml_str("redirect_uris = [\"/auth/callback\"]")
            .expect_err("relative");
        assert!(err.to_string().contains("redirect_uris[0]"), "{err}");
    }

    #[test]
    fn empty_tenant_is_rejected() {
        let err = DevIdpConfig::from_toml_str("tenant_id = \"\"").expect_err("empty");
        assert!(err.to_string().contains("tenant_id"), "{err}");
    }

    #[test]
    fn names_split_into_given_name_and_surname() {
        let config = DevIdpConfig::default();
        let rita = config.find_user("READER").expect("case-insensitive");
        assert_eq!(rita.given_name(), "Rita");
        assert_eq!(rita.surname(), "Reader");
        assert!(config.find_user("writer@contoso.example").is_some());
    }

    #[test]
    fn config_round_trips_through_toml() {
        let text = toml::to_string(&DevIdpConfig::default()).expect("serialize");
        let back = DevIdpConfig::from_toml_str(&text).expect("parse back");
        assert_eq!(back, DevIdpConfig::default());
    }
}
