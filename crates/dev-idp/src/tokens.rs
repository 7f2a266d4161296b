//! Minting the tokens a token response carries: the ID token (what a relying
//! party validates), a Graph-style access token, an opaque refresh token,
//! and the application token of the client-credentials grant.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::DevIdp;
use crate::aadsts::AadError;
use crate::config::DevUser;
use crate::ids;
use crate::keys::SignError;
use crate::store::{AccessGrant, RefreshGrant};

/// Application id of Microsoft Graph, the audience of Graph access tokens.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Scopes the dev IdP grants on Graph in every access token.
const GRAPH_SCOPES: &str = "openid profile email User.Read";

/// Graph's permissions a sign-in asked for beyond [`GRAPH_SCOPES`]
/// (`GroupMember.Read.All` or `https://graph.microsoft.com/GroupMember.Read.All`),
/// granted as asked: the dev tenant's admin has consented to everything.
fn extra_graph_scopes(requested: &[String]) -> Vec<String> {
    requested
        .iter()
        .map(|s| s.strip_prefix("https://graph.microsoft.com/").unwrap_or(s))
        .filter(|s| !s.contains("://") && !s.contains('/') && s.contains('.'))
        .filter(|s| !GRAPH_SCOPES.split(' ').any(|g| g == *s))
        .map(str::to_owned)
        .collect()
}

/// The `scp` of a Graph access token for a sign-in that asked for `requested`.
pub(crate) fn graph_scopes(requested: &[String]) -> Vec<String> {
    GRAPH_SCOPES
        .split(' ')
        .map(str::to_owned)
        .chain(extra_graph_scopes(requested))
        .collect()
}

/// The sign-in a set of tokens belongs to.
#[derive(Debug, Clone)]
pub(crate) struct SignIn<'a> {
    pub(crate) user: &'a DevUser,
    pub(crate) client_id: &'a str,
    pub(crate) scopes: &'a [String],
    /// The authorize request's `nonce`; `None` on refresh.
    pub(crate) nonce: Option<&'a str>,
    /// The sign-in session id (`sid` claim).
    pub(crate) sid: &'a str,
    pub(crate) auth_time: u64,
}

/// A successful token response, serialized as Entra ID v2 does.
#[derive(Debug)]
pub(crate) struct TokenResponse {
    pub(crate) id_token: String,
    pub(crate) access_token: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) scope: String,
    pub(crate) expires_in: u64,
}

impl TokenResponse {
    pub(crate) fn to_json(&self) -> Value {
        let mut body = json!({
            "token_type": "Bearer",
            "scope": self.scope,
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": self.access_token,
            "id_token": self.id_token,
        });
        if let (Some(refresh), Some(map)) = (&self.refresh_token, body.as_object_mut()) {
            map.insert("refresh_token".to_owned(), Value::from(refresh.as_str()));
        }
        body
    }
}

/// The pairwise `sub`: stable per (tenant, application, user), like Entra's
/// 43-character base64url subject.
pub(crate) fn pairwise_sub(tenant_id: &str, client_id: &str, oid: &str) -> String {
    ids::sha256_b64url(format!("aadgate-dev-idp sub|{tenant_id}|{client_id}|{oid}").as_bytes())
}

fn has_scope(scopes: &[String], wanted: &str) -> bool {
    scopes.iter().any(|s| s == wanted)
}

