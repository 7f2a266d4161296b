//! A session as bytes, before sealing: as small as it can be made, because
//! every stored session costs disk (the file store), memory that is priced
//! by the gigabyte (Azure Cache for Redis) and a read on each cache miss.
//!
//! Version 1 (written now) is `0x01`, then the raw DEFLATE of the postcard
//! encoding of [`Stored`]. Two things make it small:
//! - a token that is a JWS (`header.payload.signature`, base64url) is kept
//!   as its three decoded parts, a quarter smaller than the text, and the
//!   parts' JSON then compresses (the ID and access tokens repeat most of
//!   their claims);
//! - postcard writes no field names.
//!
//! postcard is not self-describing: any change to the fields of
//! [`Session`], [`Tokens`] or [`Identity`] needs a new version byte (and
//! the old one kept readable). `decodes_version_1` pins today's layout.
//! Records written before version 1 are JSON (they start with `{`) and are
//! still read.

use std::io::{Read as _, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{Identity, Session, Tokens};

const VERSION_1: u8 = 1;
/// A decoded record larger than this is refused (a session is a few KB;
/// this bounds what a corrupt or hostile record could make us allocate).
const MAX_DECODED: u64 = 1 << 20;

/// A token as stored: a JWS by its decoded parts, anything else as it is.
#[derive(Serialize, Deserialize)]
enum StoredToken {
    Opaque(String),
    Jws {
        header: Vec<u8>,
        payload: Vec<u8>,
        signature: Vec<u8>,
    },
}

impl StoredToken {
    fn of(token: &str) -> Self {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Self::Opaque(token.to_owned());
        };
        let decoded = (
            URL_SAFE_NO_PAD.decode(h),
            URL_SAFE_NO_PAD.decode(p),
            URL_SAFE_NO_PAD.decode(s),
        );
        let (Ok(header), Ok(payload), Ok(signature)) = decoded else {
            return Self::Opaque(token.to_owned());
        };
        let stored = Self::Jws {
            header,
            payload,
            signature,
        };
        // Only a token that comes back byte for byte is kept decoded.
        if stored.text() == token {
            stored
        } else {
            Self::Opaque(token.to_owned())
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Opaque(t) => t.clone(),
            Self::Jws {
                header,
                payload,
                signature,
            } => format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload),
                URL_SAFE_NO_PAD.encode(signature)
            ),
        }
    }
}

/// [`Tokens`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    id_token: Option<StoredToken>,
    access_token: Option<StoredToken>,
    access_expires_at: Option<i64>,
    refresh_token: Option<StoredToken>,
    scope: Option<String>,
}

/// [`Session`] as stored (version 1).
#[derive(Serialize, Deserialize)]
struct Stored {
    identity: Identity,
    tokens: StoredTokens,
    created_at: i64,
    expires_at: i64,
    last_seen: i64,
    checked_at: i64,
}

/// The bytes of `session`, to be sealed.
pub(super) fn encode(session: &Session) -> Vec<u8> {
    let token = |t: &Option<String>| t.as_deref().map(StoredToken::of);
    let stored = Stored {
        identity: session.identity.clone(),
        tokens: StoredTokens {
            id_token: token(&session.tokens.id_token),
            access_token: token(&session.tokens.access_token),
            access_expires_at: session.tokens.access_expires_at,
            refresh_token: token(&session.tokens.refresh_token),
            scope: session.tokens.scope.clone(),
        },
        created_at: session.created_at,
        expires_at: session.expires_at,
        last_seen: session.last_seen,
        checked_at: session.checked_at,
    };
    let plain = postcard::to_stdvec(&stored).expect("postcard encodes to memory");
    let mut out = flate2::write::DeflateEncoder::new(vec![VERSION_1], flate2::Compression::new(6));
    out.write_all(&plain)
        .and_then(|()| out.finish())
        .expect("deflating to memory cannot fail")
}

