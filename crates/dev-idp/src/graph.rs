//! The bits of Microsoft Graph a relying party calls with the access token
//! (`/v1.0/me`, `getMemberObjects` for groups overage), and the OpenID
//! Connect userinfo endpoint.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::DevUser;
use crate::store::{AccessGrant, Lookup};
use crate::tokens::{GRAPH_APP_ID, pairwise_sub};
use crate::{DevIdp, clock, ids};

/// A Graph error: status, code and message in Graph's JSON shape.
struct GraphError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The `WWW-Authenticate` challenge for 401 responses.
    challenge: Option<String>,
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": clock::iso_timestamp(clock::now_secs()),
                    "request-id": ids::guid(),
                    "client-request-id": ids::guid(),
                }
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(value) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Why a bearer token was not accepted.
enum TokenProblem {
    Missing,
    Malformed,
    Unknown,
    Expired,
}

impl TokenProblem {
    fn message(&self) -> &'static str {
        match self {
            Self::Missing => "Access token is empty.",
            Self::Malformed => "IDX14100: JWT is not well formed, there are no dots (.).",
            Self::Unknown => {
                "Access token validation failure. The token was not issued by this dev IdP (or the dev IdP restarted since)."
            }
            Self::Expired => "Lifetime validation failed, the token is expired.",
        }
    }
}

/// Finds the access token in `Authorization: Bearer ...`.
fn access_grant(idp: &DevIdp, headers: &HeaderMap) -> Result<AccessGrant, TokenProblem> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(TokenProblem::Missing)?;
    if token.split('.').count() != 3 {
        return Err(TokenProblem::Malformed);
    }
    match idp.store().access_token(token, clock::now_secs()) {
        Lookup::Found(grant) => Ok(grant),
        Lookup::Expired => Err(TokenProblem::Expired),
        Lookup::Unknown => Err(TokenProblem::Unknown),
    }
}

/// The signed-in user of a Graph request, or Graph's 401/404.
fn graph_user<'a>(idp: &'a DevIdp, headers: &HeaderMap) -> Result<&'a DevUser, GraphError> {
    let grant = access_grant(idp, headers).map_err(|problem| GraphError {
        status: StatusCode::UNAUTHORIZED,
        code: "InvalidAuthenticationToken",
        message: problem.message().to_owned(),
        challenge: Some(format!(
            "Bearer realm=\"\", authorization_uri=\"{}\", client_id=\"{GRAPH_APP_ID}\"",
            idp.tenant_url("oauth2/v2.0/authorize")
        )),
    })?;
    idp.config()
        .find_user_by_oid(&grant.oid)
        .ok_or_else(|| GraphError {
            status: StatusCode::NOT_FOUND,
            code: "Request_ResourceNotFound",
            message: format!(
                "Resource '{}' does not exist or one of its queried reference-property objects are not present.",
                grant.oid
            ),
            challenge: None,
        })
}

/// `GET /v1.0/me`: the signed-in user as a Graph user resource.
pub(crate) async fn me(State(idp): State<DevIdp>, headers: HeaderMap) -> Response {
    match graph_user(&idp, &headers) {
        Ok(user) => Json(json!({
            "@odata.context": format!("{}/v1.0/$metadata#users/$entity", idp.base()),
            "businessPhones": [],
            "displayName": user.name,
            "givenName": user.given_name(),
            "jobTitle": user.job_title,
            "mail": user.email,
            "mobilePhone": Value::Null,
            "officeLocation": user.office_location,
            "preferredLanguage": "en-US",
            "surname": user.surname(),
            "userPrincipalName": user.email,
            "id": user.oid,
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// `POST /v1.0/me/getMemberObjects`: the user's group ids.
pub(crate) async fn my_member_objects(State(idp): State<DevIdp>, headers: HeaderMap) -> Response {
    match graph_user(&idp, &headers) {
        Ok(user) => member_objects(&idp, &headers, user),
        Err(err) => err.into_response(),
    }
}

/// `POST /v1.0/users/{id}/getMemberObjects`: the groups-overage endpoint of
/// ID tokens; `id` must be the signed-in user (object id or UPN).
pub(crate) async fn user_member_objects(
    State(idp): State<DevIdp>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match graph_user(&idp, &headers) {
        Ok(user) if user.oid.eq_ignore_ascii_case(&id) || user.email.eq_ignore_ascii_case(&id) => {
            member_objects(&idp, &headers, user)
        }
        Ok(_) => GraphError {
            status: StatusCode::FORBIDDEN,
            code: "Authorization_RequestDenied",
            message: "Insufficient privileges to complete the operation.".to_owned(),
            challenge: None,
        }
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// The user's groups, for a token with a permission Graph documents for
/// reading memberships (`GroupMember.Read.All`, or the broader
/// `Group.Read.All` / `Directory.Read.All`); Graph's 403 otherwise.
fn member_objects(idp: &DevIdp, headers: &HeaderMap, user: &DevUser) -> Response {
    const ENOUGH: [&str; 3] = [
        "GroupMember.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
    ];
    let allowed = access_grant(idp, headers)
        .is_ok_and(|grant| grant.scopes.iter().any(|s| ENOUGH.contains(&s.as_str())));
    if !allowed {
        return GraphError {
            status: StatusCode::FORBIDDEN,
            code: "Authorization_RequestDenied",
            message: "Insufficient privileges to complete the operation.".to_owned(),
            challenge: None,
        }
        .into_response();
    }
    Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(Edm.String)", idp.base()),
        "value": user.groups,
    }))
    .into_response()
}

/// `GET|POST /oidc/userinfo`.
pub(crate) async fn userinfo(State(idp): State<DevIdp>, headers: HeaderMap) -> Response {
    let grant = match access_grant(&idp, &headers) {
        Ok(grant) => grant,
        Err(problem) => {
            let description = problem.message();
            let mut response = (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "invalid_token", "error_description": description })),
            )
                .into_response();
            let challenge =
                format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            return response;
        }
    };
    let Some(user) = idp.config().find_user_by_oid(&grant.oid) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    Json(json!({
        "sub": pairwise_sub(&idp.config().tenant_id, &grant.client_id, &user.oid),
        "name": user.name,
        "family_name": user.surname(),
        "given_name": user.given_name(),
        "email": user.email,
    }))
    .into_response()
}
