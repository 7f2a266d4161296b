//! `aadgate demo`: the dev IdP, the proxy and the sample dashboard, wired
//! together on loopback with nothing to configure.

use std::net::SocketAddr;

use aadgate::Auth;
use aadgate_core::Config;
use aadgate_core::config::{AuthzConfig, OidcConfig, RouteConfig, SessionConfig};
use aadgate_dev_idp::{DevIdp, DevIdpConfig};
use tokio::net::TcpListener;
use url::Url;

/// Where the demo's parts listen.
#[derive(Debug, Clone)]
pub struct DemoPorts {
    /// The proxy (what the user opens).
    pub proxy: u16,
    /// The dev identity provider.
    pub idp: u16,
}

/// A started demo.
#[derive(Debug)]
pub struct Demo {
    /// URL to open.
    pub url: String,
    /// The dev IdP's issuer.
    pub issuer: String,
    /// The dev IdP.
    pub idp: DevIdp,
}

async fn bind(port: u16, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on 127.0.0.1:{port} for the {what} ({e}); is another aadgate demo running? Pick other ports with --port / --idp-port"),
        )
    })
}

/// The proxy configuration the demo uses: the dashboard's roles and rules.
pub fn demo_config(public_url: &str, upstream: &str, idp: &DevIdp) -> Config {
    let secret: String = aadgate_core::crypto::random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let roles = ["App.Read", "App.Write", "App.Admin"]
        .map(str::to_owned)
        .to_vec();
    Config {
        listen: "127.0.0.1:0".into(),
        metrics_listen: None,
        public_url: Some(public_url.to_owned()),
        upstream: Some(upstream.to_owned()),
        trusted_proxies: vec![],
        pass_access_token: true,
        workers: None,
        shutdown_timeout_secs: None,
        log_format: None,
        access_log: None,
        access_log_query: false,
        identity_headers: None,
        forward_auth: Default::default(),
        oidc: OidcConfig {
            tenant: Some(idp.config().tenant_id.clone()),
            issuer: Some(idp.issuer()),
            client_id: Some(idp.config().client_id.clone()),
            client_secret: Some(idp.config().client_secret.clone()),
            ..OidcConfig::default()
        },
        session: SessionConfig {
            secret: Some(secret),
            store: Some("memory".into()),
            ..SessionConfig::default()
        },
        authz: AuthzConfig {
            roles,
            ..AuthzConfig::default()
        },
        route: vec![
            RouteConfig {
                path: "/admin".into(),
                role: Some("App.Admin".into()),
                ..RouteConfig::default()
            },
            RouteConfig {
                path: "/api/data".into(),
                role: Some("App.Write".into()),
                ..RouteConfig::default()
            },
            RouteConfig {
                path: "/assets".into(),
                public: true,
                ..RouteConfig::default()
            },
        ],
        dash: Default::default(),
        limits: Default::default(),
    }
}

/// Starts everything and returns once all three are listening.
pub async fn start(ports: DemoPorts) -> Result<Demo, Box<dyn std::error::Error + Send + Sync>> {
    let idp_listener = bind(ports.idp, "dev identity provider").await?;
    let proxy_listener = bind(ports.proxy, "proxy").await?;
    let app_listener = bind(0, "dashboard").await?;
    let proxy_addr = proxy_listener.local_addr()?;
    let idp_addr = idp_listener.local_addr()?;
    let public_url = format!("http://127.0.0.1:{}", proxy_addr.port());

    let idp_config = DevIdpConfig {
        redirect_uris: vec![
            format!("http://127.0.0.1:{}/auth/callback", proxy_addr.port()),
            format!("http://localhost:{}/auth/callback", proxy_addr.port()),
        ],
        ..DevIdpConfig::default()
    };
    let idp = DevIdp::new(idp_config, Url::parse(&format!("http://{idp_addr}"))?)?;
    let idp_router = idp.router();
    tokio::spawn(async move { axum::serve(idp_listener, idp_router).await });

    let app_addr = app_listener.local_addr()?;
    let dashboard = crate::dashboard::app(Some(idp.base()));
    tokio::spawn(async move { axum::serve(app_listener, dashboard).await });

    let config = demo_config(&public_url, &format!("http://{app_addr}"), &idp);
    let auth = Auth::from_config(&config)?;
    let app = crate::proxy::app(&auth, &config.proxy_settings()?)?;
    tokio::spawn(crate::proxy::serve(
        proxy_listener,
        app,
        std::future::pending(),
    ));

    Ok(Demo {
        url: format!("{public_url}/"),
        issuer: idp.issuer(),
        idp,
    })
}
