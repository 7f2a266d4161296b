//! Server-side sessions.
//!
//! The browser holds only an opaque 256-bit random id. The store keeps, under
//! an HMAC of that id (so a copy of the database yields no usable cookies),
//! the session sealed with AES-256-GCM under a key derived from
//! `session.secret`. Sessions are cached in memory; checking one on a request
//! reads memory only, and the idle clock is written back to disk at most once
//! per [`TOUCH_INTERVAL`] per session.
//!
//! ```
//! # tokio_test_shim::run(async {
//! use aadgate_core::session::{Identity, SessionStore, Tokens};
//! use aadgate_core::config::StoreKind;
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

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crypto::{self, Sealer};
pub use crate::identity::Identity;

const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v1");
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
    /// Values derived once per cached session by the layer above (such as the
    /// identity headers), so they are not rebuilt on every request. Never stored.
    #[serde(skip)]
    pub derived: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
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

struct Entry {
    /// The session's key on disk (HMAC of the cookie value).
    key: [u8; 32],
    session: Arc<Session>,
    last_seen: AtomicI64,
    persisted_seen: AtomicI64,
}

/// The memory cache's key: the cookie value itself, hashed with std's
/// per-process random SipHash key (clients cannot aim at buckets) and
/// compared in constant time. A lookup costs ~150 instructions; the HMAC that
/// keys the disk store costs ~5,800, so it is computed only when a session
/// goes to or comes from disk.
#[derive(Clone, Eq)]
struct CookieKey(Box<str>);

impl std::hash::Hash for CookieKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal keys have equal bytes, whatever `eq` takes to find out.
        self.0.hash(state);
    }
}

impl PartialEq for CookieKey {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes())
            .is_ok()
    }
}

impl From<&str> for CookieKey {
    fn from(cookie: &str) -> Self {
        Self(cookie.into())
    }
}

/// The session store: memory cache over an optional embedded database.
pub struct SessionStore {
    db: Option<Arc<Database>>,
    sealer: Sealer,
    lookup_key: crypto::MacKey,
    idle: i64,
    lifetime: i64,
    cache: RwLock<HashMap<CookieKey, Arc<Entry>>>,
    disk_writes: Arc<std::sync::atomic::AtomicU64>,
    /// Idle clocks waiting to be written back (by key), in one batch per
    /// [`FLUSH_INTERVAL`], off the request path.
    touched: Arc<std::sync::Mutex<HashMap<[u8; 32], i64>>>,
    /// Whether the task that writes them back has been started.
    flusher: std::sync::atomic::AtomicBool,
    keep_access_tokens: bool,
    memory_cap: usize,
    clock: crate::clock::Clock,
}

