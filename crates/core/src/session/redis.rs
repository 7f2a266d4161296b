//! `session.store = "redis://…"` (or `rediss://` for TLS): sessions shared
//! by every replica that points at the same Redis (Azure Cache for Redis,
//! Azure Managed Redis, Valkey).
//!
//! Layout, under `session.redis_prefix` (default `aadgate:`):
//! - `{prefix}s:{record key}`: a hash `e` (end, unix seconds), `s` (last
//!   use) and `v` (the sealed session). Redis itself drops it when it ends
//!   or has been idle for `session.idle_timeout_secs` (`PEXPIREAT`, renewed
//!   by the batched idle-clock write-back), so nothing needs purging.
//! - `{prefix}once:{id}`: single-use values (sign-in `state`), `SET NX`
//!   until they expire.
//! - channel `{prefix}revoked`: a deleted session's record key (hex), or
//!   `*`; every replica drops it from its memory cache.
//!
//! The connection is opened at first use and re-opened after failures
//! (redis-rs's `ConnectionManager`), so aadgate starts while Redis is down
//! and recovers by itself when it returns; every command has a timeout, so a
//! stalled Redis fails a request with 503 instead of holding it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::store::{Record, RecordKey, Revoked, Store, StoreFuture};
use super::{RedisConfig, StoreError};

