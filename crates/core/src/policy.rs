//! Authorization policy: a role hierarchy and per-path rules.
//!
//! ```
//! use aadgate_core::policy::{AuthzConfig, Policy, Requirement, RouteConfig};
//!
//! let authz = AuthzConfig { roles: vec!["App.Read".into(), "App.Write".into(), "App.Admin".into()], ..AuthzConfig::default() };
//! let routes = vec![
//!     RouteConfig { path: "/admin".into(), role: Some("App.Admin".into()), ..RouteConfig::default() },
//!     RouteConfig { path: "/assets".into(), public: true, ..RouteConfig::default() },
//!     // Any one of these: a role outside the hierarchy, or App.Admin (or higher).
//!     RouteConfig { path: "/reports".into(), roles: vec!["Reports.View".into(), "App.Admin".into()], ..RouteConfig::default() },
//! ];
//! let policy = Policy::from_config(&authz, &routes).unwrap();
//! assert_eq!(policy.requirement("/assets/app.css"), Requirement::Public);
//! let admin = policy.requirement("/admin/users");
//! assert!(policy.allows(admin, &["App.Admin".to_string()]));
//! assert!(!policy.allows(admin, &["App.Write".to_string()]));
//! // Without a rule, the lowest role is needed; higher roles imply it.
//! assert!(policy.allows(policy.requirement("/"), &["App.Write".to_string()]));
//! assert!(!policy.allows(policy.requirement("/"), &[]));
//! let reports = policy.requirement("/reports");
//! assert!(policy.allows(reports, &["Reports.View".to_string()]));
//! assert!(policy.allows(reports, &["App.Admin".to_string()]));
//! assert!(!policy.allows(reports, &["App.Write".to_string()]));
//! ```

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// `[authz]`: the role hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    /// App roles, lowest first: each role implies those before it. A signed-in
    /// user holding none of them is refused with 403. Empty: any signed-in
    /// user is let in.
    #[serde(default)]
    pub roles: Vec<String>,
    /// When a user's token reports group overage (Entra lists no groups
    /// for a user in more than 200), read the user's groups, transitive
    /// membership included, from Microsoft Graph with the user's access
    /// token at sign-in and at each revalidation, so `[[route]] groups`
    /// rules apply. Needs the delegated permission `GroupMember.Read.All`
    /// in `oidc.scopes` (admin consent). When they cannot be read, group
    /// rules still refuse the user. Default `false`.
    #[serde(default)]
    pub resolve_group_overage: bool,
}

/// `[[route]]`: a rule for a path prefix.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, matched on whole segments of the normalized path
    /// (`/admin` matches `/admin` and `/admin/x`, not `/administrator`).
    pub path: String,
    /// At least this role of `authz.roles` (or a higher one) is required.
    #[serde(default)]
    pub role: Option<String>,
    /// Any one of these app roles is enough: a role of `authz.roles` is
    /// also held through a higher one; others (`Reports.View`) must be held
    /// themselves. Instead of `role`, not with it.
    #[serde(default)]
    pub roles: Vec<String>,
    /// `true`: no sign-in needed.
    #[serde(default)]
    pub public: bool,
    /// Which credentials the route takes: `session` (default: the browser's
    /// sign-in), `bearer` (an Entra access token for this app's API in
    /// `Authorization: Bearer`, for scripts, notebooks and other services)
    /// or `any` (a bearer token when one is sent, else the session).
    #[serde(default)]
    pub auth: RouteAuth,
    /// Delegated permissions (`scp`) of which a user's bearer token must
    /// carry at least one, e.g. `["Dashboards.Read"]`. Application tokens
    /// have none and are authorized by their application roles alone.
    /// Needs `auth = "bearer"` or `"any"`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Group object ids; the user must be a member of at least one (in
    /// addition to the role). Needs the `groups` claim in the ID token
    /// (Entra: Token configuration > Add groups claim). A token that signals
    /// group overage (over 200 groups) is refused on such routes.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[route]] auth`: which credentials a route takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// The browser's session cookie.
    #[default]
    Session,
    /// An access token in `Authorization: Bearer`.
    Bearer,
    /// Either: the bearer token when one is sent, else the session.
    Any,
}

/// The credentials a path takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The session cookie.
    pub session: bool,
    /// A bearer token.
    pub bearer: bool,
}

impl Credentials {
    const ALL: Self = Self {
        session: true,
        bearer: true,
    };

