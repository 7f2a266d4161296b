//! Client assertions (RFC 7523) at the token endpoint, as Entra checks
//! them: a JWT the app signed with the key of a certificate registered for
//! it (`x5t#S256` names the certificate; `aud` is the token endpoint,
//! `iss` = `sub` = the client ID), or a token of a trusted external issuer
//! matching one of the app's federated credentials (workload identity
//! federation).

use axum::http::StatusCode;
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::DevIdp;
use crate::aadsts::AadError;
use crate::config::FederatedCredential;

/// `client_assertion_type` of a JWT client assertion.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn invalid(code: u32, message: impl Into<String>) -> AadError {
    AadError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, message)
}

/// Checks `assertion` for the registered application `client_id`.
pub(crate) fn verify(idp: &DevIdp, client_id: &str, assertion: &str) -> Result<(), AadError> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50_027,
            "JWT token is invalid or malformed.",
        )
    })?;
    if client_id != idp.config().client_id {
        return Err(invalid(
            700_027,
            format!(
                "Client assertion contains an invalid signature. The application '{client_id}' has no certificates or federated credentials in this dev IdP."
            ),
        ));
    }
    match header.x5t_s256.as_deref() {
        Some(thumbprint) => certificate(idp, client_id, assertion, thumbprint),
        None => federated(idp, client_id, assertion, header.alg),
    }
}

fn certificate(
    idp: &DevIdp,
    client_id: &str,
    assertion: &str,
    thumbprint: &str,
) -> Result<(), AadError> {
    let config = idp.config();
    let cert = config
        .client_certificates
        .iter()
        .find(|pem| der_thumbprint(pem).as_deref() == Some(thumbprint))
        .ok_or_else(|| {
            invalid(
                700_027,
                format!("Client assertion failed signature validation. The certificate with identifier used to sign the client assertion (x5t#S256 {thumbprint}) is not registered on application '{client_id}'."),
            )
        })?;
    let key = DecodingKey::from_rsa_pem(cert.as_bytes())
        .map_err(|_| invalid(700_027, "The registered certificate has no RSA key."))?;
    let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[idp.tenant_url("oauth2/v2.0/token")]);
    v.set_issuer(&[client_id]);
    v.sub = Some(client_id.to_owned());
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.validate_nbf = true;
    v.leeway = 60;
    checked(jsonwebtoken::decode::<Map<String, Value>>(
        assertion, &key, &v,
    ))
}

fn federated(
    idp: &DevIdp,
    client_id: &str,
    assertion: &str,
    alg: jsonwebtoken::Algorithm,
) -> Result<(), AadError> {
    // The unverified claims pick the credential; its keys then verify them.
    let claims: Map<String, Value> = assertion
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid(50_027, "JWT token is invalid or malformed."))?;
    let s = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default();
    let (iss, sub) = (s("iss"), s("sub"));
    let config = idp.config();
    let by_issuer: Vec<&FederatedCredential> = config
        .federated_credentials
        .iter()
        .filter(|c| c.issuer == iss)
        .collect();
    if by_issuer.is_empty() {
        return Err(invalid(
            700_211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{iss}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion."
            ),
        ));
    }
    let credential = by_issuer.into_iter().find(|c| c.subject == sub).ok_or_else(|| {
        invalid(
            70_021,
            format!("No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.", s("aud")),
        )
    })?;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&credential.jwks).map_err(|_| {
        invalid(
            700_211,
            "The federated credential's issuer keys are unreadable.",
        )
    })?;
    let kid = jsonwebtoken::decode_header(assertion)
        .ok()
        .and_then(|h| h.kid);
    let jwk = jwks
        .keys
        .iter()
        .find(|k| kid.is_none() || k.common.key_id == kid)
        .ok_or_else(|| {
            invalid(
                700_027,
                "Client assertion contains an invalid signature: no key of the issuer has its kid.",
            )
        })?;
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| invalid(700_027, "The issuer's key is unusable."))?;
    if !matches!(
        alg,
        jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::ES256
    ) {
        return Err(invalid(
            700_027,
            "Client assertion uses an algorithm that is not accepted.",
        ));
    }
    let mut v = Validation::new(alg);
    v.set_audience(&[credential.audience.as_str()]);
    v.set_issuer(&[credential.issuer.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    v.validate_nbf = true;
    v.leeway = 60;
    checked(jsonwebtoken::decode::<Map<String, Value>>(
        assertion, &key, &v,
    ))?;
    tracing::info!(%client_id, issuer = %iss, subject = %sub, "dev IdP accepted a federated credential");
    Ok(())
}

/// Entra's answer for what jsonwebtoken found wrong.
fn checked<T>(result: jsonwebtoken::errors::Result<T>) -> Result<(), AadError> {
    use jsonwebtoken::errors::ErrorKind;
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.kind() {
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => invalid(
                700_024,
                "Client assertion is not within its valid time range.",
            ),
            ErrorKind::InvalidAudience => invalid(
                700_212,
                "No matching federated identity record found for presented assertion audience (or the client assertion's aud is not this token endpoint).",
            ),
            ErrorKind::InvalidSignature => {
                invalid(700_027, "Client assertion failed signature validation.")
            }
            other => invalid(
                700_027,
                format!("Client assertion is not valid: {other:?}."),
            ),
        }),
    }
}

/// `x5t#S256` of a PEM certificate: base64url of its DER's SHA-256.
fn der_thumbprint(text: &str) -> Option<String> {
    let der = pem::parse_many(text)
        .ok()?
        .into_iter()
        .find(|p| p.tag() == "CERTIFICATE")?
        .into_contents();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
}
