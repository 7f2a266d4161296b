//! Token validation: signature by an allow-listed asymmetric algorithm and
//! the key its `kid` names, then the claims. ID tokens ([`check_claims`]):
//! `iss`, `aud`/`azp`, `exp`/`nbf`/`iat` with bounded skew, `nonce`, and
//! Entra's `tid`/`ver` rules. Access tokens for this app's API
//! ([`check_access_claims`]): the same issuer, tenant and time rules, an
//! audience of this API, and who is calling (a user through a client, or an
//! application).

use jsonwebtoken::{DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::identity::Identity;

/// An asymmetric JWS algorithm aadgate can accept for ID tokens. Symmetric
/// (`HS*`) algorithms and `none` are deliberately not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (Entra ID's).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
}

impl Algorithm {
    /// Every algorithm aadgate can accept.
    pub const ALL: &'static [Algorithm] = &[
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
    ];

    /// The JOSE name (`RS256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
        }
    }

    /// Parses a JOSE name; `None` for anything else, `none` and `HS*` included.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::RS384 => jsonwebtoken::Algorithm::RS384,
            Self::RS512 => jsonwebtoken::Algorithm::RS512,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::PS384 => jsonwebtoken::Algorithm::PS384,
            Self::PS512 => jsonwebtoken::Algorithm::PS512,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
        }
    }
}

/// Parses an algorithm name for `oidc.allowed_algorithms`; refuses symmetric ones and `none`.
pub fn parse_allowed_algorithm(name: &str) -> Result<Algorithm, &'static str> {
    match Algorithm::from_name(name) {
        Some(a) => Ok(a),
        None if name.starts_with("HS") || name.eq_ignore_ascii_case("none") => {
            Err("is not an asymmetric signature algorithm")
        }
        None => Err("is not a known algorithm"),
    }
}

/// Key family, to check a key fits the token's `alg` (RS/HS confusion defence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyType {
    /// RSA, with modulus length in bits.
    Rsa(usize),
    /// Elliptic curve with its `crv`.
    Ec(String),
}

/// A verification key from the provider's JWKS.
#[derive(Clone)]
pub struct VerifyingKey {
    /// `kid`.
    pub kid: Option<String>,
    /// Key type.
    pub kty: KeyType,
    /// `alg` the key is restricted to, if the JWKS says.
    pub alg: Option<String>,
    /// Entra's per-key `issuer` property (multi-tenant validation).
    pub issuer: Option<String>,
    pub(crate) key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Parses one JWK, or says why it is unusable (the caller skips it).
    pub fn from_jwk(value: &Value) -> Result<Self, String> {
        let obj = value.as_object().ok_or("not an object")?;
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(u) = s("use")
            && u != "sig"
        {
            return Err(format!("use {u:?}"));
        }
        let kty = match s("kty").as_deref() {
            Some("RSA") => {
                let n = s("n").ok_or("RSA key without n")?;
                let bytes = crate::crypto::b64url_decode(n.trim_end_matches('='))
                    .ok_or("n is not base64url")?;
                let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
                let bits = (bytes.len() - first) * 8;
                if bits < 2048 {
                    return Err(format!("RSA key of {bits} bits is too small"));
                }
                KeyType::Rsa(bits)
            }
            Some("EC") => KeyType::Ec(s("crv").ok_or("EC key without crv")?),
            other => return Err(format!("unsupported kty {other:?}")),
        };
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(value.clone()).map_err(|e| format!("unparseable: {e}"))?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable: {e}"))?;
        Ok(Self {
            kid: s("kid"),
            kty,
            alg: s("alg"),
            issuer: s("issuer"),
            key,
        })
    }

    fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        let by_type = match (&self.kty, alg) {
            (KeyType::Rsa(_), RS256 | RS384 | RS512 | PS256 | PS384 | PS512) => true,
            (KeyType::Ec(crv), ES256) => crv == "P-256",
            (KeyType::Ec(crv), ES384) => crv == "P-384",
            _ => false,
        };
        by_type && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }
}

