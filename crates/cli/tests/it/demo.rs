use aadgate_cli::demo::{self, DemoPorts};

use crate::harness::Browser;

#[tokio::test]
async fn the_demo_starts_and_shows_the_difference_between_roles() {
    let d = demo::start(DemoPorts { proxy: 0, idp: 0 }).await.unwrap();
    let addr: std::net::SocketAddr = d
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let reader = Browser::new(addr);
    reader.sign_in("reader", "/").await;
    let home = reader
        .navigate(&reader.url("/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(home.contains("Rita Reader"), "name in the navbar");
    assert!(home.contains("<svg class=\"chart\""), "chart rendered");
    // The Graph profile, fetched by the dashboard with the token aadgate passed it.
    assert!(home.contains("id=\"graph-profile\""), "{home}");
    assert!(home.contains("reader@contoso.example"));
    assert!(
        !home.contains("action=\"/api/data\""),
        "no write form for readers"
    );
    let r = reader
        .client
        .post(reader.url("/api/data"))
        .header("accept", "text/html")
        .form(&[("label", "X"), ("value", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "aadgate refuses the write");
    assert_eq!(reader.navigate(&reader.url("/admin")).await.status(), 403);

    let writer = Browser::new(addr);
    writer.sign_in("writer", "/").await;
    let r = writer
        .client
        .post(writer.url("/api/data"))
        .header("accept", "text/html")
        .form(&[("label", "Zed"), ("value", "99")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let home = reader
        .navigate(&reader.url("/"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        home.contains(">Zed<"),
        "the writer's data point is shown to the reader"
    );

    let admin = Browser::new(addr);
    admin.sign_in("admin", "/admin").await;
    let page = admin.navigate(&admin.url("/admin")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Administration") && html.contains("x-ms-client-principal"));
    assert!(html.contains("(an access token,"), "the token is masked");
    assert!(!html.contains(".eyJ"), "no JWT is echoed into the page");

    // Sign-out ends the session.
    let r = admin.navigate(&admin.url("/auth/logout")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(admin.navigate(&admin.url("/")).await.status(), 302);
}
