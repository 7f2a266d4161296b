//! `session.store = "file:<directory>"`: an embedded database (redb) in one
//! file, surviving restarts; one process at a time (the file is locked).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::StoreError;
use super::store::{OnceSet, Record, RecordKey, Store, StoreFuture, claim_in_process};

/// Records: 8 bytes `expires_at`, 8 bytes `last_seen` (big-endian), then the
/// sealed session.
const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v2");
/// Before the header existed: the sealed session alone. Moved into
/// [`TABLE`] when the store is opened.
const LEGACY: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v1");
const HEADER: usize = 16;
/// Idle clocks written back after the record (unix seconds): a few dozen
/// bytes per session rewritten per write-back, not the whole record. A
/// session's last use is the later of this and its record's.
const CLOCKS: TableDefinition<'_, &[u8], i64> = TableDefinition::new("idle_clocks_v1");

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

fn encode(record: &Record) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + record.sealed.len());
    v.extend_from_slice(&record.expires_at.to_be_bytes());
    v.extend_from_slice(&record.last_seen.to_be_bytes());
    v.extend_from_slice(&record.sealed);
    v
}

fn decode(bytes: &[u8]) -> Option<Record> {
    let (expires, rest) = bytes.split_first_chunk::<8>()?;
    let (seen, sealed) = rest.split_first_chunk::<8>()?;
    Some(Record {
        expires_at: i64::from_be_bytes(*expires),
        last_seen: i64::from_be_bytes(*seen),
        sealed: sealed.to_vec(),
    })
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

impl FileStore {
    /// Opens (creating it, mode 0700) the database in `dir`. Records of the
    /// earlier layout are moved to the current one, counted as used `now`
    /// (their own end and idle clock still apply when they are read).
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
        let (db, key, value) = (self.db.clone(), *key, encode(record));
        self.writes.fetch_add(1, Ordering::Relaxed);
        Box::pin(blocking(move || {
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?
                .insert(key.as_slice(), value.as_slice())?;
            // The record carries its own clock now.
            tx.open_table(CLOCKS)?.remove(key.as_slice())?;
            tx.commit()?;
            Ok(())
        }))
    }

    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        let (db, key) = (self.db.clone(), *key);
        Box::pin(blocking(move || {
            let tx = db.begin_read()?;
            let (table, clocks) = (tx.open_table(TABLE)?, tx.open_table(CLOCKS)?);
            let Some(mut record) = table.get(key.as_slice())?.and_then(|v| decode(v.value()))
            else {
                return Ok(None);
            };
            if let Some(seen) = clocks.get(key.as_slice())? {
                record.last_seen = record.last_seen.max(seen.value());
            }
            Ok(Some(record))
        }))
    }

    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()> {
        let (db, key) = (self.db.clone(), *key);
        self.writes.fetch_add(1, Ordering::Relaxed);
        Box::pin(blocking(move || {
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?.remove(key.as_slice())?;
            tx.open_table(CLOCKS)?.remove(key.as_slice())?;
            tx.commit()?;
            Ok(())
        }))
    }

    /// One transaction for the batch, writing only the clocks: no record is
    /// read (a clock whose record was deleted meanwhile is never read, and
    /// [`Store::purge_expired`] removes it). The batch comes sorted, so its
    /// clocks share a few B-tree pages, and it is committed without a flush
    /// to disk: [`FileStore::settle`] makes the write-back durable at once.
    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()> {
        let db = self.db.clone();
        self.writes.fetch_add(1, Ordering::Relaxed);
        Box::pin(blocking(move || {
            let mut tx = db.begin_write()?;
            tx.set_durability(Durability::None)?;
            {
                let mut clocks = tx.open_table(CLOCKS)?;
                for (key, t) in seen {
                    let before = clocks.insert(key.as_slice(), t)?.map(|v| v.value());
                    // Never backwards.
                    if let Some(before) = before.filter(|&b| b > t) {
                        clocks.insert(key.as_slice(), before)?;
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
        Box::pin(blocking(move || {
            db.begin_write()?.commit()?;
            Ok(())
        }))
    }

    fn purge_expired(&self, now: i64, idle: i64) -> StoreFuture<'_, usize> {
        let db = self.db.clone();
        Box::pin(blocking(move || {
            let tx = db.begin_write()?;
            let mut removed = 0;
            {
                let mut table = tx.open_table(TABLE)?;
                let mut clocks = tx.open_table(CLOCKS)?;
                let mut dead: Vec<Vec<u8>> = Vec::new();
                for item in table.iter()? {
                    let (k, v) = item?;
                    let noted = clocks.get(k.value())?.map_or(i64::MIN, |c| c.value());
                    let alive = decode(v.value()).is_some_and(|r| {
                        now < r.expires_at && now - r.last_seen.max(noted) <= idle
                    });
                    if !alive {
                        dead.push(k.value().to_vec());
                    }
                }
                for k in dead {
                    table.remove(k.as_slice())?;
                    clocks.remove(k.as_slice())?;
                    removed += 1;
                }
                // Clocks written back after their record was deleted.
                let mut orphans: Vec<Vec<u8>> = Vec::new();
                for item in clocks.iter()? {
                    let (k, _) = item?;
                    if table.get(k.value())?.is_none() {
                        orphans.push(k.value().to_vec());
                    }
                }
                for k in orphans {
                    clocks.remove(k.as_slice())?;
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
                let (table, clocks) = (tx.open_table(TABLE)?, tx.open_table(CLOCKS)?);
                let mut all = Vec::new();
                for item in table.iter()? {
                    let (k, v) = item?;
                    if let (Ok(key), Some(mut record)) =
                        (RecordKey::try_from(k.value()), decode(v.value()))
                    {
                        if let Some(seen) = clocks.get(k.value())? {
                            record.last_seen = record.last_seen.max(seen.value());
                        }
                        all.push((key, record));
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

#[cfg(test)]
impl FileStore {
    /// How many idle clocks the store holds.
    pub(super) fn clocks(&self) -> u64 {
        use redb::ReadableTableMetadata as _;
        let tx = self.db.begin_read().unwrap();
        tx.open_table(CLOCKS).unwrap().len().unwrap()
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

/// Creates the table, and moves records of the earlier layout into it.
fn migrate(db: &Database, now: i64) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut table = tx.open_table(TABLE)?;
        tx.open_table(CLOCKS)?;
        let mut legacy = tx.open_table(LEGACY)?;
        let mut moved = Vec::new();
        for item in legacy.iter()? {
            let (k, v) = item?;
            moved.push((k.value().to_vec(), v.value().to_vec()));
        }
        for (k, sealed) in moved {
            let record = Record {
                expires_at: i64::MAX,
                last_seen: now,
                sealed,
            };
            table.insert(k.as_slice(), encode(&record).as_slice())?;
            legacy.remove(k.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}
