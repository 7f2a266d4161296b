//! `session.store = "redis://…"` (or `rediss://` for TLS): sessions shared
//! by every replica that points at the same Redis (Azure Cache for Redis,
//! Azure Managed Redis, Valkey).
//!
//! Layout, under `session.redis_prefix` (default `aadgate:`):
//! - `{prefix}r:{record key}`: a string, the record's end and last use
//!   (unix seconds, 12 decimal digits each) and then the sealed session.
//!   A string, not a hash: Redis stores a hash with a kilobyte-sized field
//!   in its hashtable encoding, about a kilobyte more per session. Redis
//!   itself drops it when it ends or has been idle for
//!   `session.idle_timeout_secs` (`PXAT`, renewed by the batched idle-clock
//!   write-back), so nothing needs purging.
//! - `{prefix}once:{id}`: single-use values (sign-in `state`), `SET NX`
//!   until they expire.
//! - channel `{prefix}revoked`: a deleted session's record key (hex), or
//!   `*`; every replica drops it from its memory cache.
//!
//! The connection is opened at first use and re-opened after failures
//! (redis-rs's `ConnectionManager`), so aadgate starts while Redis is down
//! and recovers by itself when it returns; every command has a timeout, so a
//! stalled Redis fails a request with 503 instead of holding it.
//!
//! `redis-cluster://host:port,host:port…` (or `rediss-cluster://`) talks to
//! a Redis Cluster through redis-rs's cluster connection, which follows the
//! slots (`MOVED`, `ASK`, failovers). Every command names one key, so
//! nothing needs keys in one slot; the write-back batch, whose keys are
//! spread over the nodes, goes as one script call per key, a few dozen at a
//! time; `aadgate sessions list` scans every primary. Revocations are
//! published through the cluster (which delivers them on every node) and
//! received from one node at a time, the next one when it fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use super::redis_entra::EntraCredentials;
use super::store::{Record, RecordKey, Revoked, Store, StoreFuture};
use super::{RedisConfig, StoreError};

/// How long a command may take before the request it serves gets a 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where commands go.
enum Target {
    /// One endpoint (standalone, or a primary with replicas behind one
    /// name): `RedisStore::clients[0]`.
    One,
    /// A Redis Cluster.
    Cluster(Box<ClusterClient>),
}

