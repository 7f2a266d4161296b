//! Where sessions live between requests and between processes: the
//! [`Store`] trait, and the in-process [`MemoryStore`].
//!
//! A store holds sealed records only (the [`super::SessionStore`] in front
//! seals and opens them), with two plain numbers beside each: when it ends
//! and when it was last used, so a store can expire and purge records, and
//! write back idle clocks, without the secret. A store shared by several
//! processes (Redis) also makes single-use values single-use everywhere and
//! tells every process when a session is revoked.
//!
//! Implement [`Store`] to keep sessions somewhere else; pass it to
//! [`super::SessionStore::with_store`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use super::StoreError;

/// A session's key in the store: an HMAC of its cookie value, so a copy of
/// the store yields no usable cookie.
pub type RecordKey = [u8; 32];

/// A stored session.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// When the session ends whatever happens, unix seconds.
    pub expires_at: i64,
    /// When it was last used, unix seconds (the idle clock).
    pub last_seen: i64,
    /// The session, sealed (AES-256-GCM under a key derived from
    /// `session.secret`, bound to the record key).
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("expires_at", &self.expires_at)
            .field("last_seen", &self.last_seen)
            .field("sealed_bytes", &self.sealed.len())
            .finish()
    }
}

/// What another process told this one: drop these sessions from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// One session.
    Session(RecordKey),
    /// Every session (also sent after a lost connection to the store, when
    /// revocations may have been missed).
    All,
}

/// Whether a session has ended at `now`: past its end (`expires_at`), or
/// unused for longer than `idle` seconds since `last_seen`. The one rule
/// for the cache, the stores and their sweeps.
pub(crate) fn ended(now: i64, expires_at: i64, last_seen: i64, idle: i64) -> bool {
    now >= expires_at || now - last_seen > idle
}

/// A boxed future, as a trait object's methods return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where sealed sessions are kept. Every method may be called from any
/// thread; failures are [`StoreError`]s, which the layer above answers with
/// a 503 page (never a sign-in loop).
pub trait Store: Send + Sync + 'static {
    /// Writes a record, replacing any under the same key.
    fn put<'a>(&'a self, key: &'a RecordKey, record: &'a Record) -> StoreFuture<'a, ()>;

    /// Reads a record; `None` when there is none (or it has expired).
    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>>;

    /// Deletes a record, and tells the other processes sharing the store.
    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()>;

    /// Writes back later idle clocks (`last_seen`) of existing records, in
    /// one batch (sorted by key); records deleted meanwhile stay deleted,
    /// and no clock goes backwards. A store may commit a batch lazily, as
    /// long as [`Store::settle`] makes it durable.
    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()>;

    /// Makes the idle clocks written so far durable: called once after each
    /// write-back's last batch, so a crash loses at most one write-back
    /// interval of bookkeeping. Sessions and sign-outs never wait for it
    /// ([`Store::put`] and [`Store::delete`] are durable when they return).
    fn settle(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Deletes the records that ended before `now` or were idle for longer
    /// than `idle` seconds; returns how many.
    fn purge_expired(&self, now: i64, idle: i64) -> StoreFuture<'_, usize>;

    /// Records `id` as used until `expires_at`; `false` when it was used
    /// already, by this process or, for a shared store, by any other.
    fn claim_once<'a>(
        &'a self,
        id: &'a [u8; 32],
        now: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, bool>;

    /// Takes the lock named `key` for at most `ttl`: `Some(token)` when
    /// taken, `None` while another process holds it. A store only one
    /// process uses has nothing to lock against (the layer above serializes
    /// its own requests) and always grants it.
    fn lock<'a>(&'a self, key: &'a RecordKey, ttl: Duration) -> StoreFuture<'a, Option<u128>> {
        let _ = (key, ttl);
        Box::pin(std::future::ready(Ok(Some(0))))
    }

    /// Releases a lock taken with `token` (and only that one: after `ttl`
    /// another process may hold it).
    fn unlock<'a>(&'a self, key: &'a RecordKey, token: u128) -> StoreFuture<'a, ()> {
        let _ = (key, token);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Notes that the record `key` belongs to the group `name` (the sessions
    /// of one provider session, for front-channel logout) until `until`.
    /// A store without an index does nothing: [`Store::indexed`] then says
    /// to scan.
    fn index<'a>(
        &'a self,
        name: &'a [u8; 32],
        key: &'a RecordKey,
        until: i64,
    ) -> StoreFuture<'a, ()> {
        let _ = (name, key, until);
        Box::pin(std::future::ready(Ok(())))
    }

    /// The records noted under `name`, or `None` when this store keeps no
    /// index (the caller scans instead).
    fn indexed<'a>(&'a self, name: &'a [u8; 32]) -> StoreFuture<'a, Option<Vec<RecordKey>>> {
        let _ = name;
        Box::pin(std::future::ready(Ok(None)))
    }

    /// Calls `visit` with every record (for `aadgate sessions`, never on a
    /// request path).
    fn scan<'a>(
        &'a self,
        visit: &'a mut (dyn FnMut(RecordKey, Record) + Send),
    ) -> StoreFuture<'a, ()>;

    /// Whether the store can be used now (`/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Write operations made so far (for tests and metrics).
    fn writes(&self) -> u64 {
        0
    }

    /// Revocations made by other processes, for a store that several share:
    /// called once; the sessions named must leave this process's memory.
    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revoked>> {
        None
    }
}

