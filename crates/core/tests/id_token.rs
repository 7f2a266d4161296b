//! ID-token validation through the public API, with tokens signed here.

use aadgate_core::crypto::b64url;
use aadgate_core::error::TokenError;
use aadgate_core::token::{self, Algorithm, Expectations, VerifyingKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde_json::{Value, json};

const CLIENT: &str = "2b8f6e14-9c3d-4a7e-b5f1-0d6c8e4a9b23";
const TID: &str = "7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47";
const NOW: i64 = 1_800_000_000;

struct Signer {
    key: KeyPair,
    kid: String,
}

impl Signer {
    fn new(kid: &str) -> Self {
        Self {
            key: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: kid.into(),
        }
    }

    fn jwk(&self) -> Value {
        let c = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        let strip = |b: &[u8]| {
            b.iter()
                .position(|x| *x != 0)
                .map_or(vec![], |i| b[i..].to_vec())
        };
        json!({"kty": "RSA", "use": "sig", "kid": self.kid, "n": b64url(&strip(&c.n)), "e": b64url(&strip(&c.e)), "alg": "RS256"})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", b64url(&sig))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"typ": "JWT", "alg": "RS256", "kid": self.kid}),
            claims,
        )
    }
}

fn issuer() -> String {
    format!("https://login.microsoftonline.com/{TID}/v2.0")
}

fn claims() -> Value {
    json!({
        "iss": issuer(), "aud": CLIENT, "sub": "s-1", "oid": "o-1", "tid": TID, "ver": "2.0",
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600, "nonce": "n-1",
        "name": "Rita", "roles": ["App.Read"],
    })
}

fn expect<'a>(issuer: &'a str, allowed: &'a [String]) -> Expectations<'a> {
    Expectations {
        issuer,
        client_id: CLIENT,
        allowed_tenants: allowed,
        entra: true,
        nonce: Some("n-1"),
        now: NOW,
        skew: 120,
        max_age: 3600,
    }
}

/// Full validation as the provider runs it, minus the network.
fn validate(
    token: &str,
    keys: &[VerifyingKey],
    x: &Expectations<'_>,
) -> Result<token::IdClaims, TokenError> {
    let header = token::read_header(token, &[Algorithm::RS256])?;
    let key = token::select_key(&header, keys)?;
    let claims = token::verify_signature(token, &header, key)?;
    token::check_claims(&claims, key, x)
}

fn with(mut c: Value, k: &str, v: Value) -> Value {
    if v.is_null() {
        c.as_object_mut().unwrap().remove(k);
    } else {
        c[k] = v;
    }
    c
}

#[test]
fn a_valid_entra_token_is_accepted() {
    let s = Signer::new("k1");
    let keys = vec![VerifyingKey::from_jwk(&s.jwk()).unwrap()];
    let iss = issuer();
    let c = validate(&s.token(&claims()), &keys, &expect(&iss, &[])).unwrap();
    assert_eq!(c.identity.roles, ["App.Read"]);
    assert_eq!(c.identity.oid.as_deref(), Some("o-1"));
}

#[test]
fn claim_checks_reject_precisely() {
    let s = Signer::new("k1");
    let keys = vec![VerifyingKey::from_jwk(&s.jwk()).unwrap()];
    let iss = issuer();
    let x = expect(&iss, &[]);
    type Check = fn(&TokenError) -> bool;
    let cases: Vec<(&str, Value, Check)> = vec![
        (
            "wrong iss",
            with(claims(), "iss", json!("https://evil/v2.0")),
            |e| matches!(e, TokenError::Issuer { .. }),
        ),
        ("wrong aud", with(claims(), "aud", json!("other")), |e| {
            matches!(e, TokenError::Audience(_))
        }),
        ("missing aud", with(claims(), "aud", Value::Null), |e| {
            matches!(e, TokenError::MissingClaim("aud"))
        }),
        (
            "aud array without azp",
            with(claims(), "aud", json!([CLIENT, "other"])),
            |e| matches!(e, TokenError::AuthorizedParty(None)),
        ),
        ("missing sub", with(claims(), "sub", Value::Null), |e| {
            matches!(e, TokenError::MissingClaim("sub"))
        }),
        ("missing iat", with(claims(), "iat", Value::Null), |e| {
            matches!(e, TokenError::MissingClaim("iat"))
        }),
        ("expired", with(claims(), "exp", json!(NOW - 121)), |e| {
            matches!(e, TokenError::Expired { .. })
        }),
        (
            "nbf in the future",
            with(claims(), "nbf", json!(NOW + 121)),
            |e| matches!(e, TokenError::NotYetValid { .. }),
        ),
        (
            "iat in the future",
            with(claims(), "iat", json!(NOW + 121)),
            |e| matches!(e, TokenError::IssuedAt { .. }),
        ),
        (
            "iat too old",
            with(claims(), "iat", json!(NOW - 3600 - 121)),
            |e| matches!(e, TokenError::IssuedAt { .. }),
        ),
        (
            "nonce mismatch",
            with(claims(), "nonce", json!("n-2")),
            |e| matches!(e, TokenError::Nonce),
        ),
        ("nonce missing", with(claims(), "nonce", Value::Null), |e| {
            matches!(e, TokenError::MissingClaim("nonce"))
        }),
        ("v1 token", with(claims(), "ver", json!("1.0")), |e| {
            matches!(e, TokenError::Version(_))
        }),
    ];
    for (name, c, ok) in cases {
        let err = validate(&s.token(&c), &keys, &x).unwrap_err();
        assert!(ok(&err), "{name}: got {err:?}");
    }
    // Within the skew is fine; aud array with azp is fine.
    validate(&s.token(&with(claims(), "exp", json!(NOW - 60))), &keys, &x).unwrap();
    let c = with(
        with(claims(), "aud", json!([CLIENT, "other"])),
        "azp",
        json!(CLIENT),
    );
    validate(&s.token(&c), &keys, &x).unwrap();
}

