//! The authorization-code flow: PKCE, state and nonce, kept in a small
//! encrypted cookie that binds a pending sign-in to the browser that started it.
//!
//! Several tabs may sign in at once: the cookie holds up to
//! [`MAX_PENDING`] pending sign-ins, oldest dropped first, each living
//! [`PENDING_TTL`]. One cookie, bounded in size, so they never pile up.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::crypto::{self, Sealer};

/// Most concurrent pending sign-ins per browser.
pub const MAX_PENDING: usize = 4;
/// How long a pending sign-in stays valid, seconds.
pub const PENDING_TTL: i64 = 600;

/// One sign-in in progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingLogin {
    /// `state` sent to the provider.
    pub state: String,
    /// `nonce` sent to the provider.
    pub nonce: String,
    /// PKCE code verifier.
    pub verifier: String,
    /// Where to go after sign-in (a checked local path).
    pub rd: String,
    /// The issuer this sign-in was started with (mix-up defence).
    pub issuer: String,
    /// Start time, unix seconds.
    pub created_at: i64,
}

impl PendingLogin {
    /// A new pending sign-in with fresh 256-bit state, nonce and verifier.
    pub fn new(rd: String, issuer: String, now: i64) -> Self {
        Self {
            state: crypto::random_token(),
            nonce: crypto::random_token(),
            verifier: crypto::random_token(),
            rd,
            issuer,
            created_at: now,
        }
    }

    /// PKCE S256 code challenge.
    pub fn challenge(&self) -> String {
        crypto::b64url(&crypto::sha256(self.verifier.as_bytes()))
    }
}

/// The pending sign-ins of one browser.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PendingJar {
    /// Oldest first.
    pub logins: Vec<PendingLogin>,
}

const COOKIE_CONTEXT: &[u8] = b"aadgate pending login v1";
/// Cookie values longer than this are not even decoded.
const MAX_COOKIE: usize = 4000;
/// The jar is trimmed (oldest sign-ins first) to stay under this when encoded,
/// well within the 4096 bytes browsers keep per cookie.
const TARGET_COOKIE: usize = 3800;

impl PendingJar {
    /// Decodes the cookie; anything malformed, forged or stale yields an empty jar.
    pub fn from_cookie(value: Option<&str>, sealer: &Sealer, now: i64) -> Self {
        let jar = value
            .filter(|v| v.len() <= MAX_COOKIE)
            .and_then(crypto::b64url_decode)
            .and_then(|sealed| sealer.open(&sealed, COOKIE_CONTEXT))
            .and_then(|plain| serde_json::from_slice::<PendingJar>(&plain).ok())
            .unwrap_or_default();
        let logins = jar
            .logins
            .into_iter()
            .filter(|l| now - l.created_at < PENDING_TTL && l.created_at <= now + 60)
            .collect();
        Self { logins }
    }

    /// Adds a sign-in, dropping the oldest beyond [`MAX_PENDING`].
    pub fn push(&mut self, login: PendingLogin) {
        self.logins.push(login);
        while self.logins.len() > MAX_PENDING {
            self.logins.remove(0);
        }
    }

    /// Removes and returns the sign-in with this state (constant-time compare).
    pub fn take(&mut self, state: &str) -> Option<PendingLogin> {
        let i = self
            .logins
            .iter()
            .position(|l| crypto::ct_eq(l.state.as_bytes(), state.as_bytes()))?;
        Some(self.logins.remove(i))
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.logins.is_empty()
    }

    /// Encodes for the cookie, dropping the oldest sign-ins if it would not
    /// fit in one cookie (the newest is always kept).
    pub fn to_cookie(&mut self, sealer: &Sealer) -> String {
        loop {
            let plain = serde_json::to_vec(self).expect("pending logins serialize");
            let value = crypto::b64url(&sealer.seal(&plain, COOKIE_CONTEXT));
            if value.len() <= TARGET_COOKIE || self.logins.len() <= 1 {
                return value;
            }
            self.logins.remove(0);
        }
    }
}

/// Parameters of an authorization request.
#[derive(Debug)]
pub struct AuthorizationRequest<'a> {
    /// The provider's authorization endpoint.
    pub endpoint: &'a Url,
    /// Client id.
    pub client_id: &'a str,
    /// Redirect URI.
    pub redirect_uri: &'a str,
    /// Scopes.
    pub scopes: &'a [String],
    /// The pending sign-in.
    pub login: &'a PendingLogin,
    /// Optional `login_hint` (a username to pre-fill).
    pub login_hint: Option<&'a str>,
}

impl AuthorizationRequest<'_> {
    /// The URL to send the browser to.
    pub fn url(&self) -> Url {
        let mut u = self.endpoint.clone();
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", self.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", self.redirect_uri)
                .append_pair("response_mode", "query")
                .append_pair("scope", &self.scopes.join(" "))
                .append_pair("state", &self.login.state)
                .append_pair("nonce", &self.login.nonce)
                .append_pair("code_challenge", &self.login.challenge())
                .append_pair("code_challenge_method", "S256");
            if let Some(h) = self.login_hint {
                q.append_pair("login_hint", h);
            }
        }
        u
    }
}

