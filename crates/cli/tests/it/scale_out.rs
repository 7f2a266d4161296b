//! Scale-out: replicas sharing sessions in a real Redis. A sign-in started
//! on one replica completes on another, a replayed `state` is refused on
//! every replica, and a sign-out on one reaches the others within a second.

use std::time::{Duration, Instant};

use aadgate_dev_idp::DevIdpConfig;

use crate::harness::{Browser, Idp, Proxy, config_text, listener, location, seen, start_echo};
use crate::redis_server::{RedisCluster, RedisServer};

/// Replicas of one app (one `public_url`, one secret) in front of the echo
/// app, sharing `redis`.
struct Replicas {
    /// The configuration every replica runs with.
    config: String,
    idp: Idp,
    proxies: Vec<Proxy>,
    /// The Redis they share: one server, or a cluster.
    redis: Option<RedisServer>,
    cluster: Option<RedisCluster>,
}

impl Replicas {
    async fn start(n: usize, redis: RedisServer) -> Self {
        Self::with(n, redis, "", DevIdpConfig::default()).await
    }

    /// `n` replicas sharing a Redis Cluster.
    async fn on_cluster(n: usize, cluster: RedisCluster) -> Self {
        let mut r = Self::build(
            n,
            format!("store = \"{}\"", cluster.url()),
            "",
            DevIdpConfig::default(),
        )
        .await;
        r.cluster = Some(cluster);
        r
    }

    async fn with(n: usize, redis: RedisServer, extra: &str, idp_config: DevIdpConfig) -> Self {
        let store = match &redis.ca_file {
            None => format!("store = \"{}\"", redis.url()),
            Some(ca) => format!(
                "store = \"{}\"\nredis_ca_file = \"{}\"",
                redis.url(),
                ca.display()
            ),
        };
        let mut r = Self::build(n, store, extra, idp_config).await;
        r.redis = Some(redis);
        r
    }

    async fn build(n: usize, store: String, extra: &str, mut idp_config: DevIdpConfig) -> Self {
        let echo = start_echo().await;
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(listener().await);
        }
        let public_port = listeners[0].1.port();
        // Registered as in Entra: public_url + /auth/frontchannel-logout.
        if idp_config.frontchannel_logout_url.is_some() {
            idp_config.frontchannel_logout_url = Some(format!(
                "http://127.0.0.1:{public_port}/auth/frontchannel-logout"
            ));
        }
        let idp = Idp::start(idp_config, &[public_port]).await;
        let dir = tempfile::tempdir().unwrap();
        let text = config_text(public_port, echo, &idp.idp, dir.path(), extra)
            .replace(
                &format!("store = \"file:{}\"", dir.path().display()),
                &store,
            )
            // Every replica is reached at its own address in these tests
            // (in production, all behind one balancer at public_url).
            .replace("[oidc]", "trusted_proxies = [\"127.0.0.1/32\"]\n\n[oidc]");
        assert!(text.contains("store = \"redis"), "{text}");
        let mut proxies = Vec::new();
        for (l, _) in listeners {
            proxies.push(Proxy::start(l, &text, &idp.idp.config().client_secret).await);
        }
        Self {
            config: text,
            idp,
            proxies,
            redis: None,
            cluster: None,
        }
    }

    /// A browser at replica `i` (cookies are shared by host, as a browser
    /// behind one balancer shares them across replicas).
    fn at(&self, b: &Browser, i: usize) -> Browser {
        Browser {
            client: b.client.clone(),
            proxy: self.proxies[i].addr,
        }
    }

    /// `url` (on replica 0, the public URL) pointed at replica `i`.
    fn on(&self, url: &str, i: usize) -> String {
        url.replace(
            &self.proxies[0].addr.to_string(),
            &self.proxies[i].addr.to_string(),
        )
    }
}

