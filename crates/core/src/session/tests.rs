//! Unit tests of the session store: sealing, caching, write-back, expiry.

use super::*;

fn store(kind: &StoreKind) -> SessionStore {
    SessionStore::open(
        kind,
        &[9u8; 32],
        Duration::from_secs(3600),
        Duration::from_secs(86400),
    )
    .unwrap()
}

/// A cache budget that holds `n` sessions like those `tokens()` and a
/// default identity make (with a `sub` of up to 7 characters).
fn room_for(n: u64) -> Arc<cache::Cache<()>> {
    let s = Session {
        identity: Identity {
            sub: "user-00".into(),
            ..Identity::default()
        },
        tokens: tokens(),
        created_at: 0,
        expires_at: 0,
        last_seen: 0,
        checked_at: 0,
    };
    Arc::new(cache::Cache::new(
        n * u64::from(cache::Entry::<()>::weight(&s, &())),
    ))
}

fn tokens() -> Tokens {
    Tokens {
        access_token: Some("AT-secret".into()),
        refresh_token: Some("RT-secret".into()),
        ..Tokens::default()
    }
}

#[tokio::test]
async fn file_store_survives_reopen_and_encrypts_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::File(dir.path().join("s"));
    let cookie = {
        let s = store(&kind);
        let id = Identity {
            sub: "sub-1".into(),
            name: Some("Ada".into()),
            ..Identity::default()
        };
        s.create(id, tokens()).await.unwrap().0
    };
    let raw = std::fs::read(dir.path().join("s/sessions.redb")).unwrap();
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(b"AT-secret") && !contains(b"RT-secret") && !contains(b"sub-1"));
    assert!(
        !contains(cookie.as_bytes()),
        "the cookie value itself is not stored"
    );

    let s = store(&kind);
    let got = s.get(&cookie).await.expect("session after reopen");
    assert_eq!(got.identity.sub, "sub-1");
    assert_eq!(got.tokens.access_token.as_deref(), Some("AT-secret"));

    drop(s);
    let wrong_secret = SessionStore::open(
        &kind,
        &[8u8; 32],
        Duration::from_secs(60),
        Duration::from_secs(60),
    );
    assert!(wrong_secret.unwrap().get(&cookie).await.is_none());
}

#[tokio::test]
async fn checking_a_session_does_not_write_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&StoreKind::File(dir.path().to_owned()));
    let (cookie, _) = s.create(Identity::default(), tokens()).await.unwrap();
    assert_eq!(s.disk_writes(), 1);
    for _ in 0..1000 {
        assert!(s.get(&cookie).await.is_some());
    }
    assert_eq!(s.disk_writes(), 1, "reads are served from memory");
    s.remove(&cookie).await;
    assert_eq!(s.disk_writes(), 2);
}

#[tokio::test]
async fn idle_clocks_are_written_back_in_batches_off_the_request_path() {
    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::File(dir.path().to_owned());
    let s = store(&kind);
    let mut cookies = Vec::new();
    for _ in 0..20 {
        cookies.push(s.create(Identity::default(), tokens()).await.unwrap().0);
    }
    let (gone, _) = s.create(Identity::default(), tokens()).await.unwrap();
    let writes = s.disk_writes();
    s.clock().advance(61);
    for c in cookies.iter().chain([&gone]) {
        assert!(s.get(c).await.is_some());
    }
    assert_eq!(s.disk_writes(), writes, "no request waited for a write");
    s.remove(&gone).await;
    s.flush_idle_clocks().await;
    assert_eq!(
        s.disk_writes(),
        writes + 2,
        "the removal, then one batch for all 20"
    );
    // Reopened (a restart), the stored idle clocks are the new ones, and
    // the signed-out session stayed removed.
    drop(s);
    let again = store(&kind);
    again.clock().advance(61);
    let now = again.clock().now();
    for c in &cookies {
        let seen = again.get_full(c).await.unwrap().last_seen;
        assert!(now - seen <= 2, "persisted last_seen {seen} vs now {now}");
    }
    assert!(again.get(&gone).await.is_none());
}