/// The session in `bytes` (version 1, or the JSON written before it);
/// `None` when they are not a session.
pub(super) fn decode(bytes: &[u8]) -> Option<Session> {
    match bytes.split_first()? {
        (&VERSION_1, deflated) => {
            let mut plain = Vec::with_capacity(deflated.len() * 3);
            flate2::read::DeflateDecoder::new(deflated)
                .take(MAX_DECODED)
                .read_to_end(&mut plain)
                .ok()?;
            if plain.len() as u64 >= MAX_DECODED {
                return None;
            }
            // All of it, or it is not a record.
            let (s, rest) = postcard::take_from_bytes::<Stored>(&plain).ok()?;
            if !rest.is_empty() {
                return None;
            }
            let token = |t: Option<StoredToken>| t.map(|t| t.text());
            Some(Session {
                identity: s.identity,
                tokens: Tokens {
                    id_token: token(s.tokens.id_token),
                    access_token: token(s.tokens.access_token),
                    access_expires_at: s.tokens.access_expires_at,
                    refresh_token: token(s.tokens.refresh_token),
                    scope: s.tokens.scope,
                },
                created_at: s.created_at,
                expires_at: s.expires_at,
                last_seen: s.last_seen,
                checked_at: s.checked_at,
            })
        }
        (b'{', _) => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jws(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode([7u8; 256])
        )
    }

    fn session() -> Session {
        let claims = r#"{"aud":"2b8f6e14-9c3d-4a7e-b5f1-0d6c8e4a9b23","iss":"https://login.microsoftonline.com/7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47/v2.0","name":"Rita Reader","oid":"00000000-0000-0000-0000-0000000000aa","preferred_username":"rita@contoso.example","roles":["App.Read"],"tid":"7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47"}"#;
        Session {
            identity: Identity {
                issuer: "https://login.microsoftonline.com/t/v2.0".into(),
                sub: "s".into(),
                oid: Some("00000000-0000-0000-0000-0000000000aa".into()),
                name: Some("Rita Reader".into()),
                roles: vec!["App.Read".into()],
                groups: vec!["g1".into(), "g2".into()],
                sid: Some("sid-1".into()),
                ..Identity::default()
            },
            tokens: Tokens {
                id_token: Some(jws(claims)),
                access_token: Some(jws(&claims.replace("App.Read", "User.Read"))),
                access_expires_at: Some(1_900_000_000),
                refresh_token: Some("1.opaque-refresh".into()),
                scope: Some("openid profile".into()),
            },
            created_at: 1_800_000_000,
            expires_at: 1_800_086_400,
            last_seen: 1_800_000_100,
            checked_at: 1_800_000_000,
        }
    }

    fn same(a: &Session, b: &Session) -> bool {
        serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
    }

    #[test]
    fn round_trips_and_is_smaller_than_json() {
        let s = session();
        let bytes = encode(&s);
        assert!(same(&decode(&bytes).unwrap(), &s));
        let json = serde_json::to_vec(&s).unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "{} B encoded vs {} B of JSON",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn tokens_that_are_not_canonical_jws_come_back_unchanged() {
        let mut s = session();
        for odd in [
            "a.b",
            "a.b.c.d",
            "not base64!.x.y",
            // Padding, and trailing bits a strict decoder refuses.
            "eyJhIjoxfQ==.eyJhIjoxfQ.sig",
            "eyJhIjoxfR.eyJhIjoxfQ.c2ln",
            "",
            "..",
        ] {
            s.tokens.id_token = Some(odd.to_owned());
            let back = decode(&encode(&s)).unwrap();
            assert_eq!(back.tokens.id_token.as_deref(), Some(odd));
        }
    }

    #[test]
    fn reads_records_written_as_json() {
        let s = session();
        let json = serde_json::to_vec(&s).unwrap();
        assert!(same(&decode(&json).unwrap(), &s));
    }

    #[test]
    fn refuses_what_is_not_a_session() {
        assert!(decode(b"").is_none());
        assert!(decode(&[2, 1, 2, 3]).is_none());
        assert!(decode(&[VERSION_1, 0xff, 0x00]).is_none());
        let mut bytes = encode(&session());
        bytes.truncate(bytes.len() / 2);
        assert!(decode(&bytes).is_none());
        // A deflate bomb stops at the bound instead of filling memory.
        let mut bomb =
            flate2::write::DeflateEncoder::new(vec![VERSION_1], flate2::Compression::best());
        bomb.write_all(&vec![0u8; 4 << 20]).unwrap();
        assert!(decode(&bomb.finish().unwrap()).is_none());
    }

    /// The version-1 layout, pinned: a record written by this version must
    /// stay readable after any change to the session's fields.
    #[test]
    fn decodes_version_1() {
        let pinned = "01013d00c2ff016901730000010452697461000001084170702e52656164000000000101077b2261223a317d077b2262223a327d037369670000010001720014281614";
        let bytes: Vec<u8> = (0..pinned.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&pinned[i..i + 2], 16).unwrap())
            .collect();
        let s = decode(&bytes).expect("a version-1 record");
        assert_eq!(s.identity.name.as_deref(), Some("Rita"));
        assert_eq!(s.identity.roles, ["App.Read"]);
        assert_eq!(s.tokens.refresh_token.as_deref(), Some("r"));
        assert_eq!(
            s.tokens.id_token.as_deref(),
            Some("eyJhIjoxfQ.eyJiIjoyfQ.c2ln")
        );
        assert_eq!(s.expires_at, 20);
    }
}
