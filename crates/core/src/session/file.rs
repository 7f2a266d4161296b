//! `session.store = "file:<directory>"`: an embedded database (redb) in one
//! file, surviving restarts; one process at a time (the file is locked).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::StoreError;
use super::store::{OnceSet, Record, RecordKey, Store, StoreFuture, claim_in_process, ended};

/// Sealed sessions by record key. A session's two clocks live in
/// [`TIMES`], so that writing back an idle clock or sweeping for expired
/// sessions never reads (or rewrites) a sealed session.
const SEALED: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v3");
/// `(expires_at, last_seen)` of each session in [`SEALED`], unix seconds:
/// about 50 bytes a session, so the sweep reads a few megabytes for
/// 100,000 sessions instead of the sessions themselves.
const TIMES: TableDefinition<'_, &[u8], (i64, i64)> = TableDefinition::new("session_times_v1");
/// Before the clocks had their own table: 8 bytes `expires_at`, 8 bytes
/// `last_seen` (big-endian), then the sealed session; with later idle
/// clocks in [`V2_CLOCKS`]. Moved into [`SEALED`] and [`TIMES`] when the
/// store is opened.
const V2: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v2");
const V2_CLOCKS: TableDefinition<'_, &[u8], i64> = TableDefinition::new("idle_clocks_v1");
/// Before that: the sealed session alone. Moved the same way.
const V1: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v1");

/// The `file:` store.
pub struct FileStore {
    db: Arc<Database>,
    writes: AtomicU64,
    once: Mutex<OnceSet>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("writes", &self.writes)
            .finish_non_exhaustive()
    }
}

/// A version-2 record's clocks and sealed session.
fn decode_v2(bytes: &[u8]) -> Option<(i64, i64, &[u8])> {
    let (expires, rest) = bytes.split_first_chunk::<8>()?;
    let (seen, sealed) = rest.split_first_chunk::<8>()?;
    Some((
        i64::from_be_bytes(*expires),
        i64::from_be_bytes(*seen),
        sealed,
    ))
}

/// Runs `work` on the blocking pool (redb's calls block on the disk).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(StoreError::from_any)?
        .map_err(StoreError::from_any)
}

/// Runs `work` on the bookkeeping thread: the write-back, its flush and
/// the sweep, which no request waits for.
async fn bookkeeping<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, redb::Error> + Send + 'static,
) -> Result<T, StoreError> {
    super::bookkeeping::run(work)
        .await
        .map_err(StoreError::from_any)?
        .map_err(StoreError::from_any)
}

impl FileStore {
    /// Opens (creating it, mode 0700) the database in `dir`. Sessions of
    /// the earlier layouts are moved to the current one when it opens.
    pub fn open(dir: &Path, now: i64) -> Result<Self, StoreError> {
        let db = open_db(dir)?;
        migrate(&db, now).map_err(StoreError::from_any)?;
        Ok(Self {
            db: Arc::new(db),
            writes: AtomicU64::new(0),
            once: Mutex::new(OnceSet::default()),
        })
    }
}