    fn of(auth: RouteAuth) -> Self {
        Self {
            session: auth != RouteAuth::Bearer,
            bearer: auth != RouteAuth::Session,
        }
    }

    /// What both take.
    fn and(self, other: Self) -> Self {
        Self {
            session: self.session && other.session,
            bearer: self.bearer && other.bearer,
        }
    }
}

/// What a request path requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// No sign-in.
    Public,
    /// Signed in, with at least the role at this index of the hierarchy
    /// (`None`: any signed-in user, when no roles are configured).
    SignedIn(Option<usize>),
    /// Signed in, holding any one of the roles of this list
    /// ([`Policy::role_list`]): a role of the hierarchy directly or through
    /// a higher one, any other role directly.
    AnyRole(usize),
}

#[derive(Debug, Clone)]
struct Rule {
    /// Normalized prefix without trailing slash ("" for the root rule).
    prefix: String,
    /// `prefix` lower-cased.
    folded: String,
    requirement: Requirement,
    /// Group object ids of which the user must hold one (empty: no group condition).
    groups: std::sync::Arc<[String]>,
    credentials: Credentials,
    /// Delegated permissions of which a user's bearer token needs one.
    scopes: std::sync::Arc<[String]>,
}

/// The decision for one request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Sign-in and role needed.
    pub requirement: Requirement,
    /// A second requirement, met too, when the path's case-folded rule
    /// needs something `requirement` does not imply (two role lists).
    pub also: Option<Requirement>,
    /// Membership of any of these groups is needed too (empty: none).
    pub groups: &'a [String],
    /// Which credentials are taken: what the path's exact and case-folded
    /// rules both take (neither, when they disagree: the request is refused).
    pub credentials: Credentials,
    /// Lists of delegated permissions (the exact rule's, and the case-folded
    /// rule's when different), of each of which a user's bearer token needs
    /// one (empty: none).
    pub scopes: [&'a [String]; 2],
    /// The path is refused: control characters, undecodable, or a `.` or
    /// `..` segment (see [`normalize_path`]).
    pub malformed: bool,
}

/// The role hierarchy and route rules, checked at start-up.
#[derive(Debug, Clone)]
pub struct Policy {
    roles: Vec<String>,
    /// The role lists of [`Requirement::AnyRole`].
    role_lists: Vec<Vec<String>>,
    /// Sorted longest prefix first.
    rules: Vec<Rule>,
}