impl std::fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("persistent", &self.db.is_some())
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
        let db = match kind {
            StoreKind::Memory => None,
            StoreKind::File(dir) => Some(Arc::new(open_db(dir)?)),
        };
        Ok(Self {
            db,
            sealer: Sealer::new(secret, "session store"),
            lookup_key: crypto::MacKey::new(&crypto::derive_key(secret, "session lookup")),
            idle: idle.as_secs() as i64,
            lifetime: lifetime.as_secs() as i64,
            cache: RwLock::new(HashMap::new()),
            disk_writes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            touched: Arc::new(std::sync::Mutex::new(HashMap::new())),
            flusher: std::sync::atomic::AtomicBool::new(false),
            keep_access_tokens: true,
            memory_cap: MEMORY_CAP,
            clock: crate::clock::Clock::system(),
        })
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
        s.derived = Default::default();
        if self.db.is_some() {
            s.tokens = Tokens {
                access_token: s.tokens.access_token.filter(|_| self.keep_access_tokens),
                access_expires_at: s.tokens.access_expires_at,
                ..Tokens::default()
            };
        }
        s
    }

    fn key_of(&self, cookie: &str) -> [u8; 32] {
        self.lookup_key.sign(cookie.as_bytes())
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
            derived: Default::default(),
        });
        let cookie = crypto::random_token();
        let key = self.key_of(&cookie);
        self.persist(key, &session).await?;
        self.insert_cache(&cookie, key, Arc::new(self.slim(&session)), t);
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
        s.derived = Default::default();
        self.persist(key, &s).await?;
        self.insert_cache(cookie, key, Arc::new(self.slim(&s)), s.last_seen);
        Ok(Some(Arc::new(s)))
    }

    fn insert_cache(&self, cookie: &str, key: [u8; 32], session: Arc<Session>, seen: i64) {
        let mut cache = self.cache.write().expect("session cache lock");
        if self.db.is_some() && cache.len() >= self.memory_cap {
            // Drop the tenth used least recently; they are reloaded from disk
            // on use. Done a tenth at a time, the cost per insert stays small.
            let n = self.memory_cap.div_ceil(10).min(cache.len());
            let mut by_use: Vec<(i64, &CookieKey)> = cache
                .iter()
                .map(|(k, e)| (e.last_seen.load(Ordering::Relaxed), k))
                .collect();
            if n > 0 {
                by_use.select_nth_unstable_by_key(n - 1, |(seen, _)| *seen);
            }
            let victims: Vec<CookieKey> = by_use[..n].iter().map(|(_, k)| (*k).clone()).collect();
            for v in victims {
                cache.remove(&v);
            }
        }
        cache.insert(
            CookieKey::from(cookie),
            Arc::new(Entry {
                key,
                session,
                last_seen: AtomicI64::new(seen),
                persisted_seen: AtomicI64::new(seen),
            }),
        );
    }

    /// The live session for a cookie value, or `None` (unknown, malformed,
    /// forged, idle too long or past its lifetime). Never waits for a disk
    /// write: the idle clock is noted, at most once a minute per session,
    /// and written back in batches.
    pub async fn get(&self, cookie: &str) -> Option<Arc<Session>> {
        if !well_formed(cookie) {
            return None;
        }
        let cache_key = CookieKey::from(cookie);
        let cached = self
            .cache
            .read()
            .expect("session cache lock")
            .get(&cache_key)
            .cloned();
        let entry = match cached {
            Some(e) => e,
            None => {
                let key = self.key_of(cookie);
                let session = self.load(key).await?;
                let seen = session.last_seen;
                self.insert_cache(cookie, key, Arc::new(self.slim(&session)), seen);
                self.cache
                    .read()
                    .expect("session cache lock")
                    .get(&cache_key)
                    .cloned()?
            }
        };
        let key = entry.key;
        let t = self.clock.now();
        let seen = entry.last_seen.load(Ordering::Relaxed);
        if t >= entry.session.expires_at || t - seen > self.idle {
            self.remove_key(cookie, key).await;
            return None;
        }
        entry.last_seen.store(t, Ordering::Relaxed);
        let persisted = entry.persisted_seen.load(Ordering::Relaxed);
        if self.db.is_some() && t - persisted >= TOUCH_INTERVAL.as_secs() as i64 {
            // Noted for the next batch: the request does not wait for a write.
            entry.persisted_seen.store(t, Ordering::Relaxed);
            if let Ok(mut touched) = self.touched.lock() {
                touched.insert(key, t);
            }
            self.start_flusher();
        }
        Some(entry.session.clone())
    }

    /// Starts, once, the task that writes noted idle clocks back every
    /// [`FLUSH_INTERVAL`]; it ends when the store is dropped.
    fn start_flusher(&self) {
        if self.flusher.swap(true, Ordering::Relaxed) {
            return;
        }
        let Some(db) = self.db.as_ref().map(Arc::downgrade) else {
            return;
        };
        let (sealer, writes) = (self.sealer.clone(), self.disk_writes.clone());
        let touched = Arc::downgrade(&self.touched);
        // Holds nothing strong while it sleeps: a dropped store closes its
        // database at once (a restart in the same process can reopen it).
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_INTERVAL).await;
                let (Some(db), Some(touched)) = (db.upgrade(), touched.upgrade()) else {
                    return;
                };
                flush_touched(&db, &sealer, &writes, &touched).await;
            }
        });
    }

    /// Writes the noted idle clocks back now (the background task does this
    /// every [`FLUSH_INTERVAL`]; call it before a planned shutdown).
    pub async fn flush_idle_clocks(&self) {
        if let Some(db) = &self.db {
            flush_touched(db, &self.sealer, &self.disk_writes, &self.touched).await;
        }
    }

    /// Like [`SessionStore::get`], with every token (read from disk for a
    /// file store). For token refresh, logout and `/.auth/me`, not per request.
    pub async fn get_full(&self, cookie: &str) -> Option<Arc<Session>> {
        let cached = self.get(cookie).await?;
        if self.db.is_none() {
            return Some(cached);
        }
        let mut s = self.load(self.key_of(cookie)).await?;
        s.last_seen = cached.last_seen;
        Some(Arc::new(s))
    }

    /// Deletes a session (logout).
    pub async fn remove(&self, cookie: &str) {
        if well_formed(cookie) {
            self.remove_key(cookie, self.key_of(cookie)).await;
        }
    }

    async fn remove_key(&self, cookie: &str, key: [u8; 32]) {
        self.cache
            .write()
            .expect("session cache lock")
            .remove(&CookieKey::from(cookie));
        if let Some(db) = self.db.clone() {
            self.disk_writes.fetch_add(1, Ordering::Relaxed);
            let r = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
                let tx = db.begin_write()?;
                tx.open_table(TABLE)?.remove(key.as_slice())?;
                tx.commit()?;
                Ok(())
            })
            .await;
            if !matches!(r, Ok(Ok(()))) {
                tracing::warn!("could not delete a session from the store");
            }
        }
    }

    async fn persist(&self, key: [u8; 32], session: &Session) -> Result<(), StoreError> {
        let Some(db) = self.db.clone() else {
            return Ok(());
        };
        self.disk_writes.fetch_add(1, Ordering::Relaxed);
        let plain = serde_json::to_vec(session).map_err(StoreError::from_any)?;
        let sealed = self.sealer.seal(&plain, &key);
        tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?
                .insert(key.as_slice(), sealed.as_slice())?;
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(StoreError::from_any)?
        .map_err(StoreError::from_any)
    }

    async fn load(&self, key: [u8; 32]) -> Option<Session> {
        let db = self.db.clone()?;
        let sealed =
            tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, redb::Error> {
                let tx = db.begin_read()?;
                let table = match tx.open_table(TABLE) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                Ok(table.get(key.as_slice())?.map(|v| v.value().to_vec()))
            })
            .await
            .ok()?
            .ok()??;
        let plain = self.sealer.open(&sealed, &key)?;
        serde_json::from_slice(&plain).ok()
    }

    /// Removes expired sessions from memory and disk; returns how many.
    pub async fn purge_expired(&self) -> usize {
        let t = self.clock.now();
        let idle = self.idle;
        let mut n = 0;
        {
            let mut cache = self.cache.write().expect("session cache lock");
            cache.retain(|_, e| {
                let keep =
                    t < e.session.expires_at && t - e.last_seen.load(Ordering::Relaxed) <= idle;
                n += usize::from(!keep);
                keep
            });
        }
        let Some(db) = self.db.clone() else {
            return n;
        };
        let sealer_key = self.sealer.clone();
        let r = tokio::task::spawn_blocking(move || -> Result<usize, redb::Error> {
            let tx = db.begin_write()?;
            let mut removed = 0;
            {
                let mut table = tx.open_table(TABLE)?;
                let mut dead: Vec<Vec<u8>> = Vec::new();
                for item in table.iter()? {
                    let (k, v) = item?;
                    let alive = sealer_key
                        .open(v.value(), k.value())
                        .and_then(|p| serde_json::from_slice::<Session>(&p).ok())
                        .is_some_and(|s| {
                            t < s.expires_at
                                && t - s.last_seen <= idle + TOUCH_INTERVAL.as_secs() as i64
                        });
                    if !alive {
                        dead.push(k.value().to_vec());
                    }
                }
                for k in dead {
                    table.remove(k.as_slice())?;
                    removed += 1;
                }
            }
            tx.commit()?;
            Ok(removed)
        })
        .await;
        match r {
            Ok(Ok(removed)) => n.max(removed),
            _ => n,
        }
    }

    /// Write transactions made so far (for tests and metrics).
    pub fn disk_writes(&self) -> u64 {
        self.disk_writes.load(Ordering::Relaxed)
    }

    /// Number of sessions cached in memory.
    pub fn cached_len(&self) -> usize {
        self.cache.read().expect("session cache lock").len()
    }
}

