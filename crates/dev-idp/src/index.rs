//! `GET /`: what this dev IdP is and how to point a relying party at it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::DevIdp;
use crate::html::{self, escape};

pub(crate) async fn home(State(idp): State<DevIdp>) -> Response {
    let config = idp.config();
    let users: String = config
        .users
        .iter()
        .map(|user| {
            let roles = if user.roles.is_empty() {
                "<span class=\"role none\">none</span>".to_owned()
            } else {
                user.roles
                    .iter()
                    .map(|r| format!("<span class=\"role\">{}</span>", escape(r)))
                    .collect()
            };
            let groups: String = user
                .groups
                .iter()
                .map(|g| format!("<div class=\"mono\">{}</div>", escape(g)))
                .collect();
            format!(
                "<tr><td><code>{}</code></td><td>{}<div class=\"muted\">{}</div></td><td class=\"mono\">{}</td><td>{roles}</td><td>{groups}{}</td></tr>",
                escape(&user.username),
                escape(&user.name),
                escape(&user.email),
                escape(&user.oid),
                if user.groups_overage { "<div class=\"muted\">(sent as groups overage)</div>" } else { "" },
            )
        })
        .collect();
    let redirect_uris: String = config
        .redirect_uris
        .iter()
        .map(|r| format!("<div class=\"mono\">{}</div>", escape(r)))
        .collect();
    let row = |name: &str, value: &str| {
        format!(
            "<tr><th>{}</th><td class=\"mono\">{}</td></tr>",
            escape(name),
            escape(value)
        )
    };
    let settings = [
        row("Tenant id", &config.tenant_id),
        row("Client id", &config.client_id),
        row("Issuer", &idp.issuer()),
        row("Discovery", &idp.discovery_url()),
        row("Authorize", &idp.tenant_url("oauth2/v2.0/authorize")),
        row("Token", &idp.tenant_url("oauth2/v2.0/token")),
        row("JWKS", &idp.tenant_url("discovery/v2.0/keys")),
        row("Logout", &idp.tenant_url("oauth2/v2.0/logout")),
        row("Graph /me", &format!("{}/v1.0/me", idp.base())),
    ]
    .concat();
    let body = format!(
        "<h1>aadgate dev IdP</h1>\
<p>A local identity provider that speaks Microsoft Entra ID's v2 endpoints, so an Entra ID relying party can be developed and tested without an Azure tenant. \
It signs anyone in as any configured user without a password: use it on your own machine only.</p>\
<h2>Settings for the relying party</h2><table>{settings}\
<tr><th>Client secret</th><td>set in the dev IdP configuration (<code>client_secret</code>)</td></tr>\
<tr><th>Redirect URIs</th><td>{redirect_uris}</td></tr></table>\
<h2>Users</h2>\
<table><tr><th>login_hint</th><th>Name</th><th>oid</th><th>Roles</th><th>Groups</th></tr>{users}</table>\
<h2>Tricks</h2><ul>\
<li><code>login_hint=&lt;username&gt;</code> on the authorize request signs that user in without the account picker.</li>\
<li><code>login_hint=error:50105</code> (any AADSTS number) sends that error back to the relying party.</li>\
<li><code>POST /_dev/rotate-keys</code> rotates the signing key; the previous key stays in the JWKS.</li>\
</ul>"
    );
    html::page_with_class(StatusCode::OK, "aadgate dev IdP", "wide", &body)
}
