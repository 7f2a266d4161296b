//! Prometheus metrics: a strict reader of the OpenMetrics text the proxy
//! serves (used here and by the whole-binary test in `cli.rs`), and what
//! the library counts as sessions are revalidated and tokens refreshed.

use std::collections::BTreeMap;

use crate::harness::{Setup, api_get};

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// A scrape, read strictly by the OpenMetrics 1.0 text rules that matter to
/// a scraper: every sample belongs to a family declared by `# TYPE` before
/// it, with a suffix its type allows; labels are well formed and unique;
/// values are numbers; the text ends with `# EOF`; every histogram's buckets
/// rise with `le`, never decrease, and end with `+Inf` equal to `_count`.
#[derive(Debug)]
pub(crate) struct Scrape {
    pub(crate) types: BTreeMap<String, String>,
    pub(crate) samples: Vec<Sample>,
}

impl Scrape {
    pub(crate) fn parse(text: &str) -> Self {
        let body = text
            .strip_suffix("# EOF\n")
            .unwrap_or_else(|| panic!("the exposition does not end with \"# EOF\\n\":\n{text}"));
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in body.lines() {
            assert!(!line.is_empty(), "an empty line in:\n{text}");
            if let Some(meta) = line.strip_prefix("# ") {
                let mut parts = meta.splitn(3, ' ');
                let (kind, family) = (parts.next().unwrap(), parts.next().unwrap());
                let rest = parts.next().unwrap_or_default();
                assert!(valid_name(family), "bad metric name in {line:?}");
                match kind {
                    "TYPE" => {
                        assert!(
                            ["counter", "gauge", "histogram", "info"].contains(&rest),
                            "unexpected type in {line:?}"
                        );
                        assert!(
                            types.insert(family.to_owned(), rest.to_owned()).is_none(),
                            "{family} declared twice"
                        );
                    }
                    "HELP" => assert!(!rest.is_empty(), "empty help in {line:?}"),
                    "UNIT" => assert!(family.ends_with(&format!("_{rest}")), "{line:?}"),
                    _ => panic!("unknown comment {line:?}"),
                }
                continue;
            }
            let sample = parse_sample(line);
            let family = types
                .iter()
                .filter(|(f, _)| sample.name.starts_with(f.as_str()))
                .max_by_key(|(f, _)| f.len())
                .unwrap_or_else(|| panic!("sample of an undeclared family: {line:?}"));
            let suffix = &sample.name[family.0.len()..];
            let allowed: &[&str] = match family.1.as_str() {
                "counter" => &["_total", "_created"],
                "gauge" => &[""],
                "histogram" => &["_bucket", "_count", "_sum", "_created"],
                "info" => &["_info"],
                _ => unreachable!(),
            };
            assert!(allowed.contains(&suffix), "{line:?} is not a {}", family.1);
            samples.push(sample);
        }
        let scrape = Self { types, samples };
        scrape.check_histograms();
        scrape
    }

    fn check_histograms(&self) {
        for (family, _) in self.types.iter().filter(|(_, t)| *t == "histogram") {
            let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let mut labels = s.labels.clone();
                let le = labels.remove("le").expect("a bucket without le");
                let le: f64 = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le is a number")
                };
                series.entry(labels).or_default().push((le, s.value));
            }
            for (labels, buckets) in series {
                assert!(buckets.len() >= 2, "{family}{labels:?} has too few buckets");
                for pair in buckets.windows(2) {
                    assert!(pair[0].0 < pair[1].0, "{family}{labels:?}: le not rising");
                    assert!(pair[0].1 <= pair[1].1, "{family}{labels:?}: counts fall");
                }
                let (last_le, last) = *buckets.last().unwrap();
                assert_eq!(last_le, f64::INFINITY, "{family}{labels:?} lacks +Inf");
                let count = self.value(&format!("{family}_count"), &labels);
                assert_eq!(count, Some(last), "{family}{labels:?}: +Inf != _count");
                assert!(
                    self.value(&format!("{family}_sum"), &labels)
                        .is_some_and(|s| s >= 0.0),
                    "{family}{labels:?}: no _sum"
                );
            }
        }
    }

    /// The value of the sample `name` with exactly `labels`.
    pub(crate) fn value(&self, name: &str, labels: &BTreeMap<String, String>) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && &s.labels == labels)
            .map(|s| s.value)
    }

    /// The value of `name{labels}`, 0 when the series does not exist (yet).
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.value(name, &labels).unwrap_or(0.0)
    }

    /// Every sample of `name`.
    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("a sample without a value: {line:?}"),
    };
    assert!(valid_name(name), "bad metric name in {line:?}");
    let mut labels = BTreeMap::new();
    let mut rest = rest;
    if let Some(mut inner) = rest.strip_prefix('{') {
        while !inner.starts_with('}') {
            let eq = inner.find('=').unwrap_or_else(|| panic!("{line:?}"));
            let key = &inner[..eq];
            assert!(
                valid_name(key) && !key.contains(':'),
                "bad label name in {line:?}"
            );
            inner = inner[eq + 1..]
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
            let mut value = String::new();
            let mut chars = inner.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => panic!("bad escape in {line:?}"),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            assert!(
                labels.insert(key.to_owned(), value).is_none(),
                "label {key} repeated in {line:?}"
            );
            inner = &inner[end + 1..];
            if let Some(next) = inner.strip_prefix(',') {
                inner = next;
            } else {
                assert!(inner.starts_with('}'), "{line:?}");
            }
        }
        rest = &inner[1..];
    }
    let value = rest
        .strip_prefix(' ')
        .unwrap_or_else(|| panic!("no space before the value: {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().unwrap_or_else(|_| {
            panic!("value {v:?} is not a number (timestamps are not expected)")
        }),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

