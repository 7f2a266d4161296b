//! OpenID Connect discovery and the JWKS.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::DevIdp;

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(
    State(idp): State<DevIdp>,
    Path(tenant): Path<String>,
) -> Response {
    if let Err(err) = idp.check_tenant(&tenant) {
        return err.into_response();
    }
    Json(document(&idp)).into_response()
}

/// The discovery document, shaped like Entra ID's v2 one.
pub(crate) fn document(idp: &DevIdp) -> Value {
    json!({
        "token_endpoint": idp.tenant_url("oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": idp.tenant_url("discovery/v2.0/keys"),
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": idp.issuer(),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{}/oidc/userinfo", idp.base()),
        "authorization_endpoint": idp.tenant_url("oauth2/v2.0/authorize"),
        "device_authorization_endpoint": Value::Null,
        "http_logout_supported": true,
        "frontchannel_logout_supported": false,
        "end_session_endpoint": idp.tenant_url("oauth2/v2.0/logout"),
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "nbf", "auth_time", "acr", "nonce",
            "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email",
            "oid", "roles", "groups", "sid", "login_hint", "uti", "rh", "aio"
        ],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "aadgate-dev-idp.invalid",
        "msgraph_host": idp.base().split_once("://").map_or(idp.base(), |(_, host)| host),
    })
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub(crate) async fn jwks(State(idp): State<DevIdp>, Path(tenant): Path<String>) -> Response {
    if let Err(err) = idp.check_tenant(&tenant) {
        return err.into_response();
    }
    // Not cacheable: a rotation must be visible at once.
    let mut response = Json(idp.keys().jwks(&idp.issuer())).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
