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
//! - where sessions are kept: the [`Store`] trait ([`store`]), with
//!   [`MemoryStore`] and the embedded [`FileStore`];
//! - every store operation counted and timed, when metrics are kept:
//!   `timed` ([`SessionStore::with_metrics`]).
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

mod bookkeeping;
mod cache;
mod encoding;
mod file;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_entra;
pub mod store;
mod timed;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crypto::{self, Sealer};
pub use crate::identity::Identity;
pub use cache::CachedView;
use cache::{Cache, Entry};
pub use file::FileStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use store::{MemoryStore, Record, RecordKey, Revoked, Store};

/// The idle clock of a session is persisted at most this often.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);
/// Idle clocks noted by requests are written back this often, in chunks of
/// a few hundred: a crash loses at most this much bookkeeping, never a
/// session or a sign-out (those are written before the request is answered).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Idle clocks written back in one store operation. With 50,000 sessions
/// in use, one interval's batch is thousands of clocks (tens of thousands
/// when they all fall due together), and as one transaction it took tens of
/// milliseconds of the proxy's core at once, which requests waited for
/// (`bench/run`, p99 +17 ms at 50,000 in use); in chunks with
/// [`WRITE_BACK_PAUSE`] between them, the same work is spread out.
const WRITE_BACK_CHUNK: usize = 256;
/// The shortest pause between two chunks of a write-back (the background
/// write-back spreads its chunks wider: [`write_back_pause`]).
const WRITE_BACK_PAUSE: Duration = Duration::from_millis(10);
/// The memory the session cache may use by default (`session.cache_mib`):
/// 256 MiB, about 70,000 sessions of users in a few groups (~3.6 KB each
/// with their identity headers). It is a bound, not a reservation: a
/// process serving 100 users uses a few hundred kilobytes of it. Past it,
/// the sessions used least recently are read from the store again on use.
pub const DEFAULT_CACHE_BUDGET: u64 = 256 << 20;
/// A process holds a session's lock ([`SessionStore::exclusive`]) at most
/// this long (a refresh takes well under it; a crashed holder frees it).
pub const LOCK_TTL: Duration = Duration::from_secs(10);
/// How long a process waits for a session's lock held by another.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// `session.store = "redis://…"`: where and how to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host:port[/db]` or `rediss://…`; or a
    /// Redis Cluster, `redis-cluster://[user[:password]@]host:port[,host:port…]`
    /// or `rediss-cluster://…` (see [`RedisConfig::cluster_nodes`]).
    pub url: String,
    /// Overrides the URL's password (`AADGATE_SESSION_REDIS_PASSWORD`).
    pub password: Option<String>,
    /// Key prefix, so several apps can share one Redis.
    pub prefix: String,
    /// PEM file of the CA that signed the server's certificate (`rediss://`
    /// with a private CA); default: the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// How aadgate signs in (`session.redis_auth`).
    pub auth: RedisAuth,
}

/// `session.redis_auth`: how aadgate signs in to Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RedisAuth {
    /// The URL's password, or [`RedisConfig::password`].
    #[default]
    Password,
    /// A Microsoft Entra token of the managed identity; `client_id` picks a
    /// user-assigned one (else `AZURE_CLIENT_ID`, else the system-assigned).
    ManagedIdentity {
        /// `session.redis_identity_client_id`.
        client_id: Option<String>,
    },
    /// A Microsoft Entra token for AKS workload identity's federated token.
    WorkloadIdentity,
}

impl RedisConfig {
    /// For a cluster URL (`redis-cluster://` or `rediss-cluster://`), the
    /// `redis://` (or `rediss://`) URL of each node it names, each with the
    /// URL's user and password; `None` for a URL of one endpoint.
    /// `Some(Err(why))` when it names no node, or a node is not
    /// `host:port`, or it names a database (a cluster has only database 0).
    pub fn cluster_nodes(&self) -> Option<Result<Vec<String>, String>> {
        cluster_nodes(&self.url)
    }