/// Checks a return path: only a local path starting with a single `/`.
/// Returns the path to use, or `None` (the caller falls back to `/`).
///
/// ```
/// use aadgate_core::flow::safe_return_path;
/// assert_eq!(safe_return_path("/dash/?tab=2").as_deref(), Some("/dash/?tab=2"));
/// for evil in ["//evil.com", "/\\evil.com", "https://evil.com", "/%09/evil.com", "javascript:alert(1)", "/\t/evil.com", ""] {
///     assert_eq!(safe_return_path(evil), None, "{evil}");
/// }
/// ```
pub fn safe_return_path(rd: &str) -> Option<String> {
    if rd.len() > 2048 || !rd.starts_with('/') {
        return None;
    }
    // Whitespace and control characters are never valid raw in a URL.
    if rd.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    // The path part is decoded repeatedly so encoded slashes, backslashes,
    // whitespace and control characters are seen; the query and fragment may
    // legitimately carry encoded characters (`?q=a%20b`).
    let split = rd.find(['?', '#']).unwrap_or(rd.len());
    let mut path = rd[..split].to_owned();
    for _ in 0..4 {
        let next = percent_encoding::percent_decode_str(&path)
            .decode_utf8_lossy()
            .into_owned();
        if next == path {
            break;
        }
        path = next;
    }
    let bad_char = |c: char| c.is_control() || c.is_whitespace() || c == '\\';
    if path.chars().nth(1).is_some_and(|c| c == '/' || c == '\\') || path.chars().any(bad_char) {
        return None;
    }
    // Dot segments are refused too: the path must be what it says.
    if path.split('/').any(|s| s == ".." || s == ".") {
        return None;
    }
    // Anything a browser would resolve to another origin is refused.
    let base = Url::parse("https://aadgate.invalid/").expect("static URL");
    let same = |u: &str| base.join(u).is_ok_and(|r| r.origin() == base.origin());
    if !same(rd) || !same(&path) {
        return None;
    }
    Some(rd.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jar_round_trip_bounded_and_single_use() {
        let sealer = Sealer::new(&[1u8; 32], "pending");
        let mut jar = PendingJar::default();
        let logins: Vec<_> = (0..6)
            .map(|i| PendingLogin::new(format!("/{i}"), "iss".into(), 1000))
            .collect();
        for l in &logins {
            jar.push(l.clone());
        }
        assert_eq!(jar.logins.len(), MAX_PENDING);
        let cookie = jar.to_cookie(&sealer);
        assert!(cookie.len() < 2000, "{}", cookie.len());
        // Long return paths: the newest sign-in always fits, older ones give way.
        let mut big = PendingJar::default();
        let long: Vec<_> = (0..MAX_PENDING)
            .map(|i| PendingLogin::new(format!("/{i}/{}", "x".repeat(1000)), "iss".into(), 1000))
            .collect();
        for l in &long {
            big.push(l.clone());
        }
        let c = big.to_cookie(&sealer);
        assert!(c.len() <= TARGET_COOKIE, "{}", c.len());
        let mut back = PendingJar::from_cookie(Some(&c), &sealer, 1001);
        assert!(
            back.take(&long[MAX_PENDING - 1].state).is_some(),
            "newest kept"
        );
        let mut back = PendingJar::from_cookie(Some(&cookie), &sealer, 1001);
        assert!(back.take(&logins[0].state).is_none(), "oldest dropped");
        assert_eq!(back.take(&logins[5].state).unwrap().rd, "/5");
        assert!(back.take(&logins[5].state).is_none(), "single use");
        // Expired and forged jars are empty.
        assert!(PendingJar::from_cookie(Some(&cookie), &sealer, 1000 + PENDING_TTL).is_empty());
        assert!(PendingJar::from_cookie(Some("garbage"), &sealer, 1001).is_empty());
        let other = Sealer::new(&[2u8; 32], "pending");
        assert!(PendingJar::from_cookie(Some(&cookie), &other, 1001).is_empty());
    }

    #[test]
    fn pkce_challenge_is_s256() {
        let mut l = PendingLogin::new("/".into(), "i".into(), 0);
        // Expected value computed independently with Python's hashlib.
        l.verifier = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk".into();
        assert_eq!(l.challenge(), "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc");
    }

    #[test]
    fn return_paths() {
        for ok in [
            "/",
            "/dash/",
            "/a?b=c&d=/e",
            "/a#frag",
            "/caf%C3%A9",
            "/search?q=a%20b&p=%5C",
        ] {
            assert_eq!(safe_return_path(ok).as_deref(), Some(ok));
        }
        for bad in [
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "/%2f/evil.com",
            "/%5cevil.com",
            "/%09/evil.com",
            "/%0a/evil.com",
            "/ /evil.com",
            "http://evil.com",
            "evil.com",
            "/../x",
            "/%2e%2e/x",
            "/a/../../x",
            "/%252f%252fevil.com",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad}");
        }
    }
}
