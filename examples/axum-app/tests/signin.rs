//! Signs in through the dev IdP and checks the user, roles and the Graph call.

use aadgate::Auth;
use aadgate::aadgate_core::Config;
use aadgate::graph::Graph;
use aadgate_dev_idp::{DevIdp, DevIdpConfig};

struct Running {
    url: String,
}

async fn start() -> Running {
    let idp_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_url = format!("http://{}", idp_l.local_addr().unwrap());
    let app_url = format!("http://{}", app_l.local_addr().unwrap());
    let idp = DevIdp::new(
        {
            let mut config = DevIdpConfig {
                redirect_uris: vec![format!("{app_url}/auth/callback")],
                ..Default::default()
            };
            // A user whose only role is outside [authz] roles.
            config.app_roles.push("Reports.View".into());
            let mut analyst = aadgate_dev_idp::DevUser::new("analyst", "Ann Analyst");
            analyst.roles = vec!["Reports.View".into()];
            config.users.push(analyst);
            config
        },
        url::Url::parse(&idp_url).unwrap(),
    )
    .unwrap();
    let router = idp.router();
    tokio::spawn(async move { axum::serve(idp_l, router).await });
    let toml = format!(
        r#"
public_url = "{app_url}"
[oidc]
tenant = "{}"
issuer = "{}"
client_id = "{}"
[session]
store = "memory"
[authz]
roles = ["App.Read", "App.Write", "App.Admin"]
[[route]]
path = "/welcome"
public = true
"#,
        idp.config().tenant_id,
        idp.issuer(),
        idp.config().client_id
    );
    let env = [
        (
            "AADGATE_OIDC_CLIENT_SECRET",
            idp.config().client_secret.as_str(),
        ),
        (
            "AADGATE_SESSION_SECRET",
            "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
        ),
    ];
    let auth = Auth::from_config(&Config::from_toml_and_env(&toml, env).unwrap()).unwrap();
    let app = aadgate_example_axum_app::app(&auth, Graph::new(&idp_url));
    tokio::spawn(async move {
        axum::serve(
            app_l,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    Running { url: app_url }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

async fn sign_in(b: &reqwest::Client, app: &Running, user: &str) {
    let r = b
        .get(format!(
            "{}/auth/login?rd=/welcome&login_hint={user}",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().starts_with("Welcome back"));
}

#[tokio::test]
async fn signs_in_and_sees_user_roles_and_graph_profile() {
    let app = start().await;
    let b = browser();
    assert_eq!(
        b.get(format!("{}/welcome", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Welcome! Sign in at /auth/login"
    );
    let r = b
        .get(format!("{}/", app.url))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    sign_in(&b, &app, "writer").await;
    let me: serde_json::Value = b
        .get(format!("{}/", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["hello"], "Walt Writer");
    assert_eq!(me["roles"], serde_json::json!(["App.Read", "App.Write"]));
    assert_eq!(me["can_write"], true);
    assert_eq!(
        b.get(format!("{}/admin", app.url))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let profile: serde_json::Value = b
        .get(format!("{}/profile", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["displayName"], "Walt Writer");
    assert_eq!(profile["mail"], "writer@contoso.example");
    assert_eq!(profile["id"], me["id"]);
}

#[tokio::test]
async fn only_admins_reach_admin_and_users_without_roles_are_refused() {
    let app = start().await;
    let admin = browser();
    sign_in(&admin, &app, "admin").await;
    let r = admin
        .get(format!("{}/admin", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Welcome, Ada Admin"));

    let norole = browser();
    sign_in(&norole, &app, "norole").await;
    let r = norole
        .get(format!("{}/", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("App.Read"));
}

#[tokio::test]
async fn reports_take_any_one_of_their_roles() {
    let app = start().await;
    let status = async |user: &str| {
        let b = browser();
        sign_in(&b, &app, user).await;
        let r = b
            .get(format!("{}/reports", app.url))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status("writer").await.0, 200);
    assert_eq!(status("admin").await.0, 200, "App.Admin holds App.Write");
    let (code, body) = status("reader").await;
    assert_eq!(code, 403);
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        j["required_roles"],
        serde_json::json!(["Reports.View", "App.Write"])
    );
    // The layer narrows what require_login lets through, never widens it:
    // without a `[[route]] roles` rule for /reports, the app's lowest role
    // (App.Read) is needed first.
    let (code, body) = status("analyst").await;
    assert_eq!(code, 403);
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["required_role"], "App.Read");
}
