//! Server-side sessions.
//!
//! The browser holds only an opaque 256-bit random id. The store keeps, under
//! an HMAC of that id (so a copy of the database yields no usable cookies),
//! the session sealed with AES-256-GCM under a key derived from
//! `session.secret`. Sessions are cached in memory; checking one on a request
//! reads memory only, and the idle clock is written back to disk at most once
//! per [`TOUCH_INTERVAL`] per session.
//!
//! - what a session is: [`Session`], [`Tokens`] and [`Identity`];
//! - the memory cache in front of the store: `cache`;
//! - persistence: `file` (the embedded `file:` store; `memory` has none).
//!
//! The layer above can keep what it derives from a session (roles,
//! headers) in the cache with it: [`SessionStore::with_view`].
//!
//! ```
//! # tokio_test_shim::run(async {
//! use aadgate_core::session::{Identity, SessionStore, StoreKind, Tokens};
//! use std::time::Duration;
//!
//! let store = SessionStore::open(&StoreKind::Memory, &[7u8; 32], Duration::from_secs(3600), Duration::from_secs(86400)).unwrap();
//! let identity = Identity { sub: "s".into(), name: Some("Rita Reader".into()), ..Identity::default() };
//! let (cookie, _session) = store.create(identity, Tokens::default()).await.unwrap();
//! assert_eq!(store.get(&cookie).await.unwrap().identity.name.as_deref(), Some("Rita Reader"));
//! store.remove(&cookie).await;
//! assert!(store.get(&cookie).await.is_none());
//! assert!(store.get("forged-or-garbage").await.is_none());
//! # });
//! # mod tokio_test_shim { pub fn run<F: std::future::Future>(f: F) -> F::Output {
//! #   tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f) } }
//! ```

mod cache;
mod file;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crypto::{self, Sealer};
pub use crate::identity::Identity;
use cache::{Cache, Entry};
use file::FileStore;

/// The idle clock of a session is persisted at most this often.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Idle clocks noted by requests are written back in one transaction this
/// often: a crash loses at most this much bookkeeping, never a session or a
/// sign-out (those are written before the request is answered).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Most sessions kept decrypted in memory with a file store; the rest are
/// read from disk on use (~2.3 KB of memory each, so 10,000 is ~23 MB; the
/// same bound as mod_auth_openidc's default `OIDCCacheShmMax`). A memory
/// store keeps every session: it has no disk.
const MEMORY_CAP: usize = 10_000;

/// A session's key in the store: an HMAC of its cookie value, so a copy of
/// the store yields no usable cookie.
type RecordKey = [u8; 32];

/// Where sessions are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In process memory; lost on restart.
    Memory,
    /// Embedded database in this directory.
    File(std::path::PathBuf),
}

/// Tokens kept server-side.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Tokens {
    /// Raw ID token (for `id_token_hint` at logout).
    pub id_token: Option<String>,
    /// Access token for downstream calls.
    pub access_token: Option<String>,
    /// Access-token expiry, unix seconds.
    pub access_expires_at: Option<i64>,
    /// Refresh token.
    pub refresh_token: Option<String>,
    /// Scopes the provider granted (sent back on refresh for non-Entra providers).
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .field("access_expires_at", &self.access_expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub identity: Identity,
    /// Their tokens.
    pub tokens: Tokens,
    /// Sign-in time, unix seconds.
    pub created_at: i64,
    /// Absolute end, unix seconds.
    pub expires_at: i64,
    /// Last use, unix seconds (as persisted; the live value is in memory).
    pub last_seen: i64,
    /// When roles and groups were last derived from the provider (sign-in or
    /// revalidation), unix seconds. Records stored before it existed read 0,
    /// so they are revalidated at their next use.
    #[serde(default)]
    pub checked_at: i64,
}

/// Session store failures (disk or database).
#[derive(Debug, Error)]
#[error("session store: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn from_any(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// What the layer above derives from a session when it enters the cache.
type Derive<V> = Arc<dyn Fn(&Session) -> V + Send + Sync>;

/// The session store: a memory cache over an optional persistent store.
/// `V` is what the layer above keeps with each cached session
/// ([`SessionStore::with_view`]); `()` by default.
pub struct SessionStore<V = ()> {
    file: Option<FileStore>,
    lookup_key: crypto::MacKey,
    idle: i64,
    lifetime: i64,
    cache: Cache<V>,
    derive: Derive<V>,
    keep_access_tokens: bool,
    clock: crate::clock::Clock,
}

