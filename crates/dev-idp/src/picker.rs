//! The account picker: the page the authorize endpoint shows when no
//! `login_hint` names a user. One button per configured user and one per
//! simulated Entra error; each continues the same authorization request
//! with `login_hint=<username>` (or `login_hint=error:<code>`).

use axum::http::StatusCode;
use axum::response::Response;

use crate::DevIdp;
use crate::config::DevUser;
use crate::html::{self, escape};
use crate::params::Params;
use crate::store::BrowserSession;

/// Error simulations offered on the account picker.
const SIMULATED_ERRORS: &[(u32, &str)] = &[
    (50_105, "user not assigned to the app"),
    (65_001, "consent missing"),
    (53_003, "blocked by Conditional Access"),
    (50_076, "MFA required"),
];

/// The account picker for the authorization request `params`; `session`
/// marks the user signed in to the browser, `notice` is shown above the
/// accounts.
pub(crate) fn page(
    idp: &DevIdp,
    params: &Params,
    session: Option<&BrowserSession>,
    notice: Option<&str>,
) -> Response {
    let config = idp.config();
    let hidden: String = params
        .pairs_except("login_hint")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape(k),
                escape(v)
            )
        })
        .collect();
    let accounts: String = config
        .users
        .iter()
        .map(|user| account_button(user, session.is_some_and(|s| s.oid == user.oid)))
        .collect();
    let simulations: String = SIMULATED_ERRORS
        .iter()
        .map(|(code, label)| {
            format!(
                "<button class=\"simulate\" type=\"submit\" name=\"login_hint\" value=\"error:{code}\">AADSTS{code}: {}</button>",
                escape(label)
            )
        })
        .collect();
    let notice = notice
        .map(|n| format!("<div class=\"notice\">{}</div>", escape(n)))
        .unwrap_or_default();
    let redirect = params.get("redirect_uri").unwrap_or_default();
    let body = format!(
        "<h1>Sign in to {tenant} (aadgate dev IdP)</h1>\
<p class=\"sub\">Pick an account. This is a development identity provider: there are no passwords, and anyone who can reach it can sign in as anyone.</p>\
{notice}\
<form method=\"get\" action=\"authorize\">{hidden}{accounts}\
<h2>Simulate an Entra ID error</h2>\
<p class=\"muted\">Redirects back with the error, as <code>login_hint=error:&lt;code&gt;</code> does.</p>\
{simulations}</form>\
<p class=\"muted\">Application <code>{client}</code> &middot; returns to <code>{redirect}</code></p>",
        tenant = escape(&config.tenant_id),
        client = escape(&config.client_id),
        redirect = escape(redirect),
    );
    html::page(StatusCode::OK, "Sign in to your account", &body)
}

fn account_button(user: &DevUser, signed_in: bool) -> String {
    let initials: String = user
        .name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let roles: String = if user.roles.is_empty() {
        "<span class=\"role none\">no app roles</span>".to_owned()
    } else {
        user.roles
            .iter()
            .map(|r| format!("<span class=\"role\">{}</span>", escape(r)))
            .collect()
    };
    let badge = if signed_in {
        "<span class=\"badge\">&#10003; signed in</span>"
    } else {
        ""
    };
    format!(
        "<button class=\"account\" type=\"submit\" name=\"login_hint\" value=\"{username}\">\
<span class=\"avatar\">{initials}</span><span class=\"who\"><span class=\"name\">{name}</span><br>\
<span class=\"upn\">{email} &middot; login_hint <code>{username}</code> &middot; {groups} group(s)</span><br>{roles}</span>{badge}</button>",
        username = escape(&user.username),
        initials = escape(&initials),
        name = escape(&user.name),
        email = escape(&user.email),
        groups = user.groups.len(),
    )
}