/// A connection to either.
#[derive(Clone)]
enum Conn {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::One(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::One(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Script calls of one write-back batch in flight at once on a cluster.
const CLUSTER_TOUCH_CONCURRENCY: usize = 32;

/// The Redis store.
pub struct RedisStore {
    target: Target,
    /// The endpoint, or each seed node of a cluster: revocations are
    /// received through them (in turn, while one fails).
    clients: Vec<redis::Client>,
    /// Microsoft Entra tokens as passwords (`session.redis_auth`).
    entra: Option<EntraCredentials>,
    conn: OnceCell<Conn>,
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

/// The primaries of a cluster, as `CLUSTER SLOTS` names them (host, port).
async fn primaries(c: &mut ClusterConnection) -> Result<Vec<(String, u16)>, StoreError> {
    // Each entry: start slot, end slot, [host, port, id, …] of the primary,
    // then its replicas.
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(c)
        .await
        .map_err(failed)?;
    let mut out: Vec<(String, u16)> = Vec::new();
    for range in slots {
        let Some(primary) = range.into_iter().nth(2) else {
            continue;
        };
        let Ok((host, port)) = redis::from_redis_value::<(String, u16)>(match primary {
            redis::Value::Array(v) => redis::Value::Array(v.into_iter().take(2).collect()),
            other => other,
        }) else {
            continue;
        };
        if !out.contains(&(host.clone(), port)) {
            out.push((host, port));
        }
    }
    Ok(out)
}

/// Width of each clock in a record's header (unix seconds, zero-padded
/// decimal, so the touch script reads and writes them with string ops).
const CLOCK: usize = 12;

/// A record as its Redis string: end, last use, sealed session.
fn encode(record: &Record) -> Vec<u8> {
    let mut v = format!(
        "{:0w$}{:0w$}",
        record.expires_at.max(0),
        record.last_seen.max(0),
        w = CLOCK
    )
    .into_bytes();
    v.extend_from_slice(&record.sealed);
    v
}

fn decode(value: &[u8]) -> Option<Record> {
    let clock = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<i64>().ok();
    Some(Record {
        expires_at: clock(value.get(..CLOCK)?)?,
        last_seen: clock(value.get(CLOCK..2 * CLOCK)?)?,
        sealed: value.get(2 * CLOCK..)?.to_vec(),
    })
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
        let ca = match &config.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StoreError::from_any(format!("cannot read {}: {e}", path.display()))
            })?),
            None => None,
        };
        let client_of = |url: &str| -> Result<redis::Client, StoreError> {
            let mut info = url.into_connection_info().map_err(failed)?;
            if let Some(password) = &config.password {
                let redis = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(redis);
            }
            match &ca {
                Some(pem) => redis::Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                ),
                None => redis::Client::open(info),
            }
            .map_err(failed)
        };
        let nodes = config
            .cluster_nodes()
            .transpose()
            .map_err(StoreError::from_any)?;
        // The endpoint, or each seed node of a cluster.
        let clients = match &nodes {
            None => vec![client_of(&config.url)?],
            Some(nodes) => nodes
                .iter()
                .map(|n| client_of(n))
                .collect::<Result<Vec<_>, _>>()?,
        };
        // The user the URL names (else the token's object ID).
        let user = clients.first().and_then(|c| {
            c.get_connection_info()
                .redis_settings()
                .username()
                .map(str::to_owned)
        });
        let entra = EntraCredentials::new(&config.auth, user)?;
        let target = match nodes {
            None => Target::One,
            Some(nodes) => {
                let mut builder = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(COMMAND_TIMEOUT)
                    .retries(2);
                if let Some(password) = &config.password {
                    builder = builder.password(password);
                }
                if let Some(entra) = &entra {
                    builder = builder.set_credentials_provider(entra.clone());
                }
                if let Some(pem) = &ca {
                    builder = builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    });
                }
                Target::Cluster(Box::new(builder.build().map_err(failed)?))
            }
        };
        Ok(Self {
            target,
            clients,
            entra,
            conn: OnceCell::new(),
            prefix: config.prefix.clone(),
            idle,
            writes: AtomicU64::new(0),
            // Only an existing record's clock moves, never backwards, and its
            // expiry follows: the end, or idle seconds after the last use.
            touch: redis::Script::new(
                r"
                local h = redis.call('GETRANGE', KEYS[1], 0, 23)
                if #h < 24 then return 0 end
                local e = tonumber(string.sub(h, 1, 12))
                local s = tonumber(string.sub(h, 13, 24))
                local t = tonumber(ARGV[1])
                if not e or not s or t <= s then return 0 end
                redis.call('SETRANGE', KEYS[1], 12, string.format('%012d', t))
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

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.conn
            .get_or_try_init(|| async {
                match &self.target {
                    Target::One => {
                        let client = &self.clients[0];
                        let mut config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(CONNECT_TIMEOUT))
                            .set_response_timeout(Some(COMMAND_TIMEOUT))
                            .set_number_of_retries(1);
                        if let Some(entra) = &self.entra {
                            config = config.set_credentials_provider(entra.clone());
                        }
                        ConnectionManager::new_with_config(client.clone(), config)
                            .await
                            .map(Conn::One)
                    }
                    Target::Cluster(cluster) => {
                        cluster.get_async_connection().await.map(Conn::Cluster)
                    }
                }
            })
            .await
            .cloned()
            .map_err(failed)
    }

    fn record_key(&self, key: &RecordKey) -> String {
        format!("{}r:{}", self.prefix, hex(key))
    }

    fn channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// Visits the records on one node (`None`: the one endpoint).
    async fn scan_node(
        &self,
        conn: &Conn,
        node: Option<(String, u16)>,
        pattern: &str,
        visit: &mut (dyn FnMut(RecordKey, Record) + Send),
    ) -> Result<(), StoreError> {
        use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500);
            let (next, names): (u64, Vec<String>) = match (conn.clone(), &node) {
                (Conn::Cluster(mut c), Some((host, port))) => {
                    let at = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port: *port,
                    });
                    let value = c.route_command(scan, at).await.map_err(failed)?;
                    redis::from_redis_value(value)
                        .map_err(|e| StoreError::from_any(format!("redis: {e}")))?
                }
                (mut c, _) => scan.query_async(&mut c).await.map_err(failed)?,
            };
            let keys: Vec<RecordKey> = names
                .iter()
                .filter_map(|n| unhex(n.strip_prefix(&format!("{}r:", self.prefix))?))
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
            redis::cmd("SET")
                .arg(self.record_key(key))
                .arg(encode(record))
                .arg("PXAT")
                .arg(self.drop_at_ms(record))
                .query_async::<()>(&mut conn)
                .await
                .map_err(failed)
        })
    }

    fn get<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, Option<Record>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.record_key(key))
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            Ok(value.as_deref().and_then(decode))
        })
    }

    fn delete<'a>(&'a self, key: &'a RecordKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            // Two commands, not a pipeline: on a cluster the key and the
            // channel belong to different nodes.
            redis::cmd("DEL")
                .arg(self.record_key(key))
                .query_async::<()>(&mut conn)
                .await
                .map_err(failed)?;
            redis::cmd("PUBLISH")
                .arg(self.channel())
                .arg(hex(key))
                .query_async::<()>(&mut conn)
                .await
                .map_err(failed)
        })
    }

    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            if let Conn::Cluster(_) = conn {
                // The keys live on different nodes: one call each (loading
                // the script on a node that lacks it), a few dozen at once.
                use futures_util::{StreamExt as _, TryStreamExt as _};
                let (script, idle) = (self.touch.clone(), self.idle);
                let calls: Vec<(String, i64)> = seen
                    .iter()
                    .map(|(key, t)| (self.record_key(key), *t))
                    .collect();
                return futures_util::stream::iter(calls)
                    .map(move |(key, t)| {
                        let (script, mut conn) = (script.clone(), conn.clone());
                        async move {
                            script
                                .key(key)
                                .arg(t)
                                .arg(idle)
                                .invoke_async::<i64>(&mut conn)
                                .await
                                .map(drop)
                        }
                    })
                    .buffer_unordered(CLUSTER_TOUCH_CONCURRENCY)
                    .try_collect::<()>()
                    .await
                    .map_err(failed);
            }
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
            let conn = self.conn().await?;
            let pattern = format!("{}r:*", self.prefix);
            // A cluster is scanned primary by primary.
            let nodes: Vec<Option<(String, u16)>> = match &conn {
                Conn::One(_) => vec![None],
                Conn::Cluster(c) => primaries(&mut c.clone())
                    .await?
                    .into_iter()
                    .map(Some)
                    .collect(),
            };
            for node in nodes {
                self.scan_node(&conn, node, &pattern, visit).await?;
            }
            Ok(())
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            if let Conn::Cluster(c) = &mut conn {
                // Ready when the cluster serves every slot.
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(c)
                    .await
                    .map_err(failed)?;
                if !info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    return Err(StoreError::from_any(
                        "redis: the cluster is not serving every slot (cluster_state is not ok)",
                    ));
                }
                return Ok(());
            }
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
        let (clients, channel, entra) = (self.clients.clone(), self.channel(), self.entra.clone());
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            let mut lost = false;
            // The endpoint; on a cluster, the seed nodes in turn (a message
            // published anywhere in a cluster reaches every node).
            for client in clients.iter().cycle() {
                if let Some(mut messages) = subscribe(client, &channel, entra.as_ref()).await {
                    delay = Duration::from_millis(100);
                    // Revocations made while the subscription was lost were
                    // missed: forget every cached session.
                    if std::mem::take(&mut lost) && tx.send(Revoked::All).is_err() {
                        return;
                    }
                    // With Entra tokens, a subscription signs in once and
                    // Azure ends it when its token expires: each renewed
                    // token opens a new subscription first and drops the
                    // old one after, so no message falls in between.
                    let mut renewals: std::pin::Pin<
                        Box<dyn futures_util::Stream<Item = _> + Send>,
                    > = match &entra {
                        Some(e) => Box::pin(e.renewals()),
                        None => Box::pin(futures_util::stream::pending()),
                    };
                    loop {
                        let msg = tokio::select! {
                            msg = futures_util::StreamExt::next(&mut messages) => msg,
                            Some(auth) = futures_util::StreamExt::next(&mut renewals) => {
                                if let Some(fresh) = subscribe_as(client, &channel, &auth).await {
                                    messages = fresh;
                                }
                                continue;
                            }
                        };
                        let Some(msg) = msg else { break };
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

/// Revocation messages on `channel` through `client`, signed in with the
/// newest Entra token when there are tokens.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    entra: Option<&EntraCredentials>,
) -> Option<redis::aio::PubSubStream> {
    match entra {
        Some(e) => subscribe_as(client, channel, &e.current().await.ok()?).await,
        None => {
            let mut pubsub = client.get_async_pubsub().await.ok()?;
            pubsub.subscribe(channel).await.ok()?;
            Some(pubsub.into_on_message())
        }
    }
}

/// [`subscribe`] as the user and password of `auth`.
async fn subscribe_as(
    client: &redis::Client,
    channel: &str,
    auth: &redis::auth::BasicAuth,
) -> Option<redis::aio::PubSubStream> {
    let mut info = client.get_connection_info().clone();
    let settings = info
        .redis_settings()
        .clone()
        .set_username(auth.username())
        .set_password(auth.password());
    info = info.set_redis_settings(settings);
    let mut pubsub = redis::Client::open(info)
        .ok()?
        .get_async_pubsub()
        .await
        .ok()?;
    pubsub.subscribe(channel).await.ok()?;
    Some(pubsub.into_on_message())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_string() {
        let r = Record {
            expires_at: 1_800_000_000,
            last_seen: 1_799_999_000,
            sealed: vec![0, 1, 2, 255],
        };
        let v = encode(&r);
        assert_eq!(&v[..24], b"001800000000001799999000");
        let back = decode(&v).unwrap();
        assert_eq!(
            (back.expires_at, back.last_seen, back.sealed),
            (r.expires_at, r.last_seen, r.sealed)
        );
        assert!(decode(b"short").is_none());
        assert!(decode(b"00180000000x001799999000").is_none());
    }

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
            auth: Default::default(),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("cache.example"),
            "{shown}"
        );
    }
}
