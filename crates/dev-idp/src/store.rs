//! In-memory state: authorization codes, refresh tokens, access tokens and
//! browser sessions.
//!
//! Every table is bounded: expired entries are purged when a table is full,
//! and if it is still full the entry closest to expiry is evicted. Redeemed
//! codes and rotated refresh tokens are kept as tombstones until they expire,
//! so a second use is reported as such (AADSTS54005) rather than as unknown.

use std::collections::HashMap;

/// Maximum entries per table.
pub(crate) const MAX_ENTRIES: usize = 10_000;

/// An authorization code issued by the authorize endpoint.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    /// The client the code was issued to.
    pub(crate) client_id: String,
    /// The `redirect_uri` of the authorization request.
    pub(crate) redirect_uri: String,
    /// The signed-in user's object id.
    pub(crate) oid: String,
    /// The requested scopes.
    pub(crate) scopes: Vec<String>,
    /// The `nonce` of the authorization request, echoed in the ID token.
    pub(crate) nonce: Option<String>,
    /// The PKCE S256 `code_challenge`.
    pub(crate) code_challenge: String,
    /// The sign-in session id (`sid` claim).
    pub(crate) sid: String,
    /// Unix time of the sign-in.
    pub(crate) auth_time: u64,
}

/// A refresh token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) client_id: String,
    pub(crate) oid: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) sid: String,
    pub(crate) auth_time: u64,
}

/// An access token (for the Graph and userinfo endpoints).
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    pub(crate) client_id: String,
    pub(crate) oid: String,
    /// The Graph permissions the token carries (`scp`).
    pub(crate) scopes: Vec<String>,
}

/// The dev IdP's own browser session (single sign-on cookie).
#[derive(Debug, Clone)]
pub(crate) struct BrowserSession {
    pub(crate) oid: String,
    pub(crate) sid: String,
}

/// The outcome of redeeming a single-use grant.
#[derive(Debug)]
pub(crate) enum Redeem<T, E> {
    /// The grant was valid; it is now used up.
    Redeemed(T),
    /// The grant exists but was already used.
    AlreadyUsed,
    /// The grant exists but has expired.
    Expired,
    /// No such grant.
    Unknown,
    /// The caller's check rejected the grant; it stays usable.
    Rejected(E),
}

/// The outcome of looking up an access token or session.
#[derive(Debug)]
pub(crate) enum Lookup<T> {
    Found(T),
    Expired,
    Unknown,
}

struct Entry<T> {
    value: T,
    expires_at: u64,
    used: bool,
}

/// A bounded map from opaque strings to expiring entries.
struct Table<T> {
    entries: HashMap<String, Entry<T>>,
    cap: usize,
}

impl<T: Clone> Table<T> {
    fn new(cap: usize) -> Self {
        Self {
            entries: HashMap::new(),
            cap,
        }
    }

