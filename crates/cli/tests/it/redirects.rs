//! The open-redirect corpus (`data/open_redirects.txt`, 240+ vectors) through
//! every place aadgate takes a return URL: none may leave the site.

use url::Url;

use crate::harness::{Setup, location, urlenc};

/// Hundreds of sign-ins from one address: over the default sign-in rate.
const UNLIMITED: &str = "[limits]\nsignin_per_minute = 0";

fn vectors() -> Vec<String> {
    include_str!("data/open_redirects.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .collect()
}

/// Where a browser would go with this `Location`, and whether that is on our site.
fn stays_on_site(site: &Url, location: &str) -> bool {
    let Ok(target) = site.join(location) else {
        return false;
    };
    target.origin() == site.origin() && !location.starts_with("//") && !location.contains('\\')
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let u = Url::parse("http://x.invalid").unwrap().join(url).ok()?;
    u.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_corpus_has_enough_vectors() {
    assert!(vectors().len() >= 200, "{}", vectors().len());
}

#[tokio::test]
async fn no_vector_leaves_the_site_after_sign_in() {
    let s = Setup::with_extra(UNLIMITED).await;
    let site = Url::parse(&s.proxy().url("/")).unwrap();
    let b = s.browser();
    for v in vectors() {
        let after = b.sign_in("reader", &v).await;
        assert!(
            stays_on_site(&site, &after),
            "rd {v:?} sent the browser to {after:?}"
        );
    }
}

#[tokio::test]
async fn no_vector_leaves_the_site_through_app_service_login_or_logout() {
    let s = Setup::with_extra(UNLIMITED).await;
    let site = Url::parse(&s.proxy().url("/")).unwrap();
    let b = s.browser();
    for v in vectors() {
        // App Service alias: the return path is passed on to /auth/login only if local.
        let r = b
            .navigate(&b.url(&format!(
                "/.auth/login/aad?post_login_redirect_uri={}",
                urlenc(&v)
            )))
            .await;
        let to = location(&r);
        assert!(to.starts_with("/auth/login?rd="), "{v:?}: {to}");
        let rd = query_param(&to, "rd").unwrap();
        assert!(stays_on_site(&site, &rd), "{v:?} -> rd {rd:?}");

        // Logout: the return path travels as `state` through the provider.
        let r = b
            .navigate(&b.url(&format!("/auth/logout?rd={}", urlenc(&v))))
            .await;
        let to = location(&r);
        let state = query_param(&to, "state").unwrap();
        assert!(stays_on_site(&site, &state), "{v:?} -> state {state:?}");

        // ...and comes back to the signed-out page, whose link must be local too.
        let page = b
            .navigate(&b.url(&format!("/auth/signed-out?state={}", urlenc(&v))))
            .await
            .text()
            .await
            .unwrap();
        let href = page
            .split("href=\"")
            .nth(1)
            .and_then(|h| h.split('"').next())
            .unwrap()
            .replace("&amp;", "&");
        let rd = query_param(&href, "rd").unwrap();
        assert!(
            stays_on_site(&site, &rd),
            "{v:?} -> signed-out link rd {rd:?}"
        );
    }
}
