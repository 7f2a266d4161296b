//! Unit tests of reading, overlaying and validating a configuration.

use std::time::Duration;

use base64::Engine as _;

use super::validate::decode_secret;
use super::*;
use crate::error::ConfigError;
use crate::session::RedisAuth;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn base() -> String {
    format!(
        r#"
public_url = "http://127.0.0.1:4180"
upstream = "http://127.0.0.1:8050"
[oidc]
tenant = "contoso.onmicrosoft.com"
client_id = "abc"
client_secret = "s"
[session]
secret = "{SECRET}"
store = "memory"
"#
    )
}

/// The first error of the library's or the proxy's settings.
fn err(toml: &str, env: &[(&str, &str)]) -> ConfigError {
    Config::from_toml_and_env(toml, env.iter().copied())
        .and_then(|c| c.validate().and_then(|_| c.proxy_settings()))
        .unwrap_err()
}

#[test]
fn defaults_resolve_to_entra_public_cloud() {
    let s = Config::from_toml_and_env(&base(), Vec::<(String, String)>::new())
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(
        s.issuer.as_str(),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
    );
    assert_eq!(s.scopes, ["openid", "profile", "email", "offline_access"]);
    assert_eq!(s.clock_skew, Duration::from_secs(120));
    assert_eq!(
        s.post_logout_redirect_uri.as_str(),
        "http://127.0.0.1:4180/auth/signed-out"
    );
}

#[test]
fn env_overrides_sections_lists_and_top_level() {
    let c = Config::from_toml_and_env(
        &base(),
        [
            ("AADGATE_OIDC_CLIENT_SECRET", "env-secret"),
            ("AADGATE_AUTHZ_ROLES", "App.Read, App.Admin"),
            ("AADGATE_UPSTREAM", "http://127.0.0.1:9000"),
            ("AADGATE_PASS_ACCESS_TOKEN", "true"),
            ("AADGATE_SESSION_IDLE_TIMEOUT_SECS", "60"),
            ("AADGATE_LOG", "debug"),
        ],
    )
    .unwrap();
    assert_eq!(c.oidc.client_secret.as_deref(), Some("env-secret"));
    assert_eq!(c.authz.roles, ["App.Read", "App.Admin"]);
    assert_eq!(c.upstream.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(c.pass_access_token);
    assert_eq!(c.session.idle_timeout_secs, Some(60));
}

#[test]
fn errors_name_the_key_and_the_fix() {
    let e = err(&base().replace("client_id = \"abc\"\n", ""), &[]);
    assert_eq!(e.key, "oidc.client_id");
    assert!(e.fix.contains("Application (client) ID"));

    let e = err(&base(), &[("AADGATE_SESSION_SECRET", "tooshort")]);
    assert_eq!(e.key, "session.secret");

    let e = err(
        &base(),
        &[("AADGATE_PUBLIC_URL", "http://dash.example.com")],
    );
    assert_eq!(e.key, "public_url");

    let e = err(
        &base(),
        &[("AADGATE_OIDC_ISSUER", "http://idp.example.com/x")],
    );
    assert_eq!(e.key, "oidc.issuer");

    let e = err(&format!("{}\nbogus = 1\n", base()), &[]);
    assert!(e.to_string().contains("bogus"), "{e}");

    let e = err(
        &base(),
        &[("AADGATE_UPSTREAM", "https://app.internal:8443")],
    );
    assert_eq!(e.key, "upstream");
    assert!(e.fix.contains("plain http"), "{}", e.fix);

    // The library does without `upstream`; the proxy names it.
    let no_upstream = base().replace("upstream = \"http://127.0.0.1:8050\"\n", "");
    let c = Config::from_toml_and_env(&no_upstream, Vec::<(String, String)>::new()).unwrap();
    assert!(c.validate().is_ok());
    let e = c.proxy_settings().unwrap_err();
    assert_eq!(e.key, "upstream");
    assert!(e.problem.contains("AADGATE_UPSTREAM"), "{}", e.problem);

    let e = err(&base(), &[("AADGATE_OIDC_TENANT", "organizations")]);
    assert_eq!(e.key, "oidc.allowed_tenants");
}

#[test]
fn workers_default_to_the_cpus_and_are_bounded() {
    let ok = |env: &[(&str, &str)]| {
        Config::from_toml_and_env(&base(), env.iter().copied())
            .unwrap()
            .proxy_settings()
            .unwrap()
            .workers
    };
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(ok(&[]), cpus);
    assert_eq!(ok(&[("AADGATE_WORKERS", "3")]), 3);
    for bad in ["0", "1025"] {
        let e = err(&base(), &[("AADGATE_WORKERS", bad)]);
        assert_eq!(e.key, "workers");
        assert!(e.fix.contains("1 to 1024"), "{}", e.fix);
    }
    let e = err(&base(), &[("AADGATE_WORKERS", "two")]);
    assert_eq!(e.key, "AADGATE_WORKERS");
    assert!(e.fix.contains("whole number"), "{}", e.fix);
}

#[test]
fn metrics_are_off_unless_an_address_is_given_and_it_must_be_its_own() {
    let proxy = |env: &[(&str, &str)]| {
        Config::from_toml_and_env(&base(), env.iter().copied())
            .unwrap()
            .proxy_settings()
            .unwrap()
    };
    assert_eq!(proxy(&[]).metrics_listen, None);
    assert_eq!(
        proxy(&[("AADGATE_METRICS_LISTEN", "127.0.0.1:9090")]).metrics_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    let in_file = format!("metrics_listen = \"[::1]:9100\"\n{}", base());
    let c = Config::from_toml_and_env(&in_file, Vec::<(String, String)>::new()).unwrap();
    assert_eq!(
        c.proxy_settings().unwrap().metrics_listen,
        Some("[::1]:9100".parse().unwrap())
    );
    for bad in ["localhost:9090", "9090", ""] {
        let e = err(&base(), &[("AADGATE_METRICS_LISTEN", bad)]);
        assert_eq!(e.key, "metrics_listen", "{bad}");
        assert!(e.fix.contains("127.0.0.1:9090"), "{}", e.fix);
    }
    let e = err(&base(), &[("AADGATE_METRICS_LISTEN", "127.0.0.1:4180")]);
    assert_eq!(e.key, "metrics_listen");
    assert!(e.to_string().contains("same address as `listen`"), "{e}");
    assert!(e.fix.contains("own port"), "{}", e.fix);
}

#[test]
fn debug_output_hides_secrets() {
    let s = Config::from_toml_and_env(&base(), Vec::<(String, String)>::new())
        .unwrap()
        .validate()
        .unwrap();
    let d = format!("{s:?}");
    assert!(
        !d.contains(SECRET) && !d.contains("client_secret: \"s\""),
        "{d}"
    );
}

#[test]
fn secrets_accept_hex_and_base64() {
    assert_eq!(decode_secret(SECRET).unwrap().len(), 32);
    let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 48]);
    assert_eq!(decode_secret(&b64).unwrap().len(), 48);
    assert!(decode_secret("00ff").is_none());
}

