//! The demo's sample dashboard: an ordinary web app with no sign-in code.
//! It learns who the user is from the identity headers aadgate sets, exactly
//! as a Dash or Flask app would.

use std::sync::{Arc, Mutex};

use aadgate::pages::escape;
use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

#[derive(Clone)]
struct Data {
    points: Arc<Mutex<Vec<(String, u32)>>>,
    graph: Option<aadgate::graph::Graph>,
}

/// The dashboard app (serve it behind `aadgate proxy` with
/// `pass_access_token = true`). With `graph_base`, the home page shows the
/// user's Microsoft Graph profile fetched with their access token.
pub fn app(graph_base: Option<&str>) -> Router {
    let points = vec![
        ("Jan".to_owned(), 42),
        ("Feb".to_owned(), 55),
        ("Mar".to_owned(), 48),
        ("Apr".to_owned(), 67),
        ("May".to_owned(), 73),
        ("Jun".to_owned(), 61),
    ];
    Router::new()
        .route("/", get(home))
        .route("/admin", get(admin))
        .route("/api/data", post(add_point))
        .route("/assets/app.css", get(css))
        .with_state(Data {
            points: Arc::new(Mutex::new(points)),
            graph: graph_base.map(aadgate::graph::Graph::new),
        })
}

struct Viewer {
    name: String,
    email: String,
    roles: Vec<String>,
}

