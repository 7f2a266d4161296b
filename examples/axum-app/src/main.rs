//! `cargo run -p aadgate-example-axum-app -- aadgate.toml`

use aadgate::Auth;
use aadgate::aadgate_core::Config;
use aadgate::graph::Graph;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "aadgate.toml".to_owned());
    // Secrets come from AADGATE_OIDC_CLIENT_SECRET and AADGATE_SESSION_SECRET.
    let config = Config::load(path.as_ref())?;
    let auth = Auth::from_config(&config)?;
    let graph =
        Graph::new(&std::env::var("GRAPH_URL").unwrap_or_else(|_| Graph::MICROSOFT.to_owned()));
    let app = aadgate_example_axum_app::app(&auth, graph);
    let listener = tokio::net::TcpListener::bind(config.listen.as_str()).await?;
    println!("listening on {}", auth.settings().public_url);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