/// The header fields validation needs.
#[derive(Debug, Clone)]
pub struct TokenHeader {
    /// Algorithm.
    pub alg: Algorithm,
    /// Key id.
    pub kid: Option<String>,
    /// `typ` (RFC 9068 marks access tokens `at+jwt`).
    pub typ: Option<String>,
}

/// Reads the JOSE header and checks the algorithm against the allow-list.
/// `alg: none` and unknown algorithms fail here.
pub fn read_header(token: &str, allowed: &[Algorithm]) -> Result<TokenHeader, TokenError> {
    if token.len() > 64 * 1024 {
        return Err(TokenError::Malformed("token longer than 64 KiB".into()));
    }
    if token.split('.').count() != 3 {
        return Err(TokenError::Malformed(
            "not three dot-separated parts".into(),
        ));
    }
    // The raw header is read first so that algorithms jsonwebtoken does not
    // model (`none`) get the same precise error as disallowed ones.
    let raw: Value = token
        .split('.')
        .next()
        .and_then(crate::crypto::b64url_decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| TokenError::Malformed("header is not base64url JSON".into()))?;
    let alg_name = raw
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or("(missing)");
    let alg = Algorithm::from_name(alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| TokenError::AlgorithmNotAllowed(capped(alg_name)))?;
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    Ok(TokenHeader {
        alg,
        kid: header.kid,
        typ: header.typ,
    })
}

/// At most 64 characters of a value a token chose, for errors and logs.
fn capped(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Picks the key: by `kid`; without `kid` only when exactly one key fits.
pub fn select_key<'a>(
    header: &TokenHeader,
    keys: &'a [VerifyingKey],
) -> Result<&'a VerifyingKey, TokenError> {
    let key = match &header.kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| TokenError::UnknownKey(Some(capped(kid))))?,
        None => match keys {
            [] => return Err(TokenError::UnknownKey(None)),
            [only] => only,
            _ => return Err(TokenError::AmbiguousKey),
        },
    };
    if !key.fits(header.alg) {
        return Err(TokenError::KeyTypeMismatch {
            kid: key.kid.clone(),
            kty: format!("{:?}", key.kty),
            alg: header.alg.name().to_owned(),
        });
    }
    Ok(key)
}

/// Verifies the signature only and returns the claims object.
pub fn verify_signature(
    token: &str,
    header: &TokenHeader,
    key: &VerifyingKey,
) -> Result<Map<String, Value>, TokenError> {
    let mut v = Validation::new(header.alg.to_jwt());
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            }
        })?;
    Ok(data.claims)
}

/// What the claims are checked against.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// Exact issuer, or a template containing `{tenantid}` (Entra multi-tenant).
    pub issuer: &'a str,
    /// Our client id.
    pub client_id: &'a str,
    /// Allowed tenants for a template issuer (`*` = any).
    pub allowed_tenants: &'a [String],
    /// Entra rules (`ver` 2.0, `tid` present).
    pub entra: bool,
    /// Expected nonce (sign-in), `None` for refreshed tokens (then a nonce is not required).
    pub nonce: Option<&'a str>,
    /// Current time, seconds.
    pub now: i64,
    /// Allowed clock skew, seconds.
    pub skew: i64,
    /// Oldest acceptable `iat`, seconds before now.
    pub max_age: i64,
}