#[tokio::test]
async fn a_sign_in_on_one_replica_is_a_session_on_every_replica_until_signed_out() {
    let r = Replicas::start(2, RedisServer::start().await).await;
    let a = Browser::new(r.proxies[0].addr);
    let b = r.at(&a, 1);

    // Started on A, completed on B.
    let authorize = a.start_login("/admin").await;
    let callback = a.pick_user(&authorize, "admin").await;
    let done = b.navigate(&r.on(&callback, 1)).await;
    assert_eq!(done.status(), 302, "{}", done.text().await.unwrap());
    assert_eq!(location(&done), "/admin");

    // The session works on both.
    for browser in [&a, &b] {
        let echo = browser.echo("/admin").await;
        assert_eq!(seen(&echo, "x-forwarded-email"), ["admin@contoso.example"]);
    }

    // Signed out on A: B refuses the session within a second.
    let out = a.navigate(&a.url("/auth/logout")).await;
    assert!(out.status().is_redirection(), "{}", out.status());
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let status = b.navigate(&b.url("/admin")).await.status();
        if status == 302 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "replica B still accepts a session signed out on A after 1 s"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_replayed_state_is_refused_on_every_replica() {
    let r = Replicas::start(2, RedisServer::start().await).await;
    // No cookie jar: the pending-sign-in cookie is sent by hand, twice.
    let raw = crate::harness::no_redirects();
    let login = raw
        .get(r.proxies[0].url("/auth/login?rd=%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 302);
    let pending: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let authorize = location(&login);
    let picked = raw
        .get(format!("{authorize}&login_hint=reader"))
        .send()
        .await
        .unwrap();
    let callback = location(&picked);
    let complete = |i: usize| {
        raw.get(r.on(&callback, i))
            .header("cookie", pending.join("; "))
            .send()
    };
    assert_eq!(complete(1).await.unwrap().status(), 302, "first use, on B");
    let replay = complete(0).await.unwrap();
    assert_eq!(replay.status(), 400, "replayed on A");
    assert!(replay.text().await.unwrap().contains("Correlation id"));
}

#[tokio::test]
async fn redis_down_is_a_503_never_a_500_and_service_returns_with_it() {
    let r = Replicas::start(2, RedisServer::start().await).await;
    let a = Browser::new(r.proxies[0].addr);
    a.sign_in("writer", "/").await;
    assert_eq!(a.navigate(&a.url("/write")).await.status(), 200);

    let c = crate::harness::no_redirects();
    let ready = |i: usize| c.get(r.proxies[i].url("/readyz")).send();
    assert_eq!(ready(1).await.unwrap().status(), 200);
    let mut r = r;
    r.redis.as_mut().unwrap().kill();
    let not_ready = c.get(r.proxies[1].url("/readyz")).send().await.unwrap();
    assert_eq!(not_ready.status(), 503);
    let body: serde_json::Value = not_ready.json().await.unwrap();
    assert_eq!(body["session_store"], "unreachable");
    // A session this replica holds in memory keeps working.
    assert_eq!(a.navigate(&a.url("/write")).await.status(), 200);
    // One the other replica would have to read from Redis: a 503 page (or
    // JSON for a script), not a trip through a sign-in that cannot work.
    let b = r.at(&a, 1);
    let page = b.navigate(&b.url("/write")).await;
    assert_eq!(page.status(), 503);
    assert!(page.text().await.unwrap().contains("Correlation id"));
    let api = b.client.get(b.url("/write")).send().await.unwrap();
    assert_eq!(api.status(), 503);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"], "sessions_unavailable");
    // Public pages do not need the session.
    assert_eq!(b.navigate(&b.url("/public/x")).await.status(), 200);
    // A new sign-in cannot be saved: a 503 page that says so.
    let fresh = Browser::new(r.proxies[1].addr);
    let authorize = fresh.start_login("/").await;
    let callback = fresh.pick_user(&authorize, "reader").await;
    let refused = fresh.navigate(&r.on(&callback, 1)).await;
    assert_eq!(refused.status(), 503);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("could not be saved") && page.contains("Correlation id"),
        "{page}"
    );

    // Redis is back (empty, as after a restart without persistence): the
    // next sign-in works without restarting aadgate.
    r.redis.as_mut().unwrap().restart().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .get(r.proxies[1].url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "/readyz still failing after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let authorize = fresh.start_login("/").await;
        let callback = fresh.pick_user(&authorize, "reader").await;
        let done = fresh.navigate(&r.on(&callback, 1)).await;
        if done.status() == 302 {
            break;
        }
        assert_eq!(done.status(), 503);
        assert!(Instant::now() < deadline, "still 503 after Redis returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let echo = fresh.echo("/").await;
    assert_eq!(seen(&echo, "x-forwarded-email"), ["reader@contoso.example"]);

    // The restarted Redis lost the first session: replica A forgets it too
    // (it cannot know what was revoked meanwhile), and the user is sent
    // through sign-in again, not shown an error.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = a.navigate(&a.url("/write")).await;
        if r.status() == 302 {
            assert!(location(&r).starts_with("/auth/login"), "{}", location(&r));
            break;
        }
        // 200 until the replica learns Redis was lost; 503 while its own
        // connection is still coming back.
        assert!(matches!(r.status().as_u16(), 200 | 503), "{}", r.status());
        assert!(
            Instant::now() < deadline,
            "replica A kept a session Redis lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn concurrent_refreshes_across_replicas_redeem_each_refresh_token_once() {
    // Access tokens that live 30 s are always "about to expire": every
    // request that passes one on refreshes first. The dev IdP rotates
    // refresh tokens and refuses a reused one (invalid_grant), as Entra
    // does; two replicas redeeming the same one would end the session.
    let idp_config = DevIdpConfig {
        access_token_lifetime_secs: 30,
        ..Default::default()
    };
    let r = Replicas::with(
        2,
        RedisServer::start().await,
        "pass_access_token = true",
        idp_config,
    )
    .await;
    let a = Browser::new(r.proxies[0].addr);
    a.sign_in("reader", "/").await;
    let b = r.at(&a, 1);
    for round in 0..4 {
        let results = futures_util::future::join_all((0..12).map(|i| {
            let browser = if i % 2 == 0 { &a } else { &b };
            let (c, url) = (
                browser.client.clone(),
                browser.url(&format!("/r{round}/{i}")),
            );
            async move { crate::harness::api_get(&c, url).await.status() }
        }))
        .await;
        assert!(
            results.iter().all(|st| *st == 200),
            "round {round}: {results:?}"
        );
    }
    for browser in [&a, &b] {
        let echo = browser.echo("/after").await;
        assert_eq!(
            seen(&echo, "x-forwarded-access-token").len(),
            1,
            "the session is alive, with a token, on both replicas"
        );
    }
}

/// Runs `aadgate sessions …` (the real binary) with the replicas' configuration.
async fn sessions_command(r: &Replicas, args: &[&str]) -> (bool, String) {
    run_sessions(&r.config, args).await
}

async fn run_sessions(config: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aadgate.toml");
    std::fs::write(&path, config).unwrap();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    // The replicas serve on this runtime: the command runs on another thread.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_aadgate"))
            .arg("sessions")
            .args(&args)
            .arg("--config")
            .arg(&path)
            .env("AADGATE_SESSION_SECRET", crate::harness::SECRET)
            .env("AADGATE_OIDC_CLIENT_SECRET", "unused-by-this-command")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits until replica `b` refuses the session of browser `b` (302 to
/// sign-in), at most `within`.
async fn refused_within(b: &Browser, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let status = b.navigate(&b.url("/")).await.status();
        if status == 302 {
            return;
        }
        assert_eq!(status, 200);
        assert!(
            Instant::now() < deadline,
            "the session still works after {within:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_by_user_or_all_on_every_replica() {
    let r = Replicas::start(2, RedisServer::start().await).await;
    let reader = Browser::new(r.proxies[0].addr);
    reader.sign_in("reader", "/").await;
    let admin = Browser::new(r.proxies[0].addr);
    admin.sign_in("admin", "/").await;
    // Both sessions are in replica B's memory too.
    let (reader_b, admin_b) = (r.at(&reader, 1), r.at(&admin, 1));
    assert_eq!(reader_b.navigate(&reader_b.url("/")).await.status(), 200);
    assert_eq!(admin_b.navigate(&admin_b.url("/")).await.status(), 200);

    let (ok, list) = sessions_command(&r, &["list"]).await;
    assert!(ok, "{list}");
    assert!(
        list.contains("reader@contoso.example") && list.contains("admin@contoso.example"),
        "{list}"
    );
    assert!(list.contains("2 session(s)"), "{list}");
    assert!(!list.contains("eyJ"), "no token is printed: {list}");

    let (ok, out) = sessions_command(&r, &["revoke", "--user", "READER@contoso.example"]).await;
    assert!(ok && out.contains("revoked 1 session(s)"), "{out}");
    refused_within(&reader_b, Duration::from_secs(1)).await;
    refused_within(&reader, Duration::from_secs(1)).await;
    assert_eq!(admin_b.navigate(&admin_b.url("/")).await.status(), 200);

    let (ok, out) = sessions_command(&r, &["revoke"]).await;
    assert!(!ok && out.contains("exactly one of"), "{out}");

    let (ok, out) = sessions_command(&r, &["revoke", "--all"]).await;
    assert!(ok && out.contains("revoked 1 session(s)"), "{out}");
    refused_within(&admin_b, Duration::from_secs(1)).await;
    refused_within(&admin, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_sessions_command_explains_a_file_store_in_use() {
    let s = crate::harness::Setup::new().await;
    let config = config_text(
        s.proxy().addr.port(),
        s.echo,
        &s.idp.idp,
        &s.store_dir.path().join("sessions"),
        "",
    );
    let (ok, out) = run_sessions(&config, &["list"]).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("one process at a time") && out.contains("Redis"),
        "{out}"
    );
}

#[tokio::test]
async fn signing_out_at_the_provider_ends_the_session_on_every_replica() {
    // Entra's front-channel logout: the provider's signed-out page loads the
    // app's front-channel logout URL in a hidden iframe, with only `sid`.
    let idp_config = DevIdpConfig {
        frontchannel_logout_url: Some("set by Replicas::with".into()),
        ..Default::default()
    };
    let r = Replicas::with(2, RedisServer::start().await, "", idp_config).await;
    let a = Browser::new(r.proxies[0].addr);
    a.sign_in("writer", "/").await;
    let other = Browser::new(r.proxies[0].addr);
    other.sign_in("admin", "/").await;
    let b = r.at(&a, 1);
    assert_eq!(b.navigate(&b.url("/")).await.status(), 200);

    // The user signs out at the provider (from another app, say), in the
    // browser that holds the provider's session cookie.
    let discovery: serde_json::Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        r.idp.idp.issuer()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let end_session = discovery["end_session_endpoint"].as_str().unwrap();
    let page = a.navigate(end_session).await.text().await.unwrap();
    let src = page
        .split("<iframe id=\"frontchannel\" src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no front-channel iframe: {page}"))
        .replace("&amp;", "&");
    assert!(src.contains("/auth/frontchannel-logout?sid="), "{src}");
    // A third-party iframe: no cookies.
    let framed = reqwest::get(&src).await.unwrap();
    assert_eq!(framed.status(), 200);

    refused_within(&b, Duration::from_secs(1)).await;
    refused_within(&a, Duration::from_secs(1)).await;
    // Another user's session is untouched.
    assert_eq!(other.navigate(&other.url("/")).await.status(), 200);
    // Without a sid: 400, nothing ended.
    let bare = reqwest::get(r.proxies[1].url("/auth/frontchannel-logout"))
        .await
        .unwrap();
    assert_eq!(bare.status(), 400);
    assert_eq!(other.navigate(&other.url("/")).await.status(), 200);
}

#[tokio::test]
async fn replicas_share_sessions_over_tls_with_a_private_ca() {
    // As Azure Cache for Redis: TLS only (rediss://), here with a CA of
    // our own given in session.redis_ca_file.
    let r = Replicas::start(2, RedisServer::start_tls().await).await;
    assert!(r.config.contains("rediss://localhost:"), "{}", r.config);
    let a = Browser::new(r.proxies[0].addr);
    a.sign_in("reader", "/").await;
    let b = r.at(&a, 1);
    let echo = b.echo("/").await;
    assert_eq!(seen(&echo, "x-forwarded-email"), ["reader@contoso.example"]);
    let out = a.navigate(&a.url("/auth/logout")).await;
    assert!(out.status().is_redirection());
    refused_within(&b, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn replicas_share_sessions_on_a_redis_cluster() {
    // Three primaries made by `redis-cli --cluster create`; each replica is
    // given all three as seeds and follows the slots itself.
    let r = Replicas::on_cluster(2, RedisCluster::start(3).await).await;
    assert!(
        r.config.contains("redis-cluster://127.0.0.1:"),
        "{}",
        r.config
    );
    let mut browsers = Vec::new();
    for user in ["reader", "writer", "admin", "reader", "writer", "admin"] {
        let a = Browser::new(r.proxies[0].addr);
        a.sign_in(user, "/").await;
        // The session, written through replica A, works on replica B.
        let b = r.at(&a, 1);
        let echo = b.echo("/").await;
        assert_eq!(
            seen(&echo, "x-forwarded-email"),
            [format!("{user}@contoso.example")]
        );
        browsers.push((a, b));
    }
    let cluster = r.cluster.as_ref().unwrap();
    let spread = cluster.keys_per_node().await;
    assert!(
        spread.iter().filter(|&&n| n > 0).count() >= 2,
        "the keys are spread over the primaries: {spread:?}"
    );

    // Listing scans every primary.
    let (ok, list) = sessions_command(&r, &["list"]).await;
    assert!(ok, "{list}");
    assert!(list.contains("6 session(s)"), "{list}");

    // Revoked by user and signed out: every replica refuses within a second.
    let (ok, out) = sessions_command(&r, &["revoke", "--user", "writer@contoso.example"]).await;
    assert!(ok && out.contains("revoked 2 session(s)"), "{out}");
    for i in [1, 4] {
        refused_within(&browsers[i].1, Duration::from_secs(1)).await;
        refused_within(&browsers[i].0, Duration::from_secs(1)).await;
    }
    let (a, b) = &browsers[0];
    let out = a.navigate(&a.url("/auth/logout")).await;
    assert!(out.status().is_redirection(), "{}", out.status());
    refused_within(b, Duration::from_secs(1)).await;
    let (a, b) = &browsers[2];
    assert_eq!(a.navigate(&a.url("/")).await.status(), 200);
    assert_eq!(b.navigate(&b.url("/")).await.status(), 200);
}

#[tokio::test]
async fn the_redis_store_writes_idle_clocks_back_and_scans_on_every_cluster_node() {
    use aadgate_core::session::{Record, RedisConfig, RedisStore, Store};
    let cluster = RedisCluster::start(3).await;
    let store = RedisStore::new(
        &RedisConfig {
            url: cluster.url(),
            password: None,
            prefix: "aadgate:".into(),
            ca_file: None,
            auth: Default::default(),
        },
        3600,
    )
    .unwrap();
    store.ping().await.expect("the cluster is ready");
    let now = aadgate_core::clock::Clock::system().now();
    let keys: Vec<[u8; 32]> = (0..40u8).map(|i| [i; 32]).collect();
    for key in &keys {
        let record = Record {
            expires_at: now + 86_400,
            last_seen: now - 120,
            sealed: vec![1, 2, 3],
        };
        store.put(key, &record).await.unwrap();
    }
    let spread = cluster.keys_per_node().await;
    assert!(
        spread.iter().all(|&n| n > 0),
        "keys on every primary: {spread:?}"
    );

    // One batch whose keys live on all three nodes; a deleted key's clock
    // is not written (no record comes back), and no clock goes backwards.
    store.delete(&keys[0]).await.unwrap();
    let mut batch: Vec<([u8; 32], i64)> = keys.iter().map(|k| (*k, now)).collect();
    batch[1].1 = now - 500;
    store
        .touch(batch)
        .await
        .expect("the write-back on a cluster");
    assert!(store.get(&keys[0]).await.unwrap().is_none());
    assert_eq!(
        store.get(&keys[1]).await.unwrap().unwrap().last_seen,
        now - 120
    );
    for key in &keys[2..] {
        let r = store.get(key).await.unwrap().unwrap();
        assert_eq!((r.last_seen, r.sealed.as_slice()), (now, &[1u8, 2, 3][..]));
    }

    let mut listed = Vec::new();
    store
        .scan(&mut |key, _| listed.push(key))
        .await
        .expect("a scan of every primary");
    listed.sort_unstable();
    assert_eq!(listed, keys[1..].to_vec());
}