#[test]
fn signatures_algorithms_and_keys_are_enforced() {
    let s = Signer::new("k1");
    let other = Signer::new("k2");
    let keys = vec![VerifyingKey::from_jwk(&s.jwk()).unwrap()];
    let iss = issuer();
    let x = expect(&iss, &[]);

    // Tampered payload.
    let t = s.token(&claims());
    let parts: Vec<&str> = t.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(
            with(claims(), "roles", json!(["App.Admin"]))
                .to_string()
                .as_bytes()
        ),
        parts[2]
    );
    assert_eq!(
        validate(&forged, &keys, &x).unwrap_err(),
        TokenError::BadSignature
    );

    // Signed by a key that claims our kid.
    let t = other.sign(&json!({"alg": "RS256", "kid": "k1"}), &claims());
    assert_eq!(
        validate(&t, &keys, &x).unwrap_err(),
        TokenError::BadSignature
    );

    // Unknown kid.
    assert!(matches!(
        validate(&other.token(&claims()), &keys, &x).unwrap_err(),
        TokenError::UnknownKey(Some(_))
    ));

    // alg none, and HS256 keyed with the RSA public key (key confusion).
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none"}"#),
        b64url(claims().to_string().as_bytes())
    );
    assert!(matches!(
        validate(&none, &keys, &x).unwrap_err(),
        TokenError::AlgorithmNotAllowed(_)
    ));
    let hs = {
        let input = format!(
            "{}.{}",
            b64url(br#"{"alg":"HS256","kid":"k1"}"#),
            b64url(claims().to_string().as_bytes())
        );
        let k = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            s.jwk()["n"].as_str().unwrap().as_bytes(),
        );
        format!(
            "{input}.{}",
            b64url(aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref())
        )
    };
    assert!(matches!(
        validate(&hs, &keys, &x).unwrap_err(),
        TokenError::AlgorithmNotAllowed(_)
    ));

    // No kid: fine with one key, refused with several.
    let t = s.sign(&json!({"alg": "RS256"}), &claims());
    validate(&t, &keys, &x).unwrap();
    let two = vec![
        keys[0].clone(),
        VerifyingKey::from_jwk(&other.jwk()).unwrap(),
    ];
    assert_eq!(
        validate(&t, &two, &x).unwrap_err(),
        TokenError::AmbiguousKey
    );

    // A key whose type does not fit the algorithm.
    let ec = json!({"kty": "EC", "crv": "P-256", "kid": "k1", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    let ec_keys = vec![VerifyingKey::from_jwk(&ec).unwrap()];
    assert!(matches!(
        validate(&s.token(&claims()), &ec_keys, &x).unwrap_err(),
        TokenError::KeyTypeMismatch { .. }
    ));

    // Unusable keys are refused individually (the caller skips them).
    assert!(VerifyingKey::from_jwk(&json!({"kty": "oct", "k": "c2VjcmV0"})).is_err());
    assert!(
        VerifyingKey::from_jwk(&json!({"kty": "RSA", "n": b64url(&[0xff; 128]), "e": "AQAB"}))
            .is_err(),
        "1024-bit RSA"
    );
    assert!(
        VerifyingKey::from_jwk(&json!({"kty": "RSA", "use": "enc", "n": "x", "e": "AQAB"}))
            .is_err()
    );
}

#[test]
fn multi_tenant_issuer_template_and_allowed_tenants() {
    let s = Signer::new("k1");
    let mut jwk = s.jwk();
    jwk["issuer"] = json!("https://login.microsoftonline.com/{tenantid}/v2.0");
    let keys = vec![VerifyingKey::from_jwk(&jwk).unwrap()];
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let allowed = vec![TID.to_owned()];
    let x = expect(template, &allowed);
    validate(&s.token(&claims()), &keys, &x).unwrap();

    let other_tid = "00000000-1111-2222-3333-444444444444";
    let c = with(
        with(claims(), "tid", json!(other_tid)),
        "iss",
        json!(format!(
            "https://login.microsoftonline.com/{other_tid}/v2.0"
        )),
    );
    assert_eq!(
        validate(&s.token(&c), &keys, &x).unwrap_err(),
        TokenError::Tenant(Some(other_tid.into()))
    );
    let any = vec!["*".to_owned()];
    validate(&s.token(&c), &keys, &expect(template, &any)).unwrap();

    // iss must carry the token's own tid.
    let c = with(
        claims(),
        "iss",
        json!(format!(
            "https://login.microsoftonline.com/{other_tid}/v2.0"
        )),
    );
    assert!(matches!(
        validate(&s.token(&c), &keys, &expect(template, &any)).unwrap_err(),
        TokenError::Issuer { .. }
    ));
    // tid must be a GUID.
    let c = with(
        with(claims(), "tid", json!("common")),
        "iss",
        json!("https://login.microsoftonline.com/common/v2.0"),
    );
    assert!(matches!(
        validate(&s.token(&c), &keys, &expect(template, &any)).unwrap_err(),
        TokenError::Tenant(_)
    ));
}