/// Mints an ID token, access token and (with `offline_access`) a refresh
/// token, and records the access and refresh tokens in the store.
pub(crate) fn issue(
    idp: &DevIdp,
    sign_in: &SignIn<'_>,
    now: u64,
) -> Result<TokenResponse, SignError> {
    let config = idp.config();
    let key = idp.keys().current();

    let id_token = key.sign_jwt(&Map::new(), &id_token_claims(idp, sign_in, now))?;

    let access_exp = now + config.access_token_lifetime_secs;
    let api = ApiScopes::requested(config, sign_in.scopes).ok().flatten();
    let access_token = match &api {
        // For the registered app's API: an Entra v2.0 access token, an
        // ordinary JWT the API validates.
        Some(api) => key.sign_jwt(&Map::new(), &api_token_claims(idp, sign_in, api, now))?,
        // Shaped like a Microsoft Graph access token (see
        // `SigningKey::sign_jwt_with_hashed_nonce`): opaque to relying parties.
        None => key.sign_jwt_with_hashed_nonce(
            &ids::random_token(32),
            &access_token_claims(idp, sign_in, now),
        )?,
    };

    let refresh_token =
        has_scope(sign_in.scopes, "offline_access").then(|| format!("1.{}", ids::random_token(48)));

    {
        let mut store = idp.store();
        // Graph answers only Graph's tokens; a token for the app's API is not one.
        if api.is_none() {
            store.insert_access_token(
                access_token.clone(),
                AccessGrant {
                    client_id: sign_in.client_id.to_owned(),
                    oid: sign_in.user.oid.clone(),
                    scopes: graph_scopes(sign_in.scopes),
                },
                access_exp,
                now,
            );
        }
        if let Some(refresh) = &refresh_token {
            store.insert_refresh_token(
                refresh.clone(),
                RefreshGrant {
                    client_id: sign_in.client_id.to_owned(),
                    oid: sign_in.user.oid.clone(),
                    scopes: sign_in.scopes.to_vec(),
                    sid: sign_in.sid.to_owned(),
                    auth_time: sign_in.auth_time,
                },
                now + config.refresh_token_lifetime_secs,
                now,
            );
        }
    }

    Ok(TokenResponse {
        id_token,
        access_token,
        refresh_token,
        scope: match &api {
            Some(api) => api.granted(config, sign_in.scopes),
            None => granted_scope(sign_in.scopes),
        },
        expires_in: config.access_token_lifetime_secs,
    })
}

/// The `scope` of a token response: the OpenID scopes requested plus the
/// Graph delegated permission the access token carries.
fn granted_scope(requested: &[String]) -> String {
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested {
        if !granted.contains(&scope.as_str()) {
            granted.push(scope);
        }
    }
    if !granted
        .iter()
        .any(|s| *s == "User.Read" || *s == "https://graph.microsoft.com/User.Read")
    {
        granted.push("User.Read");
    }
    granted.join(" ")
}

fn id_token_claims(idp: &DevIdp, sign_in: &SignIn<'_>, now: u64) -> Value {
    let config = idp.config();
    let user = sign_in.user;
    let mut claims = Map::new();
    let mut put = |name: &str, value: Value| {
        claims.insert(name.to_owned(), value);
    };
    put("aud", Value::from(sign_in.client_id));
    put("iss", Value::from(idp.issuer()));
    put("iat", Value::from(now));
    put("nbf", Value::from(now));
    put("exp", Value::from(now + config.id_token_lifetime_secs));
    put("aio", Value::from(ids::random_token(60)));
    if has_scope(sign_in.scopes, "email") {
        put("email", Value::from(user.email.as_str()));
    }
    if user.groups_overage {
        put("_claim_names", json!({ "groups": "src1" }));
        put(
            "_claim_sources",
            json!({ "src1": { "endpoint": format!("{}/v1.0/users/{}/getMemberObjects", idp.base(), user.oid) } }),
        );
    } else if !user.groups.is_empty() {
        put("groups", json!(user.groups));
    }
    put(
        "login_hint",
        Value::from(format!(
            "O.{}",
            ids::b64url(format!("{}@{}", user.oid, config.tenant_id).as_bytes())
        )),
    );
    if has_scope(sign_in.scopes, "profile") {
        put("name", Value::from(user.name.as_str()));
        put("oid", Value::from(user.oid.as_str()));
        put("preferred_username", Value::from(user.email.as_str()));
    }
    if let Some(nonce) = sign_in.nonce {
        put("nonce", Value::from(nonce));
    }
    put("rh", Value::from(format!("1.{}", ids::random_token(40))));
    // Entra omits `roles` entirely when no app role is assigned.
    if !user.roles.is_empty() {
        put("roles", json!(user.roles));
    }
    put("sid", Value::from(sign_in.sid));
    put(
        "sub",
        Value::from(pairwise_sub(
            &config.tenant_id,
            sign_in.client_id,
            &user.oid,
        )),
    );
    put("tid", Value::from(config.tenant_id.as_str()));
    put("uti", Value::from(ids::random_token(16)));
    put("ver", Value::from("2.0"));
    Value::Object(claims)
}