/// Checks the claims of a signature-verified token.
pub fn check_claims(
    claims: &Map<String, Value>,
    key: &VerifyingKey,
    x: &Expectations<'_>,
) -> Result<IdClaims, TokenError> {
    let str_claim = |k: &'static str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let (iss, sub) = issuer_and_subject(claims)?;
    let tid = str_claim("tid");

    check_issuer(
        &iss,
        tid.as_deref(),
        key.issuer.as_deref(),
        x.issuer,
        x.allowed_tenants,
    )?;
    if x.entra {
        let ver = str_claim("ver");
        if ver.as_deref() != Some("2.0") {
            return Err(TokenError::Version(ver));
        }
        if tid.is_none() {
            return Err(TokenError::MissingClaim("tid"));
        }
    }

    // Audience and authorized party.
    let aud: Vec<String> = match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => return Err(TokenError::MissingClaim("aud")),
    };
    if !aud.iter().any(|a| a == x.client_id) {
        return Err(TokenError::Audience(aud));
    }
    let azp = str_claim("azp");
    if aud.len() > 1 && azp.as_deref() != Some(x.client_id) {
        return Err(TokenError::AuthorizedParty(azp));
    }
    if let Some(azp) = &azp
        && azp != x.client_id
    {
        return Err(TokenError::AuthorizedParty(Some(azp.clone())));
    }

    let (exp, iat) = check_times(claims, x.now, x.skew, x.max_age)?;

    // Nonce.
    let nonce = str_claim("nonce");
    if let Some(expected) = x.nonce {
        match &nonce {
            Some(n) if crate::crypto::ct_eq(n.as_bytes(), expected.as_bytes()) => {}
            Some(_) => return Err(TokenError::Nonce),
            None => return Err(TokenError::MissingClaim("nonce")),
        }
    }

    Ok(IdClaims {
        aud,
        exp,
        iat,
        identity: identity(claims, sub),
    })
}

/// `iss` and a non-empty `sub`, which every token must have.
fn issuer_and_subject(claims: &Map<String, Value>) -> Result<(String, String), TokenError> {
    let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let iss = text("iss").ok_or(TokenError::MissingClaim("iss"))?;
    let sub = text("sub")
        .filter(|s| !s.is_empty())
        .ok_or(TokenError::MissingClaim("sub"))?;
    Ok((iss, sub))
}

/// Checks `iss` against `expected`, an exact issuer or a template with
/// `{tenantid}` (Entra multi-tenant: the token's `tid` fills it in, and must
/// be allowed); `key_issuer` is Entra's per-key `issuer`, a template too.
fn check_issuer(
    iss: &str,
    tid: Option<&str>,
    key_issuer: Option<&str>,
    expected: &str,
    allowed_tenants: &[String],
) -> Result<(), TokenError> {
    if !expected.contains("{tenantid}") {
        if iss != expected {
            return Err(TokenError::Issuer {
                expected: expected.to_owned(),
                found: iss.to_owned(),
            });
        }
        return Ok(());
    }
    let tid = tid
        .filter(|t| crate::entra::is_guid(t))
        .ok_or_else(|| TokenError::Tenant(tid.map(str::to_owned)))?;
    let filled = expected.replace("{tenantid}", tid);
    if iss != filled {
        return Err(TokenError::Issuer {
            expected: filled,
            found: iss.to_owned(),
        });
    }
    if let Some(key_iss) = key_issuer
        && key_iss.replace("{tenantid}", tid) != iss
    {
        return Err(TokenError::Issuer {
            expected: key_iss.to_owned(),
            found: iss.to_owned(),
        });
    }
    if !allowed_tenants
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(tid))
    {
        return Err(TokenError::Tenant(Some(tid.to_owned())));
    }
    Ok(())
}