/// How long a command may take before the request it serves gets a 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis store.
pub struct RedisStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    idle: i64,
    writes: AtomicU64,
    touch: redis::Script,
    unlock: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<RecordKey> {
    let mut key = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(failed)`
fn failed(e: redis::RedisError) -> StoreError {
    StoreError::from_any(format!("redis: {e}"))
}

impl RedisStore {
    /// A store for `config`; sessions idle for `idle` seconds expire. Does
    /// not connect yet.
    pub fn new(config: &RedisConfig, idle: i64) -> Result<Self, StoreError> {
        use redis::IntoConnectionInfo as _;
        let mut info = config.url.as_str().into_connection_info().map_err(failed)?;
        if let Some(password) = &config.password {
            let redis = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(redis);
        }
        let client = match &config.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    StoreError::from_any(format!("cannot read {}: {e}", path.display()))
                })?;
                redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
            None => redis::Client::open(info),
        }
        .map_err(failed)?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            prefix: config.prefix.clone(),
            idle,
            writes: AtomicU64::new(0),
            // Only an existing record's clock moves, never backwards, and its
            // expiry follows: the end, or idle seconds after the last use.
            touch: redis::Script::new(
                r"
                local e = tonumber(redis.call('HGET', KEYS[1], 'e'))
                if not e then return 0 end
                local s = tonumber(redis.call('HGET', KEYS[1], 's')) or 0
                local t = tonumber(ARGV[1])
                if t <= s then return 0 end
                redis.call('HSET', KEYS[1], 's', t)
                redis.call('PEXPIREAT', KEYS[1], math.min(e, t + tonumber(ARGV[2])) * 1000)
                return 1
                ",
            ),
            // Deletes the lock only if it is still the caller's.
            unlock: redis::Script::new(
                r"
                if redis.call('GET', KEYS[1]) == ARGV[1] then
                    return redis.call('DEL', KEYS[1])
                end
                return 0
                ",
            ),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1);
        self.conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.client.clone(), config.clone())
            })
            .await
            .cloned()
            .map_err(failed)
    }

    fn record_key(&self, key: &RecordKey) -> String {
        format!("{}s:{}", self.prefix, hex(key))
    }

    fn channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// When Redis should drop a record: its end, or `idle` after its last use.
    fn drop_at_ms(&self, record: &Record) -> i64 {
        record
            .expires_at
            .min(record.last_seen.saturating_add(self.idle))
            .saturating_mul(1000)
    }
}

impl Store for RedisStore {
    fn put<'a>(&'a self, key: &'a RecordKey, record: &'a Record) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            let k = self.record_key(key);
            redis::pipe()
                .atomic()
                .del(&k)
                .ignore()
                .hset_multiple(
                    &k,
                    &[
                        ("e", record.expires_at.to_string().into_bytes()),
                        ("s", record.last_seen.to_string().into_bytes()),
                        ("v", record.sealed.clone()),
                    ],
                )
                .ignore()
                .pexpire_at(&k, self.drop_at_ms(record))
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(failed)
        })
    }

    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let (e, s, v): (Option<i64>, Option<i64>, Option<Vec<u8>>) = redis::cmd("HMGET")
                .arg(self.record_key(key))
                .arg("e")
                .arg("s")
                .arg("v")
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            Ok(match (e, s, v) {
                (Some(expires_at), Some(last_seen), Some(sealed)) => Some(Record {
                    expires_at,
                    last_seen,
                    sealed,
                }),
                _ => None,
            })
        })
    }

    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            redis::pipe()
                .del(self.record_key(key))
                .ignore()
                .publish(self.channel(), hex(key))
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(failed)
        })
    }

    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            // Loads the script once per connection, then one round trip for
            // the whole batch.
            let _: () = self
                .touch
                .prepare_invoke()
                .load_async(&mut conn)
                .await
                .map(drop)
                .map_err(failed)?;
            let mut pipe = redis::pipe();
            for (key, t) in &seen {
                pipe.cmd("EVALSHA")
                    .arg(self.touch.get_hash())
                    .arg(1)
                    .arg(self.record_key(key))
                    .arg(*t)
                    .arg(self.idle)
                    .ignore();
            }
            pipe.query_async::<()>(&mut conn).await.map_err(failed)
        })
    }

    fn purge_expired(&self, _now: i64, _idle: i64) -> StoreFuture<'_, usize> {
        // Redis drops ended and idle records itself (PEXPIREAT).
        Box::pin(std::future::ready(Ok(0)))
    }

    fn claim_once<'a>(
        &'a self,
        id: &'a [u8; 32],
        now: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let ttl_ms = (expires_at - now).max(1).saturating_mul(1000);
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{}once:{}", self.prefix, hex(id)))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            Ok(set.is_some())
        })
    }

    fn lock<'a>(&'a self, key: &'a RecordKey, ttl: Duration) -> StoreFuture<'a, Option<u128>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let token = u128::from_be_bytes(crate::crypto::random_bytes::<16>());
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{}lock:{}", self.prefix, hex(key)))
                .arg(token.to_string())
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            Ok(set.map(|_| token))
        })
    }

    fn unlock<'a>(&'a self, key: &'a RecordKey, token: u128) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            self.unlock
                .key(format!("{}lock:{}", self.prefix, hex(key)))
                .arg(token.to_string())
                .invoke_async::<i64>(&mut conn)
                .await
                .map(drop)
                .map_err(failed)
        })
    }

    fn index<'a>(
        &'a self,
        name: &'a [u8; 32],
        key: &'a RecordKey,
        until: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let set = format!("{}sid:{}", self.prefix, hex(name));
            redis::pipe()
                .sadd(&set, hex(key))
                .ignore()
                // Lives as long as its longest-lived session.
                .cmd("PEXPIREAT")
                .arg(&set)
                .arg(until.saturating_mul(1000))
                .arg("GT")
                .ignore()
                .cmd("PEXPIREAT")
                .arg(&set)
                .arg(until.saturating_mul(1000))
                .arg("NX")
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(failed)
        })
    }

    fn indexed<'a>(&'a self, name: &'a [u8; 32]) -> StoreFuture<'a, Option<Vec<RecordKey>>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let members: Vec<String> = redis::cmd("SMEMBERS")
                .arg(format!("{}sid:{}", self.prefix, hex(name)))
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            Ok(Some(members.iter().filter_map(|m| unhex(m)).collect()))
        })
    }

    fn scan<'a>(
        &'a self,
        visit: &'a mut (dyn FnMut(RecordKey, Record) + Send),
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let pattern = format!("{}s:*", self.prefix);
            let mut cursor: u64 = 0;
            loop {
                let (next, names): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await
                    .map_err(failed)?;
                let keys: Vec<RecordKey> = names
                    .iter()
                    .filter_map(|n| unhex(n.strip_prefix(&format!("{}s:", self.prefix))?))
                    .collect();
                for key in keys {
                    if let Some(record) = self.get(&key).await? {
                        visit(key, record);
                    }
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
                .map_err(failed)
        })
    }

    fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revoked>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (client, channel) = (self.client.clone(), self.channel());
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            let mut lost = false;
            loop {
                if let Ok(mut pubsub) = client.get_async_pubsub().await
                    && pubsub.subscribe(&channel).await.is_ok()
                {
                    delay = Duration::from_millis(100);
                    // Revocations made while the subscription was lost were
                    // missed: forget every cached session.
                    if std::mem::take(&mut lost) && tx.send(Revoked::All).is_err() {
                        return;
                    }
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = futures_util::StreamExt::next(&mut messages).await {
                        let payload: String = msg.get_payload().unwrap_or_default();
                        let revoked = match payload.as_str() {
                            "*" => Revoked::All,
                            hex => match unhex(hex) {
                                Some(key) => Revoked::Session(key),
                                None => continue,
                            },
                        };
                        if tx.send(revoked).is_err() {
                            return;
                        }
                    }
                }
                if tx.is_closed() {
                    return;
                }
                lost = true;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex_and_the_password_is_not_shown() {
        let key = [0xabu8; 32];
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("zz"), None);
        let c = RedisConfig {
            url: "rediss://user:hunter2@cache.example:6380/0".into(),
            password: None,
            prefix: "aadgate:".into(),
            ca_file: None,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("cache.example"),
            "{shown}"
        );
    }
}