impl Store for FileStore {
    fn put<'a>(&'a self, key: &'a RecordKey, record: &'a Record) -> StoreFuture<'a, ()> {
        let (db, key, record) = (self.db.clone(), *key, record.clone());
        self.writes.fetch_add(1, Ordering::Relaxed);
        Box::pin(blocking(move || {
            let tx = db.begin_write()?;
            tx.open_table(SEALED)?
                .insert(key.as_slice(), record.sealed.as_slice())?;
            tx.open_table(TIMES)?
                .insert(key.as_slice(), (record.expires_at, record.last_seen))?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        let (db, key) = (self.db.clone(), *key);
        Box::pin(blocking(move || {
            let tx = db.begin_read()?;
            let Some((expires_at, last_seen)) = tx
                .open_table(TIMES)?
                .get(key.as_slice())?
                .map(|v| v.value())
            else {
                return Ok(None);
            };
            let sealed = tx.open_table(SEALED)?.get(key.as_slice())?;
            Ok(sealed.map(|v| Record {
                expires_at,
                last_seen,
                sealed: v.value().to_vec(),
            }))
        }))
    }

    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()> {
        let (db, key) = (self.db.clone(), *key);
        self.writes.fetch_add(1, Ordering::Relaxed);
        Box::pin(blocking(move || {
            let tx = db.begin_write()?;
            tx.open_table(SEALED)?.remove(key.as_slice())?;
            tx.open_table(TIMES)?.remove(key.as_slice())?;
            tx.commit()?;
            Ok(())
        }))
    }

    /// One transaction for the batch, in `TIMES` only (no sealed session
    /// is read or rewritten; a deleted session has no times to update). The
    /// batch comes sorted, so its clocks share a few B-tree pages, and it
    /// is committed without a flush to disk: [`FileStore::settle`] makes
    /// the write-back durable at once.
    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()> {
        let db = self.db.clone();
        self.writes.fetch_add(1, Ordering::Relaxed);
        Box::pin(bookkeeping(move || {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::None)?;
            {
                let mut times = tx.open_table(TIMES)?;
                for (key, t) in seen {
                    let stored = times.get(key.as_slice())?.map(|v| v.value());
                    // Only a stored session's clock, and never backwards.
                    if let Some((expires_at, last_seen)) = stored
                        && last_seen < t
                    {
                        times.insert(key.as_slice(), (expires_at, t))?;
                    }
                }
            }
            tx.commit()?;
            Ok(())
        }))
    }

    /// An empty durable commit: it persists the write-back's lazy commits
    /// (and costs one flush to disk per write-back, not one per batch).
    fn settle(&self) -> StoreFuture<'_, ()> {
        let db = self.db.clone();
        Box::pin(bookkeeping(move || {
            db.begin_write()?.commit()?;
            Ok(())
        }))
    }

    /// Reads `TIMES` only (a read transaction, which no write waits
    /// for), then deletes what ended in one short write transaction.
    fn purge_expired(&self, now: i64, idle: i64) -> StoreFuture<'_, usize> {
        let db = self.db.clone();
        Box::pin(bookkeeping(move || {
            let dead: Vec<RecordKey> = {
                let tx = db.begin_read()?;
                let mut dead = Vec::new();
                for item in tx.open_table(TIMES)?.iter()? {
                    let (k, v) = item?;
                    let (expires_at, last_seen) = v.value();
                    if ended(now, expires_at, last_seen, idle)
                        && let Ok(key) = RecordKey::try_from(k.value())
                    {
                        dead.push(key);
                    }
                }
                dead
            };
            if dead.is_empty() {
                return Ok(0);
            }
            let tx = db.begin_write()?;
            let mut removed = 0;
            {
                let (mut sealed, mut times) = (tx.open_table(SEALED)?, tx.open_table(TIMES)?);
                for key in &dead {
                    // Used again since the read: not dead after all.
                    let still = times.get(key.as_slice())?.is_some_and(|v| {
                        let (expires_at, last_seen) = v.value();
                        ended(now, expires_at, last_seen, idle)
                    });
                    if still {
                        sealed.remove(key.as_slice())?;
                        times.remove(key.as_slice())?;
                        removed += 1;
                    }
                }
            }
            tx.commit()?;
            Ok(removed)
        }))
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
        let db = self.db.clone();
        Box::pin(async move {
            let all = blocking(move || {
                let tx = db.begin_read()?;
                let (sealed, times) = (tx.open_table(SEALED)?, tx.open_table(TIMES)?);
                let mut all = Vec::new();
                for item in times.iter()? {
                    let (k, v) = item?;
                    let (expires_at, last_seen) = v.value();
                    if let (Ok(key), Some(sealed)) =
                        (RecordKey::try_from(k.value()), sealed.get(k.value())?)
                    {
                        let sealed = sealed.value().to_vec();
                        all.push((
                            key,
                            Record {
                                expires_at,
                                last_seen,
                                sealed,
                            },
                        ));
                    }
                }
                Ok(all)
            })
            .await?;
            for (k, r) in all {
                visit(k, r);
            }
            Ok(())
        })
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
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
    Ok(db)
}

/// Creates the tables, and moves sessions of the earlier layouts into
/// them: version 1 counted as used `now` (it had no clocks; its own end and
/// idle clock still apply when it is read), version 2 with the later of
/// its two clocks. One session at a time (an old store may be large).
fn migrate(db: &Database, now: i64) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut sealed = tx.open_table(SEALED)?;
        let mut times = tx.open_table(TIMES)?;
        let (v1, v2, v2_clocks) = (
            tx.open_table(V1)?,
            tx.open_table(V2)?,
            tx.open_table(V2_CLOCKS)?,
        );
        for item in v1.iter()? {
            let (k, v) = item?;
            sealed.insert(k.value(), v.value())?;
            times.insert(k.value(), (i64::MAX, now))?;
        }
        for item in v2.iter()? {
            let (k, v) = item?;
            if let Some((expires_at, last_seen, s)) = decode_v2(v.value()) {
                let noted = v2_clocks.get(k.value())?.map_or(i64::MIN, |c| c.value());
                sealed.insert(k.value(), s)?;
                times.insert(k.value(), (expires_at, last_seen.max(noted)))?;
            }
        }
    }
    tx.delete_table(V1)?;
    tx.delete_table(V2)?;
    tx.delete_table(V2_CLOCKS)?;
    tx.commit()?;
    Ok(())
}
