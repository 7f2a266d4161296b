//! Route and role decisions: the forbidden page, and route rules that cannot be
//! talked past by any spelling of a path.

use crate::harness::{Setup, session_cookie};

#[tokio::test]
async fn forbidden_page_names_user_and_lowest_role() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("norole", "/").await;
    let r = b.navigate(&b.url("/")).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("Nick NoRole"), "{html}");
    assert!(html.contains("App.Read"), "{html}");
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let html = b
        .navigate(&b.url("/admin/users"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Rita Reader") && html.contains("App.Admin"),
        "{html}"
    );
}

/// Sends a request with the path exactly as given (HTTP clients normalize `..`).
async fn raw_get(addr: std::net::SocketAddr, path: &str, cookie: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).unwrap_or("0").parse().unwrap()
}

#[tokio::test]
async fn route_rules_cannot_be_talked_past() {
    let s = Setup::new().await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let cookie = session_cookie(&b).await;
    let addr = s.proxy().addr;
    assert_eq!(raw_get(addr, "/", &cookie).await, 200, "the cookie works");
    for path in [
        "/admin",
        "/auth/../admin",
        "/auth/%2e%2e/admin",
        "/public/../admin",
        "/public/..%2fadmin",
        "/public/%252e%252e/admin",
        "/public\\..\\admin",
        "//admin",
        "/./admin",
        "/ADMIN",
        "/Admin/users",
        "/admin?next=/public",
        "/admin#/public",
        "/public/..;/admin",
        "/public/..%3B/admin",
        "/admin;x/users",
    ] {
        // 400 for dot segments (refused outright), 403 for the rest.
        let status = raw_get(addr, path, &cookie).await;
        let dots = path.contains("..") || path.contains("2e") || path.contains("/./");
        assert_eq!(
            status,
            if dots { 400 } else { 403 },
            "reader must not reach {path}"
        );
    }
    // Without a session, none of these reach the app either.
    for path in [
        "/auth/../admin",
        "/public/../x",
        "/auth/",
        "/auth/unknown",
        "/.auth/../x",
    ] {
        let status = raw_get(addr, path, "x=y").await;
        assert_eq!(
            status,
            if path.contains("..") { 400 } else { 401 },
            "{path}"
        );
    }
    // Client headers cannot change the decision.
    let r = b
        .client
        .get(b.url("/admin"))
        .header("accept", "application/json")
        .header("x-original-url", "/public")
        .header("x-forwarded-uri", "/public")
        .header("user-agent", "GoogleHC/1.0 kube-probe")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// `roles = [...]`: any one of a list, roles outside `authz.roles`
/// included, for a route and for a Dash callback; the hierarchy still
/// counts (App.Admin holds App.Write), and everywhere else the lowest role
/// is still needed.
#[tokio::test]
async fn routes_and_callbacks_may_take_any_one_of_a_list_of_roles() {
    let mut idp = aadgate_dev_idp::DevIdpConfig::default();
    idp.app_roles.push("Reports.View".into());
    let mut analyst = aadgate_dev_idp::DevUser::new("analyst", "Ann Analyst");
    analyst.roles = vec!["Reports.View".into()];
    idp.users.push(analyst);
    let extra = r#"
[[route]]
path = "/reports"
roles = ["Reports.View", "App.Write"]

[[dash.callback]]
output = "export"
roles = ["Reports.View", "App.Admin"]
"#;
    let s = Setup::with_options(extra, idp).await;
    let status = async |user: &str, path: &str| {
        let b = s.browser();
        b.sign_in(user, "/").await;
        let r = b
            .client
            .get(b.url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status("analyst", "/reports/q3").await.0, 200);
    assert_eq!(status("writer", "/reports").await.0, 200);
    assert_eq!(
        status("admin", "/reports").await.0,
        200,
        "App.Admin holds App.Write"
    );
    let (code, body) = status("reader", "/reports").await;
    assert_eq!(code, 403);
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        j["required_roles"],
        serde_json::json!(["Reports.View", "App.Write"])
    );
    assert_eq!(
        status("analyst", "/").await.0,
        403,
        "elsewhere the lowest role of the hierarchy is needed"
    );

    // A callback rule with a list: any one of it, on a path the user may use.
    let callback = serde_json::json!({
        "output": "export.data",
        "outputs": {"id": "export", "property": "data"},
        "inputs": [],
    })
    .to_string();
    let post = async |user: &str| {
        let b = s.browser();
        b.sign_in(user, "/").await;
        b.client
            .post(b.url("/reports/_dash-update-component"))
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(callback.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("analyst").await, 200);
    assert_eq!(
        post("writer").await,
        403,
        "on /reports, but not in the callback's list"
    );
    assert_eq!(post("admin").await, 200);
}

/// A proxy whose `[authz]` resolves group overage (or not), signing in
/// with `scopes`, in front of the echo app, against a dev IdP with a user
/// in "too many" groups; `/editors` needs the editors group.
async fn overage_setup(
    resolve: bool,
    oidc: &str,
) -> (
    crate::harness::Idp,
    crate::harness::Proxy,
    tempfile::TempDir,
) {
    use aadgate_dev_idp::config::GROUP_EDITORS;
    use aadgate_dev_idp::{DevIdpConfig, DevUser};
    let mut config = DevIdpConfig::default();
    let mut many = DevUser::new("many", "Manny Groups");
    many.roles = vec!["App.Read".into()];
    many.groups = vec![GROUP_EDITORS.into()];
    many.groups_overage = true;
    config.users.push(many);
    let (pl, paddr) = crate::harness::listener().await;
    let idp = crate::harness::Idp::start(config, &[paddr.port()]).await;
    let echo = crate::harness::start_echo().await;
    let store = tempfile::tempdir().unwrap();
    let text = crate::harness::config_text(
        paddr.port(),
        echo,
        &idp.idp,
        &store.path().join("sessions"),
        &format!("[[route]]\npath = \"/editors\"\ngroups = [\"{GROUP_EDITORS}\"]\n"),
    )
    .replace(
        "[authz]\n",
        &format!("[authz]\nresolve_group_overage = {resolve}\n"),
    )
    .replace("[oidc]\n", &format!("[oidc]\n{oidc}\n"));
    let proxy = crate::harness::Proxy::start(pl, &text, &idp.idp.config().client_secret).await;
    (idp, proxy, store)
}

#[tokio::test]
async fn group_overage_is_resolved_through_graph_or_fails_closed() {
    use crate::harness::{Browser, seen};
    use aadgate_dev_idp::config::GROUP_EDITORS;
    let with_permission =
        r#"scopes = ["openid", "profile", "email", "offline_access", "GroupMember.Read.All"]"#;
    // Resolved: the groups come from Graph's getMemberObjects, and the
    // group rule lets the member in.
    let (_idp, proxy, _store) = overage_setup(true, with_permission).await;
    let b = Browser::new(proxy.addr);
    b.sign_in("many", "/").await;
    let echo = b.echo("/editors/page").await;
    assert_eq!(seen(&echo, "x-forwarded-groups"), [GROUP_EDITORS]);

    // Not asked to: the token's overage fails closed, as before.
    let (_idp, proxy, _store) = overage_setup(false, with_permission).await;
    let b = Browser::new(proxy.addr);
    b.sign_in("many", "/").await;
    assert_eq!(b.navigate(&b.url("/editors/page")).await.status(), 403);
    assert_eq!(b.navigate(&b.url("/")).await.status(), 200);

    // Asked to, but Graph cannot be reached: the user is still signed in,
    // and group rules refuse.
    let closed = {
        let (l, addr) = crate::harness::listener().await;
        drop(l);
        addr
    };
    let (_idp, proxy, _store) = overage_setup(
        true,
        &format!("{with_permission}\ngraph_url = \"http://{closed}\""),
    )
    .await;
    let b = Browser::new(proxy.addr);
    b.sign_in("many", "/").await;
    let r = b.navigate(&b.url("/editors/page")).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("so many groups"));
    assert_eq!(b.navigate(&b.url("/")).await.status(), 200);
}