/// The OpenID Connect scopes, which name no resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Delegated permissions of the registered app's API that a sign-in asked
/// for (`api://<client id>/<scope>` or `<client id>/<scope>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiScopes(Vec<String>);

impl ApiScopes {
    /// Reads the requested scopes as Entra does: the OpenID scopes, plus
    /// either scopes of the app's API or Graph's, not both (one token is
    /// for one resource). `None`: no API scope (the access token is for
    /// Graph).
    pub(crate) fn requested(
        config: &crate::DevIdpConfig,
        scopes: &[String],
    ) -> Result<Option<Self>, AadError> {
        let id = &config.client_id;
        let mut api = Vec::new();
        let mut other = false;
        for s in scopes.iter().filter(|s| !OIDC_SCOPES.contains(&s.as_str())) {
            let name = s
                .strip_prefix("api://")
                .unwrap_or(s)
                .strip_prefix(id.as_str())
                .and_then(|rest| rest.strip_prefix('/'));
            match name {
                Some(".default") => api.extend(config.api_scopes.iter().cloned()),
                Some(name) if config.api_scopes.iter().any(|a| a == name) => {
                    api.push(name.to_owned())
                }
                Some(name) => {
                    return Err(AadError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_client",
                        650_053,
                        format!(
                            "The application asked for scope '{name}' that doesn't exist on the resource '{id}'. (This dev IdP's API exposes {:?}: key api_scopes.)",
                            config.api_scopes
                        ),
                    ));
                }
                None => other = true,
            }
        }
        if api.is_empty() {
            return Ok(None);
        }
        if other {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                28_000,
                "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope openid profile email offline_access plus scopes of two resources is not valid. Request the app's API scopes and Graph scopes in separate token requests.",
            ));
        }
        let mut unique: Vec<String> = Vec::new();
        for s in api {
            if !unique.contains(&s) {
                unique.push(s);
            }
        }
        Ok(Some(Self(unique)))
    }

    /// The token response's `scope`: the API's scopes by full URI, then the
    /// OpenID scopes that were asked for.
    fn granted(&self, config: &crate::DevIdpConfig, requested: &[String]) -> String {
        self.0
            .iter()
            .map(|s| format!("api://{}/{s}", config.client_id))
            .chain(
                requested
                    .iter()
                    .filter(|s| OIDC_SCOPES.contains(&s.as_str()))
                    .cloned(),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A user's access token for the registered app's API, shaped like Entra's
/// v2.0 access tokens (`accessTokenAcceptedVersion: 2`, no optional
/// claims): `aud` is the API's client ID, `azp` the calling client, `scp`
/// the delegated permissions, `roles` the user's app roles.
fn api_token_claims(idp: &DevIdp, sign_in: &SignIn<'_>, api: &ApiScopes, now: u64) -> Value {
    let config = idp.config();
    let user = sign_in.user;
    let mut claims = json!({
        "aud": config.client_id,
        "iss": idp.issuer(),
        "iat": now,
        "nbf": now,
        "exp": now + config.access_token_lifetime_secs,
        "aio": ids::random_token(60),
        "azp": sign_in.client_id,
        "azpacr": "1",
        "name": user.name,
        "oid": user.oid,
        "preferred_username": user.email,
        "rh": format!("1.{}", ids::random_token(40)),
        "scp": api.0.join(" "),
        "sid": sign_in.sid,
        "sub": pairwise_sub(&config.tenant_id, &config.client_id, &user.oid),
        "tid": config.tenant_id,
        "uti": ids::random_token(16),
        "ver": "2.0",
    });
    if let Some(map) = claims.as_object_mut() {
        if !user.roles.is_empty() {
            map.insert("roles".to_owned(), json!(user.roles));
        }
        if user.groups_overage {
            map.insert("hasgroups".to_owned(), Value::Bool(true));
        } else if !user.groups.is_empty() {
            map.insert("groups".to_owned(), json!(user.groups));
        }
    }
    claims
}

fn access_token_claims(idp: &DevIdp, sign_in: &SignIn<'_>, now: u64) -> Value {
    let config = idp.config();
    let user = sign_in.user;
    json!({
        "aud": GRAPH_APP_ID,
        "iss": format!("https://sts.windows.net/{}/", config.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + config.access_token_lifetime_secs,
        "acct": 0,
        "acr": "1",
        "aio": ids::random_token(60),
        "amr": ["pwd"],
        "app_displayname": "aadgate dev app",
        "appid": sign_in.client_id,
        "appidacr": "1",
        "family_name": user.surname(),
        "given_name": user.given_name(),
        "idtyp": "user",
        "ipaddr": "127.0.0.1",
        "name": user.name,
        "oid": user.oid,
        "rh": format!("1.{}", ids::random_token(40)),
        "scp": graph_scopes(sign_in.scopes).join(" "),
        "sid": sign_in.sid,
        "sub": ids::sha256_b64url(format!("aadgate-dev-idp graph sub|{}", user.oid).as_bytes()),
        "tenant_region_scope": "EU",
        "tid": config.tenant_id,
        "unique_name": user.email,
        "upn": user.email,
        "uti": ids::random_token(16),
        "ver": "1.0",
    })
}

/// The resource URI of Azure Cache for Redis.
pub(crate) const AZURE_REDIS: &str = "https://redis.azure.com";

/// The resource an application token is for, from a client-credentials
/// `scope`. This dev IdP knows two: the registered app's own API, and
/// Azure Cache for Redis ([`AZURE_REDIS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppResource {
    /// The token's `aud`: the resource's application (client) id, as in
    /// Entra's v2 access tokens.
    pub(crate) audience: String,
}

impl AppResource {
    /// Reads `scope` as Entra does for client credentials: exactly one
    /// `<resource>/.default`, where the resource is the app's client id or
    /// `api://<client id>` (its Application ID URI).
    pub(crate) fn from_scope(idp: &DevIdp, scope: &str) -> Result<Self, AadError> {
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        let [only] = scopes.as_slice() else {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70_011,
                format!(
                    "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not name exactly one resource with '/.default'."
                ),
            ));
        };
        let Some(resource) = only.strip_suffix("/.default") else {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {only} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        };
        let client_id = &idp.config().client_id;
        // Azure Cache for Redis, for Entra authentication to Redis (its
        // tokens carry the resource URI as `aud`, as Entra's do).
        if resource.eq_ignore_ascii_case(AZURE_REDIS) {
            return Ok(Self {
                audience: AZURE_REDIS.to_owned(),
            });
        }
        let own = resource.eq_ignore_ascii_case(client_id)
            || resource
                .strip_prefix("api://")
                .is_some_and(|id| id.eq_ignore_ascii_case(client_id));
        if !own {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_resource",
                500_011,
                format!(
                    "The resource principal named {resource} was not found in the tenant named aadgate dev tenant. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant. (This dev IdP knows two resources: the registered app, as '{client_id}/.default' or 'api://{client_id}/.default', and Azure Cache for Redis, '{AZURE_REDIS}/.default'.)"
                ),
            ));
        }
        Ok(Self {
            audience: client_id.clone(),
        })
    }
}