/// `exp`, `nbf` and `iat` against `now` with `skew`; `iat` no older than
/// `max_age`. Returns `(exp, iat)`.
fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    skew: i64,
    max_age: i64,
) -> Result<(i64, i64), TokenError> {
    let num_claim = |k: &'static str| claims.get(k).and_then(Value::as_f64).map(|f| f as i64);
    let exp = num_claim("exp").ok_or(TokenError::MissingClaim("exp"))?;
    let iat = num_claim("iat").ok_or(TokenError::MissingClaim("iat"))?;
    if now > exp.saturating_add(skew) {
        return Err(TokenError::Expired { exp, now });
    }
    if let Some(nbf) = num_claim("nbf")
        && nbf > now + skew
    {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    if iat > now + skew || iat < now.saturating_sub(max_age).saturating_sub(skew) {
        return Err(TokenError::IssuedAt { iat, now });
    }
    Ok((exp, iat))
}

/// A claim that is a list of strings, or one string (`[]` when absent).
fn string_list(claims: &Map<String, Value>, k: &str) -> Vec<String> {
    match claims.get(k) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The [`Identity`] the claims of a checked token describe.
fn identity(claims: &Map<String, Value>, sub: String) -> Identity {
    let str_claim = |k: &'static str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let groups_overage = claims.get("hasgroups").and_then(Value::as_bool) == Some(true)
        || claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key("groups"));
    Identity {
        issuer: str_claim("iss").unwrap_or_default(),
        sub,
        oid: str_claim("oid"),
        tid: str_claim("tid"),
        name: str_claim("name"),
        // v1.0 access tokens name the user in `upn` or `unique_name`.
        preferred_username: str_claim("preferred_username")
            .or_else(|| str_claim("upn"))
            .or_else(|| str_claim("unique_name")),
        email: str_claim("email"),
        roles: string_list(claims, "roles"),
        groups: string_list(claims, "groups"),
        groups_overage,
        sid: str_claim("sid"),
        login_hint: str_claim("login_hint"),
    }
}

/// The validated claims aadgate uses: who (as a session [`Identity`]) plus
/// the token's own audience and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Who signed in (issuer, subject, Entra ids, display values, roles, groups).
    pub identity: Identity,
}

/// Who presents an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    /// A user, through a client application (a delegated token: `scp`).
    User,
    /// An application on its own behalf (client credentials: no user).
    Application,
}

impl CallerKind {
    /// `user` or `application`, as the app is told.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Application => "application",
        }
    }
}

/// A validated access token for this app's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user, or the application's service principal (`oid`, `sub`; its
    /// application roles in `roles`).
    pub identity: Identity,
    /// User or application.
    pub kind: CallerKind,
    /// The calling client application's ID (`azp`; `appid` in v1.0 tokens).
    pub client_id: String,
    /// Delegated permissions (`scp`); empty for application tokens.
    pub scopes: Vec<String>,
    /// Expiry, unix seconds.
    pub exp: i64,
}

/// What an access token's claims are checked against.
#[derive(Debug, Clone)]
pub struct AccessExpectations<'a> {
    /// The v2.0 issuer: exact, or a template containing `{tenantid}`.
    pub issuer: &'a str,
    /// Entra's v1.0 issuer (`https://sts.windows.net/{tenantid}/`, same
    /// form), when v1.0 tokens are accepted; `None` refuses them.
    pub v1_issuer: Option<&'a str>,
    /// Audiences naming this API: the client ID, `api://<client id>`, and
    /// `oidc.audiences`.
    pub audiences: &'a [String],
    /// Allowed tenants for a template issuer (`*` = any).
    pub allowed_tenants: &'a [String],
    /// Entra rules (`ver`, `tid`).
    pub entra: bool,
    /// Current time, seconds.
    pub now: i64,
    /// Allowed clock skew, seconds.
    pub skew: i64,
}