impl Viewer {
    fn from_headers(h: &HeaderMap) -> Self {
        let get = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let roles = get("x-forwarded-roles")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let name = get("x-forwarded-name");
        Self {
            name: if name.is_empty() {
                "anonymous".into()
            } else {
                name
            },
            email: get("x-forwarded-email"),
            roles,
        }
    }
    fn can(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

fn layout(v: &Viewer, active: &str, body: &str) -> Response {
    let badge = ["App.Admin", "App.Write", "App.Read"]
        .into_iter()
        .find(|r| v.can(r))
        .map(|r| r.trim_start_matches("App.").to_owned())
        .unwrap_or_else(|| "No role".into());
    let admin_link = if v.can("App.Admin") {
        format!(
            "<a href=\"/admin\" class=\"{}\">Admin</a>",
            if active == "admin" { "active" } else { "" }
        )
    } else {
        String::new()
    };
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Contoso Sales · aadgate demo</title><link rel="stylesheet" href="/assets/app.css"></head><body>
<nav class="top"><div class="brand"><span class="logo">▲</span> Contoso Sales</div>
<div class="links"><a href="/" class="{home}">Overview</a>{admin_link}</div>
<div class="user"><span class="who" id="user-name">{name}</span><span class="badge badge-{badge_l}">{badge}</span>
<a class="signout" href="/auth/logout">Sign out</a></div></nav>
<main>{body}</main>
<footer>Protected by aadgate · signed in as {email}</footer></body></html>"#,
        home = if active == "home" { "active" } else { "" },
        name = escape(&v.name),
        email = escape(&v.email),
        badge_l = badge.to_ascii_lowercase().replace(' ', "-"),
        badge = escape(&badge),
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn chart(points: &[(String, u32)]) -> String {
    let w = 640.0;
    let h = 260.0;
    let max = points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
    let n = points.len().max(1) as f64;
    let slot = (w - 40.0) / n;
    let mut bars = String::new();
    for (i, (label, value)) in points.iter().enumerate() {
        let bh = (*value as f64 / max) * (h - 60.0);
        let x = 30.0 + i as f64 * slot + slot * 0.15;
        let y = h - 30.0 - bh;
        bars.push_str(&format!(
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" rx=\"4\"><title>{l}: {value}</title></rect>\
<text x=\"{cx:.1}\" y=\"{ty:.1}\" class=\"val\">{value}</text><text x=\"{cx:.1}\" y=\"{ly:.1}\" class=\"lbl\">{l}</text>",
            bw = slot * 0.7,
            cx = x + slot * 0.35,
            ty = y - 6.0,
            ly = h - 10.0,
            l = escape(label),
        ));
    }
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Monthly sales\"><line x1=\"20\" y1=\"{base}\" x2=\"{w}\" y2=\"{base}\" class=\"axis\"/>{bars}</svg>",
        base = h - 30.0
    )
}

/// The Graph profile card: a downstream call made with the token aadgate keeps.
async fn profile_card(data: &Data, headers: &HeaderMap) -> String {
    let Some(graph) = &data.graph else {
        return String::new();
    };
    let token = headers
        .get("x-forwarded-access-token")
        .and_then(|v| v.to_str().ok());
    let inner = match token {
        None => "<p class=\"hint\">No access token was passed (set <code>pass_access_token = true</code>).</p>".to_owned(),
        Some(t) => match graph.me(t).await {
            Ok(me) => {
                let row = |k: &str, v: Option<String>| {
                    format!("<div><span class=\"k\">{k}</span><span class=\"pv\">{}</span></div>", escape(&v.unwrap_or_else(|| "—".into())))
                };
                format!(
                    "<div class=\"profile\" id=\"graph-profile\">{}{}{}{}{}</div>",
                    row("Display name", me.display_name),
                    row("Mail", me.mail),
                    row("Job title", me.job_title),
                    row("Office", me.office_location),
                    row("Object id", Some(me.id)),
                )
            }
            Err(e) => format!("<p class=\"hint\">Microsoft Graph did not answer: {}</p>", escape(&e.to_string())),
        },
    };
    format!(
        "<section class=\"card\"><h2>Your profile <span class=\"hint\">from Microsoft Graph <code>GET /v1.0/me</code>, called with your access token</span></h2>{inner}</section>"
    )
}

async fn home(State(data): State<Data>, headers: HeaderMap) -> Response {
    let v = Viewer::from_headers(&headers);
    let profile = profile_card(&data, &headers).await;
    let points = data.points.lock().expect("data lock").clone();
    let total: u32 = points.iter().map(|p| p.1).sum();
    let best = points
        .iter()
        .max_by_key(|p| p.1)
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let form = if v.can("App.Write") {
        r#"<section class="card"><h2>Add a data point</h2><form method="post" action="/api/data" class="row">
<input name="label" placeholder="Month" maxlength="12" required><input name="value" type="number" min="0" max="100000" placeholder="Sales (k€)" required>
<button type="submit">Add</button></form><p class="hint">Only users with the <code>App.Write</code> role see this form, and aadgate refuses the request for anyone else.</p></section>"#
            .to_owned()
    } else {
        r#"<section class="card muted-card"><h2>Add a data point</h2><p>You can read this dashboard. Changing its data needs the <code>App.Write</code> role.</p></section>"#.to_owned()
    };
    let body = format!(
        r#"<h1>Sales overview</h1><div class="kpis"><div class="kpi"><div class="k">Total</div><div class="v">{total} k€</div></div>
<div class="kpi"><div class="k">Best month</div><div class="v">{best}</div></div><div class="kpi"><div class="k">Months</div><div class="v">{n}</div></div></div>
<section class="card"><h2>Monthly sales</h2>{chart}</section>{form}{profile}"#,
        best = escape(&best),
        n = points.len(),
        chart = chart(&points)
    );
    layout(&v, "home", &body)
}

#[derive(Deserialize)]
struct NewPoint {
    label: String,
    value: u32,
}

async fn add_point(
    State(data): State<Data>,
    headers: HeaderMap,
    Form(p): Form<NewPoint>,
) -> Response {
    // aadgate already refused users without App.Write; checking again costs nothing.
    if !Viewer::from_headers(&headers).can("App.Write") {
        return (StatusCode::FORBIDDEN, "App.Write required").into_response();
    }
    let label: String = p.label.trim().chars().take(12).collect();
    if label.is_empty() {
        return (StatusCode::BAD_REQUEST, "label required").into_response();
    }
    let mut points = data.points.lock().expect("data lock");
    points.push((label, p.value.min(100_000)));
    if points.len() > 12 {
        points.remove(0);
    }
    Redirect::to("/").into_response()
}

async fn admin(headers: HeaderMap) -> Response {
    let v = Viewer::from_headers(&headers);
    let mut rows = String::new();
    let mut names: Vec<_> = headers
        .iter()
        .filter(|(k, _)| {
            k.as_str().starts_with("x-forwarded-")
                || k.as_str().starts_with("x-ms-client-principal")
        })
        .collect();
    names.sort_by_key(|(k, _)| k.as_str());
    for (k, val) in names {
        let shown = val.to_str().unwrap_or("(binary)");
        // Never echo a bearer token into a page, even a demo's.
        let masked;
        let shown = if k.as_str() == "x-forwarded-access-token" {
            masked = format!("(an access token, {} characters)", shown.len());
            masked.as_str()
        } else {
            shown
        };
        let shown = if shown.len() > 80 {
            format!("{}…", &shown[..80])
        } else {
            shown.to_owned()
        };
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td></tr>",
            escape(k.as_str()),
            escape(&shown)
        ));
    }
    let body = format!(
        r#"<h1>Administration</h1><section class="card"><h2>Only App.Admin gets here</h2>
<p>aadgate enforces the <code>/admin</code> rule before this app sees the request. These are the identity headers the app received:</p>
<table class="headers">{rows}</table></section>"#
    );
    layout(&v, "admin", &body)
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

const CSS: &str = r#"
*{box-sizing:border-box}body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f4f6fb;color:#1f2937}
nav.top{display:flex;align-items:center;gap:28px;background:#0f2a4a;color:#fff;padding:0 28px;height:58px}
.brand{font-weight:650;font-size:1.05rem}.logo{color:#60a5fa}.links{display:flex;gap:6px;flex:1}
.links a{color:#cbd5e1;text-decoration:none;padding:8px 12px;border-radius:6px}.links a.active,.links a:hover{background:#1e3a5f;color:#fff}
.user{display:flex;align-items:center;gap:10px}.who{font-weight:600}
.badge{font-size:.72rem;padding:3px 8px;border-radius:999px;background:#334155;text-transform:uppercase;letter-spacing:.05em}
.badge-admin{background:#b91c1c}.badge-write{background:#047857}.badge-read{background:#1d4ed8}
.signout{color:#fff;border:1px solid #475569;padding:6px 12px;border-radius:6px;text-decoration:none;font-size:.9rem}.signout:hover{background:#1e3a5f}
main{max-width:980px;margin:28px auto;padding:0 20px}h1{font-size:1.5rem;margin:8px 0 18px}h2{font-size:1.05rem;margin:0 0 14px}
.kpis{display:grid;grid-template-columns:repeat(3,1fr);gap:16px;margin-bottom:18px}
.kpi,.card{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(15,23,42,.08);padding:18px 22px}
.card{margin-bottom:18px}.k{color:#64748b;font-size:.85rem}.v{font-size:1.6rem;font-weight:650;margin-top:4px}
.chart{width:100%;height:auto}.bar{fill:#3b82f6}.bar:hover{fill:#1d4ed8}.axis{stroke:#cbd5e1}
.val{font-size:12px;fill:#334155;text-anchor:middle}.lbl{font-size:12px;fill:#64748b;text-anchor:middle}
.row{display:flex;gap:10px}input{padding:9px 12px;border:1px solid #cbd5e1;border-radius:8px;font-size:.95rem}
button{background:#2563eb;color:#fff;border:0;border-radius:8px;padding:9px 18px;font-size:.95rem;cursor:pointer}
.hint{color:#64748b;font-size:.85rem}.muted-card{color:#475569}code{background:#eef2f7;padding:1px 5px;border-radius:4px}
table.headers{border-collapse:collapse;width:100%;font-size:.85rem}table.headers td{border-top:1px solid #e5e7eb;padding:6px 8px;vertical-align:top;word-break:break-all}
.profile{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px}.pv{display:block;font-weight:600;margin-top:2px;word-break:break-all}
footer{text-align:center;color:#94a3b8;font-size:.8rem;margin:30px 0}
"#;