#[test]
fn the_reader_refuses_what_a_scraper_would() {
    let ok = "# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n# HELP a_seconds x.\n\
a_seconds_sum{k=\"v\"} 0.5\na_seconds_count{k=\"v\"} 2\n\
a_seconds_bucket{le=\"0.1\",k=\"v\"} 1\na_seconds_bucket{le=\"+Inf\",k=\"v\"} 2\n\
# TYPE b counter\nb_total{x=\"a\\\"b\"} 3\n# EOF\n";
    let s = Scrape::parse(ok);
    assert_eq!(s.get("b_total", &[("x", "a\"b")]), 3.0);
    assert_eq!(s.get("a_seconds_count", &[("k", "v")]), 2.0);
    for bad in [
        ok.replace("# EOF\n", ""),
        ok.replace("} 2\n# TYPE", "} 3\n# TYPE"),
        ok.replace("le=\"0.1\",k=\"v\"} 1", "le=\"0.1\",k=\"v\"} 5"),
        ok.replace("b_total", "b_count"),
        ok.replace("# TYPE b counter\n", ""),
        ok.replace("x=\"a", "x=a"),
    ] {
        assert!(
            std::panic::catch_unwind(|| Scrape::parse(&bad)).is_err(),
            "accepted:\n{bad}"
        );
    }
}

async fn scrape_of(s: &Setup) -> Scrape {
    Scrape::parse(
        &s.proxy()
            .auth
            .encode_metrics()
            .await
            .expect("metrics are kept with metrics_listen set"),
    )
}

/// Revalidations are counted by outcome: roles re-derived, a session ended
/// because the provider refused it, kept through an outage, ended after
/// the grace period. The session clock is moved instead of waiting.
#[tokio::test]
async fn revalidations_are_counted_by_outcome() {
    let mut s = Setup::with_extra("metrics_listen = \"127.0.0.1:9\"").await;
    let clock = s.proxy().auth.clock().clone();
    let revalidations =
        |m: &Scrape, result| m.get("aadgate_revalidations_total", &[("result", result)]);

    let writer = s.browser();
    writer.sign_in("writer", "/").await;
    let reader = s.browser();
    reader.sign_in("reader", "/").await;
    assert!(s.idp.idp.disable_user("reader"));
    clock.advance(901);
    assert_eq!(
        api_get(&writer.client, writer.url("/x")).await.status(),
        200
    );
    assert_eq!(
        api_get(&reader.client, reader.url("/x")).await.status(),
        401
    );
    let m = scrape_of(&s).await;
    assert_eq!(revalidations(&m, "ok"), 1.0);
    assert_eq!(revalidations(&m, "ended"), 1.0);
    assert_eq!(
        m.get(
            "aadgate_signins_total",
            &[("result", "ok"), ("reason", "none")]
        ),
        2.0
    );
    // The refresh tokens were redeemed at the token endpoint: one answered,
    // one refused (the disabled user's grant), the provider itself healthy.
    assert_eq!(
        m.get(
            "aadgate_provider_fetches_total",
            &[("what", "token"), ("result", "refused")]
        ),
        1.0
    );
    assert_eq!(
        m.get(
            "aadgate_provider_fetches_total",
            &[("what", "token"), ("result", "ok")]
        ),
        3.0
    );
    assert_eq!(m.get("aadgate_active_sessions", &[]), 1.0, "the writer's");
    let cached = m.get("aadgate_session_cache_bytes", &[]);
    assert!(
        (1_000.0..16_000.0).contains(&cached),
        "one session: {cached} B"
    );

    s.idp.stop().await;
    clock.advance(901);
    assert_eq!(
        api_get(&writer.client, writer.url("/x")).await.status(),
        200
    );
    clock.advance(3600);
    assert_eq!(
        api_get(&writer.client, writer.url("/x")).await.status(),
        401
    );
    let m = scrape_of(&s).await;
    assert_eq!(
        revalidations(&m, "unavailable"),
        1.0,
        "kept within the grace period"
    );
    assert_eq!(revalidations(&m, "grace_exceeded"), 1.0, "then ended");
    assert_eq!(
        m.get(
            "aadgate_provider_fetches_total",
            &[("what", "token"), ("result", "error")]
        ),
        2.0
    );
    assert_eq!(m.get("aadgate_active_sessions", &[]), 0.0);
}

/// An access token for the app (`pass_access_token`) renewed with the
/// refresh token counts a refresh; a session without metrics counts nothing.
#[tokio::test]
async fn token_refreshes_are_counted() {
    let s = Setup::with_extra(
        "metrics_listen = \"127.0.0.1:9\"\npass_access_token = true\n[session]\nrevalidate_secs = 0\n",
    )
    .await;
    let b = s.browser();
    b.sign_in("reader", "/").await;
    let token = |echo: &serde_json::Value| {
        crate::harness::seen(echo, "x-forwarded-access-token")[0].to_owned()
    };
    let first = token(&b.echo("/x").await);
    // The dev IdP's access tokens live an hour: one minute before expiry
    // the next request renews it.
    s.proxy().auth.clock().advance(3600 - 59);
    let second = token(&b.echo("/x").await);
    assert_ne!(first, second, "renewed");
    assert_eq!(token(&b.echo("/x").await), second, "and then reused");
    let m = scrape_of(&s).await;
    assert_eq!(m.get("aadgate_refreshes_total", &[("result", "ok")]), 1.0);
    assert_eq!(
        m.all("aadgate_refreshes_total").count(),
        1,
        "no other outcome"
    );
    assert_eq!(m.all("aadgate_revalidations_total").count(), 0);

    let plain = Setup::new().await;
    assert!(plain.proxy().auth.encode_metrics().await.is_none());
    assert!(plain.proxy().auth.metrics().is_none());
}