fn open_db(dir: &Path) -> Result<Database, StoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let path = dir.join("sessions.redb");
    // redb's default page cache is 1 GiB, which a big store fills with
    // sessions nobody is using: memory is what the session cache is for.
    let db = redb::Builder::new()
        .set_cache_size(4 * 1024 * 1024)
        .create(&path)
        .map_err(|e| StoreError(format!("cannot open {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    let tx = db.begin_write().map_err(StoreError::from_any)?;
    tx.open_table(TABLE).map_err(StoreError::from_any)?;
    tx.commit().map_err(StoreError::from_any)?;
    Ok(db)
}

/// Writes a batch of idle clocks in one transaction. Each record is read,
/// opened, given the later of its stored and noted `last_seen`, sealed and
/// written back within the transaction, so a session removed meanwhile
/// (sign-out) stays removed and a concurrent update is never lost.
async fn flush_touched(
    db: &Arc<Database>,
    sealer: &Sealer,
    writes: &std::sync::atomic::AtomicU64,
    touched: &std::sync::Mutex<HashMap<[u8; 32], i64>>,
) {
    let batch: Vec<([u8; 32], i64)> = match touched.lock() {
        Ok(mut t) if !t.is_empty() => t.drain().collect(),
        _ => return,
    };
    writes.fetch_add(1, Ordering::Relaxed);
    let (db, sealer) = (db.clone(), sealer.clone());
    let n = batch.len();
    let r = tokio::task::spawn_blocking(move || -> Result<(), redb::Error> {
        let tx = db.begin_write()?;
        {
            let mut table = tx.open_table(TABLE)?;
            for (key, seen) in batch {
                let Some(sealed) = table.get(key.as_slice())?.map(|v| v.value().to_vec()) else {
                    continue;
                };
                let Some(mut s) = sealer
                    .open(&sealed, &key)
                    .and_then(|p| serde_json::from_slice::<Session>(&p).ok())
                else {
                    continue;
                };
                if s.last_seen >= seen {
                    continue;
                }
                s.last_seen = seen;
                let Ok(plain) = serde_json::to_vec(&s) else {
                    continue;
                };
                table.insert(key.as_slice(), sealer.seal(&plain, &key).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    })
    .await;
    if !matches!(r, Ok(Ok(()))) {
        tracing::warn!(sessions = n, "could not write session idle clocks back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kind: &StoreKind) -> SessionStore {
        SessionStore::open(
            kind,
            &[9u8; 32],
            Duration::from_secs(3600),
            Duration::from_secs(86400),
        )
        .unwrap()
    }

    fn tokens() -> Tokens {
        Tokens {
            access_token: Some("AT-secret".into()),
            refresh_token: Some("RT-secret".into()),
            ..Tokens::default()
        }
    }

    #[tokio::test]
    async fn file_store_survives_reopen_and_encrypts_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let kind = StoreKind::File(dir.path().join("s"));
        let cookie = {
            let s = store(&kind);
            let id = Identity {
                sub: "sub-1".into(),
                name: Some("Ada".into()),
                ..Identity::default()
            };
            s.create(id, tokens()).await.unwrap().0
        };
        let raw = std::fs::read(dir.path().join("s/sessions.redb")).unwrap();
        let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(b"AT-secret") && !contains(b"RT-secret") && !contains(b"sub-1"));
        assert!(
            !contains(cookie.as_bytes()),
            "the cookie value itself is not stored"
        );

        let s = store(&kind);
        let got = s.get(&cookie).await.expect("session after reopen");
        assert_eq!(got.identity.sub, "sub-1");
        assert_eq!(got.tokens.access_token.as_deref(), Some("AT-secret"));

        drop(s);
        let wrong_secret = SessionStore::open(
            &kind,
            &[8u8; 32],
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        assert!(wrong_secret.unwrap().get(&cookie).await.is_none());
    }

    #[tokio::test]
    async fn checking_a_session_does_not_write_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&StoreKind::File(dir.path().to_owned()));
        let (cookie, _) = s.create(Identity::default(), tokens()).await.unwrap();
        assert_eq!(s.disk_writes(), 1);
        for _ in 0..1000 {
            assert!(s.get(&cookie).await.is_some());
        }
        assert_eq!(s.disk_writes(), 1, "reads are served from memory");
        s.remove(&cookie).await;
        assert_eq!(s.disk_writes(), 2);
    }

    #[tokio::test]
    async fn idle_clocks_are_written_back_in_batches_off_the_request_path() {
        let dir = tempfile::tempdir().unwrap();
        let kind = StoreKind::File(dir.path().to_owned());
        let s = store(&kind);
        let mut cookies = Vec::new();
        for _ in 0..20 {
            cookies.push(s.create(Identity::default(), tokens()).await.unwrap().0);
        }
        let (gone, _) = s.create(Identity::default(), tokens()).await.unwrap();
        let writes = s.disk_writes();
        s.clock().advance(61);
        for c in cookies.iter().chain([&gone]) {
            assert!(s.get(c).await.is_some());
        }
        assert_eq!(s.disk_writes(), writes, "no request waited for a write");
        s.remove(&gone).await;
        s.flush_idle_clocks().await;
        assert_eq!(
            s.disk_writes(),
            writes + 2,
            "the removal, then one batch for all 20"
        );
        // Reopened (a restart), the stored idle clocks are the new ones, and
        // the signed-out session stayed removed.
        drop(s);
        let again = store(&kind);
        again.clock().advance(61);
        let now = again.clock().now();
        for c in &cookies {
            let seen = again.get_full(c).await.unwrap().last_seen;
            assert!(now - seen <= 2, "persisted last_seen {seen} vs now {now}");
        }
        assert!(again.get(&gone).await.is_none());
    }

    /// The background task writes them by itself (tokio's clock is paused and
    /// jumps ahead whenever everything waits, so nothing waits 5 s).
    #[tokio::test(start_paused = true)]
    async fn the_background_task_writes_idle_clocks_back_within_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&StoreKind::File(dir.path().to_owned()));
        let (cookie, _) = s.create(Identity::default(), tokens()).await.unwrap();
        let writes = s.disk_writes();
        s.clock().advance(61);
        assert!(s.get(&cookie).await.is_some());
        let started = tokio::time::Instant::now();
        while s.disk_writes() == writes {
            assert!(started.elapsed() <= FLUSH_INTERVAL * 2, "not written back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(s.disk_writes(), writes + 1);
    }

    #[tokio::test]
    async fn the_cache_keeps_no_id_or_refresh_tokens_but_get_full_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&StoreKind::File(dir.path().to_owned())).keep_access_tokens_in_memory(false);
        let mut t = tokens();
        t.id_token = Some("ID-secret".into());
        let (cookie, _) = s.create(Identity::default(), t).await.unwrap();
        let cached = s.get(&cookie).await.unwrap();
        assert!(cached.tokens.id_token.is_none() && cached.tokens.refresh_token.is_none());
        assert!(cached.tokens.access_token.is_none());
        let full = s.get_full(&cookie).await.unwrap();
        assert_eq!(full.tokens.id_token.as_deref(), Some("ID-secret"));
        assert_eq!(full.tokens.refresh_token.as_deref(), Some("RT-secret"));
        // update() keeps what it does not change.
        s.update(&cookie, |x| x.tokens.access_token = Some("AT-2".into()))
            .await
            .unwrap();
        let full = s.get_full(&cookie).await.unwrap();
        assert_eq!(full.tokens.id_token.as_deref(), Some("ID-secret"));
        assert_eq!(full.tokens.access_token.as_deref(), Some("AT-2"));
    }

    #[tokio::test]
    async fn ids_are_fresh_and_garbage_is_signed_out() {
        let s = store(&StoreKind::Memory);
        let (a, _) = s
            .create(Identity::default(), Tokens::default())
            .await
            .unwrap();
        let (b, _) = s
            .create(Identity::default(), Tokens::default())
            .await
            .unwrap();
        assert_ne!(a, b);
        for bad in [
            "",
            "x",
            &"A".repeat(43),
            &"é".repeat(22),
            &format!("{a}x"),
            &a[..42],
        ] {
            assert!(s.get(bad).await.is_none(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn expired_sessions_end() {
        let s = SessionStore::open(
            &StoreKind::Memory,
            &[9u8; 32],
            Duration::from_secs(3600),
            Duration::from_secs(0),
        )
        .unwrap();
        let (a, _) = s
            .create(Identity::default(), Tokens::default())
            .await
            .unwrap();
        assert!(s.get(&a).await.is_none());
        assert_eq!(s.cached_len(), 0);
    }

    #[tokio::test]
    async fn a_file_store_caches_at_most_its_cap_and_reloads_the_rest_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&StoreKind::File(dir.path().to_owned()));
        s.memory_cap = 20;
        let mut cookies = Vec::new();
        for i in 0..45 {
            let identity = Identity {
                sub: format!("user-{i}"),
                ..Identity::default()
            };
            cookies.push(s.create(identity, tokens()).await.unwrap().0);
            assert!(s.cached_len() <= 20, "{}", s.cached_len());
        }
        for (i, c) in cookies.iter().enumerate() {
            let got = s.get(c).await.expect("every session is still there");
            assert_eq!(got.identity.sub, format!("user-{i}"));
            assert!(s.cached_len() <= 20);
        }
        s.remove(&cookies[0]).await;
        assert!(s.get(&cookies[0]).await.is_none());
    }

    #[tokio::test]
    async fn a_full_cache_evicts_the_sessions_used_least_recently() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(&StoreKind::File(dir.path().to_owned()));
        s.memory_cap = 20;
        let mut cookies = Vec::new();
        for _ in 0..20 {
            cookies.push(s.create(Identity::default(), tokens()).await.unwrap().0);
            s.clock().advance(1);
        }
        // The five oldest are used again: now the most recent.
        for c in &cookies[..5] {
            assert!(s.get(c).await.is_some());
        }
        s.create(Identity::default(), tokens()).await.unwrap();
        let cached = |c: &String| {
            s.cache
                .read()
                .unwrap()
                .contains_key(&CookieKey::from(c.as_str()))
        };
        assert!(
            cookies[..5].iter().all(cached),
            "recently used sessions stay"
        );
        assert!(
            !cached(&cookies[5]) && !cached(&cookies[6]),
            "the two used least recently go"
        );
        assert!(cookies[7..].iter().all(cached));
    }
}