/// A large batch goes in chunks (each a short transaction, with a pause
/// between), so the proxy's core is never held for the whole batch; every
/// clock still lands.
#[tokio::test(start_paused = true)]
async fn a_large_write_back_goes_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::File(dir.path().to_owned());
    let s = store(&kind);
    let n = WRITE_BACK_CHUNK * 2 + 10;
    let mut cookies = Vec::new();
    for _ in 0..n {
        cookies.push(s.create(Identity::default(), tokens()).await.unwrap().0);
    }
    s.clock().advance(61);
    for c in &cookies {
        assert!(s.get(c).await.is_some());
    }
    let writes = s.disk_writes();
    let started = tokio::time::Instant::now();
    s.flush_idle_clocks().await;
    assert_eq!(s.disk_writes(), writes + 3, "three chunks for {n} clocks");
    assert!(
        started.elapsed() >= WRITE_BACK_PAUSE * 2,
        "with a pause between chunks"
    );
    drop(s);
    let again = store(&kind);
    again.clock().advance(61);
    let now = again.clock().now();
    for c in &cookies {
        let seen = again.get_full(c).await.unwrap().last_seen;
        assert!(now - seen <= 2, "persisted last_seen {seen} vs now {now}");
    }
}

/// What a write-back hands the store: its batches and `settle` calls.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    calls: Mutex<Vec<Option<Vec<RecordKey>>>>,
}

impl Store for Recording {
    fn put<'a>(&'a self, key: &'a RecordKey, record: &'a Record) -> store::StoreFuture<'a, ()> {
        self.inner.put(key, record)
    }
    fn get<'a>(&'a self, key: &'a RecordKey) -> store::StoreFuture<'a, Option<Record>> {
        self.inner.get(key)
    }
    fn delete<'a>(&'a self, key: &'a RecordKey) -> store::StoreFuture<'a, ()> {
        self.inner.delete(key)
    }
    fn touch(&self, seen: Vec<(RecordKey, i64)>) -> store::StoreFuture<'_, ()> {
        let keys = seen.iter().map(|(k, _)| *k).collect();
        self.calls.lock().unwrap().push(Some(keys));
        self.inner.touch(seen)
    }
    fn settle(&self) -> store::StoreFuture<'_, ()> {
        self.calls.lock().unwrap().push(None);
        self.inner.settle()
    }
    fn purge_expired(&self, now: i64, idle: i64) -> store::StoreFuture<'_, usize> {
        self.inner.purge_expired(now, idle)
    }
    fn claim_once<'a>(
        &'a self,
        id: &'a [u8; 32],
        now: i64,
        expires_at: i64,
    ) -> store::StoreFuture<'a, bool> {
        self.inner.claim_once(id, now, expires_at)
    }
    fn scan<'a>(
        &'a self,
        visit: &'a mut (dyn FnMut(RecordKey, Record) + Send),
    ) -> store::StoreFuture<'a, ()> {
        self.inner.scan(visit)
    }
}

/// A write-back hands the store its clocks in key order (so each chunk's
/// clocks are neighbours in a B-tree, not one page each), then settles
/// once, also through the metrics' timing; a signed-out session's clock is
/// not written at all.
#[tokio::test(start_paused = true)]
async fn a_write_back_goes_in_key_order_then_settles_once() {
    let recording = Arc::new(Recording::default());
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let s = SessionStore::with_store(
        recording.clone(),
        &[9u8; 32],
        Duration::from_secs(3600),
        Duration::from_secs(86400),
    )
    .with_metrics(metrics.clone());
    let mut cookies = Vec::new();
    for _ in 0..WRITE_BACK_CHUNK * 2 + 11 {
        cookies.push(s.create(Identity::default(), tokens()).await.unwrap().0);
    }
    s.clock().advance(61);
    for c in &cookies {
        assert!(s.get(c).await.is_some());
    }
    let gone = cookies.pop().unwrap();
    s.remove(&gone).await;
    s.flush_idle_clocks().await;
    let calls = recording.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "three chunks, then one settle: {calls:?}");
    assert_eq!(calls[3], None, "settled after the last chunk");
    let keys: Vec<RecordKey> = calls[..3].iter().flatten().flatten().copied().collect();
    assert_eq!(keys.len(), cookies.len(), "each live session's clock once");
    assert!(keys.is_sorted(), "in key order across the chunks");
    assert!(
        !keys.contains(&s.key_of(&gone)),
        "no clock for a signed-out session"
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"aadgate_session_store_operation_duration_seconds_count{op="settle",result="ok"} 1"#
        ),
        "{text}"
    );
}

