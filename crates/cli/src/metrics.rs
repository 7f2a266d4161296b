//! `metrics_listen`: a listener of its own where Prometheus scrapes
//! `GET /metrics` (the OpenMetrics text of [`Auth::encode_metrics`]).
//! Nothing else is served there: any other path is `404`.

use aadgate::Auth;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Serves `GET /metrics` for `auth` on `listener` until `shutdown`
/// completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    auth: Auth,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(auth);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(auth): State<Auth>) -> Response {
    match auth.encode_metrics().await {
        Some(text) => (
            [
                (header::CONTENT_TYPE, aadgate_core::metrics::CONTENT_TYPE),
                (header::CACHE_CONTROL, "no-store"),
            ],
            text,
        )
            .into_response(),
        // An `Auth` built without metrics has none to show.
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
