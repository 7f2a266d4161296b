//! A [`Store`] with every operation counted and timed into [`Metrics`]
//! (`aadgate_session_store_operation_duration_seconds{op, result}`),
//! whichever store is behind it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::store::{Record, RecordKey, Revoked, Store, StoreFuture};
use crate::metrics::{Metrics, StoreOp};

/// `inner`, timed.
pub(super) struct Timed {
    pub(super) inner: Arc<dyn Store>,
    pub(super) metrics: Arc<Metrics>,
}

impl Timed {
    fn timed<'a, T: Send + 'a>(
        &'a self,
        op: StoreOp,
        work: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let started = Instant::now();
            let done = work.await;
            self.metrics
                .store_operation(op, done.is_ok(), started.elapsed());
            done
        })
    }
}

impl Store for Timed {
    fn put<'a>(&'a self, key: &'a RecordKey, record: &'a Record) -> StoreFuture<'a, ()> {
        self.timed(StoreOp::Put, self.inner.put(key, record))
    }

    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        self.timed(StoreOp::Get, self.inner.get(key))
    }

    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()> {
        self.timed(StoreOp::Delete, self.inner.delete(key))
    }

    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()> {
        self.timed(StoreOp::Touch, self.inner.touch(seen))
    }

    fn settle(&self) -> StoreFuture<'_, ()> {
        self.timed(StoreOp::Settle, self.inner.settle())
    }

    fn purge_expired(&self, now: i64, idle: i64) -> StoreFuture<'_, usize> {
        self.timed(StoreOp::Purge, self.inner.purge_expired(now, idle))
    }

    fn claim_once<'a>(
        &'a self,
        id: &'a [u8; 32],
        now: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, bool> {
        self.timed(
            StoreOp::ClaimOnce,
            self.inner.claim_once(id, now, expires_at),
        )
    }

    fn lock<'a>(&'a self, key: &'a RecordKey, ttl: Duration) -> StoreFuture<'a, Option<u128>> {
        self.timed(StoreOp::Lock, self.inner.lock(key, ttl))
    }

    fn unlock<'a>(&'a self, key: &'a RecordKey, token: u128) -> StoreFuture<'a, ()> {
        self.timed(StoreOp::Unlock, self.inner.unlock(key, token))
    }

    fn index<'a>(
        &'a self,
        name: &'a [u8; 32],
        key: &'a RecordKey,
        until: i64,
    ) -> StoreFuture<'a, ()> {
        self.timed(StoreOp::Index, self.inner.index(name, key, until))
    }

    fn indexed<'a>(&'a self, name: &'a [u8; 32]) -> StoreFuture<'a, Option<Vec<RecordKey>>> {
        self.timed(StoreOp::Indexed, self.inner.indexed(name))
    }

    fn scan<'a>(
        &'a self,
        visit: &'a mut (dyn FnMut(RecordKey, Record) + Send),
    ) -> StoreFuture<'a, ()> {
        self.timed(StoreOp::Scan, self.inner.scan(visit))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.timed(StoreOp::Ping, self.inner.ping())
    }

    fn writes(&self) -> u64 {
        self.inner.writes()
    }

    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revoked>> {
        self.inner.revocations()
    }
}