    fn insert(&mut self, key: String, value: T, expires_at: u64, now: u64) {
        if self.entries.len() >= self.cap {
            self.entries.retain(|_, e| e.expires_at > now);
        }
        while self.entries.len() >= self.cap {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.entries.insert(
            key,
            Entry {
                value,
                expires_at,
                used: false,
            },
        );
    }

    fn redeem<E>(
        &mut self,
        key: &str,
        now: u64,
        check: impl FnOnce(&T) -> Result<(), E>,
    ) -> Redeem<T, E> {
        let Some(entry) = self.entries.get_mut(key) else {
            return Redeem::Unknown;
        };
        if entry.expires_at <= now {
            self.entries.remove(key);
            return Redeem::Expired;
        }
        if entry.used {
            return Redeem::AlreadyUsed;
        }
        if let Err(e) = check(&entry.value) {
            return Redeem::Rejected(e);
        }
        entry.used = true;
        Redeem::Redeemed(entry.value.clone())
    }

    fn get(&mut self, key: &str, now: u64) -> Lookup<T> {
        match self.entries.get(key) {
            None => Lookup::Unknown,
            Some(entry) if entry.expires_at <= now => {
                self.entries.remove(key);
                Lookup::Expired
            }
            Some(entry) if entry.used => Lookup::Unknown,
            Some(entry) => Lookup::Found(entry.value.clone()),
        }
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

/// All mutable state of one dev IdP. Kept behind a `std::sync::Mutex`, which
/// is never held across an `.await`.
pub(crate) struct Store {
    codes: Table<CodeGrant>,
    refresh_tokens: Table<RefreshGrant>,
    access_tokens: Table<AccessGrant>,
    sessions: Table<BrowserSession>,
}

impl Default for Store {
    fn default() -> Self {
        Self::with_capacity(MAX_ENTRIES)
    }
}

impl Store {
    fn with_capacity(cap: usize) -> Self {
        Self {
            codes: Table::new(cap),
            refresh_tokens: Table::new(cap),
            access_tokens: Table::new(cap),
            sessions: Table::new(cap),
        }
    }

    pub(crate) fn insert_code(
        &mut self,
        code: String,
        grant: CodeGrant,
        expires_at: u64,
        now: u64,
    ) {
        self.codes.insert(code, grant, expires_at, now);
    }

    /// Redeems a code: single use, and only if `check` accepts it.
    pub(crate) fn redeem_code<E>(
        &mut self,
        code: &str,
        now: u64,
        check: impl FnOnce(&CodeGrant) -> Result<(), E>,
    ) -> Redeem<CodeGrant, E> {
        self.codes.redeem(code, now, check)
    }

    pub(crate) fn insert_refresh_token(
        &mut self,
        token: String,
        grant: RefreshGrant,
        expires_at: u64,
        now: u64,
    ) {
        self.refresh_tokens.insert(token, grant, expires_at, now);
    }

    /// Redeems a refresh token: single use (the caller issues a new one).
    pub(crate) fn redeem_refresh_token<E>(
        &mut self,
        token: &str,
        now: u64,
        check: impl FnOnce(&RefreshGrant) -> Result<(), E>,
    ) -> Redeem<RefreshGrant, E> {
        self.refresh_tokens.redeem(token, now, check)
    }

    pub(crate) fn insert_access_token(
        &mut self,
        token: String,
        grant: AccessGrant,
        expires_at: u64,
        now: u64,
    ) {
        self.access_tokens.insert(token, grant, expires_at, now);
    }

    pub(crate) fn access_token(&mut self, token: &str, now: u64) -> Lookup<AccessGrant> {
        self.access_tokens.get(token, now)
    }

    pub(crate) fn insert_session(
        &mut self,
        id: String,
        session: BrowserSession,
        expires_at: u64,
        now: u64,
    ) {
        self.sessions.insert(id, session, expires_at, now);
    }

    pub(crate) fn session(&mut self, id: &str, now: u64) -> Option<BrowserSession> {
        match self.sessions.get(id, now) {
            Lookup::Found(session) => Some(session),
            Lookup::Expired | Lookup::Unknown => None,
        }
    }

    pub(crate) fn remove_session(&mut self, id: &str) {
        self.sessions.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(challenge: &str) -> CodeGrant {
        CodeGrant {
            client_id: "c".into(),
            redirect_uri: "http://r".into(),
            oid: "o".into(),
            scopes: vec!["openid".into()],
            nonce: None,
            code_challenge: challenge.into(),
            sid: "s".into(),
            auth_time: 0,
        }
    }

    #[test]
    fn codes_are_single_use() {
        let mut store = Store::default();
        store.insert_code("k".into(), code("x"), 100, 0);
        assert!(matches!(
            store.redeem_code("k", 1, |_| Ok::<(), ()>(())),
            Redeem::Redeemed(_)
        ));
        assert!(matches!(
            store.redeem_code("k", 2, |_| Ok::<(), ()>(())),
            Redeem::AlreadyUsed
        ));
        assert!(matches!(
            store.redeem_code("other", 2, |_| Ok::<(), ()>(())),
            Redeem::Unknown
        ));
    }

    #[test]
    fn rejected_redemption_leaves_the_code_usable() {
        let mut store = Store::default();
        store.insert_code("k".into(), code("x"), 100, 0);
        assert!(matches!(
            store.redeem_code("k", 1, |_| Err("bad verifier")),
            Redeem::Rejected("bad verifier")
        ));
        assert!(matches!(
            store.redeem_code("k", 1, |_| Ok::<(), ()>(())),
            Redeem::Redeemed(_)
        ));
    }

    #[test]
    fn codes_expire() {
        let mut store = Store::default();
        store.insert_code("k".into(), code("x"), 600, 0);
        assert!(matches!(
            store.redeem_code("k", 600, |_| Ok::<(), ()>(())),
            Redeem::Expired
        ));
    }

    #[test]
    fn tables_are_bounded() {
        let mut store = Store::with_capacity(3);
        for i in 0..3u64 {
            store.insert_code(format!("k{i}"), code("x"), 100 + i, 0);
        }
        // Full and nothing expired: the entry closest to expiry goes.
        store.insert_code("k3".into(), code("x"), 200, 0);
        assert_eq!(store.codes.entries.len(), 3);
        assert!(!store.codes.entries.contains_key("k0"));
        // Full with expired entries: they are purged first.
        store.insert_code("k4".into(), code("x"), 300, 150);
        assert_eq!(store.codes.entries.len(), 2);
        assert!(store.codes.entries.contains_key("k3"));
        assert!(store.codes.entries.contains_key("k4"));
    }

    #[test]
    fn access_tokens_expire() {
        let mut store = Store::default();
        let grant = AccessGrant {
            client_id: "c".into(),
            oid: "o".into(),
            scopes: vec![],
        };
        store.insert_access_token("t".into(), grant, 10, 0);
        assert!(matches!(store.access_token("t", 9), Lookup::Found(_)));
        assert!(matches!(store.access_token("t", 10), Lookup::Expired));
        assert!(matches!(store.access_token("t", 11), Lookup::Unknown));
    }
}