impl Policy {
    /// Builds the policy; unknown roles and duplicate rules fail here, not at request time.
    pub fn from_config(authz: &AuthzConfig, routes: &[RouteConfig]) -> Result<Self, ConfigError> {
        let mut roles: Vec<String> = Vec::new();
        for r in &authz.roles {
            if r.trim().is_empty() || roles.contains(r) {
                return Err(ConfigError::new("authz.roles", format!("{r:?} is empty or repeated"))
                    .with_fix("list each app role once, lowest first, e.g. [\"App.Read\", \"App.Write\", \"App.Admin\"]"));
            }
            roles.push(r.clone());
        }
        let default = Requirement::SignedIn(if roles.is_empty() { None } else { Some(0) });
        let mut policy = Self {
            roles,
            role_lists: Vec::new(),
            rules: Vec::new(),
        };
        let mut rules: Vec<Rule> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let key = format!("route[{i}].path");
            if !route.path.starts_with('/') {
                return Err(ConfigError::new(
                    key,
                    format!("{:?} does not start with /", route.path),
                )
                .with_fix("write paths like \"/admin\""));
            }
            let prefix = normalize_path(&route.path).ok_or_else(|| {
                ConfigError::new(&key, format!("{:?} is not a clean path", route.path))
                    .with_fix("write a plain path without dots, query or control characters")
            })?;
            let prefix = prefix.trim_end_matches('/').to_owned();
            if rules.iter().any(|r| r.prefix == prefix) {
                return Err(
                    ConfigError::new(key, format!("{:?} has two rules", route.path))
                        .with_fix("merge the two [[route]] entries"),
                );
            }
            let requirement = match (route.public, &route.role, route.roles.is_empty()) {
                (true, Some(_), _) | (true, None, false) => {
                    return Err(ConfigError::new(
                        format!("route[{i}]"),
                        "is both public and role-restricted",
                    )
                    .with_fix("remove `public = true`, or `role` and `roles`"));
                }
                (false, Some(_), false) => {
                    return Err(ConfigError::new(
                        format!("route[{i}]"),
                        "has both `role` and `roles`",
                    )
                    .with_fix("use `role` for that role or higher, or `roles = [...]` for any one of a list"));
                }
                (true, None, true) => Requirement::Public,
                (false, None, true) => default,
                (false, Some(role), true) => policy.at_least(role, &format!("route[{i}].role"))?,
                (false, None, false) => {
                    policy.any_of(&route.roles, &format!("route[{i}].roles"))?
                }
            };
            if route.public && !route.groups.is_empty() {
                return Err(ConfigError::new(
                    format!("route[{i}]"),
                    "is both public and group-restricted",
                )
                .with_fix("remove `public = true` or `groups`"));
            }
            if route.groups.iter().any(|g| g.trim().is_empty()) {
                return Err(ConfigError::new(
                    format!("route[{i}].groups"),
                    "has an empty group id",
                )
                .with_fix("list group object ids (GUIDs from Entra ID > Groups)"));
            }
            if route.public && route.auth != RouteAuth::Session {
                return Err(ConfigError::new(
                    format!("route[{i}].auth"),
                    "is set on a public route, which takes no credentials",
                )
                .with_fix("remove `public = true` or `auth`"));
            }
            if !route.scopes.is_empty() && route.auth == RouteAuth::Session {
                return Err(ConfigError::new(
                    format!("route[{i}].scopes"),
                    "applies to bearer tokens, which this route does not take",
                )
                .with_fix("add auth = \"bearer\" (or \"any\"), or remove `scopes`"));
            }
            if route
                .scopes
                .iter()
                .any(|s| s.trim().is_empty() || s.contains(' '))
            {
                return Err(ConfigError::new(
                    format!("route[{i}].scopes"),
                    "has an empty scope or one with a space",
                )
                .with_fix("list scope names as the API's app registration shows them (Expose an API), without the api:// prefix, e.g. [\"Dashboards.Read\"]"));
            }
            rules.push(Rule {
                folded: prefix.to_lowercase(),
                prefix,
                requirement,
                groups: route.groups.clone().into(),
                credentials: if route.public {
                    Credentials::ALL
                } else {
                    Credentials::of(route.auth)
                },
                scopes: route.scopes.clone().into(),
            });
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        rules.push(Rule {
            prefix: String::new(),
            folded: String::new(),
            requirement: default,
            groups: Vec::new().into(),
            credentials: Credentials::of(RouteAuth::Session),
            scopes: Vec::new().into(),
        });
        policy.rules = rules;
        Ok(policy)
    }

    /// The requirement `role = "…"` (at `key`) names: that role of the
    /// hierarchy or a higher one.
    pub fn at_least(&self, role: &str, key: &str) -> Result<Requirement, ConfigError> {
        let idx = self.roles.iter().position(|r| r == role).ok_or_else(|| {
            ConfigError::new(key, format!("{role:?} is not in authz.roles")).with_fix(format!(
                "use one of {:?}, or add it to authz.roles (or name it in `roles = [...]`, which takes any role)",
                self.roles
            ))
        })?;
        Ok(Requirement::SignedIn(Some(idx)))
    }

    /// The requirement `roles = [...]` (at `key`) names: any one of them.
    /// Rules with the same list share it.
    pub fn any_of(&mut self, roles: &[String], key: &str) -> Result<Requirement, ConfigError> {
        let mut list: Vec<String> = Vec::new();
        for r in roles {
            if r.trim().is_empty() || list.contains(r) {
                return Err(
                    ConfigError::new(key, format!("{r:?} is empty or repeated")).with_fix(
                        "list each app role once, e.g. roles = [\"Reports.View\", \"App.Admin\"]",
                    ),
                );
            }
            list.push(r.clone());
        }
        let idx = match self.role_lists.iter().position(|l| *l == list) {
            Some(i) => i,
            None => {
                self.role_lists.push(list);
                self.role_lists.len() - 1
            }
        };
        Ok(Requirement::AnyRole(idx))
    }

    /// The configured roles, lowest first.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The roles of a [`Requirement::AnyRole`] list.
    pub fn role_list(&self, idx: usize) -> &[String] {
        self.role_lists.get(idx).map_or(&[], Vec::as_slice)
    }