/// The file store writes clocks beside the sealed sessions, never reading
/// them: a clock never goes backwards, a deleted session's clock is not
/// written (it stays deleted), and the sweep finds what ended from the
/// clocks alone.
#[tokio::test]
async fn file_store_clocks_never_go_back_and_deleted_sessions_stay_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let files = FileStore::open(dir.path(), 1_000).unwrap();
    let record = |seen| Record {
        expires_at: 10_000,
        last_seen: seen,
        sealed: vec![1, 2, 3],
    };
    let (kept, gone, idle) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    for key in [&kept, &gone, &idle] {
        files.put(key, &record(1_000)).await.unwrap();
    }
    let jobs = bookkeeping::jobs_done();
    files.delete(&gone).await.unwrap();
    files
        .touch(vec![(kept, 1_500), (gone, 1_500)])
        .await
        .unwrap();
    files.touch(vec![(kept, 1_200)]).await.unwrap();
    files.settle().await.unwrap();
    assert_eq!(files.get(&kept).await.unwrap().unwrap(), record(1_500));
    assert_eq!(files.get(&gone).await.unwrap(), None, "stays deleted");
    // At 2,100 with 1,000 s of idle time, `idle` (last used at 1,000) ended.
    assert_eq!(files.purge_expired(2_100, 1_000).await.unwrap(), 1);
    assert_eq!(files.get(&idle).await.unwrap(), None);
    let mut left = Vec::new();
    files.scan(&mut |k, r| left.push((k, r))).await.unwrap();
    assert_eq!(left, vec![(kept, record(1_500))]);
    // Past its end, the last one goes too.
    assert_eq!(files.purge_expired(10_000, 1_000_000).await.unwrap(), 1);
    // The write-backs, their settling and the sweeps ran on the bookkeeping
    // thread, below the request workers' priority.
    assert!(bookkeeping::jobs_done() >= jobs + 5);
}

/// The background task writes them by itself (tokio's clock is paused and
/// jumps ahead whenever everything waits, so nothing waits 5 s).
#[tokio::test(start_paused = true)]
async fn the_background_task_writes_idle_clocks_back_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&StoreKind::File(dir.path().to_owned()));
    let (cookie, _) = s.create(Identity::default(), tokens()).await.unwrap();
    let writes = s.disk_writes();
    s.clock().advance(61);
    assert!(s.get(&cookie).await.is_some());
    let started = tokio::time::Instant::now();
    while s.disk_writes() == writes {
        assert!(started.elapsed() <= FLUSH_INTERVAL * 2, "not written back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s.disk_writes(), writes + 1);
}

#[tokio::test]
async fn the_cache_keeps_no_id_or_refresh_tokens_but_get_full_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&StoreKind::File(dir.path().to_owned())).keep_access_tokens_in_memory(false);
    let mut t = tokens();
    t.id_token = Some("ID-secret".into());
    let (cookie, _) = s.create(Identity::default(), t).await.unwrap();
    let cached = s.get(&cookie).await.unwrap();
    assert!(cached.tokens.id_token.is_none() && cached.tokens.refresh_token.is_none());
    assert!(cached.tokens.access_token.is_none());
    let full = s.get_full(&cookie).await.unwrap();
    assert_eq!(full.tokens.id_token.as_deref(), Some("ID-secret"));
    assert_eq!(full.tokens.refresh_token.as_deref(), Some("RT-secret"));
    // update() keeps what it does not change.
    s.update(&cookie, |x| x.tokens.access_token = Some("AT-2".into()))
        .await
        .unwrap();
    let full = s.get_full(&cookie).await.unwrap();
    assert_eq!(full.tokens.id_token.as_deref(), Some("ID-secret"));
    assert_eq!(full.tokens.access_token.as_deref(), Some("AT-2"));
}

#[tokio::test]
async fn ids_are_fresh_and_garbage_is_signed_out() {
    let s = store(&StoreKind::Memory);
    let (a, _) = s
        .create(Identity::default(), Tokens::default())
        .await
        .unwrap();
    let (b, _) = s
        .create(Identity::default(), Tokens::default())
        .await
        .unwrap();
    assert_ne!(a, b);
    for bad in [
        "",
        "x",
        &"A".repeat(43),
        &"é".repeat(22),
        &format!("{a}x"),
        &a[..42],
    ] {
        assert!(s.get(bad).await.is_none(), "{bad:?}");
    }
}