/// The object id of an application's service principal in the dev tenant
/// (the `oid` and `sub` of its application tokens): stable per client id.
pub(crate) fn service_principal_oid(tenant_id: &str, client_id: &str) -> String {
    ids::guid_from_seed(&format!(
        "aadgate-dev-idp service principal|{tenant_id}|{client_id}"
    ))
}

/// Mints an application token (client credentials: no user) for
/// `client_id` to call `resource`, shaped like an Entra v2 access token with
/// `idtyp: app`, and returns the token response. It is an ordinary JWT,
/// verifiable with the JWKS: the resource validates it.
pub(crate) fn issue_app_token(
    idp: &DevIdp,
    client_id: &str,
    resource: &AppResource,
    now: u64,
) -> Result<Value, SignError> {
    let config = idp.config();
    let lifetime = config.access_token_lifetime_secs;
    let oid = service_principal_oid(&config.tenant_id, client_id);
    // Application roles of the app's API granted to the client (none for
    // other resources).
    let roles: &[String] = match config.client(client_id) {
        Some(client) if resource.audience == config.client_id => client.roles,
        _ => &[],
    };
    let mut claims = json!({
        "aud": resource.audience,
        "iss": idp.issuer(),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "aio": ids::random_token(60),
        "azp": client_id,
        "azpacr": "1",
        "idtyp": "app",
        "oid": oid,
        "rh": format!("1.{}", ids::random_token(40)),
        "sub": oid,
        "tid": config.tenant_id,
        "uti": ids::random_token(16),
        "ver": "2.0",
    });
    if let (false, Some(map)) = (roles.is_empty(), claims.as_object_mut()) {
        map.insert("roles".to_owned(), json!(roles));
    }
    let access_token = idp.keys().current().sign_jwt(&Map::new(), &claims)?;
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_scopes_are_read_as_entra_reads_them() {
        let config = crate::DevIdpConfig {
            api_scopes: vec!["access_as_user".into(), "Dashboards.Read".into()],
            ..crate::DevIdpConfig::default()
        };
        let id = config.client_id.clone();
        let ask = |scopes: &[String]| ApiScopes::requested(&config, scopes);
        let s = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(ask(&s(&["openid", "profile", "User.Read"])).unwrap(), None);
        let one = ask(&s(&["openid", &format!("api://{id}/Dashboards.Read")])).unwrap();
        assert_eq!(one, Some(ApiScopes(s(&["Dashboards.Read"]))));
        assert_eq!(
            one.unwrap().granted(&config, &s(&["openid", "x"])),
            format!("api://{id}/Dashboards.Read openid")
        );
        // `<client id>/scope` names the API too; `.default` asks for every scope.
        let all = ask(&s(&[
            &format!("{id}/.default"),
            &format!("api://{id}/access_as_user"),
        ]));
        assert_eq!(
            all.unwrap(),
            Some(ApiScopes(s(&["access_as_user", "Dashboards.Read"])))
        );
        // An unexposed scope, and two resources in one request, are refused.
        let e = ask(&s(&[&format!("api://{id}/Admin.All")])).unwrap_err();
        assert!(format!("{e:?}").contains("650053"), "{e:?}");
        let e = ask(&s(&[&format!("api://{id}/access_as_user"), "User.Read"])).unwrap_err();
        assert!(format!("{e:?}").contains("28000"), "{e:?}");
    }

    #[test]
    fn pairwise_sub_depends_on_client() {
        let a = pairwise_sub("t", "client-a", "oid");
        assert_eq!(a.len(), 43);
        assert_eq!(a, pairwise_sub("t", "client-a", "oid"));
        assert_ne!(a, pairwise_sub("t", "client-b", "oid"));
    }

    #[test]
    fn granted_scope_adds_user_read_once() {
        let scopes: Vec<String> = ["openid", "profile", "openid", "offline_access"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            granted_scope(&scopes),
            "openid profile offline_access User.Read"
        );
    }
}