#[test]
fn multi_tenant_and_sovereign_clouds() {
    let s = Config::from_toml_and_env(
        &base(),
        [
            ("AADGATE_OIDC_TENANT", "organizations"),
            ("AADGATE_OIDC_CLOUD", "usgov"),
            ("AADGATE_OIDC_ALLOWED_TENANTS", "*"),
        ],
    )
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(
        s.issuer.as_str(),
        "https://login.microsoftonline.us/organizations/v2.0"
    );
    assert!(matches!(
        s.provider,
        ProviderKind::Entra {
            multi_tenant: true,
            ..
        }
    ));
}

#[test]
fn every_key_reads_from_the_environment_by_its_type_in_the_schema() {
    // Numbers, booleans and lists anywhere in the schema, with no list of
    // keys to keep in step: each is parsed as its field's type.
    let c = Config::from_toml_and_env(
        &base(),
        [
            ("AADGATE_LIMITS_SIGNIN_PER_MINUTE", "7"),
            ("AADGATE_LIMITS_MAX_CONNECTIONS", "300"),
            ("AADGATE_DASH_SESSION_SCRIPT", "yes"),
            ("AADGATE_DASH_MAX_BODY_BYTES", "1024"),
            ("AADGATE_SESSION_REVALIDATE_SECS", "0"),
            ("AADGATE_OIDC_ALLOWED_ALGORITHMS", "RS256,PS256"),
            ("AADGATE_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            ("AADGATE_WORKERS", "3"),
        ],
    )
    .unwrap();
    assert_eq!(c.limits.signin_per_minute, Some(7));
    assert_eq!(c.limits.max_connections, Some(300));
    assert!(c.dash.session_script);
    assert_eq!(c.dash.max_body_bytes, Some(1024));
    assert_eq!(c.session.revalidate_secs, Some(0));
    assert_eq!(
        c.oidc.allowed_algorithms.as_deref(),
        Some(&["RS256".to_owned(), "PS256".to_owned()][..])
    );
    assert_eq!(c.trusted_proxies, ["10.0.0.0/8"]);
    assert_eq!(c.workers, Some(3));

    // Tables and lists of tables are for the file, and a mistyped key of a
    // section is named by the reader.
    let e = Config::from_toml_and_env(&base(), [("AADGATE_ROUTE", "/admin")]).unwrap_err();
    assert_eq!(e.key, "AADGATE_ROUTE");
    assert!(e.fix.contains("configuration file"), "{}", e.fix);
    let e = Config::from_toml_and_env(&base(), [("AADGATE_DASH_CALLBACK", "x")]).unwrap_err();
    assert_eq!(e.key, "AADGATE_DASH_CALLBACK");
    let e =
        Config::from_toml_and_env(&base(), [("AADGATE_LIMITS_SIGNIN_PER_MINUT", "7")]).unwrap_err();
    assert!(e.to_string().contains("signin_per_minut"), "{e}");
    let e =
        Config::from_toml_and_env(&base(), [("AADGATE_LIMITS_HEADER_SECS", "soon")]).unwrap_err();
    assert_eq!(e.key, "AADGATE_LIMITS_HEADER_SECS");
    assert!(e.fix.contains("seconds"), "{}", e.fix);
}

#[test]
fn the_session_cache_budget_is_in_mib_and_bounded() {
    let with = |line: &str| {
        let text = base().replace("[session]", &format!("[session]\n{line}"));
        Config::from_toml_and_env(&text, std::iter::empty::<(&str, &str)>())
            .and_then(|c| c.validate())
    };
    assert_eq!(with("").unwrap().cache_budget, 256 << 20);
    assert_eq!(with("cache_mib = 16").unwrap().cache_budget, 16 << 20);
    for bad in ["cache_mib = 0", "cache_mib = 2000000"] {
        let e = with(bad).unwrap_err();
        assert_eq!(e.key, "session.cache_mib", "{bad}");
    }
}

#[test]
fn redis_stores_are_checked_at_start_up() {
    let with = |store: &str, env: &[(&str, &str)]| {
        let text = base().replace("store = \"memory\"", &format!("store = \"{store}\""));
        Config::from_toml_and_env(&text, env.iter().copied()).and_then(|c| c.validate())
    };
    let ok = with(
        "rediss://cache.contoso.example:6380/2",
        &[("AADGATE_SESSION_REDIS_PASSWORD", "access-key")],
    );
    if cfg!(feature = "redis") {
        let StoreKind::Redis(r) = ok.unwrap().store else {
            panic!("not a Redis store")
        };
        assert_eq!(r.url, "rediss://cache.contoso.example:6380/2");
        assert_eq!(r.password.as_deref(), Some("access-key"));
        assert_eq!(r.prefix, "aadgate:");
        assert!(!format!("{r:?}").contains("access-key"));
    } else {
        assert!(ok.unwrap_err().problem.contains("Redis support"));
    }
    if cfg!(feature = "redis") {
        let StoreKind::Redis(r) = with("rediss-cluster://u:pw@a:7000,b:7001", &[])
            .unwrap()
            .store
        else {
            panic!("not a Redis store")
        };
        assert_eq!(
            r.cluster_nodes(),
            Some(Ok(vec![
                "rediss://u:pw@a:7000".to_owned(),
                "rediss://u:pw@b:7001".to_owned()
            ]))
        );
        assert!(!format!("{r:?}").contains("pw"), "{r:?}");
    }
    for bad in [
        "redis-cluster://",
        "redis-cluster://a:7000,",
        "redis-cluster://a,b:7001",
        "redis-cluster://a:7000/2",
    ] {
        let e = with(bad, &[]).unwrap_err();
        assert_eq!(e.key, "session.store", "{bad}");
        assert!(
            e.fix.contains("redis-cluster://host:port"),
            "{bad}: {}",
            e.fix
        );
    }
    let e = with("redis://", &[]).unwrap_err();
    assert_eq!(e.key, "session.store");
    let e = with("bogus", &[]).unwrap_err();
    assert!(e.fix.contains("redis://"), "{}", e.fix);
    if cfg!(feature = "redis") {
        let e = with(
            "redis://127.0.0.1:6379",
            &[("AADGATE_SESSION_REDIS_CA_FILE", "/nonexistent/ca.pem")],
        )
        .unwrap_err();
        assert_eq!(e.key, "session.redis_ca_file");
        let e = with(
            "redis://127.0.0.1:6379",
            &[("AADGATE_SESSION_REDIS_PREFIX", "two words")],
        )
        .unwrap_err();
        assert_eq!(e.key, "session.redis_prefix");
    }
    let e = with("memory", &[("AADGATE_SESSION_REDIS_PASSWORD", "x")]).unwrap_err();
    assert_eq!(e.key, "session.redis_password");
}

#[test]
fn redis_entra_authentication_is_chosen_by_name_and_excludes_a_password() {
    if !cfg!(feature = "redis") {
        return;
    }
    let with = |store: &str, env: &[(&str, &str)]| {
        let text = base().replace("store = \"memory\"", &format!("store = \"{store}\""));
        Config::from_toml_and_env(&text, env.iter().copied()).and_then(|c| c.validate())
    };
    let auth = |store: &str, env: &[(&str, &str)]| match with(store, env).map(|s| s.store) {
        Ok(StoreKind::Redis(r)) => Ok(r.auth),
        Ok(_) => panic!("not a Redis store"),
        Err(e) => Err(e),
    };
    let cache = "rediss://cache.contoso.example:6380";
    assert_eq!(auth(cache, &[]).unwrap(), RedisAuth::Password);
    assert_eq!(
        auth(cache, &[("AADGATE_SESSION_REDIS_AUTH", "managed-identity")]).unwrap(),
        RedisAuth::ManagedIdentity { client_id: None }
    );
    assert_eq!(
        auth(
            cache,
            &[
                ("AADGATE_SESSION_REDIS_AUTH", "managed-identity"),
                ("AADGATE_SESSION_REDIS_IDENTITY_CLIENT_ID", "5e1f-client")
            ]
        )
        .unwrap(),
        RedisAuth::ManagedIdentity {
            client_id: Some("5e1f-client".into())
        }
    );
    assert_eq!(
        auth(
            "rediss-cluster://a:7000,b:7001",
            &[("AADGATE_SESSION_REDIS_AUTH", "workload-identity")]
        )
        .unwrap(),
        RedisAuth::WorkloadIdentity
    );
    let e = auth(cache, &[("AADGATE_SESSION_REDIS_AUTH", "entra")]).unwrap_err();
    assert_eq!(e.key, "session.redis_auth");
    assert!(e.fix.contains("managed-identity"), "{}", e.fix);
    for (store, env) in [
        (
            "rediss://u:key@cache.contoso.example:6380",
            vec![("AADGATE_SESSION_REDIS_AUTH", "managed-identity")],
        ),
        (
            cache,
            vec![
                ("AADGATE_SESSION_REDIS_AUTH", "workload-identity"),
                ("AADGATE_SESSION_REDIS_PASSWORD", "key"),
            ],
        ),
        (
            "rediss-cluster://u:key@a:7000",
            vec![("AADGATE_SESSION_REDIS_AUTH", "managed-identity")],
        ),
    ] {
        let e = auth(store, &env).unwrap_err();
        assert_eq!(e.key, "session.redis_auth", "{store}");
        assert!(e.fix.contains("remove the password"), "{}", e.fix);
    }
    let e = auth(
        cache,
        &[("AADGATE_SESSION_REDIS_IDENTITY_CLIENT_ID", "5e1f-client")],
    )
    .unwrap_err();
    assert_eq!(e.key, "session.redis_identity_client_id");
    let e = with(
        "memory",
        &[("AADGATE_SESSION_REDIS_AUTH", "managed-identity")],
    )
    .unwrap_err();
    assert_eq!(e.key, "session.redis_auth");
}

#[test]
fn file_mistakes_name_their_line_and_secrets_come_from_mounted_files() {
    let e = Config::from_toml_and_env(
        "public_url = \"x\"\n[oidc\nclient_id = 1\n",
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert!(e.problem.contains("line 2"), "{e}");
    let text = format!("{}\n[authz]\nroles = \"App.Read\"\n", base());
    let line = text.lines().position(|l| l.starts_with("roles")).unwrap() + 1;
    let e = Config::from_toml_and_env(&text, Vec::<(String, String)>::new()).unwrap_err();
    assert!(e.problem.contains(&format!("line {line}, column 9")), "{e}");
    assert!(e.problem.contains("expected a sequence"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client_secret");
    std::fs::write(&path, "from-a-mounted-file\n").unwrap();
    let c = Config::from_toml_and_env(
        &base(),
        [("AADGATE_OIDC_CLIENT_SECRET_FILE", path.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(c.oidc.client_secret.as_deref(), Some("from-a-mounted-file"));
    let e = Config::from_toml_and_env(
        &base(),
        [("AADGATE_SESSION_SECRET_FILE", "/nonexistent/secret")],
    )
    .unwrap_err();
    assert_eq!(e.key, "AADGATE_SESSION_SECRET_FILE");
    // Not a key: left alone, as any foreign AADGATE_ variable.
    assert!(Config::from_toml_and_env(&base(), [("AADGATE_LOG_FILE", "/x")]).is_ok());
}

#[test]
fn forward_auth_hosts_must_receive_the_session_cookie() {
    let with = |top: &str, session: &str| {
        base()
            .replace("[oidc]", &format!("{top}\n[oidc]"))
            .replace("[session]", &format!("[session]\n{session}"))
            .replace("127.0.0.1:4180", "auth.contoso.localhost:4180")
    };
    // A protected host without a cookie domain would loop through sign-in.
    let e = err(
        &with("[forward_auth]\nhosts = [\"app.contoso.localhost\"]", ""),
        &[],
    );
    assert_eq!(e.key, "forward_auth.hosts");
    assert!(e.to_string().contains("session.cookie_domain"), "{e}");
    // Outside the cookie domain: the same.
    let e = err(
        &with(
            "[forward_auth]\nhosts = [\"app.other.localhost\"]",
            "cookie_domain = \"contoso.localhost\"",
        ),
        &[],
    );
    assert_eq!(e.key, "forward_auth.hosts");
    // A cookie domain that does not contain public_url's host.
    let e = err(&with("", "cookie_domain = \"other.localhost\""), &[]);
    assert_eq!(e.key, "session.cookie_domain");
    assert!(e.to_string().contains("does not contain"), "{e}");
    // Not a domain at all: said so, not "does not contain".
    for bad in [
        "*.contoso.localhost",
        "localhost",
        "https://contoso.localhost",
    ] {
        let e = err(&with("", &format!("cookie_domain = \"{bad}\"")), &[]);
        assert_eq!(e.key, "session.cookie_domain", "{bad}");
        assert!(e.to_string().contains("not a domain"), "{bad}: {e}");
    }
    for bad in [
        "*",
        "*.localhost",
        "https://x.contoso.localhost",
        "x.contoso.localhost:80",
    ] {
        let e = err(
            &with(
                &format!("[forward_auth]\nhosts = [\"{bad}\"]"),
                "cookie_domain = \"contoso.localhost\"",
            ),
            &[],
        );
        assert_eq!(e.key, "forward_auth.hosts", "{bad}");
    }
    let s = Config::from_toml_and_env(
        &with(
            "[forward_auth]\nhosts = [\"app.contoso.localhost\", \"*.apps.contoso.localhost\"]",
            "cookie_domain = \".Contoso.localhost\"",
        ),
        Vec::<(String, String)>::new(),
    )
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(s.cookie_domain.as_deref(), Some("contoso.localhost"));
    assert!(s.hosts.contains("x.apps.contoso.localhost"));
    assert!(!s.hosts.contains("apps.contoso.localhost"));
}

#[test]
fn identity_header_families_are_named() {
    let e = err(
        &format!("identity_headers = [\"easy-auth\"]\n{}", base()),
        &[],
    );
    assert_eq!(e.key, "identity_headers");
    let s = Config::from_toml_and_env(
        &format!("identity_headers = [\"oauth2-proxy\"]\n{}", base()),
        Vec::<(String, String)>::new(),
    )
    .unwrap()
    .validate()
    .unwrap();
    assert!(s.identity_headers.oauth2_proxy && !s.identity_headers.aadgate);
    let s = Config::from_toml_and_env(
        &base(),
        [("AADGATE_IDENTITY_HEADERS", "aadgate,oauth2-proxy")],
    )
    .unwrap()
    .validate()
    .unwrap();
    assert!(
        s.identity_headers.aadgate
            && s.identity_headers.oauth2_proxy
            && !s.identity_headers.app_service
    );
}

#[test]
fn later_files_override_earlier_ones_key_by_key_and_arrays_whole() {
    let base = format!(
        "{}\n[authz]\nroles = [\"App.Read\", \"App.Admin\"]\n[[route]]\npath = \"/admin\"\nrole = \"App.Admin\"\n[[route]]\npath = \"/assets\"\npublic = true\n",
        base()
    );
    let production = r#"
public_url = "https://dash.contoso.com"
[oidc]
client_id = "production-client"
[authz]
roles = ["App.Read"]
[[route]]
path = "/health"
public = true
"#;
    let c = Config::from_files_and_env(
        &[("base.toml", &base), ("production.toml", production)],
        [("AADGATE_OIDC_CLIENT_ID", "from-the-environment")],
    )
    .unwrap();
    // The later file's keys win; keys it does not mention are the base's.
    assert_eq!(c.public_url.as_deref(), Some("https://dash.contoso.com"));
    assert_eq!(c.oidc.tenant.as_deref(), Some("contoso.onmicrosoft.com"));
    assert_eq!(c.upstream.as_deref(), Some("http://127.0.0.1:8050"));
    assert_eq!(c.session.store.as_deref(), Some("memory"));
    // Arrays are replaced, not appended to.
    assert_eq!(c.authz.roles, ["App.Read"]);
    assert_eq!(c.route.len(), 1);
    assert_eq!(c.route[0].path, "/health");
    // The environment wins over every file.
    assert_eq!(c.oidc.client_id.as_deref(), Some("from-the-environment"));
    c.validate().unwrap();

    // Order matters: the other way round, the base wins.
    let c = Config::from_files_and_env(
        &[("production.toml", production), ("base.toml", &base)],
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    assert_eq!(c.oidc.client_id.as_deref(), Some("abc"));
    assert_eq!(c.route.len(), 2);
}

#[test]
fn the_environment_alone_is_a_whole_configuration() {
    let env = [
        ("AADGATE_PUBLIC_URL", "https://dash.contoso.com"),
        ("AADGATE_UPSTREAM", "http://127.0.0.1:8050"),
        ("AADGATE_OIDC_TENANT", "contoso.onmicrosoft.com"),
        ("AADGATE_OIDC_CLIENT_ID", "abc"),
        ("AADGATE_OIDC_CLIENT_SECRET", "s"),
        ("AADGATE_SESSION_SECRET", SECRET),
        ("AADGATE_SESSION_STORE", "memory"),
        ("AADGATE_AUTHZ_ROLES", "App.Read,App.Admin"),
    ];
    let c = Config::from_files_and_env(&[], env).unwrap();
    let s = c.validate().unwrap();
    assert_eq!(
        s.redirect_uri.as_str(),
        "https://dash.contoso.com/auth/callback"
    );
    assert_eq!(
        c.proxy_settings().unwrap().upstream.as_str(),
        "http://127.0.0.1:8050/"
    );

    // Each required key, when missing, is named as the file's key and as
    // its environment variable.
    for (key, variable) in [
        ("public_url", "AADGATE_PUBLIC_URL"),
        ("oidc.tenant", "AADGATE_OIDC_TENANT"),
        ("oidc.client_id", "AADGATE_OIDC_CLIENT_ID"),
        ("oidc.client_secret", "AADGATE_OIDC_CLIENT_SECRET"),
        ("session.secret", "AADGATE_SESSION_SECRET"),
        ("upstream", "AADGATE_UPSTREAM"),
    ] {
        let without: Vec<_> = env
            .iter()
            .filter(|(k, _)| *k != variable)
            .copied()
            .collect();
        let e = Config::from_files_and_env(&[], without)
            .and_then(|c| c.validate().and_then(|_| c.proxy_settings()))
            .unwrap_err();
        assert_eq!(e.key, key);
        assert!(e.problem.contains(variable), "{e}");
        assert!(
            e.to_string().contains(&format!("`{key}` is missing")),
            "{e}"
        );
    }
}

#[test]
fn toml_errors_name_the_file_line_and_column_and_show_the_line() {
    // Syntax.
    let e = Config::from_files_and_env(
        &[
            ("good.toml", &base()),
            (
                "/etc/aadgate/bad.toml",
                "public_url = \"x\"\n[oidc\nclient_id = 1\n",
            ),
        ],
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(e.key, "/etc/aadgate/bad.toml");
    assert!(
        e.problem.starts_with("is not valid TOML: line 2, column 6"),
        "{e}"
    );
    assert_eq!(
        e.excerpt,
        " --> /etc/aadgate/bad.toml:2:6\n  |\n2 | [oidc\n  |      ^"
    );
    assert!(e.to_string().ends_with(&e.excerpt), "{e}");

    // A value of the wrong type: the key too.
    let text = format!("{}\n[authz]\nroles = \"App.Read\"\n", base());
    let line = text.lines().position(|l| l.starts_with("roles")).unwrap() + 1;
    let e = Config::from_files_and_env(
        &[("base.toml", &base()), ("prod.toml", &text)],
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(e.key, "authz.roles");
    assert!(
        e.problem.starts_with(&format!(
            "in prod.toml, line {line}, column 9: invalid type"
        )),
        "{e}"
    );
    assert!(
        e.excerpt
            .contains(&format!("{line} | roles = \"App.Read\"\n")),
        "{e}"
    );
    assert!(e.excerpt.ends_with("|         ^^^^^^^^^^"), "{e}");

    // Unknown keys, nested and in an array of tables.
    let e = Config::from_toml_and_env(
        &format!("{}\n[limits]\nsignin_per_minut = 3\n", base()),
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(e.key, "limits.signin_per_minut");
    assert!(e.problem.contains("unknown field"), "{e}");
    let e = Config::from_toml_and_env(
        &format!(
            "{}\n[[route]]\npath = \"/a\"\n[[route]]\nrole = 1\n",
            base()
        ),
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(e.key, "route[1].role");
    let e = Config::from_toml_and_env(
        &format!("{}\n[[route]]\nrole = \"App.Read\"\n", base()),
        Vec::<(String, String)>::new(),
    )
    .unwrap_err();
    assert_eq!(e.key, "route[0].path");
    assert!(e.problem.contains("missing field"), "{e}");

    // A wrong type from the environment names the variable.
    let e = Config::from_toml_and_env(&base(), [("AADGATE_WORKERS", "-1")]).unwrap_err();
    assert_eq!(e.key, "AADGATE_WORKERS");
    assert!(e.excerpt.is_empty());
}

#[test]
fn the_app_authenticates_one_way_a_secret_a_certificate_or_a_federated_token() {
    use crate::client_auth::ClientAuth;
    let no_secret = base().replace("client_secret = \"s\"\n", "");
    let settings = |toml: &str, env: &[(&str, &str)]| {
        Config::from_toml_and_env(toml, env.iter().copied())
            .unwrap()
            .validate()
    };
    assert!(matches!(
        settings(&base(), &[]).unwrap().client_auth,
        ClientAuth::Secret(_)
    ));
    // Nothing at all: the secret is missing, and the fix names the others.
    let e = settings(&no_secret, &[]).unwrap_err();
    assert_eq!(e.key, "oidc.client_secret");
    assert!(e.to_string().contains("client_certificate"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJ.fed.token").unwrap();
    let token = token.display().to_string();
    // AKS workload identity's variable signs the app in when nothing else does...
    let s = settings(&no_secret, &[("AZURE_FEDERATED_TOKEN_FILE", &token)]).unwrap();
    assert!(
        matches!(&s.client_auth, ClientAuth::AssertionFile(p) if p.display().to_string() == token)
    );
    // ... but not instead of a configured secret (Redis may use it alone).
    let s = settings(&base(), &[("AZURE_FEDERATED_TOKEN_FILE", &token)]).unwrap();
    assert!(matches!(s.client_auth, ClientAuth::Secret(_)));
    // Two ways at once, a key without its certificate, unreadable files.
    let both = base().replace(
        "[session]",
        &format!("client_assertion_file = \"{token}\"\n[session]"),
    );
    assert_eq!(settings(&both, &[]).unwrap_err().key, "oidc.client_secret");
    let key_only = no_secret.replace("[session]", "client_key = \"/k.pem\"\n[session]");
    assert_eq!(settings(&key_only, &[]).unwrap_err().key, "oidc.client_key");
    let cert_only = no_secret.replace(
        "[session]",
        &format!("client_certificate = \"{token}\"\n[session]"),
    );
    assert_eq!(
        settings(&cert_only, &[]).unwrap_err().key,
        "oidc.client_key"
    );
    let not_pem = no_secret.replace(
        "[session]",
        &format!("client_certificate = \"{token}\"\nclient_key = \"{token}\"\n[session]"),
    );
    let e = settings(&not_pem, &[]).unwrap_err();
    assert_eq!(e.key, "oidc.client_certificate");
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let missing_file = no_secret.replace(
        "[session]",
        "client_assertion_file = \"/nonexistent/token\"\n[session]",
    );
    assert_eq!(
        settings(&missing_file, &[]).unwrap_err().key,
        "oidc.client_assertion_file"
    );
}

#[test]
fn federated_tokens_and_group_overage_are_checked_at_start_up() {
    use crate::client_auth::ClientAuth;
    let no_secret = base().replace("client_secret = \"s\"\n", "");
    let settings = |toml: &str, env: &[(&str, &str)]| {
        Config::from_toml_and_env(toml, env.iter().copied())
            .unwrap()
            .validate()
    };
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "eyJ.fed.token").unwrap();
    let token = token.display().to_string();
    // The pod's token is another identity's (AZURE_CLIENT_ID): not the app's.
    let e = settings(
        &no_secret,
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", &token),
            ("AZURE_CLIENT_ID", "someone-else"),
        ],
    )
    .unwrap_err();
    assert_eq!(e.key, "oidc.client_secret");
    let s = settings(
        &no_secret,
        &[
            ("AZURE_FEDERATED_TOKEN_FILE", &token),
            ("AZURE_CLIENT_ID", "ABC"),
        ],
    )
    .unwrap();
    assert!(matches!(s.client_auth, ClientAuth::AssertionFile(_)));
    // Path keys refuse the _FILE form (it would read a private key into a path).
    let e = Config::from_toml_and_env(
        &no_secret,
        [("AADGATE_OIDC_CLIENT_KEY_FILE", token.as_str())],
    )
    .unwrap_err();
    assert_eq!(e.key, "AADGATE_OIDC_CLIENT_KEY_FILE");
    // PEM text where a path belongs is refused without being repeated.
    let pem = no_secret.replace(
        "[session]",
        "client_certificate = \"/c.pem\"\nclient_key = \"-----BEGIN PRIVATE KEY-----MIIsecret\"\n[session]",
    );
    let e = settings(&pem, &[]).unwrap_err().to_string();
    assert!(!e.contains("MIIsecret"), "{e}");

    // Group overage needs a Graph permission among the scopes.
    let overage = base().replace(
        "[session]",
        "[authz]\nresolve_group_overage = true\n[session]",
    );
    let e = settings(&overage, &[]).unwrap_err();
    assert_eq!(e.key, "oidc.scopes");
    assert!(e.to_string().contains("GroupMember.Read.All"), "{e}");
    let granted = overage.replace(
        "client_secret = \"s\"",
        "client_secret = \"s\"\nscopes = [\"profile\", \"https://graph.microsoft.com/GroupMember.Read.All\"]",
    );
    let s = settings(&granted, &[]).unwrap();
    assert_eq!(
        s.graph_url.unwrap().as_str(),
        "https://graph.microsoft.com/"
    );
    // An issuer that is not the local dev IdP never gets the Graph token.
    let custom = granted.replace(
        "tenant = \"contoso.onmicrosoft.com\"",
        "tenant = \"contoso.onmicrosoft.com\"\nissuer = \"https://contoso.ciamlogin.com/contoso.onmicrosoft.com/v2.0\"",
    );
    assert_eq!(
        settings(&custom, &[]).unwrap().graph_url.unwrap().as_str(),
        "https://graph.microsoft.com/"
    );
}
