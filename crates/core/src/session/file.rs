//! Persistence: the embedded `file:` store (a redb database), holding each
//! session sealed under its record key, and the batched write-back of idle
//! clocks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{FLUSH_INTERVAL, RecordKey, Session, StoreError, TOUCH_INTERVAL};
use crate::crypto::Sealer;

const TABLE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sessions_v1");

/// The `file:` store.
pub(super) struct FileStore {
    db: Arc<Database>,
    sealer: Sealer,
    writes: Arc<AtomicU64>,
    /// Idle clocks waiting to be written back (by key), in one batch per
    /// [`FLUSH_INTERVAL`], off the request path.
    touched: Arc<Mutex<HashMap<RecordKey, i64>>>,
    /// Whether the task that writes them back has been started.
    flusher: AtomicBool,
}

impl FileStore {
    /// Opens (creating it, mode 0700) the database in `dir`.
    pub(super) fn open(dir: &Path, sealer: Sealer) -> Result<Self, StoreError> {
        Ok(Self {
            db: Arc::new(open_db(dir)?),
            sealer,
            writes: Arc::new(AtomicU64::new(0)),
            touched: Arc::new(Mutex::new(HashMap::new())),
            flusher: AtomicBool::new(false),
        })
    }

    /// Write transactions made so far.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Seals and writes a session (its creation, a refresh).
    pub(super) async fn put(&self, key: RecordKey, session: &Session) -> Result<(), StoreError> {
        let db = self.db.clone();
        self.writes.fetch_add(1, Ordering::Relaxed);
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

    /// Reads and opens a session; `None` when absent or not sealed with
    /// this secret.
    pub(super) async fn load(&self, key: RecordKey) -> Option<Session> {
        let db = self.db.clone();
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

    /// Deletes a session (sign-out, expiry), before the request is answered.
    pub(super) async fn delete(&self, key: RecordKey) {
        let db = self.db.clone();
        self.writes.fetch_add(1, Ordering::Relaxed);
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

    /// Notes a session's idle clock for the next batch: the request does not
    /// wait for a write.
    pub(super) fn note_seen(&self, key: RecordKey, seen: i64) {
        if let Ok(mut touched) = self.touched.lock() {
            touched.insert(key, seen);
        }
        self.start_flusher();
    }

    /// Starts, once, the task that writes noted idle clocks back every
    /// [`FLUSH_INTERVAL`]; it ends when the store is dropped.
    fn start_flusher(&self) {
        if self.flusher.swap(true, Ordering::Relaxed) {
            return;
        }
        let db = Arc::downgrade(&self.db);
        let (sealer, writes) = (self.sealer.clone(), self.writes.clone());
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

    /// Writes the noted idle clocks back now.
    pub(super) async fn flush(&self) {
        flush_touched(&self.db, &self.sealer, &self.writes, &self.touched).await;
    }

    /// Deletes the sessions past their lifetime or idle for longer than
    /// `idle` (plus the write-back interval) at `now`; returns how many.
    pub(super) async fn purge_expired(&self, now: i64, idle: i64) -> usize {
        let (db, sealer) = (self.db.clone(), self.sealer.clone());
        let r = tokio::task::spawn_blocking(move || -> Result<usize, redb::Error> {
            let tx = db.begin_write()?;
            let mut removed = 0;
            {
                let mut table = tx.open_table(TABLE)?;
                let mut dead: Vec<Vec<u8>> = Vec::new();
                for item in table.iter()? {
                    let (k, v) = item?;
                    let alive = sealer
                        .open(v.value(), k.value())
                        .and_then(|p| serde_json::from_slice::<Session>(&p).ok())
                        .is_some_and(|s| {
                            now < s.expires_at
                                && now - s.last_seen <= idle + TOUCH_INTERVAL.as_secs() as i64
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
            Ok(Ok(removed)) => removed,
            _ => 0,
        }
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
    writes: &AtomicU64,
    touched: &Mutex<HashMap<RecordKey, i64>>,
) {
    let batch: Vec<(RecordKey, i64)> = match touched.lock() {
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
