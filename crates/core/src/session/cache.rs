//! The memory cache in front of the store: live sessions by cookie value,
//! with what the layer above derived from each, bounded by a memory budget,
//! the least recently used evicted first.
//!
//! moka does the bounding and the eviction (a concurrent hash table whose
//! reads take no lock, with an LRU queue maintained in batches). Each
//! entry weighs what it holds ([`Entry::weight`]), so the budget is in
//! bytes whatever sessions hold (a user in 200 groups weighs more).

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use super::{RecordKey, Session};

/// The cache's key: the cookie value itself (exactly 43 bytes, checked
/// before any lookup), hashed with a per-process random SipHash key (clients
/// cannot aim at buckets) and compared in constant time. A lookup costs a
/// few hundred instructions; the HMAC that keys the store costs ~5,800, so
/// it is computed only when a session goes to or comes from the store.
#[derive(Clone, Eq)]
pub(super) struct CookieKey([u8; 43]);

impl CookieKey {
    pub(super) fn of(cookie: &str) -> Option<Self> {
        cookie.as_bytes().try_into().ok().map(Self)
    }
}

impl std::hash::Hash for CookieKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal keys have equal bytes, whatever `eq` takes to find out.
        self.0.hash(state);
    }
}

impl PartialEq for CookieKey {
    fn eq(&self, other: &Self) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

/// One cached session.
pub(super) struct Entry<V> {
    /// The session's key in the store (HMAC of the cookie value).
    pub(super) key: RecordKey,
    /// What the cache keeps of the session (see `SessionStore::slim`).
    pub(super) session: Arc<Session>,
    /// What the layer above derived from it when it entered the cache.
    pub(super) view: Arc<V>,
    /// Last use, unix seconds: the live idle clock.
    pub(super) last_seen: AtomicI64,
    /// The idle clock as last noted for writing back.
    pub(super) persisted_seen: AtomicI64,
    /// Bytes this entry is counted as (see [`Entry::weight`]).
    pub(super) weight: u32,
}

impl<V> Entry<V> {
    /// Whether the cached session has ended at `now`, by its lifetime or by
    /// `idle` seconds since its last use ([`super::store::ended`]).
    pub(super) fn ended(&self, now: i64, idle: i64) -> bool {
        super::store::ended(
            now,
            self.session.expires_at,
            self.last_seen.load(std::sync::atomic::Ordering::Relaxed),
            idle,
        )
    }
}

/// What the layer above keeps with each cached session
/// ([`super::SessionStore::with_view`]), and the bytes it holds, which count
/// against the cache's budget.
pub trait CachedView: Send + Sync + 'static {
    /// Bytes held on the heap besides the value itself, with the allocator's
    /// share of each allocation (16 bytes is a fair estimate).
    fn heap_bytes(&self) -> usize;
}

impl CachedView for () {
    fn heap_bytes(&self) -> usize {
        0
    }
}

/// Bytes an entry takes besides its session's text and its view's heap:
/// moka's bookkeeping (the key in an `Arc`, its hash-table slot, the entry
/// info and the LRU queue node), the entry, the session and the view
/// behind their `Arc`s. Measured with a counting allocator, not derived.
const FIXED_BYTES: usize = 600;
/// The allocator's share of each allocation.
const PER_ALLOCATION: usize = 16;

impl<V: CachedView> Entry<V> {
    /// Estimated bytes of a cached `session` with its `view`.
    pub(super) fn weight(session: &Session, view: &V) -> u32 {
        let id = &session.identity;
        let text = |s: &str| {
            if s.is_empty() {
                0
            } else {
                s.len() + PER_ALLOCATION
            }
        };
        let strings: usize = [
            &id.issuer,
            &id.sub,
            id.oid.as_deref().unwrap_or_default(),
            id.tid.as_deref().unwrap_or_default(),
            id.name.as_deref().unwrap_or_default(),
            id.preferred_username.as_deref().unwrap_or_default(),
            id.email.as_deref().unwrap_or_default(),
            id.sid.as_deref().unwrap_or_default(),
            id.login_hint.as_deref().unwrap_or_default(),
            session.tokens.access_token.as_deref().unwrap_or_default(),
        ]
        .iter()
        .map(|s| text(s))
        .sum();
        let lists: usize = [&id.roles, &id.groups]
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.capacity() * std::mem::size_of::<String>()
                    + PER_ALLOCATION
                    + l.iter().map(|s| text(s)).sum::<usize>()
            })
            .sum();
        let fixed = FIXED_BYTES + std::mem::size_of::<Session>() + std::mem::size_of::<V>();
        u32::try_from(fixed + strings + lists + view.heap_bytes()).unwrap_or(u32::MAX)
    }
}

/// Live sessions by cookie value, within a memory budget.
pub(super) struct Cache<V> {
    map: moka::sync::Cache<CookieKey, Arc<Entry<V>>>,
    /// The budget, in bytes.
    pub(super) budget: u64,
}

impl<V: CachedView> Cache<V> {
    pub(super) fn new(budget: u64) -> Self {
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(budget)
                .weigher(|_, e: &Arc<Entry<V>>| e.weight)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .build(),
            budget,
        }
    }

    pub(super) fn get(&self, cookie: &str) -> Option<Arc<Entry<V>>> {
        self.map.get(&CookieKey::of(cookie)?)
    }

    /// Caches `entry` under `cookie` and returns it; the sessions used
    /// least recently leave when the budget is exceeded (read from the
    /// store again on use).
    pub(super) fn insert(&self, cookie: &str, entry: Entry<V>) -> Arc<Entry<V>> {
        let entry = Arc::new(entry);
        if let Some(k) = CookieKey::of(cookie) {
            self.map.insert(k, entry.clone());
        }
        entry
    }

    pub(super) fn remove(&self, cookie: &str) {
        if let Some(k) = CookieKey::of(cookie) {
            self.map.invalidate(&k);
        }
    }

    /// Drops the sessions `alive` refuses; returns how many.
    pub(super) fn retain(&self, alive: impl Fn(&Entry<V>) -> bool) -> usize {
        let dead: Vec<Arc<CookieKey>> = self
            .map
            .iter()
            .filter(|(_, e)| !alive(e))
            .map(|(k, _)| k)
            .collect();
        for k in &dead {
            self.map.invalidate(&**k);
        }
        dead.len()
    }

    /// Drops the session stored under `key` (revoked by another process).
    /// Revocations are rare: a scan, rather than a second index per entry.
    pub(super) fn remove_record(&self, key: &RecordKey) {
        self.retain(|e| &e.key != key);
    }

    /// Drops every session (they are read from the store again on use).
    pub(super) fn clear(&self) {
        self.map.invalidate_all();
    }

    /// How many sessions `alive` accepts (a read of the whole cache: for
    /// metrics, not per request).
    pub(super) fn count(&self, alive: impl Fn(&Entry<V>) -> bool) -> usize {
        self.map.iter().filter(|(_, e)| alive(e)).count()
    }

    /// How many sessions are cached, once pending evictions are done (not
    /// per request).
    pub(super) fn len(&self) -> usize {
        self.map.run_pending_tasks();
        usize::try_from(self.map.entry_count()).unwrap_or(usize::MAX)
    }

    /// Bytes the cached sessions are counted as, once pending evictions are
    /// done (not per request).
    pub(super) fn weight(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.weighted_size()
    }

    #[cfg(test)]
    pub(super) fn contains(&self, cookie: &str) -> bool {
        CookieKey::of(cookie).is_some_and(|k| self.map.contains_key(&k))
    }
}