    /// The URL with its password replaced, for logs and `Debug`.
    fn redacted(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((userinfo, hosts)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    let pass = if userinfo.contains(':') {
                        ":redacted"
                    } else {
                        ""
                    };
                    format!("{scheme}://{user}{pass}@{hosts}")
                }
                None => self.url.clone(),
            },
            None => "<unparsable>".to_owned(),
        }
    }
}

/// [`RedisConfig::cluster_nodes`] of a `session.store` URL (also what the
/// configuration checks at start-up).
pub fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, String>> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("redis-cluster://") {
        ("redis", r)
    } else {
        ("rediss", url.strip_prefix("rediss-cluster://")?)
    };
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    let mut nodes = Vec::new();
    for host in hosts.split(',') {
        let node = format!("{scheme}://{userinfo}{host}");
        let parsed = url::Url::parse(&node).ok().filter(|u| {
            u.host_str().is_some_and(|h| !h.is_empty())
                && u.port().is_some()
                && u.path().is_empty()
                && u.query().is_none()
        });
        if parsed.is_none() {
            return Some(Err(format!(
                "{host:?} is not host:port (a cluster URL lists its nodes as host:port,host:port and names no database)"
            )));
        }
        nodes.push(node);
    }
    Some(Ok(nodes))
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry the password.
        let shown = self.redacted();
        f.debug_struct("RedisConfig")
            .field("url", &shown)
            .field("prefix", &self.prefix)
            .field("ca_file", &self.ca_file)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Where sessions are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In process memory; lost on restart.
    Memory,
    /// Embedded database in this directory.
    File(std::path::PathBuf),
    /// Redis, shared by every replica (the `redis` cargo feature).
    Redis(RedisConfig),
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
    /// A failure described by `e` (for [`Store`] implementations).
    pub fn from_any(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// What the layer above derives from a session when it enters the cache.
type Derive<V> = Arc<dyn Fn(&Session) -> V + Send + Sync>;

/// The session store: a memory cache in front of a [`Store`].
/// `V` is what the layer above keeps with each cached session
/// ([`SessionStore::with_view`]); `()` by default.
pub struct SessionStore<V = ()> {
    store: Arc<dyn Store>,
    sealer: Sealer,
    lookup_key: crypto::MacKey,
    idle: i64,
    lifetime: i64,
    cache: Arc<Cache<V>>,
    derive: Derive<V>,
    keep_access_tokens: bool,
    clock: crate::clock::Clock,
    /// Idle clocks waiting to be written back, in one batch per
    /// [`FLUSH_INTERVAL`], off the request path.
    touched: Arc<Mutex<HashMap<RecordKey, i64>>>,
    /// Whether the background tasks (write-back, revocations) have started.
    started: AtomicBool,
}

impl<V: CachedView> std::fmt::Debug for SessionStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("cached", &self.cache.len())
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
    /// Opens the store `kind` names. For `file:` the directory is created
    /// (mode 0700).
    pub fn open(
        kind: &StoreKind,
        secret: &[u8],
        idle: Duration,
        lifetime: Duration,
    ) -> Result<Self, StoreError> {
        let clock = crate::clock::Clock::system();
        let store: Arc<dyn Store> = match kind {
            StoreKind::Memory => Arc::new(MemoryStore::new()),
            StoreKind::File(dir) => Arc::new(FileStore::open(dir, clock.now())?),
            #[cfg(feature = "redis")]
            StoreKind::Redis(config) => Arc::new(RedisStore::new(config, idle.as_secs() as i64)?),
            #[cfg(not(feature = "redis"))]
            StoreKind::Redis(_) => {
                return Err(StoreError::from_any(
                    "this build has no Redis support (cargo feature `redis`)",
                ));
            }
        };
        Ok(Self::with_store(store, secret, idle, lifetime))
    }

    /// Sessions kept in `store` (any [`Store`] implementation).
    pub fn with_store(
        store: Arc<dyn Store>,
        secret: &[u8],
        idle: Duration,
        lifetime: Duration,
    ) -> Self {
        Self {
            store,
            sealer: Sealer::new(secret, "session store"),
            lookup_key: crypto::MacKey::new(&crypto::derive_key(secret, "session lookup")),
            idle: idle.as_secs() as i64,
            lifetime: lifetime.as_secs() as i64,
            cache: Arc::new(Cache::new(DEFAULT_CACHE_BUDGET)),
            derive: Arc::new(|_| ()),
            keep_access_tokens: true,
            clock: crate::clock::Clock::system(),
            touched: Arc::new(Mutex::new(HashMap::new())),
            started: AtomicBool::new(false),
        }
    }
}