#[tokio::test]
async fn expired_sessions_end() {
    let s = SessionStore::open(
        &StoreKind::Memory,
        &[9u8; 32],
        Duration::from_secs(3600),
        Duration::from_secs(0),
    )
    .unwrap();
    let (a, _) = s
        .create(Identity::default(), Tokens::default())
        .await
        .unwrap();
    assert!(s.get(&a).await.is_none());
    assert_eq!(s.cached_len(), 0);
}

#[tokio::test]
async fn a_file_store_caches_at_most_its_cap_and_reloads_the_rest_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&StoreKind::File(dir.path().to_owned()));
    s.cache = room_for(20);
    let mut cookies = Vec::new();
    for i in 0..45 {
        let identity = Identity {
            sub: format!("user-{i}"),
            ..Identity::default()
        };
        cookies.push(s.create(identity, tokens()).await.unwrap().0);
        assert!(s.cached_len() <= 20, "{}", s.cached_len());
    }
    for (i, c) in cookies.iter().enumerate() {
        let got = s.get(c).await.expect("every session is still there");
        assert_eq!(got.identity.sub, format!("user-{i}"));
        assert!(s.cached_len() <= 20);
    }
    s.remove(&cookies[0]).await;
    assert!(s.get(&cookies[0]).await.is_none());
}

#[tokio::test]
async fn a_full_cache_evicts_the_sessions_used_least_recently() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store(&StoreKind::File(dir.path().to_owned()));
    s.cache = room_for(20);
    let mut cookies = Vec::new();
    for _ in 0..20 {
        cookies.push(s.create(Identity::default(), tokens()).await.unwrap().0);
        s.clock().advance(1);
    }
    // The cache applies inserts and uses in batches; here the inserts are
    // applied before the uses, as they are when a session was created a
    // moment before.
    assert_eq!(s.cached_len(), 20);
    // The five oldest are used again: now the most recent.
    for c in &cookies[..5] {
        assert!(s.get(c).await.is_some());
    }
    s.create(Identity::default(), tokens()).await.unwrap();
    s.create(Identity::default(), tokens()).await.unwrap();
    assert_eq!(s.cached_len(), 20);
    let cached = |c: &String| s.cache.contains(c);
    assert!(
        cookies[..5].iter().all(cached),
        "recently used sessions stay"
    );
    assert!(
        !cached(&cookies[5]) && !cached(&cookies[6]),
        "the two used least recently go"
    );
    assert!(cookies[7..].iter().all(cached));
}