/// Single-use values remembered in this process, bounded: when full, the
/// oldest is forgotten first, so a flood of (bogus) values can only shorten
/// how long one is remembered, never refuse anyone's sign-in. Replaying a
/// forgotten sign-in `state` would also take its sealed pending-login
/// cookie, which the callback that used it cleared, and an authorization
/// code, which the provider redeems only once.
#[derive(Debug, Default)]
pub(super) struct OnceSet {
    set: HashSet<[u8; 32]>,
    order: VecDeque<(i64, [u8; 32])>,
}

/// [`Store::claim_once`] for a store one process uses: its [`OnceSet`].
pub(super) fn claim_in_process(
    once: &Mutex<OnceSet>,
    id: &[u8; 32],
    now: i64,
    expires_at: i64,
) -> StoreFuture<'static, bool> {
    let fresh = once
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .claim(*id, now, expires_at);
    Box::pin(std::future::ready(Ok(fresh)))
}

impl OnceSet {
    /// Most values remembered.
    const CAP: usize = 200_000;

    pub(super) fn claim(&mut self, id: [u8; 32], now: i64, expires_at: i64) -> bool {
        self.claim_capped(id, now, expires_at, Self::CAP)
    }

    fn claim_capped(&mut self, id: [u8; 32], now: i64, expires_at: i64, cap: usize) -> bool {
        while let Some((exp, h)) = self.order.front().copied() {
            if exp > now && self.set.len() < cap {
                break;
            }
            self.order.pop_front();
            self.set.remove(&h);
        }
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back((expires_at, id));
        true
    }
}

/// `session.store = "memory"`: records in this process only, lost on
/// restart. For one process and for tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<RecordKey, Record>>,
    once: Mutex<OnceSet>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<RecordKey, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn put<'a>(&'a self, key: &'a RecordKey, record: &'a Record) -> StoreFuture<'a, ()> {
        self.records().insert(*key, record.clone());
        Box::pin(std::future::ready(Ok(())))
    }

    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        let found = self.records().get(key).cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()> {
        self.records().remove(key);
        Box::pin(std::future::ready(Ok(())))
    }

    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()> {
        let mut records = self.records();
        for (key, t) in seen {
            if let Some(r) = records.get_mut(&key) {
                r.last_seen = r.last_seen.max(t);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn purge_expired(&self, now: i64, idle: i64) -> StoreFuture<'_, usize> {
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, r| !ended(now, r.expires_at, r.last_seen, idle));
        Box::pin(std::future::ready(Ok(before - records.len())))
    }

    fn claim_once<'a>(
        &'a self,
        id: &'a [u8; 32],
        now: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, bool> {
        claim_in_process(&self.once, id, now, expires_at)
    }

    fn scan<'a>(
        &'a self,
        visit: &'a mut (dyn FnMut(RecordKey, Record) + Send),
    ) -> StoreFuture<'a, ()> {
        let all: Vec<(RecordKey, Record)> = self
            .records()
            .iter()
            .map(|(k, r)| (*k, r.clone()))
            .collect();
        for (k, r) in all {
            visit(k, r);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::OnceSet;

    #[test]
    fn single_use_values_evict_the_oldest_when_full_and_still_refuse_a_replay() {
        let mut u = OnceSet::default();
        for i in 0..10u8 {
            assert!(u.claim_capped([i; 32], 0, 600, 4));
        }
        assert_eq!(u.set.len(), 4, "bounded");
        assert!(
            !u.claim_capped([9; 32], 1, 600, 4),
            "a recent value is still single-use"
        );
        assert!(
            u.claim_capped([0; 32], 1, 600, 4),
            "the oldest was forgotten, not the newest"
        );
        // Expired ones go first.
        assert!(u.claim_capped([42; 32], 601, 1200, 4));
        assert_eq!(u.set.len(), 1);
    }
}