    /// The requirement for a request path (without query). A path that cannot
    /// be normalized needs the strictest requirement of any rule.
    ///
    /// Many servers route case-insensitively (Express and IIS by default), so
    /// the path is also matched with rules and path lower-cased, and the
    /// stricter answer wins: `/ADMIN` needs what `/admin` needs, and `/ASSETS`
    /// is public only if `/assets` is.
    pub fn requirement(&self, raw_path: &str) -> Requirement {
        self.decide(raw_path).requirement
    }

    /// The full decision for a request path: requirement, group condition,
    /// and whether the path is malformed (see [`Policy::requirement`]).
    pub fn decide(&self, raw_path: &str) -> Decision<'_> {
        let Some(path) = normalize_path(raw_path) else {
            return Decision {
                requirement: self.strictest(),
                also: None,
                groups: &[],
                credentials: Credentials::of(RouteAuth::Session),
                scopes: [&[], &[]],
                malformed: true,
            };
        };
        let exact = self.match_rule(&path, false);
        let folded = self.match_rule(&path.to_lowercase(), true);
        let groups = if exact.groups.is_empty() {
            &folded.groups
        } else {
            &exact.groups
        };
        let (requirement, also) = both(exact.requirement, folded.requirement);
        let other_scopes: &[String] = if folded.scopes == exact.scopes {
            &[]
        } else {
            &folded.scopes
        };
        Decision {
            requirement,
            also,
            groups,
            credentials: exact.credentials.and(folded.credentials),
            scopes: [&exact.scopes, other_scopes],
            malformed: false,
        }
    }

    fn match_rule(&self, path: &str, fold: bool) -> &Rule {
        let root = self.rules.last().expect("the root rule is always present");
        self.rules
            .iter()
            .find(|rule| {
                let prefix = if fold {
                    rule.folded.as_str()
                } else {
                    rule.prefix.as_str()
                };
                prefix.is_empty()
                    || path == prefix
                    || (path.starts_with(prefix)
                        && path.as_bytes().get(prefix.len()) == Some(&b'/'))
            })
            .unwrap_or(root)
    }

    /// Whether a user meets a group condition. A token that signals group
    /// overage (more than 200 groups, list incomplete) never does: fail closed.
    pub fn groups_allow(groups: &[String], user_groups: &[String], overage: bool) -> bool {
        groups.is_empty() || (!overage && user_groups.iter().any(|g| groups.contains(g)))
    }

    fn strictest(&self) -> Requirement {
        let max = self
            .rules
            .iter()
            .filter_map(|r| match r.requirement {
                Requirement::SignedIn(i) => Some(i),
                // A malformed path is refused whoever asks; the role lists
                // only add a requirement the hierarchy cannot express.
                Requirement::Public | Requirement::AnyRole(_) => None,
            })
            .max()
            .flatten();
        Requirement::SignedIn(max.or(if self.roles.is_empty() { None } else { Some(0) }))
    }

    /// The role of the hierarchy a requirement needs, if any.
    pub fn role_name(&self, req: Requirement) -> Option<&str> {
        match req {
            Requirement::SignedIn(Some(i)) => self.roles.get(i).map(String::as_str),
            _ => None,
        }
    }

    /// The first requirement of `decision` a signed-in user with these
    /// roles does not meet; `None` when they may go on.
    pub fn unmet(&self, decision: &Decision<'_>, user_roles: &[String]) -> Option<Requirement> {
        std::iter::once(decision.requirement)
            .chain(decision.also)
            .find(|r| !self.allows(*r, user_roles))
    }

    /// The highest configured role the user holds (index), if any.
    pub fn rank(&self, user_roles: &[String]) -> Option<usize> {
        self.roles
            .iter()
            .enumerate()
            .rev()
            .find(|(_, r)| user_roles.contains(r))
            .map(|(i, _)| i)
    }

    /// Whether a signed-in user with these roles meets the requirement.
    pub fn allows(&self, req: Requirement, user_roles: &[String]) -> bool {
        match req {
            Requirement::Public | Requirement::SignedIn(None) => true,
            Requirement::SignedIn(Some(needed)) => {
                self.rank(user_roles).is_some_and(|r| r >= needed)
            }
            Requirement::AnyRole(list) => {
                let rank = self.rank(user_roles);
                self.role_list(list).iter().any(|role| {
                    user_roles.contains(role)
                        || self
                            .roles
                            .iter()
                            .position(|r| r == role)
                            .is_some_and(|i| rank.is_some_and(|held| held >= i))
                })
            }
        }
    }

    /// The roles a user effectively holds: each held role plus every lower one.
    pub fn effective_roles(&self, user_roles: &[String]) -> Vec<String> {
        let mut out: Vec<String> = match self.rank(user_roles) {
            Some(r) => self.roles[..=r].to_vec(),
            None => Vec::new(),
        };
        for r in user_roles {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
}

impl Decision<'_> {
    /// The first list of delegated permissions none of which `held`
    /// contains; `None` when the scopes are met.
    pub fn unmet_scopes(&self, held: &[String]) -> Option<&[String]> {
        self.scopes
            .into_iter()
            .find(|list| !list.is_empty() && !list.iter().any(|s| held.contains(s)))
    }
}

