//! Bearer tokens for APIs (`[[route]] auth = "bearer" | "any"`): tokens the
//! dev IdP issues (a client application's client-credentials token with its
//! application roles, a user's delegated token for the API's scopes), and
//! tokens minted by the independent provider of `adversary.rs` (generic and
//! Entra-shaped, v1.0 and v2.0), each through the real proxy to the echo app.

use aadgate_dev_idp::DevIdpConfig;
use aadgate_dev_idp::config::{DEFAULT_CLIENT_APP_ID, DEFAULT_CLIENT_APP_SECRET, DevClientApp};
use serde_json::{Value, json};

use crate::adversary::{Adversary, CLIENT, now, proxy_for};
use crate::harness::{Setup, seen, urlenc};

const ROUTES: &str = r#"
[[route]]
path = "/api"
auth = "bearer"

[[route]]
path = "/api/admin"
auth = "bearer"
role = "App.Admin"

[[route]]
path = "/api/reports"
auth = "bearer"
scopes = ["Dashboards.Read"]

[[route]]
path = "/mixed"
auth = "any"
"#;

const ADMIN_JOB: &str = "0c4e7a19-5b2d-4f8e-a613-9d2b8e5f7c31";

fn idp_config() -> DevIdpConfig {
    let mut c = DevIdpConfig {
        api_scopes: vec!["access_as_user".into(), "Dashboards.Read".into()],
        ..DevIdpConfig::default()
    };
    c.client_apps.push(DevClientApp {
        name: "admin-job".into(),
        client_id: ADMIN_JOB.into(),
        client_secret: "admin-job-secret".into(),
        roles: vec!["App.Admin".into()],
        redirect_uris: vec![],
    });
    c
}

struct Api {
    s: Setup,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        Self {
            s: Setup::with_options(ROUTES, idp_config()).await,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    fn endpoint(&self, what: &str) -> String {
        let idp = &self.s.idp;
        format!(
            "http://{}/{}/oauth2/v2.0/{what}",
            idp.addr,
            idp.idp.config().tenant_id
        )
    }

    /// The token endpoint's answer for `form`.
    async fn token(&self, form: &[(&str, &str)]) -> Value {
        let r = self
            .http
            .post(self.endpoint("token"))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token endpoint");
        r.json().await.unwrap()
    }

    /// A client-credentials token of a client application for the API.
    async fn app_token(&self, client_id: &str, secret: &str) -> String {
        let scope = format!("api://{}/.default", self.s.idp.idp.config().client_id);
        let answer = self
            .token(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", &scope),
            ])
            .await;
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// `user` signs in to the `reporting-job` client application asking for
    /// the API's `scopes`; the whole token response.
    async fn user_tokens(&self, user: &str, scopes: &[&str]) -> Value {
        let client = (
            DEFAULT_CLIENT_APP_ID,
            DEFAULT_CLIENT_APP_SECRET,
            "http://localhost:8400/",
        );
        self.user_tokens_of(client, user, scopes).await
    }

    /// `user` signs in to `client` (id, secret, redirect URI) asking for
    /// the API's `scopes`; the whole token response.
    async fn user_tokens_of(
        &self,
        client: (&str, &str, &str),
        user: &str,
        scopes: &[&str],
    ) -> Value {
        let (client_id, secret, redirect) = client;
        let api = &self.s.idp.idp.config().client_id;
        let scope = std::iter::once("openid".to_owned())
            .chain(scopes.iter().map(|s| format!("api://{api}/{s}")))
            .collect::<Vec<_>>()
            .join(" ");
        let verifier = "v".repeat(43);
        let challenge = aadgate_core::crypto::b64url(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
        );
        let authorize = format!(
            "{}?client_id={client_id}&response_type=code&redirect_uri={}&scope={}&code_challenge={challenge}&code_challenge_method=S256&state=s&nonce=n&login_hint={user}",
            self.endpoint("authorize"),
            urlenc(redirect),
            urlenc(&scope),
        );
        let r = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
        let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code");
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
        ])
        .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.s.proxy().url(path))
            // As a browser would ask: a bearer route never redirects.
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate")
            // Client-supplied caller headers must not reach the app.
            .header("x-forwarded-caller", "application")
            .header("x-forwarded-client-id", "forged");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_client_application_calls_the_api_with_its_application_roles() {
    let api = Api::start().await;
    let reader = api
        .app_token(DEFAULT_CLIENT_APP_ID, DEFAULT_CLIENT_APP_SECRET)
        .await;
    let r = api.get("/api/items", Some(&reader)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no session is made"
    );
    let echo: Value = r.json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-auth"), ["bearer"]);
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["application"]);
    assert_eq!(
        seen(&echo, "x-forwarded-client-id"),
        [DEFAULT_CLIENT_APP_ID]
    );
    assert_eq!(seen(&echo, "x-forwarded-roles"), ["App.Read"]);
    assert_eq!(seen(&echo, "x-forwarded-name"), Vec::<&str>::new());
    let oid = seen(&echo, "x-forwarded-user")[0];
    assert!(
        aadgate_core::entra::is_guid(oid),
        "the service principal: {oid}"
    );
    assert_eq!(
        seen(&echo, "authorization"),
        [format!("Bearer {reader}").as_str()],
        "the app acts on the token it was given"
    );

    // Application roles are route roles: App.Read is not App.Admin.
    let r = api.get("/api/admin/x", Some(&reader)).await;
    assert_eq!(r.status(), 403);
    assert!(
        challenge(&r).contains("error=\"insufficient_scope\""),
        "{}",
        challenge(&r)
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["required_role"], "App.Admin");
    let admin = api.app_token(ADMIN_JOB, "admin-job-secret").await;
    let r = api.get("/api/admin/x", Some(&admin)).await;
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-client-id"), [ADMIN_JOB]);
    assert_eq!(
        seen(&echo, "x-forwarded-roles"),
        ["App.Read,App.Write,App.Admin"],
        "the hierarchy holds for applications too"
    );
    // Scopes are delegated permissions: an application is authorized by its roles.
    assert_eq!(api.get("/api/reports", Some(&reader)).await.status(), 200);

    // Any application of the tenant can get a token for the API; one
    // granted no application role is no caller.
    let config = api.s.idp.idp.config();
    let roleless = api
        .app_token(&config.client_id, &config.client_secret)
        .await;
    let r = api.get("/api/items", Some(&roleless)).await;
    assert_eq!(r.status(), 403);
    let c = challenge(&r);
    assert!(
        c.contains("insufficient_scope") && c.contains("application role"),
        "{c}"
    );
}