impl<V> std::fmt::Debug for SessionStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("persistent", &self.file.is_some())
            .finish_non_exhaustive()
    }
}

/// A cookie value is exactly 43 URL-safe base64 characters; anything else is
/// rejected before any lookup.
fn well_formed(cookie: &str) -> bool {
    cookie.len() == 43
        && cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SessionStore {
    /// Opens the store. For `file:` the directory is created (mode 0700).
    pub fn open(
        kind: &StoreKind,
        secret: &[u8],
        idle: Duration,
        lifetime: Duration,
    ) -> Result<Self, StoreError> {
        let file = match kind {
            StoreKind::Memory => None,
            StoreKind::File(dir) => {
                Some(FileStore::open(dir, Sealer::new(secret, "session store"))?)
            }
        };
        let cap = file.as_ref().map(|_| MEMORY_CAP);
        Ok(Self {
            file,
            lookup_key: crypto::MacKey::new(&crypto::derive_key(secret, "session lookup")),
            idle: idle.as_secs() as i64,
            lifetime: lifetime.as_secs() as i64,
            cache: Cache::new(cap),
            derive: Arc::new(|_| ()),
            keep_access_tokens: true,
            clock: crate::clock::Clock::system(),
        })
    }
}

impl<V: Send + Sync + 'static> SessionStore<V> {
    /// Keeps `derive(session)` with each cached session, computed once when
    /// the session enters the cache (sign-in, refresh, a load from the
    /// store) and handed out by [`SessionStore::get_with_view`], so a request
    /// reuses it instead of recomputing it.
    #[must_use]
    pub fn with_view<W>(
        self,
        derive: impl Fn(&Session) -> W + Send + Sync + 'static,
    ) -> SessionStore<W> {
        SessionStore {
            file: self.file,
            lookup_key: self.lookup_key,
            idle: self.idle,
            lifetime: self.lifetime,
            cache: Cache::new(self.cache.cap),
            derive: Arc::new(derive),
            keep_access_tokens: self.keep_access_tokens,
            clock: self.clock,
        }
    }

    /// Measures idle timeouts and lifetimes with `clock` (shared with the
    /// layer above, so a test can move time forward).
    #[must_use]
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock idle timeouts and lifetimes are measured with.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.clock
    }

    /// Whether access tokens stay in the memory cache (for passing them on
    /// every request). With a file store, ID and refresh tokens never do:
    /// they are read from disk when needed ([`SessionStore::get_full`]), which
    /// keeps the memory per cached session to about a kilobyte.
    #[must_use]
    pub fn keep_access_tokens_in_memory(mut self, keep: bool) -> Self {
        self.keep_access_tokens = keep;
        self
    }

    /// What the memory cache keeps of a session.
    fn slim(&self, s: &Session) -> Session {
        let mut s = s.clone();
        if self.file.is_some() {
            s.tokens = Tokens {
                access_token: s.tokens.access_token.filter(|_| self.keep_access_tokens),
                access_expires_at: s.tokens.access_expires_at,
                ..Tokens::default()
            };
        }
        s
    }

    fn key_of(&self, cookie: &str) -> RecordKey {
        self.lookup_key.sign(cookie.as_bytes())
    }

    /// Caches a session (slimmed) with its view; returns the entry.
    fn cache(&self, cookie: &str, key: RecordKey, session: &Session, seen: i64) -> Arc<Entry<V>> {
        let session = Arc::new(self.slim(session));
        let view = Arc::new((self.derive)(&session));
        self.cache.insert(
            cookie,
            Entry {
                key,
                session,
                view,
                last_seen: AtomicI64::new(seen),
                persisted_seen: AtomicI64::new(seen),
            },
        )
    }

    /// Creates a session with a fresh id and returns the cookie value.
    pub async fn create(
        &self,
        identity: Identity,
        tokens: Tokens,
    ) -> Result<(String, Arc<Session>), StoreError> {
        let t = self.clock.now();
        let session = Arc::new(Session {
            identity,
            tokens,
            created_at: t,
            expires_at: t + self.lifetime,
            last_seen: t,
            checked_at: t,
        });
        let cookie = crypto::random_token();
        let key = self.key_of(&cookie);
        if let Some(file) = &self.file {
            file.put(key, &session).await?;
        }
        self.cache(&cookie, key, &session, t);
        Ok((cookie, session))
    }

    /// Changes a live session (after a token refresh) and persists it.
    pub async fn update(
        &self,
        cookie: &str,
        change: impl FnOnce(&mut Session),
    ) -> Result<Option<Arc<Session>>, StoreError> {
        let Some(current) = self.get_full(cookie).await else {
            return Ok(None);
        };
        let key = self.key_of(cookie);
        let mut s = (*current).clone();
        change(&mut s);
        s.last_seen = self.clock.now();
        if let Some(file) = &self.file {
            file.put(key, &s).await?;
        }
        self.cache(cookie, key, &s, s.last_seen);
        Ok(Some(Arc::new(s)))
    }

    /// The live session for a cookie value, or `None` (unknown, malformed,
    /// forged, idle too long or past its lifetime). Never waits for a disk
    /// write: the idle clock is noted, at most once a minute per session,
    /// and written back in batches.
    pub async fn get(&self, cookie: &str) -> Option<Arc<Session>> {
        self.get_with_view(cookie).await.map(|(s, _)| s)
    }

    /// Like [`SessionStore::get`], with the view kept for the session
    /// ([`SessionStore::with_view`]).
    pub async fn get_with_view(&self, cookie: &str) -> Option<(Arc<Session>, Arc<V>)> {
        if !well_formed(cookie) {
            return None;
        }
        let entry = match self.cache.get(cookie) {
            Some(e) => e,
            None => {
                let key = self.key_of(cookie);
                let session = self.file.as_ref()?.load(key).await?;
                self.cache(cookie, key, &session, session.last_seen)
            }
        };
        let t = self.clock.now();
        let seen = entry.last_seen.load(Ordering::Relaxed);
        if t >= entry.session.expires_at || t - seen > self.idle {
            self.remove_key(cookie, entry.key).await;
            return None;
        }
        entry.last_seen.store(t, Ordering::Relaxed);
        let persisted = entry.persisted_seen.load(Ordering::Relaxed);
        if let Some(file) = &self.file
            && t - persisted >= TOUCH_INTERVAL.as_secs() as i64
        {
            entry.persisted_seen.store(t, Ordering::Relaxed);
            file.note_seen(entry.key, t);
        }
        Some((entry.session.clone(), entry.view.clone()))
    }

    /// Writes the noted idle clocks back now (a background task does this
    /// every [`FLUSH_INTERVAL`]; call it before a planned shutdown).
    pub async fn flush_idle_clocks(&self) {
        if let Some(file) = &self.file {
            file.flush().await;
        }
    }

    /// Like [`SessionStore::get`], with every token (read from disk for a
    /// file store). For token refresh, logout and `/.auth/me`, not per request.
    pub async fn get_full(&self, cookie: &str) -> Option<Arc<Session>> {
        let cached = self.get(cookie).await?;
        let Some(file) = &self.file else {
            return Some(cached);
        };
        let mut s = file.load(self.key_of(cookie)).await?;
        s.last_seen = cached.last_seen;
        Some(Arc::new(s))
    }

    /// Deletes a session (logout).
    pub async fn remove(&self, cookie: &str) {
        if well_formed(cookie) {
            self.remove_key(cookie, self.key_of(cookie)).await;
        }
    }

    async fn remove_key(&self, cookie: &str, key: RecordKey) {
        self.cache.remove(cookie);
        if let Some(file) = &self.file {
            file.delete(key).await;
        }
    }

    /// Removes expired sessions from memory and disk; returns how many.
    pub async fn purge_expired(&self) -> usize {
        let t = self.clock.now();
        let idle = self.idle;
        let n = self.cache.retain(|e| {
            t < e.session.expires_at && t - e.last_seen.load(Ordering::Relaxed) <= idle
        });
        match &self.file {
            Some(file) => n.max(file.purge_expired(t, idle).await),
            None => n,
        }
    }

    /// Write transactions made so far (for tests and metrics).
    pub fn disk_writes(&self) -> u64 {
        self.file.as_ref().map_or(0, FileStore::writes)
    }

    /// Number of sessions cached in memory.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests;
