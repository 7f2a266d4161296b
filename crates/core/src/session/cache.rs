//! The memory cache in front of the store: live sessions by cookie value,
//! with what the layer above derived from each, evicted least recently used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use super::{RecordKey, Session};

/// The cache's key: the cookie value itself, hashed with std's per-process
/// random SipHash key (clients cannot aim at buckets) and compared in
/// constant time. A lookup costs ~150 instructions; the HMAC that keys the
/// store costs ~5,800, so it is computed only when a session goes to or
/// comes from the store.
#[derive(Clone, Eq)]
pub(super) struct CookieKey(Box<str>);

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
}

/// Live sessions by cookie value, at most `cap` of them.
pub(super) struct Cache<V> {
    map: RwLock<HashMap<CookieKey, Arc<Entry<V>>>>,
    pub(super) cap: usize,
}

impl<V> Cache<V> {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            cap,
        }
    }

    pub(super) fn get(&self, cookie: &str) -> Option<Arc<Entry<V>>> {
        self.map
            .read()
            .expect("session cache lock")
            .get(&CookieKey::from(cookie))
            .cloned()
    }

    /// Caches `entry` under `cookie` and returns it. A full cache first
    /// drops the tenth used least recently (reloaded from the store on use);
    /// done a tenth at a time, the cost per insert stays small.
    pub(super) fn insert(&self, cookie: &str, entry: Entry<V>) -> Arc<Entry<V>> {
        let entry = Arc::new(entry);
        let mut map = self.map.write().expect("session cache lock");
        let cap = self.cap;
        if map.len() >= cap {
            let n = cap.div_ceil(10).min(map.len());
            let mut by_use: Vec<(i64, &CookieKey)> = map
                .iter()
                .map(|(k, e)| (e.last_seen.load(Ordering::Relaxed), k))
                .collect();
            if n > 0 {
                by_use.select_nth_unstable_by_key(n - 1, |(seen, _)| *seen);
            }
            let victims: Vec<CookieKey> = by_use[..n].iter().map(|(_, k)| (*k).clone()).collect();
            for v in victims {
                map.remove(&v);
            }
        }
        map.insert(CookieKey::from(cookie), entry.clone());
        entry
    }

    pub(super) fn remove(&self, cookie: &str) {
        self.map
            .write()
            .expect("session cache lock")
            .remove(&CookieKey::from(cookie));
    }

    /// Drops the sessions `alive` refuses; returns how many.
    pub(super) fn retain(&self, alive: impl Fn(&Entry<V>) -> bool) -> usize {
        let mut n = 0;
        self.map
            .write()
            .expect("session cache lock")
            .retain(|_, e| {
                let keep = alive(e);
                n += usize::from(!keep);
                keep
            });
        n
    }

    /// Drops the session stored under `key` (revoked by another process).
    /// Revocations are rare: a scan, rather than a second index per entry.
    pub(super) fn remove_record(&self, key: &RecordKey) {
        self.map
            .write()
            .expect("session cache lock")
            .retain(|_, e| &e.key != key);
    }

    /// Drops every session (they are read from the store again on use).
    pub(super) fn clear(&self) {
        self.map.write().expect("session cache lock").clear();
    }

    /// How many sessions `alive` accepts (a read of the whole cache: for
    /// metrics, not per request).
    pub(super) fn count(&self, alive: impl Fn(&Entry<V>) -> bool) -> usize {
        self.map
            .read()
            .expect("session cache lock")
            .values()
            .filter(|e| alive(e))
            .count()
    }

    pub(super) fn len(&self) -> usize {
        self.map.read().expect("session cache lock").len()
    }

    #[cfg(test)]
    pub(super) fn contains(&self, cookie: &str) -> bool {
        self.get(cookie).is_some()
    }
}