/// Checks the claims of a signature-verified access token for this app's
/// API (an Entra v2.0 access token, or RFC 9068's JWT profile).
///
/// An ID token is not an access token even when its audience is the client
/// ID: one carrying `nonce`, or naming no calling client (`azp`, `appid`,
/// `client_id`), is refused.
pub fn check_access_claims(
    claims: &Map<String, Value>,
    header: &TokenHeader,
    key: &VerifyingKey,
    x: &AccessExpectations<'_>,
) -> Result<AccessClaims, TokenError> {
    let str_claim = |k: &'static str| claims.get(k).and_then(Value::as_str).map(str::to_owned);
    let (iss, sub) = issuer_and_subject(claims)?;
    let tid = str_claim("tid");
    let ver = str_claim("ver");

    // Entra's v1.0 tokens (`accessTokenAcceptedVersion` null or 1 in the
    // API's manifest) have their own issuer and claim names.
    let v1 = x.entra && (ver.as_deref() == Some("1.0") || iss.starts_with("https://sts."));
    if v1 {
        let Some(v1_issuer) = x.v1_issuer else {
            return Err(TokenError::V1AccessToken(iss));
        };
        check_issuer(&iss, tid.as_deref(), None, v1_issuer, x.allowed_tenants)?;
        // Entra's keys name their tenant in the v2.0 form: a key bound to
        // one tenant signs for that tenant only.
        if let (Some(key_iss), Some(tid)) = (&key.issuer, &tid)
            && !key_iss.contains("{tenantid}")
            && !key_iss.contains(&format!("/{tid}/"))
        {
            return Err(TokenError::Issuer {
                expected: key_iss.clone(),
                found: iss,
            });
        }
    } else {
        check_issuer(
            &iss,
            tid.as_deref(),
            key.issuer.as_deref(),
            x.issuer,
            x.allowed_tenants,
        )?;
        if x.entra && ver.as_deref() != Some("2.0") {
            return Err(TokenError::Version(ver));
        }
    }
    if x.entra && tid.is_none() {
        return Err(TokenError::MissingClaim("tid"));
    }

    let aud = string_list(claims, "aud");
    if aud.is_empty() {
        return Err(TokenError::MissingClaim("aud"));
    }
    if !aud.iter().any(|a| x.audiences.contains(a)) {
        return Err(TokenError::AccessAudience(aud));
    }
    let (exp, _) = check_times(claims, x.now, x.skew, i64::MAX / 4)?;

    // ID tokens: claims only they carry.
    if let Some(only) = ["nonce", "at_hash", "c_hash"]
        .into_iter()
        .find(|k| claims.contains_key(*k))
    {
        return Err(TokenError::NotAnAccessToken(match only {
            "nonce" => "it carries a nonce (an ID token)",
            _ => "it carries at_hash or c_hash (an ID token)",
        }));
    }
    // Other providers' ID tokens may name a client (`azp`) and carry no
    // nonce; RFC 9068 marks access tokens in the header (Keycloak, in the
    // payload's `typ`).
    if !x.entra {
        let marked = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        }) || str_claim("typ").is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        if !marked {
            return Err(TokenError::NotAnAccessToken(
                "it is not marked as one (RFC 9068: header typ at+jwt)",
            ));
        }
    }
    let client_id = ["azp", "appid", "client_id"]
        .into_iter()
        .find_map(|k| str_claim(k).filter(|c| !c.is_empty()))
        .ok_or(TokenError::NotAnAccessToken(
            "it names no calling client (azp, appid or client_id)",
        ))?;
    // Entra's delegated permissions are `scp`; RFC 9068's are `scope`.
    let scopes: Vec<String> = str_claim(if x.entra { "scp" } else { "scope" })
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let kind = if x.entra {
        // Entra says it in `idtyp` when the API asked for that optional
        // claim; otherwise a delegated token has `scp`, and an application
        // token has none and is its service principal (`sub` = `oid`).
        match str_claim("idtyp").as_deref() {
            Some("app") => CallerKind::Application,
            Some("user") => CallerKind::User,
            _ if !scopes.is_empty() => CallerKind::User,
            _ if str_claim("oid").as_deref() == Some(sub.as_str()) => CallerKind::Application,
            _ => {
                return Err(TokenError::NotAnAccessToken(
                    "neither a user's (no scp) nor an application's (sub is not oid)",
                ));
            }
        }
    } else if sub == client_id {
        // RFC 9068 section 2.2: a token without a resource owner names the client.
        CallerKind::Application
    } else {
        CallerKind::User
    };
    if kind == CallerKind::Application && !scopes.is_empty() && x.entra {
        return Err(TokenError::NotAnAccessToken(
            "an application token with delegated scopes (scp)",
        ));
    }
    let mut identity = identity(claims, sub);
    if kind == CallerKind::Application {
        // An application has no user names; what it calls itself is not
        // verified by anything, so none of it is passed on.
        identity.name = None;
        identity.preferred_username = None;
        identity.email = None;
    }
    Ok(AccessClaims {
        identity,
        kind,
        client_id,
        scopes,
        exp,
    })
}
