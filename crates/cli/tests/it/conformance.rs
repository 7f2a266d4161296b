//! OpenID relying-party conformance (Basic RP and Config RP profiles, plus
//! the Entra and attack-catalogue cases), each case its own test, against the
//! adversarial provider in `adversary.rs`.

use serde_json::{Value, json};

use crate::adversary::{Adversary, CLIENT, Key, now, proxy_for, sign_in, sign_in_with};
use crate::harness::{Proxy, api_get, seen};

async fn generic() -> (Adversary, Proxy) {
    let adv = Adversary::start("", "").await;
    let proxy = proxy_for(&adv, &format!("issuer = \"{}\"", adv.base()), "").await;
    (adv, proxy)
}

const OK: (u16, bool) = (302, true);
const REJECTED: (u16, bool) = (400, false);

async fn with_claims(
    change: impl Fn(&mut serde_json::Map<String, Value>) + Send + Sync + 'static,
) -> (u16, bool) {
    let (adv, proxy) = generic().await;
    adv.set(move |ctx| {
        let mut c = ctx.claims();
        change(&mut c);
        ctx.sign(&c)
    });
    sign_in(&proxy).await
}

// ---- Basic RP ----

#[tokio::test]
async fn basic_rp_code_flow_with_rs256_and_profile_claims() {
    let (adv, proxy) = generic().await;
    let (c, status, session) = sign_in_with(&proxy).await;
    assert_eq!((status, session), OK);
    let auth = adv.state.lock().unwrap().token_auth.clone().unwrap();
    assert!(
        auth.starts_with("Basic "),
        "client_secret_basic at the token endpoint: {auth}"
    );
    let echo: Value = api_get(&c, proxy.url("/x")).await.json().await.unwrap();
    assert_eq!(
        seen(&echo, "x-forwarded-user"),
        ["user-1"],
        "sub when there is no oid"
    );
    assert_eq!(seen(&echo, "x-forwarded-name"), ["Ada Adversary"]);
    assert_eq!(seen(&echo, "x-forwarded-email"), ["ada@example.test"]);
}