/// What meeting both `a` and `b` takes: the stricter of the two when one
/// implies the other (public < any user < lowest role < ...), else both.
fn both(a: Requirement, b: Requirement) -> (Requirement, Option<Requirement>) {
    let rank = |r: Requirement| match r {
        Requirement::Public => Some(0),
        Requirement::SignedIn(None) => Some(1),
        Requirement::SignedIn(Some(i)) => Some(2 + i),
        Requirement::AnyRole(_) => None,
    };
    match (rank(a), rank(b)) {
        _ if a == b => (a, None),
        (Some(x), Some(y)) => (if x >= y { a } else { b }, None),
        // A role list implies being signed in, nothing more.
        (Some(x), None) if x <= 1 => (b, None),
        (None, Some(y)) if y <= 1 => (a, None),
        _ => (a, Some(b)),
    }
}

/// Normalizes a request path for route decisions: percent-decoding (repeated,
/// so double encoding cannot hide a segment), `\` treated as `/`, empty
/// segments removed. Returns `None` for paths that are refused: control
/// characters, invalid UTF-8, and any `.` or `..` segment (after decoding,
/// and before a `;` parameter). Browsers resolve dot segments before sending
/// a request, and apps disagree on them (Werkzeug and Flask route
/// `/admin/../public` as it is, to `/admin/<path>`), so a decision made on
/// the resolved path would not be about the request the app acts on.
pub fn normalize_path(raw: &str) -> Option<String> {
    let mut decoded = raw.to_owned();
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&decoded)
            .decode_utf8()
            .ok()?
            .into_owned();
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if decoded.contains('%')
        && percent_encoding::percent_decode_str(&decoded)
            .decode_utf8()
            .ok()?
            != decoded
    {
        // Still encoded after four rounds: refuse rather than guess.
        return None;
    }
    if decoded.chars().any(|c| c.is_control()) {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        // Path parameters (`/admin;jsessionid=x`, `/..;/`) are dropped by
        // Tomcat, Jetty and Spring before routing: decide as they will.
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" => {}
            "." | ".." => return None,
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len() + 1);
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if path.is_empty() {
        path.push('/');
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let authz = AuthzConfig {
            roles: vec!["App.Read".into(), "App.Write".into(), "App.Admin".into()],
            ..AuthzConfig::default()
        };
        let routes = vec![
            RouteConfig {
                path: "/admin".into(),
                role: Some("App.Admin".into()),
                public: false,
                ..RouteConfig::default()
            },
            RouteConfig {
                path: "/admin/public".into(),
                role: None,
                public: true,
                ..RouteConfig::default()
            },
            RouteConfig {
                path: "/assets/".into(),
                role: None,
                public: true,
                ..RouteConfig::default()
            },
            RouteConfig {
                path: "/write".into(),
                role: Some("App.Write".into()),
                public: false,
                ..RouteConfig::default()
            },
        ];
        Policy::from_config(&authz, &routes).unwrap()
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let p = policy();
        assert_eq!(p.requirement("/admin"), Requirement::SignedIn(Some(2)));
        assert_eq!(p.requirement("/admin/x"), Requirement::SignedIn(Some(2)));
        assert_eq!(p.requirement("/admin/public/x"), Requirement::Public);
        assert_eq!(
            p.requirement("/administrator"),
            Requirement::SignedIn(Some(0))
        );
        assert_eq!(p.requirement("/assets"), Requirement::Public);
        assert_eq!(p.requirement("/assetsX"), Requirement::SignedIn(Some(0)));
    }

    #[test]
    fn tricks_do_not_reach_public_rules() {
        let p = policy();
        for path in [
            "/assets/../admin",
            "/assets/%2e%2e/admin",
            "/assets/%252e%252e/admin",
            "/assets%2f..%2fadmin",
            "/assets\\..\\admin",
            "//admin",
            "/./admin",
            "/assets/..;/admin",
            "/assets/..%3b/admin",
            "/admin;jsessionid=x",
        ] {
            assert_eq!(
                p.requirement(path),
                Requirement::SignedIn(Some(2)),
                "{path}"
            );
            let dots = ["..", "%2e", "%252e", "/./"]
                .iter()
                .any(|d| path.contains(d));
            assert_eq!(p.decide(path).malformed, dots, "{path}");
        }
        // Dot segments, however spelled, are refused outright.
        for path in ["/assets/.;x/admin", "/assets/%2E/admin", "/assets/.", "/.."] {
            assert!(p.decide(path).malformed, "{path}");
        }
        for path in ["/assets/.hidden", "/assets/..x", "/assets/x..", "/a/.../b"] {
            assert!(!p.decide(path).malformed, "{path}");
        }
        // Unnormalizable paths get the strictest rule.
        assert_eq!(p.requirement("/assets/%00"), Requirement::SignedIn(Some(2)));
        assert_eq!(p.requirement("/../assets"), Requirement::SignedIn(Some(2)));
    }

    #[test]
    fn case_variants_get_the_stricter_rule() {
        let p = policy();
        assert_eq!(p.requirement("/ADMIN"), Requirement::SignedIn(Some(2)));
        assert_eq!(p.requirement("/Admin/x"), Requirement::SignedIn(Some(2)));
        assert_eq!(
            p.requirement("/ASSETS/app.css"),
            Requirement::SignedIn(Some(0))
        );
        assert_eq!(p.requirement("/assets/App.CSS"), Requirement::Public);
    }

    #[test]
    fn hierarchy_implies_lower_roles() {
        let p = policy();
        let w = vec!["App.Write".to_string()];
        assert!(p.allows(Requirement::SignedIn(Some(0)), &w));
        assert!(p.allows(Requirement::SignedIn(Some(1)), &w));
        assert!(!p.allows(Requirement::SignedIn(Some(2)), &w));
        assert!(!p.allows(Requirement::SignedIn(Some(0)), &["Other".to_string()]));
        assert_eq!(p.effective_roles(&w), ["App.Read", "App.Write"]);
    }

    #[test]
    fn bad_rules_fail_at_start_up() {
        let authz = AuthzConfig {
            roles: vec!["App.Read".into()],
            ..AuthzConfig::default()
        };
        let r = |path: &str, role: Option<&str>, public| RouteConfig {
            path: path.into(),
            role: role.map(Into::into),
            public,
            ..RouteConfig::default()
        };
        assert_eq!(
            Policy::from_config(&authz, &[r("/a", Some("App.Nope"), false)])
                .unwrap_err()
                .key,
            "route[0].role"
        );
        assert_eq!(
            Policy::from_config(&authz, &[r("a", None, false)])
                .unwrap_err()
                .key,
            "route[0].path"
        );
        assert_eq!(
            Policy::from_config(&authz, &[r("/a", Some("App.Read"), true)])
                .unwrap_err()
                .key,
            "route[0]"
        );
        let listed = |roles: &[&str], role: Option<&str>, public| RouteConfig {
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..r("/a", role, public)
        };
        for (bad, key) in [
            (listed(&["X"], Some("App.Read"), false), "route[0]"),
            (listed(&["X"], None, true), "route[0]"),
            (listed(&["X", "X"], None, false), "route[0].roles"),
            (listed(&[" "], None, false), "route[0].roles"),
        ] {
            assert_eq!(
                Policy::from_config(&authz, std::slice::from_ref(&bad))
                    .unwrap_err()
                    .key,
                key,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn credentials_and_scopes_hold_for_every_spelling_of_a_path() {
        let route = |path: &str, auth: RouteAuth, scopes: &[&str]| RouteConfig {
            path: path.into(),
            auth,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..RouteConfig::default()
        };
        let p = Policy::from_config(
            &AuthzConfig::default(),
            &[
                route("/api", RouteAuth::Bearer, &["Data.Read"]),
                route("/API/v2", RouteAuth::Bearer, &["Data.Write"]),
                route("/mixed", RouteAuth::Any, &[]),
                RouteConfig {
                    path: "/docs".into(),
                    public: true,
                    ..RouteConfig::default()
                },
            ],
        )
        .unwrap();
        let only_bearer = Credentials {
            session: false,
            bearer: true,
        };
        let held = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let d = p.decide("/api/items");
        assert_eq!(d.credentials, only_bearer);
        assert_eq!(d.unmet_scopes(&held(&["Data.Read"])), None);
        assert!(d.unmet_scopes(&held(&["Data.Write"])).is_some());
        assert_eq!(
            p.decide("/").credentials,
            Credentials::of(RouteAuth::Session)
        );
        assert_eq!(p.decide("/mixed").credentials, Credentials::ALL);
        // `/Api` is `/api` to a case-insensitive app: a bearer route with
        // its scopes, never the root's session rule alone.
        let d = p.decide("/Api/items");
        assert_eq!(
            d.credentials,
            Credentials {
                session: false,
                bearer: false
            },
            "the root takes sessions, /api only tokens: none is both"
        );
        let d = p.decide("/api/v2/x");
        assert_eq!(d.credentials, only_bearer);
        assert!(
            d.unmet_scopes(&held(&["Data.Read"])).is_some(),
            "/API/v2's scope too"
        );
        assert_eq!(d.unmet_scopes(&held(&["Data.Read", "Data.Write"])), None);
        // A public rule restricts nothing.
        assert_eq!(p.decide("/docs").requirement, Requirement::Public);
    }

    #[test]
    fn bearer_settings_that_cannot_work_fail_at_start_up() {
        let fails = |route: RouteConfig| {
            Policy::from_config(&AuthzConfig::default(), &[route])
                .unwrap_err()
                .to_string()
        };
        let e = fails(RouteConfig {
            path: "/x".into(),
            scopes: vec!["Data.Read".into()],
            ..RouteConfig::default()
        });
        assert!(
            e.contains("route[0].scopes") && e.contains("auth = \"bearer\""),
            "{e}"
        );
        let e = fails(RouteConfig {
            path: "/x".into(),
            public: true,
            auth: RouteAuth::Bearer,
            ..RouteConfig::default()
        });
        assert!(e.contains("route[0].auth"), "{e}");
        let e = fails(RouteConfig {
            path: "/x".into(),
            auth: RouteAuth::Any,
            scopes: vec!["api://x/Data.Read Data.Write".into()],
            ..RouteConfig::default()
        });
        assert!(e.contains("route[0].scopes"), "{e}");
    }

    #[test]
    fn role_lists_take_any_one_role_and_the_hierarchy_still_counts() {
        let authz = AuthzConfig {
            roles: vec!["App.Read".into(), "App.Write".into(), "App.Admin".into()],
            ..AuthzConfig::default()
        };
        let route = |path: &str, roles: &[&str]| RouteConfig {
            path: path.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            ..RouteConfig::default()
        };
        let p = Policy::from_config(
            &authz,
            &[
                route("/reports", &["Reports.View", "App.Write"]),
                route("/audit", &["Audit.Read"]),
                route("/Audit", &["Compliance"]),
                route("/finance", &["Reports.View", "App.Write"]),
            ],
        )
        .unwrap();
        let user = |roles: &[&str]| roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>();
        let may = |path: &str, roles: &[&str]| p.unmet(&p.decide(path), &user(roles)).is_none();
        // Outside the hierarchy: held directly.
        assert!(may("/reports/q3", &["Reports.View"]));
        // In it: held directly or through a higher role.
        assert!(may("/reports", &["App.Write"]));
        assert!(may("/reports", &["App.Admin"]));
        assert!(!may("/reports", &["App.Read"]));
        assert!(!may("/reports", &[]));
        // Elsewhere the hierarchy's lowest role is still needed.
        assert!(!may("/", &["Reports.View"]));
        // Two lists a path's case variants need are both needed.
        assert!(may("/audit", &["Audit.Read"]));
        assert!(
            !may("/AUDIT", &["Audit.Read"]),
            "no rule is /AUDIT itself: the root's App.Read is needed too"
        );
        assert!(may("/AUDIT", &["Audit.Read", "App.Read"]));
        assert!(!may("/Audit", &["Compliance"]), "and /audit's");
        assert!(may("/Audit", &["Compliance", "Audit.Read"]));
        // Equal lists are stored once.
        assert_eq!(p.requirement("/finance"), p.requirement("/reports"));
    }
}