#[tokio::test]
async fn sessions_stored_before_the_record_header_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::File(dir.path().to_owned());
    let s = store(&kind);
    let cookie = crypto::random_token();
    let key = s.key_of(&cookie);
    let t = s.clock().now();
    let session = Session {
        identity: Identity {
            sub: "from-v1".into(),
            ..Identity::default()
        },
        tokens: tokens(),
        created_at: t,
        expires_at: t + 100,
        last_seen: t,
        checked_at: t,
    };
    let sealed = s.sealer.seal(&serde_json::to_vec(&session).unwrap(), &key);
    drop(s);
    // The earlier layout: the sealed session alone, in `sessions_v1`.
    {
        let db = redb::Database::create(dir.path().join("sessions.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("sessions_v1"))
            .unwrap()
            .insert(key.as_slice(), sealed.as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let s = store(&kind);
    let got = s.get_full(&cookie).await.expect("migrated session");
    assert_eq!(got.identity.sub, "from-v1");
    assert_eq!(got.tokens.refresh_token.as_deref(), Some("RT-secret"));
    // Its own end still applies.
    s.clock().advance(101);
    assert!(s.get(&cookie).await.is_none());
}

/// Version 2 kept the clocks in a header before the sealed session, with
/// later idle clocks in a table of their own: opened now, its sessions are
/// moved over with the later of the two clocks.
#[tokio::test]
async fn sessions_stored_with_the_record_header_are_kept_with_their_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let kind = StoreKind::File(dir.path().to_owned());
    let s = store(&kind);
    let (cookie, _) = s
        .create(
            Identity {
                sub: "from-v2".into(),
                ..Identity::default()
            },
            tokens(),
        )
        .await
        .unwrap();
    let key = s.key_of(&cookie);
    let mut found = Vec::new();
    s.store.scan(&mut |k, r| found.push((k, r))).await.unwrap();
    let [(k, record)] = &found[..] else {
        panic!("{found:?}")
    };
    assert_eq!(k, &key);
    let t = s.clock().now();
    drop(s);
    {
        let db = redb::Database::create(dir.path().join("sessions.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.delete_table(redb::TableDefinition::<&[u8], &[u8]>::new("sessions_v3"))
            .unwrap();
        tx.delete_table(redb::TableDefinition::<&[u8], (i64, i64)>::new(
            "session_times_v1",
        ))
        .unwrap();
        let mut v2 = record.expires_at.to_be_bytes().to_vec();
        v2.extend_from_slice(&(t - 500).to_be_bytes());
        v2.extend_from_slice(&record.sealed);
        tx.open_table(redb::TableDefinition::<&[u8], &[u8]>::new("sessions_v2"))
            .unwrap()
            .insert(key.as_slice(), v2.as_slice())
            .unwrap();
        tx.open_table(redb::TableDefinition::<&[u8], i64>::new("idle_clocks_v1"))
            .unwrap()
            .insert(key.as_slice(), t - 100)
            .unwrap();
        tx.commit().unwrap();
    }
    let s = SessionStore::open(
        &kind,
        &[9u8; 32],
        Duration::from_secs(3600),
        Duration::from_secs(86400),
    )
    .unwrap();
    let moved = s.store.get(&key).await.unwrap().expect("migrated record");
    assert_eq!(moved.last_seen, t - 100, "the later clock");
    assert_eq!(moved.expires_at, record.expires_at);
    let got = s.get_full(&cookie).await.expect("migrated session");
    assert_eq!(got.identity.sub, "from-v2");
    assert_eq!(got.tokens.refresh_token.as_deref(), Some("RT-secret"));
}

#[tokio::test]
async fn a_provider_session_ends_every_session_signed_in_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&StoreKind::File(dir.path().to_owned()));
    let with_sid = |sid: &str| Identity {
        issuer: "https://idp.example/v2.0".into(),
        sid: Some(sid.into()),
        ..Identity::default()
    };
    let (a1, _) = s.create(with_sid("S1"), tokens()).await.unwrap();
    let (a2, _) = s.create(with_sid("S1"), tokens()).await.unwrap();
    let (b, _) = s.create(with_sid("S2"), tokens()).await.unwrap();
    assert_eq!(
        s.end_provider_session("S1", Some("https://other.example/v2.0"))
            .await
            .unwrap(),
        0,
        "another issuer's sid"
    );
    assert_eq!(s.end_provider_session("S1", None).await.unwrap(), 2);
    assert!(s.get(&a1).await.is_none() && s.get(&a2).await.is_none());
    assert!(s.get(&b).await.is_some());
}

/// Counting the live sessions (what a metrics scrape does) walks the whole
/// cache; the worker it is awaited on keeps running other tasks meanwhile.
/// On a single-threaded runtime, a ticker task must advance while the
/// count is awaited: it cannot if the walk runs on the worker itself.
#[test]
fn counting_live_sessions_leaves_the_worker_free() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = SessionStore::open(
            &StoreKind::Memory,
            &[9u8; 32],
            Duration::from_secs(3600),
            Duration::from_secs(86400),
        )
        .unwrap();
        for _ in 0..20_000 {
            s.create(Identity::default(), tokens()).await.unwrap();
        }
        let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::Relaxed);
        assert_eq!(s.live_in_memory().await, 20_000);
        let during = ticks.load(Ordering::Relaxed) - before;
        ticker.abort();
        assert!(
            during > 0,
            "no task ran on the worker while the cache was counted"
        );
    });
}

/// A background write-back spreads its chunks over half the flush interval,
/// never closer than the shortest pause: a large batch does not come in a
/// burst, and a small one does not wait long.
#[test]
fn a_background_write_back_is_spread_over_half_the_interval() {
    for chunks in [2, 3, 16, 196, 2_000] {
        let pause = write_back_pause(chunks);
        assert!(pause >= WRITE_BACK_PAUSE, "{chunks} chunks: {pause:?}");
        let spread = pause * u32::try_from(chunks - 1).unwrap();
        assert!(
            spread <= FLUSH_INTERVAL / 2 || pause == WRITE_BACK_PAUSE,
            "{chunks} chunks spread over {spread:?}"
        );
    }
    assert_eq!(write_back_pause(16), FLUSH_INTERVAL / 32);
    assert_eq!(write_back_pause(196), FLUSH_INTERVAL / 2 / 196);
    assert_eq!(write_back_pause(2_000), WRITE_BACK_PAUSE);
}
