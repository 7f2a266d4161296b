//! The example app's routes, separate from `main` so the tests serve the same app.

use aadgate::graph::Graph;
use aadgate::{AccessToken, Auth, MaybeUser, User};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// Builds the app: everything needs sign-in (and, from `[authz] roles`, at
/// least App.Read), `/admin` needs App.Admin, `/reports` any one of
/// Reports.View (a role outside the hierarchy) and App.Write (or higher),
/// `/welcome` is public in the config.
pub fn app(auth: &Auth, graph: Graph) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/admin", get(admin).layer(auth.require_role("App.Admin")))
        .route(
            "/reports",
            get(reports).layer(auth.require_any_role(&["Reports.View", "App.Write"])),
        )
        .route("/profile", get(profile))
        .route("/welcome", get(welcome))
        .with_state(graph)
        .merge(auth.routes())
        .layer(auth.require_login())
}

async fn home(user: User) -> Json<serde_json::Value> {
    Json(json!({
        "hello": user.name(),
        "id": user.id(),
        "email": user.email(),
        "roles": user.roles(),
        "can_write": user.has_role("App.Write"),
    }))
}

async fn admin(user: User) -> Html<String> {
    Html(format!(
        "<h1>Admin</h1><p>Welcome, {}.</p>",
        aadgate::pages::escape(user.name())
    ))
}

async fn reports(user: User) -> String {
    format!("Reports for {}", user.name())
}

async fn profile(State(graph): State<Graph>, token: AccessToken) -> Response {
    match graph.me(token.secret()).await {
        Ok(me) => Json(json!({
            "displayName": me.display_name,
            "mail": me.mail,
            "jobTitle": me.job_title,
            "id": me.id,
        }))
        .into_response(),
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn welcome(user: MaybeUser) -> String {
    match user.0 {
        Some(u) => format!("Welcome back, {}", u.name()),
        None => "Welcome! Sign in at /auth/login".to_owned(),
    }
}