#[tokio::test]
async fn a_users_delegated_token_needs_the_routes_scope_and_role() {
    let api = Api::start().await;
    let tokens = api.user_tokens("reader", &["Dashboards.Read"]).await;
    assert_eq!(
        tokens["scope"].as_str().unwrap(),
        format!(
            "api://{}/Dashboards.Read openid",
            api.s.idp.idp.config().client_id
        )
    );
    let token = tokens["access_token"].as_str().unwrap();
    let r = api.get("/api/reports/q1", Some(token)).await;
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["user"]);
    assert_eq!(seen(&echo, "x-forwarded-name"), ["Rita Reader"]);
    assert_eq!(seen(&echo, "x-forwarded-scopes"), ["Dashboards.Read"]);
    assert_eq!(
        seen(&echo, "x-forwarded-client-id"),
        [DEFAULT_CLIENT_APP_ID]
    );
    assert_eq!(seen(&echo, "x-forwarded-roles"), ["App.Read"]);
    // The user's role still counts: a reader is no admin.
    let r = api.get("/api/admin", Some(token)).await;
    assert_eq!(r.status(), 403);

    // Another scope of the same API is not the one this route needs.
    let other = api.user_tokens("admin", &["access_as_user"]).await;
    let other = other["access_token"].as_str().unwrap();
    assert_eq!(api.get("/api/items", Some(other)).await.status(), 200);
    let r = api.get("/api/reports", Some(other)).await;
    assert_eq!(r.status(), 403);
    let c = challenge(&r);
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"Dashboards.Read\""),
        "{c}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["required_scopes"], json!(["Dashboards.Read"]));

    // A user without any role of the app is refused, token or not.
    let norole = api.user_tokens("norole", &["access_as_user"]).await;
    let r = api
        .get("/api/items", Some(norole["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 403);

    // The client's ID token is for the client, not this API.
    let r = api
        .get("/api/items", Some(tokens["id_token"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        challenge(&r).contains("is not this API"),
        "{}",
        challenge(&r)
    );
    // And the app's own ID token, whose audience is the client ID, is not
    // an access token.
    let config = api.s.idp.idp.config();
    let callback = api.s.proxy().url("/auth/callback");
    let own = api
        .user_tokens_of(
            (&config.client_id, &config.client_secret, &callback),
            "admin",
            &[],
        )
        .await;
    let r = api
        .get("/api/items", Some(own["id_token"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 401);
    assert!(
        challenge(&r).contains("not an access token"),
        "{}",
        challenge(&r)
    );
}

#[tokio::test]
async fn bearer_routes_refuse_without_a_valid_token_and_never_redirect() {
    let api = Api::start().await;
    // No token: 401 with a bare challenge, not a trip to sign-in.
    let r = api.get("/api/items", None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), "Bearer");
    assert!(r.headers().get("location").is_none());
    let body: Value = r.json().await.unwrap();
    assert!(body["correlation_id"].is_string(), "{body}");

    // Garbage, and a token from the wrong audience, are invalid_token.
    let r = api.get("/api/items", Some("not-a-jwt")).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).starts_with("Bearer error=\"invalid_token\", error_description=\""));

    // A browser's session is not a bearer token.
    let b = api.s.browser();
    b.sign_in("admin", "/").await;
    let r = b.navigate(&b.url("/api/items")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), "Bearer");

    // A Graph token (what a user's sign-in gets without the API's scopes)
    // is not for this API.
    let graph = api.user_tokens("admin", &[]).await;
    let r = api
        .get("/api/items", Some(graph["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("invalid_token"), "{}", challenge(&r));

    // Two Authorization headers: refused whatever they hold.
    let token = api
        .app_token(DEFAULT_CLIENT_APP_ID, DEFAULT_CLIENT_APP_SECRET)
        .await;
    let r = api
        .http
        .get(api.s.proxy().url("/api/items"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer other.token.here")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(challenge(&r).contains("invalid_request"));
}

#[tokio::test]
async fn any_routes_take_a_session_or_a_token_and_say_which() {
    let api = Api::start().await;
    let b = api.s.browser();
    b.sign_in("writer", "/").await;
    let echo = b.echo("/mixed/page").await;
    assert_eq!(seen(&echo, "x-forwarded-auth"), ["session"]);
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["user"]);
    assert!(seen(&echo, "x-forwarded-client-id").is_empty());
    // Session routes tell the app it is a session too.
    let echo = b.echo("/").await;
    assert_eq!(seen(&echo, "x-forwarded-auth"), ["session"]);

    let token = api
        .app_token(DEFAULT_CLIENT_APP_ID, DEFAULT_CLIENT_APP_SECRET)
        .await;
    let r = api.get("/mixed/page", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-auth"), ["bearer"]);
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["application"]);

    // Neither: a navigation goes to sign-in, a program is told both ways.
    let r = api
        .http
        .get(api.s.proxy().url("/mixed/page"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = api
        .http
        .get(api.s.proxy().url("/mixed/page"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), "Bearer");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "login_required");

    // Session routes ignore bearer tokens: the app's own pages need the session.
    let r = api.get("/", Some(&token)).await;
    assert_eq!(r.status(), 302, "to sign-in");
}

// ---- Tokens minted by an independent provider ----

/// The independent provider as Entra single-tenant at `/{tid}/v2.0`.
const TID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

async fn entra(accept_v1: bool) -> (Adversary, crate::harness::Proxy) {
    let path = format!("/{TID}/v2.0");
    let adv = Adversary::start(&path, &path).await;
    let oidc = format!(
        "tenant = \"{TID}\"\nissuer = \"{}{path}\"\naudiences = [\"https://api.contoso.example/dash\"]\naccept_v1_tokens = {accept_v1}",
        adv.base()
    );
    let proxy = proxy_for(&adv, &oidc, ROUTES).await;
    (adv, proxy)
}

fn sign(adv: &Adversary, claims: &Value) -> String {
    let st = adv.state.lock().unwrap();
    let k = &st.keys[0];
    k.sign(&json!({"typ": "JWT", "alg": "RS256", "kid": k.kid}), claims)
}

type Claims = serde_json::Map<String, Value>;
type Change = Box<dyn Fn(&mut Claims)>;

/// An Entra v2.0 application token for the API, as Entra shapes it.
fn v2_app_claims(adv: &Adversary) -> Claims {
    let t = now();
    json!({
        "aud": CLIENT, "iss": format!("{}/{TID}/v2.0", adv.base()), "iat": t, "nbf": t, "exp": t + 3600,
        "azp": "9b1d0c36-2e7f-4a58-b0c1-6d3e9f2a4b75", "azpacr": "1", "oid": "5e7c1a30-8d2b-4f49-a6e0-2c9b7d4e1f83",
        "sub": "5e7c1a30-8d2b-4f49-a6e0-2c9b7d4e1f83", "tid": TID, "ver": "2.0", "roles": ["App.Write"],
    })
    .as_object()
    .unwrap()
    .clone()
}

async fn call(proxy: &crate::harness::Proxy, path: &str, token: &str) -> (u16, String, Value) {
    let r = reqwest::Client::new()
        .get(proxy.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let c = challenge(&r);
    (status, c, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn entra_v2_tokens_of_an_independent_provider_are_checked_claim_by_claim() {
    let (adv, proxy) = entra(false).await;
    let good = v2_app_claims(&adv);
    let (status, _, echo) = call(&proxy, "/api/x", &sign(&adv, &Value::Object(good.clone()))).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["application"]);
    assert_eq!(seen(&echo, "x-forwarded-roles"), ["App.Read,App.Write"]);

    // Every audience that names this API is accepted, and nothing else.
    for (aud, ok) in [
        (json!(format!("api://{CLIENT}")), true),
        (json!("https://api.contoso.example/dash"), true),
        (json!(["someone-else", CLIENT]), true),
        (json!("00000003-0000-0000-c000-000000000000"), false),
        (json!("api://someone-else"), false),
    ] {
        let mut c = good.clone();
        c.insert("aud".into(), aud.clone());
        let (status, why, _) = call(&proxy, "/api/x", &sign(&adv, &Value::Object(c))).await;
        assert_eq!(status == 200, ok, "aud {aud}: {why}");
        if !ok {
            assert!(why.contains("is not this API"), "{why}");
        }
    }

    let t = now();
    let refused: Vec<(&str, Change)> = vec![
        (
            "expired",
            Box::new(move |c| {
                c.insert("exp".into(), json!(t - 600));
            }),
        ),
        (
            "not yet valid",
            Box::new(move |c| {
                c.insert("nbf".into(), json!(t + 600));
            }),
        ),
        (
            "another tenant",
            Box::new(|c| {
                c.insert("tid".into(), json!("9f2504e0-4f89-41d3-9a0c-0305e82c3309"));
                c.insert(
                "iss".into(),
                json!("https://login.microsoftonline.com/9f2504e0-4f89-41d3-9a0c-0305e82c3309/v2.0"),
            );
            }),
        ),
        (
            "no tid",
            Box::new(|c| {
                c.remove("tid");
            }),
        ),
        (
            "no calling client",
            Box::new(|c| {
                c.remove("azp");
            }),
        ),
        (
            "an ID token",
            Box::new(|c| {
                c.insert("nonce".into(), json!("n"));
            }),
        ),
        (
            "ver 1.5",
            Box::new(|c| {
                c.insert("ver".into(), json!("1.5"));
            }),
        ),
        (
            "no scp, no idtyp, sub not oid",
            Box::new(|c| {
                c.insert("sub".into(), json!("someone"));
            }),
        ),
        (
            "app token with scp",
            Box::new(|c| {
                c.insert("idtyp".into(), json!("app"));
                c.insert("scp".into(), json!("access_as_user"));
            }),
        ),
    ];
    for (what, change) in refused {
        let mut c = good.clone();
        change(&mut c);
        let (status, why, _) = call(&proxy, "/api/x", &sign(&adv, &Value::Object(c))).await;
        assert_eq!(status, 401, "{what}: {why}");
        assert!(
            why.starts_with("Bearer error=\"invalid_token\""),
            "{what}: {why}"
        );
    }

    // Signed by a key the provider does not publish.
    let stranger = crate::adversary::Key::new("k1");
    let forged = stranger.sign(
        &json!({"typ": "JWT", "alg": "RS256", "kid": "k1"}),
        &Value::Object(good.clone()),
    );
    let (status, why, _) = call(&proxy, "/api/x", &forged).await;
    assert_eq!((status, why.contains("signature")), (401, true), "{why}");
    // `alg: none`, and HS256 keyed with the public key, are never accepted.
    let body = aadgate_core::crypto::b64url(Value::Object(good.clone()).to_string().as_bytes());
    for alg in ["none", "HS256"] {
        let head =
            aadgate_core::crypto::b64url(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        let (status, why, _) = call(&proxy, "/api/x", &format!("{head}.{body}.c2ln")).await;
        assert_eq!(status, 401, "{alg}: {why}");
    }

    // A delegated token: `scp` makes it a user's, and the route's scopes apply.
    let mut user = good.clone();
    user.insert("scp".into(), json!("access_as_user"));
    user.insert("name".into(), json!("Ada Lovelace"));
    user.insert("preferred_username".into(), json!("ada@contoso.example"));
    let (status, _, echo) = call(&proxy, "/api/x", &sign(&adv, &Value::Object(user.clone()))).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["user"]);
    assert_eq!(
        seen(&echo, "x-forwarded-preferred-username"),
        ["ada@contoso.example"]
    );
    let (status, why, _) = call(
        &proxy,
        "/api/reports",
        &sign(&adv, &Value::Object(user.clone())),
    )
    .await;
    assert_eq!(status, 403, "{why}");
    user.insert("scp".into(), json!("access_as_user Dashboards.Read"));
    let (status, _, echo) = call(&proxy, "/api/reports", &sign(&adv, &Value::Object(user))).await;
    assert_eq!(status, 200);
    assert_eq!(
        seen(&echo, "x-forwarded-scopes"),
        ["access_as_user,Dashboards.Read"]
    );
}

/// An Entra v1.0 access token: `sts.windows.net` issuer, `appid`, `upn`.
fn v1_user_claims() -> Value {
    let t = now();
    json!({
        "aud": format!("api://{CLIENT}"), "iss": format!("https://sts.windows.net/{TID}/"), "iat": t, "nbf": t,
        "exp": t + 3600, "appid": "9b1d0c36-2e7f-4a58-b0c1-6d3e9f2a4b75", "appidacr": "1",
        "oid": "1a2b3c4d-0000-4000-8000-000000000001", "sub": "v1-sub", "tid": TID, "ver": "1.0",
        "scp": "access_as_user", "upn": "grace@contoso.example", "name": "Grace Hopper", "roles": ["App.Read"],
    })
}

#[tokio::test]
async fn entra_v1_tokens_are_refused_with_the_fix_unless_accepted() {
    let (adv, proxy) = entra(false).await;
    let token = sign(&adv, &v1_user_claims());
    let (status, why, body) = call(&proxy, "/api/x", &token).await;
    assert_eq!(status, 401);
    assert!(
        why.contains("accessTokenAcceptedVersion") && why.contains("oidc.accept_v1_tokens"),
        "{why}"
    );
    assert!(body["error_description"].as_str().unwrap().contains("v1.0"));

    let (adv, proxy) = entra(true).await;
    let (status, why, echo) = call(&proxy, "/api/x", &sign(&adv, &v1_user_claims())).await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(
        seen(&echo, "x-forwarded-client-id"),
        ["9b1d0c36-2e7f-4a58-b0c1-6d3e9f2a4b75"]
    );
    assert_eq!(
        seen(&echo, "x-forwarded-preferred-username"),
        ["grace@contoso.example"]
    );
    // Accepting v1.0 does not accept another tenant's v1.0 issuer.
    let mut other = v1_user_claims();
    other["iss"] = json!("https://sts.windows.net/9f2504e0-4f89-41d3-9a0c-0305e82c3309/");
    let (status, _, _) = call(&proxy, "/api/x", &sign(&adv, &other)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_generic_providers_rfc9068_tokens_work_too() {
    let adv = Adversary::start("", "").await;
    let proxy = proxy_for(&adv, &format!("issuer = \"{}\"", adv.base()), ROUTES).await;
    let t = now();
    let at_jwt = |claims: &Value| {
        let st = adv.state.lock().unwrap();
        let k = &st.keys[0];
        k.sign(
            &json!({"typ": "at+jwt", "alg": "RS256", "kid": k.kid}),
            claims,
        )
    };
    // A user's token (sub is the user): `scope` carries its permissions.
    let user = json!({
        "iss": adv.base(), "sub": "user-7", "aud": CLIENT, "client_id": "notebook", "iat": t,
        "exp": t + 300, "scope": "openid Dashboards.Read", "roles": ["App.Read"], "name": "Nia User",
    });
    let (status, why, echo) = call(&proxy, "/api/reports", &at_jwt(&user)).await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["user"]);
    assert_eq!(seen(&echo, "x-forwarded-user"), ["user-7"]);
    assert_eq!(seen(&echo, "x-forwarded-client-id"), ["notebook"]);
    assert_eq!(
        seen(&echo, "x-forwarded-scopes"),
        ["openid,Dashboards.Read"]
    );
    let mut narrow = user.clone();
    narrow["scope"] = json!("openid");
    let (status, _, _) = call(&proxy, "/api/reports", &at_jwt(&narrow)).await;
    assert_eq!(status, 403, "the route's scope is missing");
    // The client on its own behalf (sub is the client, RFC 9068 2.2).
    let service = json!({
        "iss": adv.base(), "sub": "batch-client", "aud": CLIENT, "client_id": "batch-client", "iat": t,
        "exp": t + 300, "roles": ["App.Read"],
    });
    let (status, why, echo) = call(&proxy, "/api/x", &at_jwt(&service)).await;
    assert_eq!(status, 200, "{why}");
    assert_eq!(seen(&echo, "x-forwarded-caller"), ["application"]);
    // Not marked as an access token: an ID token of such a provider can
    // name a client (`azp`) and carry no nonce.
    let id_like = json!({
        "iss": adv.base(), "sub": "user-7", "aud": CLIENT, "azp": CLIENT, "iat": t, "exp": t + 300,
        "roles": ["App.Read"],
    });
    let (status, why, _) = call(&proxy, "/api/x", &sign(&adv, &id_like)).await;
    assert_eq!(status, 401);
    assert!(why.contains("not marked"), "{why}");
    let mut wrong = service.clone();
    wrong["iss"] = json!("https://evil.example");
    let (status, _, _) = call(&proxy, "/api/x", &at_jwt(&wrong)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn forward_auth_answers_for_bearer_routes_with_the_callers_headers() {
    let extra = format!("trusted_proxies = [\"127.0.0.1/32\"]\n{ROUTES}");
    let api = Api {
        s: Setup::with_options(&extra, idp_config()).await,
        http: reqwest::Client::new(),
    };
    let token = api
        .app_token(DEFAULT_CLIENT_APP_ID, DEFAULT_CLIENT_APP_SECRET)
        .await;
    let host = api.s.proxy().addr.to_string();
    // What nginx's auth_request sends: the client's headers (its
    // Authorization among them) and the original request's coordinates.
    let ask = |token: Option<&str>| {
        let mut r = api
            .http
            .get(api.s.proxy().url("/auth/check"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", "/api/items?page=2")
            .header("x-forwarded-host", &host)
            .header("x-forwarded-proto", "http")
            .header("accept", "application/json");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = ask(Some(&token)).await.unwrap();
    assert_eq!(r.status(), 200);
    let h = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(h("x-forwarded-auth").as_deref(), Some("bearer"));
    assert_eq!(h("x-forwarded-caller").as_deref(), Some("application"));
    assert_eq!(
        h("x-forwarded-client-id").as_deref(),
        Some(DEFAULT_CLIENT_APP_ID)
    );
    assert_eq!(h("x-auth-request-roles").as_deref(), Some("App.Read"));
    // No token: 401 with the challenge, which nginx passes on.
    let r = ask(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), "Bearer");
    let r = ask(Some("x.y.z")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).contains("invalid_token"));
}

#[tokio::test]
async fn a_token_is_validated_once_and_then_remembered_until_it_must_be_checked_again() {
    let extra = format!("metrics_listen = \"127.0.0.1:9\"\n{ROUTES}");
    let api = Api {
        s: Setup::with_options(&extra, idp_config()).await,
        http: reqwest::Client::new(),
    };
    let auth = api.s.proxy().auth.clone();
    let counted = async |result: &str| {
        let text = auth.encode_metrics().await.unwrap();
        let line = format!("aadgate_bearer_tokens_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .map_or(0, |n| n.trim().parse::<u64>().unwrap())
    };
    let token = api
        .app_token(DEFAULT_CLIENT_APP_ID, DEFAULT_CLIENT_APP_SECRET)
        .await;
    for _ in 0..3 {
        assert_eq!(api.get("/api/items", Some(&token)).await.status(), 200);
    }
    assert_eq!(
        (counted("ok").await, counted("cached").await),
        (1, 2),
        "one signature check for three requests"
    );
    // Another token is validated on its own; an invalid one is never remembered.
    let other = api.app_token(ADMIN_JOB, "admin-job-secret").await;
    assert_eq!(api.get("/api/admin", Some(&other)).await.status(), 200);
    assert_eq!(
        api.get("/api/admin", Some(&token)).await.status(),
        403,
        "the cached caller's roles still apply"
    );
    let forged = format!("{}x", &token[..token.len() - 1]);
    for _ in 0..2 {
        assert_eq!(api.get("/api/items", Some(&forged)).await.status(), 401);
    }
    assert_eq!((counted("ok").await, counted("invalid").await), (2, 2));
}