impl<V: CachedView> SessionStore<V> {
    /// Keeps `derive(session)` with each cached session, computed once when
    /// the session enters the cache (sign-in, refresh, a load from the
    /// store) and handed out by [`SessionStore::get_with_view`], so a request
    /// reuses it instead of recomputing it.
    #[must_use]
    pub fn with_view<W: CachedView>(
        self,
        derive: impl Fn(&Session) -> W + Send + Sync + 'static,
    ) -> SessionStore<W> {
        SessionStore {
            store: self.store,
            sealer: self.sealer,
            lookup_key: self.lookup_key,
            idle: self.idle,
            lifetime: self.lifetime,
            cache: Arc::new(Cache::new(self.cache.budget)),
            derive: Arc::new(derive),
            keep_access_tokens: self.keep_access_tokens,
            clock: self.clock,
            touched: self.touched,
            started: AtomicBool::new(false),
        }
    }

    /// Bounds the memory cache at about `bytes` (default
    /// [`DEFAULT_CACHE_BUDGET`]); the sessions used least recently leave it
    /// first and are read from the store again when next used.
    #[must_use]
    pub fn with_cache_budget(mut self, bytes: u64) -> Self {
        self.cache = Arc::new(Cache::new(bytes));
        self
    }

    /// Counts and times every operation on the store into `metrics`
    /// (`aadgate_session_store_operation_duration_seconds`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.store = Arc::new(timed::Timed {
            inner: self.store,
            metrics,
        });
        self
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

    /// Whether access and ID tokens stay in the memory cache (for passing
    /// them to the app on every request: `pass_access_token`). Otherwise
    /// they are read from the store when needed ([`SessionStore::get_full`]),
    /// and refresh tokens always are, which keeps the memory per cached
    /// session to a few kilobytes.
    #[must_use]
    pub fn keep_access_tokens_in_memory(mut self, keep: bool) -> Self {
        self.keep_access_tokens = keep;
        self
    }

    /// What the memory cache keeps of a session.
    fn slim(&self, s: &Session) -> Session {
        let mut s = s.clone();
        s.tokens = Tokens {
            access_token: s.tokens.access_token.filter(|_| self.keep_access_tokens),
            id_token: s.tokens.id_token.filter(|_| self.keep_access_tokens),
            access_expires_at: s.tokens.access_expires_at,
            ..Tokens::default()
        };
        s
    }

    fn key_of(&self, cookie: &str) -> RecordKey {
        self.lookup_key.sign(cookie.as_bytes())
    }

    fn seal(&self, key: &RecordKey, session: &Session) -> Result<Record, StoreError> {
        Ok(Record {
            expires_at: session.expires_at,
            last_seen: session.last_seen,
            sealed: self.sealer.seal(&encoding::encode(session), key),
        })
    }

    /// Opens a record; `None` when it was not sealed with this secret for
    /// this key. The record's plain clocks are the live ones.
    fn unseal(&self, key: &RecordKey, record: &Record) -> Option<Session> {
        let plain = self.sealer.open(&record.sealed, key)?;
        let mut s = encoding::decode(&plain)?;
        s.last_seen = s.last_seen.max(record.last_seen);
        s.expires_at = s.expires_at.min(record.expires_at);
        Some(s)
    }

    /// Reads and opens a session from the store.
    async fn load(&self, key: &RecordKey) -> Result<Option<Session>, StoreError> {
        Ok(self
            .store
            .get(key)
            .await?
            .and_then(|record| self.unseal(key, &record)))
    }

    async fn save(&self, key: &RecordKey, session: &Session) -> Result<(), StoreError> {
        self.store.put(key, &self.seal(key, session)?).await
    }

    /// Caches a session (slimmed) with its view; returns the entry.
    fn cache(&self, cookie: &str, key: RecordKey, session: &Session, seen: i64) -> Arc<Entry<V>> {
        let session = Arc::new(self.slim(session));
        let view = Arc::new((self.derive)(&session));
        self.cache.insert(
            cookie,
            Entry {
                key,
                weight: Entry::weight(&session, &*view),
                session,
                view,
                last_seen: AtomicI64::new(seen),
                persisted_seen: AtomicI64::new(seen),
            },
        )
    }

    /// Starts, once, the background tasks: the write-back of idle clocks
    /// every [`FLUSH_INTERVAL`], and (for a shared store) dropping the
    /// sessions other processes revoke. They end when the store is dropped.
    fn start(&self) {
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let store = Arc::downgrade(&self.store);
        let touched = Arc::downgrade(&self.touched);
        // Holds nothing strong while it sleeps: a dropped store closes its
        // database at once (a restart in the same process can reopen it).
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_INTERVAL).await;
                let (Some(store), Some(touched)) = (store.upgrade(), touched.upgrade()) else {
                    return;
                };
                flush(&*store, &touched, write_back_pause).await;
            }
        });
        if let Some(mut revoked) = self.store.revocations() {
            let cache = Arc::downgrade(&self.cache);
            tokio::spawn(async move {
                while let Some(r) = revoked.recv().await {
                    let Some(cache) = cache.upgrade() else { return };
                    match r {
                        Revoked::Session(key) => cache.remove_record(&key),
                        Revoked::All => cache.clear(),
                    }
                }
            });
        }
    }

    /// Creates a session with a fresh id and returns the cookie value.
    pub async fn create(
        &self,
        identity: Identity,
        tokens: Tokens,
    ) -> Result<(String, Arc<Session>), StoreError> {
        self.start();
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
        self.save(&key, &session).await?;
        if let Some(sid) = &session.identity.sid {
            self.store
                .index(&provider_session(sid), &key, session.expires_at)
                .await?;
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
        self.save(&key, &s).await?;
        self.cache(cookie, key, &s, s.last_seen);
        Ok(Some(Arc::new(s)))
    }

    /// The live session for a cookie value, or `None` (unknown, malformed,
    /// forged, idle too long or past its lifetime). Never waits for a
    /// write: the idle clock is noted, at most once a minute per session,
    /// and written back in batches.
    /// A store that cannot be read counts as no session (logged); use
    /// [`SessionStore::get_with_view`] to tell the two apart.
    pub async fn get(&self, cookie: &str) -> Option<Arc<Session>> {
        match self.get_with_view(cookie).await {
            Ok(found) => found.map(|(s, _)| s),
            Err(e) => {
                tracing::warn!(error = %e, "session store read failed");
                None
            }
        }
    }

    /// Like [`SessionStore::get`], with the view kept for the session
    /// ([`SessionStore::with_view`]), and an error when the session is not
    /// in memory and the store cannot be read.
    pub async fn get_with_view(
        &self,
        cookie: &str,
    ) -> Result<Option<(Arc<Session>, Arc<V>)>, StoreError> {
        if !well_formed(cookie) {
            return Ok(None);
        }
        self.start();
        let entry = match self.cache.get(cookie) {
            Some(e) => e,
            None => {
                let key = self.key_of(cookie);
                let Some(session) = self.load(&key).await? else {
                    return Ok(None);
                };
                self.cache(cookie, key, &session, session.last_seen)
            }
        };
        let t = self.clock.now();
        let seen = entry.last_seen.load(Ordering::Relaxed);
        if store::ended(t, entry.session.expires_at, seen, self.idle) {
            self.remove_key(cookie, entry.key).await;
            return Ok(None);
        }
        entry.last_seen.store(t, Ordering::Relaxed);
        let persisted = entry.persisted_seen.load(Ordering::Relaxed);
        if t - persisted >= TOUCH_INTERVAL.as_secs() as i64 {
            // Noted for the next batch: the request does not wait for a write.
            entry.persisted_seen.store(t, Ordering::Relaxed);
            if let Ok(mut touched) = self.touched.lock() {
                touched.insert(entry.key, t);
            }
        }
        Ok(Some((entry.session.clone(), entry.view.clone())))
    }

    /// Writes the noted idle clocks back now (a background task does this
    /// every [`FLUSH_INTERVAL`]; call it before a planned shutdown).
    pub async fn flush_idle_clocks(&self) {
        flush(&*self.store, &self.touched, |_| WRITE_BACK_PAUSE).await;
    }

    /// Like [`SessionStore::get`], with every token (read from the store).
    /// For token refresh, logout and `/.auth/me`, not per request.
    pub async fn get_full(&self, cookie: &str) -> Option<Arc<Session>> {
        let cached = self.get(cookie).await?;
        let mut s = match self.load(&self.key_of(cookie)).await {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(error = %e, "session store read failed");
                return None;
            }
        };
        s.last_seen = cached.last_seen;
        Some(Arc::new(s))
    }

    /// Runs `work` holding the session's lock in the store, so that only one
    /// process at a time does it (redeeming a rotating refresh token). A
    /// process that finds the lock held waits for it (up to
    /// [`LOCK_WAIT`]), then runs `work`, which should re-read the session
    /// first: the holder has usually done the work already. When the store
    /// cannot lock (unreachable), `work` runs anyway, and that is logged.
    pub async fn exclusive<T>(
        &self,
        cookie: &str,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let key = self.key_of(cookie);
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut delay = Duration::from_millis(10);
        let token = loop {
            match self.store.lock(&key, LOCK_TTL).await {
                Ok(Some(token)) => break Some(token),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Ok(None) => {
                    tracing::warn!(
                        "a session's lock was held longer than {LOCK_WAIT:?}; going ahead"
                    );
                    break None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the session store cannot lock; going ahead without the lock");
                    break None;
                }
            }
        };
        let out = work.await;
        if let Some(token) = token
            && let Err(e) = self.store.unlock(&key, token).await
        {
            tracing::warn!(error = %e, "could not release a session's lock (it expires by itself)");
        }
        out
    }

    /// Puts `session` (as read from the store, changed by another process)
    /// into the cache in place of what it held; returns it with its view.
    pub fn recache(&self, cookie: &str, session: &Session) -> (Arc<Session>, Arc<V>) {
        let key = self.key_of(cookie);
        let seen = self
            .cache
            .get(cookie)
            .map_or(session.last_seen, |e| e.last_seen.load(Ordering::Relaxed));
        let entry = self.cache(cookie, key, session, seen.max(session.last_seen));
        (entry.session.clone(), entry.view.clone())
    }

    /// Records `id` as used (a sign-in `state`) until `expires_at`; `false`
    /// when it was used already, here or, with a shared store, anywhere.
    pub async fn claim_once(&self, id: &[u8; 32], expires_at: i64) -> Result<bool, StoreError> {
        self.store
            .claim_once(id, self.clock.now(), expires_at)
            .await
    }

    /// Deletes a session (logout), everywhere the store is shared.
    pub async fn remove(&self, cookie: &str) {
        if well_formed(cookie) {
            self.remove_key(cookie, self.key_of(cookie)).await;
        }
    }

    async fn remove_key(&self, cookie: &str, key: RecordKey) {
        self.cache.remove(cookie);
        if let Ok(mut touched) = self.touched.lock() {
            touched.remove(&key);
        }
        if let Err(e) = self.store.delete(&key).await {
            tracing::warn!(error = %e, "could not delete a session from the store");
        }
    }

    /// Removes expired sessions from memory and from the store; returns how
    /// many.
    pub async fn purge_expired(&self) -> usize {
        let t = self.clock.now();
        let idle = self.idle;
        // A walk over every cached session (tens of milliseconds at 100,000):
        // on the bookkeeping thread, so no request waits behind it.
        let cache = self.cache.clone();
        let n = bookkeeping::run(move || cache.retain(|e| !e.ended(t, idle)))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the sweep of the session cache did not finish");
                0
            });
        // The store's idle clocks lag the live ones by up to the write-back
        // interval.
        let slack = TOUCH_INTERVAL.as_secs() as i64;
        match self.store.purge_expired(t, idle + slack).await {
            Ok(removed) => n.max(removed),
            Err(e) => {
                tracing::warn!(error = %e, "could not purge the session store");
                n
            }
        }
    }

    /// Every live session in the store, opened, oldest sign-in first (for
    /// `aadgate sessions list`; reads the whole store).
    pub async fn list(&self) -> Result<Vec<Listed>, StoreError> {
        let mut found = Vec::new();
        self.store
            .scan(&mut |key, record| found.push((key, record)))
            .await?;
        let t = self.clock.now();
        let mut out: Vec<Listed> = found
            .into_iter()
            .filter_map(|(key, record)| {
                let session = self.unseal(&key, &record)?;
                // The store's idle clocks lag by up to the write-back interval.
                let idle = self.idle + TOUCH_INTERVAL.as_secs() as i64;
                (!store::ended(t, session.expires_at, session.last_seen, idle)).then(|| Listed {
                    id: Listed::id_of(&key),
                    key,
                    session,
                })
            })
            .collect();
        out.sort_by_key(|l| l.session.created_at);
        Ok(out)
    }

    /// Ends every session `which` names, in the store and (through the
    /// store) in every process's memory; returns how many.
    pub async fn revoke(&self, which: &Which) -> Result<usize, StoreError> {
        let listed = self.list().await?;
        let mut n = 0;
        for l in listed.iter().filter(|l| which.matches(l)) {
            self.cache.remove_record(&l.key);
            self.store.delete(&l.key).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Ends the sessions signed in under the provider's session `sid` (and
    /// issuer `iss`, when the provider names it): front-channel logout.
    /// Returns how many.
    pub async fn end_provider_session(
        &self,
        sid: &str,
        iss: Option<&str>,
    ) -> Result<usize, StoreError> {
        let which = Which::ProviderSession {
            sid: sid.to_owned(),
            iss: iss.map(str::to_owned),
        };
        let Some(keys) = self.store.indexed(&provider_session(sid)).await? else {
            return self.revoke(&which).await;
        };
        let mut n = 0;
        for key in keys {
            let Some(session) = self.load(&key).await? else {
                continue;
            };
            let listed = Listed {
                id: Listed::id_of(&key),
                key,
                session,
            };
            if which.matches(&listed) {
                self.cache.remove_record(&key);
                self.store.delete(&key).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Whether the store can be used now (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Write operations made on the store so far (for tests and metrics).
    pub fn disk_writes(&self) -> u64 {
        self.store.writes()
    }

    /// Number of sessions cached in memory.
    pub fn cached_len(&self) -> usize {
        self.cache.len()
    }

    /// Bytes the memory cache counts its sessions as (at most its budget).
    pub fn cached_bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// Number of sessions in memory that have not ended (by idle time or
    /// lifetime) yet: those signed in or used in this process, up to the
    /// cache's bound (`aadgate_active_sessions`). Reads the whole cache
    /// (about 50 ms at 100,000 sessions): on the bookkeeping thread, so a
    /// Prometheus scrape holds up no request (`bench/run --trace`: on the
    /// worker, every request in flight waited for it).
    pub async fn live_in_memory(&self) -> usize {
        let (t, idle, cache) = (self.clock.now(), self.idle, self.cache.clone());
        bookkeeping::run(move || cache.count(|e| !e.ended(t, idle)))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "the count of live sessions did not finish");
                0
            })
    }
}

/// A session as `aadgate sessions list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// A short id for `aadgate sessions revoke --session` (the first 16 hex
    /// digits of its record key: no use as a cookie).
    pub id: String,
    key: RecordKey,
    /// The session (with its tokens; do not print them).
    pub session: Session,
}

impl Listed {
    fn id_of(key: &RecordKey) -> String {
        key[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Which sessions to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// A user's, by object id (`oid`), `sub`, UPN (`preferred_username`) or
    /// email, compared without case.
    User(String),
    /// One session, by the id `aadgate sessions list` shows.
    Session(String),
    /// Every session.
    All,
    /// The sessions of one provider session (front-channel logout): the ID
    /// token's `sid`, and its issuer when the provider names it.
    ProviderSession {
        /// The `sid` claim.
        sid: String,
        /// The issuer, when given.
        iss: Option<String>,
    },
}

impl Which {
    fn matches(&self, l: &Listed) -> bool {
        let id = &l.session.identity;
        match self {
            Which::All => true,
            Which::Session(s) => l.id.eq_ignore_ascii_case(s),
            Which::ProviderSession { sid, iss } => {
                id.sid.as_deref() == Some(sid.as_str())
                    && iss.as_deref().is_none_or(|i| i == id.issuer)
            }
            Which::User(u) => [
                Some(id.sub.as_str()),
                id.oid.as_deref(),
                id.preferred_username.as_deref(),
                id.email.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|v| v.eq_ignore_ascii_case(u)),
        }
    }
}

/// The index name of a provider session: a hash of its `sid`, so the store
/// holds no provider id in the clear.
fn provider_session(sid: &str) -> [u8; 32] {
    crypto::sha256(format!("sid\n{sid}").as_bytes())
}

/// The pause between the chunks of a background write-back of `chunks`
/// chunks: they are spread over half of [`FLUSH_INTERVAL`] (at least
/// [`WRITE_BACK_PAUSE`] apart), so a large batch (50,000 sessions falling
/// due together) costs the proxy's core a chunk at a time rather than in
/// a burst that the requests of those moments wait behind.
fn write_back_pause(chunks: usize) -> Duration {
    let chunks = u32::try_from(chunks.max(1)).unwrap_or(u32::MAX);
    (FLUSH_INTERVAL / 2 / chunks).max(WRITE_BACK_PAUSE)
}

/// Writes a batch of noted idle clocks to the store, `pause(chunks)` apart.
async fn flush(
    store: &dyn Store,
    touched: &Mutex<HashMap<RecordKey, i64>>,
    pause: fn(usize) -> Duration,
) {
    let mut batch: Vec<(RecordKey, i64)> = match touched.lock() {
        Ok(mut t) if !t.is_empty() => t.drain().collect(),
        _ => return,
    };
    // In key order, each chunk's clocks are neighbours in the store (a few
    // B-tree pages per chunk rewritten, not one page per clock).
    batch.sort_unstable_by_key(|&(key, _)| key);
    let pause = pause(batch.len().div_ceil(WRITE_BACK_CHUNK));
    let mut chunks = batch.chunks(WRITE_BACK_CHUNK).peekable();
    while let Some(chunk) = chunks.next() {
        if let Err(e) = store.touch(chunk.to_vec()).await {
            tracing::warn!(sessions = chunk.len(), error = %e, "could not write session idle clocks back");
        }
        if chunks.peek().is_some() {
            tokio::time::sleep(pause).await;
        }
    }
    if let Err(e) = store.settle().await {
        tracing::warn!(error = %e, "could not make session idle clocks durable");
    }
}

#[cfg(test)]
mod tests;
