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
