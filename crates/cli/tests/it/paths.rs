//! aadgate's own paths come from one table (`aadgate_core::paths`): every
//! one is served, reachable without a session, and documented in README.md.

use aadgate_core::paths::OWN_PATHS;

use crate::harness::Setup;

#[tokio::test]
async fn every_own_path_is_served_without_a_session_and_documented() {
    let s = Setup::new().await;
    let c = crate::harness::no_redirects();
    let readme = include_str!("../../../../README.md");
    let endpoints = &readme[readme
        .find("## Endpoints")
        .expect("README has an Endpoints section")..];
    for (path, _) in OWN_PATHS {
        let r = c
            .get(s.proxy().url(path))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        // Served by aadgate (the echo app would answer 200 JSON with "uri").
        let body = r.text().await.unwrap();
        assert!(!body.contains("\"uri\""), "{path} reached the app");
        assert!(status != 404 && status != 405, "{path}: {status}");
        assert!(
            endpoints.contains(&format!("`{path}")),
            "README's Endpoints table misses {path}"
        );
    }
}

#[tokio::test]
async fn readyz_reports_the_provider_and_passes_once_it_is_reachable() {
    let mut s = Setup::new().await;
    let c = crate::harness::no_redirects();
    s.idp.stop().await;
    let r = c.get(s.proxy().url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["provider"], "unreachable");
    assert_eq!(body["session_store"], "ok");
    s.idp.restart().await;
    let r = c.get(s.proxy().url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ready");
    // Probes come by address: any Host.
    let r = c
        .get(s.proxy().url("/readyz"))
        .header("host", "10.1.2.3:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Shutting down (the proxy does this on SIGTERM): not ready any more.
    s.proxy().auth.drain();
    let r = c.get(s.proxy().url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["draining"], true);
}