#[tokio::test]
async fn basic_rp_rejects_wrong_iss() {
    assert_eq!(
        with_claims(|c| {
            c.insert("iss".into(), json!("https://evil.example"));
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn basic_rp_rejects_missing_sub() {
    assert_eq!(
        with_claims(|c| {
            c.remove("sub");
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn basic_rp_rejects_aud_without_client_id() {
    assert_eq!(
        with_claims(|c| {
            c.insert("aud".into(), json!("someone-else"));
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn basic_rp_rejects_missing_aud() {
    assert_eq!(
        with_claims(|c| {
            c.remove("aud");
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn basic_rp_rejects_missing_iat() {
    assert_eq!(
        with_claims(|c| {
            c.remove("iat");
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn basic_rp_accepts_no_kid_with_one_key() {
    let (adv, proxy) = generic().await;
    adv.set(|ctx| ctx.keys[0].sign(&json!({"alg": "RS256"}), &Value::Object(ctx.claims())));
    assert_eq!(sign_in(&proxy).await, OK);
}

#[tokio::test]
async fn basic_rp_rejects_no_kid_with_several_keys() {
    let (adv, proxy) = generic().await;
    adv.state.lock().unwrap().keys.push(Key::new("k2"));
    adv.set(|ctx| ctx.keys[0].sign(&json!({"alg": "RS256"}), &Value::Object(ctx.claims())));
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

#[tokio::test]
async fn basic_rp_rejects_alg_none() {
    let (adv, proxy) = generic().await;
    adv.set(|ctx| {
        let c = Value::Object(ctx.claims()).to_string();
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(c.as_bytes())
        )
    });
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

#[tokio::test]
async fn basic_rp_rejects_bad_rs256_signature() {
    let (adv, proxy) = generic().await;
    adv.set(|ctx| {
        let t = ctx.valid();
        let (head, sig) = t.rsplit_once('.').unwrap();
        let mut sig = aadgate_core::crypto::b64url_decode(sig).unwrap();
        sig[10] ^= 0xff;
        format!("{head}.{}", b64(&sig))
    });
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

#[tokio::test]
async fn basic_rp_rejects_nonce_mismatch() {
    assert_eq!(
        with_claims(|c| {
            c.insert("nonce".into(), json!("another-nonce"));
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn rejects_missing_nonce() {
    assert_eq!(
        with_claims(|c| {
            c.remove("nonce");
        })
        .await,
        REJECTED
    );
}

// ---- Time ----

#[tokio::test]
async fn rejects_expired_token() {
    assert_eq!(
        with_claims(|c| {
            c.insert("exp".into(), json!(now() - 600));
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn rejects_future_nbf() {
    assert_eq!(
        with_claims(|c| {
            c.insert("nbf".into(), json!(now() + 600));
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn rejects_iat_far_in_the_past() {
    assert_eq!(
        with_claims(|c| {
            c.insert("iat".into(), json!(now() - 3 * 3600));
        })
        .await,
        REJECTED
    );
}

// ---- Keys and algorithms ----

#[tokio::test]
async fn rejects_unknown_kid_after_one_refetch() {
    let (adv, proxy) = generic().await;
    adv.set(|ctx| {
        let k = Key::new("stranger");
        k.sign(
            &json!({"alg": "RS256", "kid": "stranger"}),
            &Value::Object(ctx.claims()),
        )
    });
    assert_eq!(sign_in(&proxy).await, REJECTED);
    assert_eq!(
        adv.state.lock().unwrap().jwks_fetches,
        2,
        "first fetch, then one refetch for the unknown kid"
    );
}

#[tokio::test]
async fn config_rp_key_rotation_refetches_on_unknown_kid() {
    let (adv, proxy) = generic().await;
    assert_eq!(sign_in(&proxy).await, OK);
    adv.state.lock().unwrap().keys = vec![Key::new("k-rotated")];
    assert_eq!(sign_in(&proxy).await, OK);
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_rsa_public_key() {
    let (adv, proxy) = generic().await;
    adv.set(|ctx| {
        let input = format!(
            "{}.{}",
            b64(json!({"alg": "HS256", "kid": ctx.keys[0].kid})
                .to_string()
                .as_bytes()),
            b64(Value::Object(ctx.claims()).to_string().as_bytes())
        );
        let secret = ctx.keys[0].jwk()["n"].as_str().unwrap().to_owned();
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        format!(
            "{input}.{}",
            b64(aws_lc_rs::hmac::sign(&k, input.as_bytes()).as_ref())
        )
    });
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

#[tokio::test]
async fn rejects_a_key_whose_type_does_not_fit_the_alg() {
    let (adv, proxy) = generic().await;
    // The JWKS says the key is for PS256; the token claims RS256 with it.
    let mut jwk = adv.state.lock().unwrap().keys[0].jwk();
    jwk["alg"] = json!("PS256");
    adv.state.lock().unwrap().jwks = Some(json!({"keys": [jwk]}));
    assert_eq!(sign_in(&proxy).await, REJECTED);
    // An EC key under the same kid cannot verify RS256 either.
    let ec = json!({"kty": "EC", "crv": "P-256", "kid": "k1", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    adv.state.lock().unwrap().jwks = Some(json!({"keys": [ec]}));
    let (adv2, proxy2) = generic().await;
    adv2.state.lock().unwrap().jwks = adv.state.lock().unwrap().jwks.clone();
    assert_eq!(sign_in(&proxy2).await, REJECTED);
}

#[tokio::test]
async fn jwks_with_unparseable_keys_still_uses_the_good_one() {
    let (adv, proxy) = generic().await;
    let good = adv.state.lock().unwrap().keys[0].jwk();
    let junk = json!({"keys": [
        {"kty": "RSA", "kid": "junk1", "n": "!!!", "e": "AQAB"},
        {"kty": "oct", "kid": "junk2", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "small", "n": b64(&[0xc5; 128]), "e": "AQAB"},
        {"kid": "no-kty"},
        "not an object",
        good,
    ]});
    adv.state.lock().unwrap().jwks = Some(junk);
    assert_eq!(sign_in(&proxy).await, OK);
}

#[tokio::test]
async fn an_oversized_jwks_is_not_read() {
    let (adv, proxy) = generic().await;
    let good = adv.state.lock().unwrap().keys[0].jwk();
    let padding: Vec<Value> = (0..3000)
        .map(|i| json!({"kty": "RSA", "kid": format!("pad{i}"), "n": "x".repeat(400), "e": "AQAB"}))
        .collect();
    let mut keys = padding;
    keys.push(good);
    adv.state.lock().unwrap().jwks = Some(json!({"keys": keys}));
    assert_eq!(
        sign_in(&proxy).await,
        REJECTED,
        "a >1 MiB JWKS is refused, so nothing verifies"
    );
}

// ---- Audience ----

#[tokio::test]
async fn accepts_aud_array_with_azp() {
    assert_eq!(
        with_claims(|c| {
            c.insert("aud".into(), json!([CLIENT, "other-api"]));
            c.insert("azp".into(), json!(CLIENT));
        })
        .await,
        OK
    );
}

#[tokio::test]
async fn rejects_aud_array_without_azp() {
    assert_eq!(
        with_claims(|c| {
            c.insert("aud".into(), json!([CLIENT, "other-api"]));
        })
        .await,
        REJECTED
    );
}

#[tokio::test]
async fn rejects_azp_of_another_client() {
    assert_eq!(
        with_claims(|c| {
            c.insert("azp".into(), json!("other-client"));
        })
        .await,
        REJECTED
    );
}

// ---- Discovery ----

#[tokio::test]
async fn config_rp_discovery_issuer_mismatch_is_refused_before_any_redirect() {
    let adv = Adversary::start("", "/somebody-else").await;
    let proxy = proxy_for(&adv, &format!("issuer = \"{}\"", adv.base()), "").await;
    let (status, session) = sign_in(&proxy).await;
    assert_eq!(
        (status, session),
        (502, false),
        "login answers with an error page, never a redirect"
    );
}

// ---- Entra multi-tenant ----

const TID_A: &str = "11111111-1111-1111-1111-111111111111";
const TID_B: &str = "22222222-2222-2222-2222-222222222222";

async fn multi_tenant(allowed: &str) -> (Adversary, Proxy) {
    let adv = Adversary::start("/organizations/v2.0", "/{tenantid}/v2.0").await;
    let oidc = format!(
        "tenant = \"organizations\"\nissuer = \"{}/organizations/v2.0\"\nallowed_tenants = {allowed}",
        adv.base()
    );
    let proxy = proxy_for(&adv, &oidc, "").await;
    (adv, proxy)
}

fn entra_claims(
    adv_issuer_template: &str,
    tid: &str,
    iss_tid: &str,
) -> impl Fn(&crate::adversary::Ctx<'_>) -> String + use<> {
    let template = adv_issuer_template.to_owned();
    let tid = tid.to_owned();
    let iss_tid = iss_tid.to_owned();
    move |ctx| {
        let mut c = ctx.claims();
        c.insert(
            "iss".into(),
            json!(template.replace("{tenantid}", &iss_tid)),
        );
        c.insert("tid".into(), json!(tid));
        c.insert("ver".into(), json!("2.0"));
        c.insert("oid".into(), json!("0000aaaa-0000-0000-0000-000000000001"));
        ctx.sign(&c)
    }
}

#[tokio::test]
async fn entra_multi_tenant_template_with_matching_tid_is_accepted() {
    let (adv, proxy) = multi_tenant(&format!("[\"{TID_A}\"]")).await;
    let template = adv.state.lock().unwrap().issuer.clone();
    adv.set(entra_claims(&template, TID_A, TID_A));
    assert_eq!(sign_in(&proxy).await, OK);
}

#[tokio::test]
async fn entra_multi_tenant_template_with_mismatching_tid_is_rejected() {
    let (adv, proxy) = multi_tenant("[\"*\"]").await;
    let template = adv.state.lock().unwrap().issuer.clone();
    adv.set(entra_claims(&template, TID_A, TID_B));
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

#[tokio::test]
async fn entra_tenant_outside_allowed_tenants_is_rejected() {
    let (adv, proxy) = multi_tenant(&format!("[\"{TID_A}\"]")).await;
    let template = adv.state.lock().unwrap().issuer.clone();
    adv.set(entra_claims(&template, TID_B, TID_B));
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

#[tokio::test]
async fn entra_v1_tokens_are_rejected() {
    let (adv, proxy) = multi_tenant("[\"*\"]").await;
    let template = adv.state.lock().unwrap().issuer.clone();
    let mint = entra_claims(&template, TID_A, TID_A);
    adv.set(move |ctx| {
        let t = mint(ctx);
        let payload: Value = serde_json::from_slice(
            &aadgate_core::crypto::b64url_decode(t.split('.').nth(1).unwrap()).unwrap(),
        )
        .unwrap();
        let mut c = payload.as_object().unwrap().clone();
        c.insert("ver".into(), json!("1.0"));
        ctx.sign(&c)
    });
    assert_eq!(sign_in(&proxy).await, REJECTED);
}

// ---- Refresh ----

async fn refresh_changes(
    change: impl Fn(&mut serde_json::Map<String, Value>) + Send + Sync + 'static,
) {
    let adv = Adversary::start("", "").await;
    let proxy = proxy_for(
        &adv,
        &format!("issuer = \"{}\"", adv.base()),
        "pass_access_token = true",
    )
    .await;
    adv.set(move |ctx| {
        let mut c = ctx.claims();
        if ctx.refresh {
            c.remove("nonce");
            change(&mut c);
        }
        ctx.sign(&c)
    });
    let (browser, status, _) = sign_in_with(&proxy).await;
    assert_eq!(status, 302);
    // The first access token lives 30 s: passing it upstream refreshes it.
    let r = api_get(&browser, proxy.url("/a")).await;
    assert_eq!(r.status(), 200);
    let r = api_get(&browser, proxy.url("/b")).await;
    assert_eq!(
        r.status(),
        401,
        "the refreshed ID token named someone else: session ended"
    );
}

#[tokio::test]
async fn refresh_whose_id_token_changes_sub_is_rejected() {
    refresh_changes(|c| {
        c.insert("sub".into(), json!("user-2"));
    })
    .await;
}

#[tokio::test]
async fn refresh_whose_id_token_changes_iss_is_rejected() {
    refresh_changes(|c| {
        c.insert("iss".into(), json!("https://evil.example"));
    })
    .await;
}

#[tokio::test]
async fn refresh_with_a_valid_id_token_keeps_the_session_and_updates_roles() {
    let adv = Adversary::start("", "").await;
    let proxy = proxy_for(
        &adv,
        &format!("issuer = \"{}\"", adv.base()),
        "pass_access_token = true",
    )
    .await;
    adv.set(|ctx| {
        let mut c = ctx.claims();
        if ctx.refresh {
            c.remove("nonce");
            c.insert("roles".into(), json!(["App.Write"]));
        }
        ctx.sign(&c)
    });
    let (browser, status, _) = sign_in_with(&proxy).await;
    assert_eq!(status, 302);
    let r = api_get(&browser, proxy.url("/a")).await;
    let echo: Value = r.json().await.unwrap();
    assert_eq!(
        seen(&echo, "x-forwarded-access-token"),
        ["access-2"],
        "refreshed token passed"
    );
    let echo: Value = api_get(&browser, proxy.url("/b"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        seen(&echo, "x-forwarded-roles"),
        ["App.Read,App.Write"],
        "roles from the refreshed token"
    );
}

fn b64(bytes: &[u8]) -> String {
    aadgate_core::crypto::b64url(bytes)
}

// ---- Groups ----

async fn group_case(groups: Value, overage: bool) -> u16 {
    let adv = Adversary::start("", "").await;
    let extra = "[[route]]\npath = \"/finance\"\ngroups = [\"g-finance\"]\n";
    let proxy = proxy_for(&adv, &format!("issuer = \"{}\"", adv.base()), extra).await;
    adv.set(move |ctx| {
        let mut c = ctx.claims();
        if overage {
            c.insert("_claim_names".into(), json!({"groups": "src1"}));
            c.insert("_claim_sources".into(), json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}));
        } else {
            c.insert("groups".into(), groups.clone());
        }
        ctx.sign(&c)
    });
    let (browser, status, _) = sign_in_with(&proxy).await;
    assert_eq!(status, 302);
    api_get(&browser, proxy.url("/finance/q3"))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn group_rules_admit_members_only() {
    assert_eq!(
        group_case(json!(["g-other", "g-finance"]), false).await,
        200
    );
    assert_eq!(group_case(json!(["g-other"]), false).await, 403);
    assert_eq!(group_case(json!([]), false).await, 403);
}

#[tokio::test]
async fn group_overage_token_under_a_group_rule_fails_closed() {
    assert_eq!(group_case(json!(["g-finance"]), true).await, 403);
}
