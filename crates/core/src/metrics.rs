//! Prometheus metrics: one [`Metrics`] value that the library, the session
//! store and the proxy record into, and that `aadgate proxy` serves on
//! `metrics_listen` as `GET /metrics` in the OpenMetrics text format.
//!
//! It is passed explicitly (an `Option<Arc<Metrics>>` held by whatever
//! records: `None` records nothing), never a global, so two `Auth`s in one
//! process (tests, an app with two sign-ins) keep their own counts.
//!
//! Recording is on the request path, so it is cheap there: every label set
//! a request can produce is resolved once, into a slot of a table the
//! request indexes (no lock, no hashing afterwards), and durations go into
//! [`Latency`], a histogram of atomic counters (two atomic additions per
//! observation, no lock). Label values are fixed words and status codes:
//! never a path, a user or anything a client chooses.
//!
//! ```
//! use aadgate_core::metrics::{Metrics, RequestKind};
//! use std::time::Duration;
//!
//! let metrics = Metrics::new();
//! metrics.request(RequestKind::Forwarded, 200, Duration::from_millis(3));
//! metrics.signin(Ok(()));
//! let text = metrics.encode();
//! assert!(text.contains(r#"aadgate_request_duration_seconds_count{kind="forwarded",status="200"} 1"#));
//! assert!(text.contains(r#"aadgate_signins_total{result="ok",reason="none"} 1"#));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::error::ProviderError;

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the duration buckets, in nanoseconds: 100 µs to 60 s
/// (an answer from memory, a Redis round trip, a slow app, a slow upload).
const BOUNDS_NANOS: [u64; 18] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

/// A histogram of durations in seconds, lock-free: an observation adds one
/// to its bucket and its nanoseconds to the sum, two relaxed atomic
/// additions (prometheus-client's own histogram takes a lock for each).
/// The count is the sum of the buckets, so `+Inf` and `_count` always agree.
/// Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct Latency(std::sync::Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // The first bucket whose bound is at least `nanos` (`le`), else +Inf.
        let i = BOUNDS_NANOS.partition_point(|&b| b < nanos);
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); BOUNDS_NANOS.len() + 1];
        let mut count = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self.0.buckets[i].load(Ordering::Relaxed);
            let bound = BOUNDS_NANOS
                .get(i)
                .map_or(f64::INFINITY, |&b| b as f64 / 1e9);
            *slot = (bound, n);
            count += n;
        }
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// How the proxy answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// By one of aadgate's own routes (`/auth/*`, `/.auth/*`, `/healthz`, `/readyz`).
    Own,
    /// By the app (or, when the app failed, by aadgate on its behalf: 502, 503, 504).
    Forwarded,
    /// By aadgate, instead of the app: sign in first (302, 401), not
    /// allowed (403), a bad path or host (400, 421), a refused Dash
    /// callback, the session store unreachable (503).
    Refused,
}

impl RequestKind {
    const ALL: [RequestKind; 3] = [
        RequestKind::Own,
        RequestKind::Forwarded,
        RequestKind::Refused,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Own => "own",
            RequestKind::Forwarded => "forwarded",
            RequestKind::Refused => "refused",
        }
    }
}

/// A session-store operation (the methods of [`crate::session::Store`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum StoreOp {
    Get,
    Put,
    Delete,
    Touch,
    Settle,
    Purge,
    ClaimOnce,
    Lock,
    Unlock,
    Index,
    Indexed,
    Scan,
    Ping,
}

impl StoreOp {
    const COUNT: usize = 13;

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Put => "put",
            StoreOp::Delete => "delete",
            StoreOp::Touch => "touch",
            StoreOp::Settle => "settle",
            StoreOp::Purge => "purge",
            StoreOp::ClaimOnce => "claim_once",
            StoreOp::Lock => "lock",
            StoreOp::Unlock => "unlock",
            StoreOp::Index => "index",
            StoreOp::Indexed => "indexed",
            StoreOp::Scan => "scan",
            StoreOp::Ping => "ping",
        }
    }
}

/// What the identity provider was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderFetch {
    /// The discovery document (`/.well-known/openid-configuration`).
    Discovery,
    /// The signing keys (`jwks_uri`).
    Jwks,
    /// The token endpoint (a code redeemed at sign-in, or a refresh token).
    Token,
}

impl ProviderFetch {
    fn as_str(self) -> &'static str {
        match self {
            ProviderFetch::Discovery => "discovery",
            ProviderFetch::Jwks => "jwks",
            ProviderFetch::Token => "token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    op: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignInLabels {
    result: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FetchLabels {
    what: &'static str,
    result: &'static str,
}

/// Status codes `http` can represent: 100 to 999.
const STATUSES: usize = 900;

/// A family whose label sets are resolved once each, into numbered slots:
/// after the first use of a label set, recording is an atomic load (the
/// slot) and the metric's own atomics, never the family's lock and hash.
/// A label set appears in the output from its first use on.
struct Slots<L, M> {
    family: Family<L, M>,
    slots: Box<[OnceLock<M>]>,
}

impl<L, M> Slots<L, M>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
    M: Default + Clone + EncodeMetric + TypedMetric + std::fmt::Debug + Send + Sync + 'static,
{
    fn new(len: usize) -> Self {
        Self {
            family: Family::default(),
            slots: (0..len).map(|_| OnceLock::new()).collect(),
        }
    }

    fn get(&self, slot: usize, labels: impl FnOnce() -> L) -> &M {
        self.slots[slot].get_or_init(|| self.family.get_or_create(&labels()).clone())
    }
}

/// Every metric aadgate records; see the module documentation and
/// `docs/metrics.md` for what each means.
pub struct Metrics {
    registry: Registry,
    requests: Slots<RequestLabels, Latency>,
    store: Slots<StoreLabels, Latency>,
    upstream: Latency,
    upstream_errors: Family<KindLabel, Counter>,
    signins: Family<SignInLabels, Counter>,
    refreshes: Family<ResultLabel, Counter>,
    revalidations: Family<ResultLabel, Counter>,
    bearer_tokens: Family<ResultLabel, Counter>,
    provider_fetches: Family<FetchLabels, Counter>,
    active_sessions: Gauge,
    session_cache_bytes: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, and `aadgate_build_info` naming this version.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("aadgate");
        let requests = Slots::new(RequestKind::ALL.len() * STATUSES);
        r.register_with_unit(
            "request_duration",
            "Requests answered by the proxy, by kind (own: aadgate's own routes; forwarded: the app's answer, or aadgate's 502/503/504 when the app failed; refused: aadgate answered instead of the app) and status, timed from the request's arrival to its response headers",
            Unit::Seconds,
            requests.family.clone(),
        );
        let upstream = Latency::default();
        r.register_with_unit(
            "upstream_request_duration",
            "Requests the app answered, timed from handing the request to the app (waiting for a free connection and sending the body included) to its response headers",
            Unit::Seconds,
            upstream.clone(),
        );
        let upstream_errors = Family::default();
        r.register(
            "upstream_errors",
            "Requests the app did not answer, by kind: connect (no connection could be made), failed (the connection broke, or a response could not be read), timeout (no answer within limits.upstream_header_secs), busy (no connection came free within it: limits.upstream_max_connections)",
            upstream_errors.clone(),
        );
        let signins = Family::default();
        r.register(
            "signins",
            "Sign-ins completed at /auth/callback: result ok (reason none) or error with a fixed reason",
            signins.clone(),
        );
        let refreshes = Family::default();
        r.register(
            "refreshes",
            "Access tokens renewed with a refresh token for the app (pass_access_token, AccessToken): ok, ended (the provider refused the grant; the session ended), no_refresh_token, unavailable (the provider could not be asked)",
            refreshes.clone(),
        );
        let revalidations = Family::default();
        r.register(
            "revalidations",
            "Sessions whose roles were re-derived from the provider (session.revalidate_secs): ok, ended (the provider refused the grant or the token), no_refresh_token (ended), unavailable (provider unreachable; kept within session.revalidate_grace_secs), grace_exceeded (ended)",
            revalidations.clone(),
        );
        let bearer_tokens = Family::default();
        r.register(
            "bearer_tokens",
            "Bearer tokens checked on routes that take them ([[route]] auth = \"bearer\" or \"any\"): ok (validated: valid for this API; roles and scopes are checked next), cached (the same token validated within the last five minutes) or invalid (refused with 401 invalid_token)",
            bearer_tokens.clone(),
        );
        let store = Slots::new(StoreOp::COUNT * 2);
        r.register_with_unit(
            "session_store_operation_duration",
            "Operations on the session store (session.store), by operation and result (ok or error), with their duration",
            Unit::Seconds,
            store.family.clone(),
        );
        let provider_fetches = Family::default();
        r.register(
            "provider_fetches",
            "Requests to the identity provider: discovery, jwks (signing keys) and token (code and refresh-token redemption), by result: ok, refused (the token endpoint answered an OAuth error such as invalid_grant), error (unreachable, an error status or an invalid answer)",
            provider_fetches.clone(),
        );
        let active_sessions = Gauge::default();
        r.register(
            "active_sessions",
            "Live sessions in this process's memory: signed in or used here, not yet ended by session.idle_timeout_secs or session.lifetime_secs (kept within session.cache_mib; with replicas, each counts its own)",
            active_sessions.clone(),
        );
        let session_cache_bytes = Gauge::default();
        r.register(
            "session_cache_bytes",
            "Estimated bytes of the sessions in this process's memory cache (at most session.cache_mib MiB: past it, the sessions used least recently are read from the store again)",
            session_cache_bytes.clone(),
        );
        r.register(
            "build",
            "The aadgate version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry: r,
            requests,
            store,
            upstream,
            upstream_errors,
            signins,
            refreshes,
            revalidations,
            bearer_tokens,
            provider_fetches,
            active_sessions,
            session_cache_bytes,
        }
    }

    /// A request the proxy answered with `status` after `took`.
    pub fn request(&self, kind: RequestKind, status: u16, took: Duration) {
        let s = usize::from(status.clamp(100, 999) - 100);
        let slot = kind as usize * STATUSES + s;
        self.requests
            .get(slot, || RequestLabels {
                kind: kind.as_str(),
                status,
            })
            .observe(took);
    }

    /// A session-store operation that took `took`.
    pub fn store_operation(&self, op: StoreOp, ok: bool, took: Duration) {
        self.store
            .get(op as usize * 2 + usize::from(ok), || StoreLabels {
                op: op.as_str(),
                result: if ok { "ok" } else { "error" },
            })
            .observe(took);
    }

    /// The app answered (its response headers arrived) after `took`.
    pub fn upstream_answered(&self, took: Duration) {
        self.upstream.observe(took);
    }

    /// The app did not answer: `kind` is `connect`, `failed`, `timeout` or `busy`.
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// A sign-in completed (`Ok`) or failed for a fixed `reason`
    /// (such as `unknown_state`; never free text).
    pub fn signin(&self, outcome: Result<(), &'static str>) {
        let labels = match outcome {
            Ok(()) => SignInLabels {
                result: "ok",
                reason: "none",
            },
            Err(reason) => SignInLabels {
                result: "error",
                reason,
            },
        };
        self.signins.get_or_create(&labels).inc();
    }

    /// An access-token refresh ended with `result` (a fixed word).
    pub fn refresh(&self, result: &'static str) {
        self.refreshes.get_or_create(&ResultLabel { result }).inc();
    }

    /// A bearer token was checked: `ok` (validated), `cached` (validated
    /// within the last five minutes), or `invalid`.
    pub fn bearer(&self, result: &'static str) {
        self.bearer_tokens
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A session's revalidation ended with `result` (a fixed word).
    pub fn revalidation(&self, result: &'static str) {
        self.revalidations
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A request to the identity provider: answered (`Ok`), refused with
    /// an OAuth error such as `invalid_grant` (a user's grant, not the
    /// provider, failed), or failed (unreachable, an error status, an
    /// invalid answer).
    pub fn provider_fetch(&self, what: ProviderFetch, result: Result<(), &ProviderError>) {
        let result = match result {
            Ok(()) => "ok",
            Err(ProviderError::TokenEndpoint { .. }) => "refused",
            Err(_) => "error",
        };
        self.provider_fetches
            .get_or_create(&FetchLabels {
                what: what.as_str(),
                result,
            })
            .inc();
    }

    /// Sets `aadgate_active_sessions` (read from the session store when
    /// the metrics are scraped).
    pub fn set_active_sessions(&self, n: usize) {
        self.active_sessions
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets `aadgate_session_cache_bytes` (read from the session store when
    /// the metrics are scraped).
    pub fn set_session_cache_bytes(&self, bytes: u64) {
        self.session_cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]),
    /// ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_bucket_and_the_counts_agree() {
        let m = Metrics::new();
        m.request(RequestKind::Own, 200, Duration::from_micros(100)); // le 0.0001 exactly
        m.request(RequestKind::Own, 200, Duration::from_micros(101));
        m.request(RequestKind::Own, 200, Duration::from_secs(120)); // +Inf
        let text = m.encode();
        let line = |s: &str| {
            assert!(text.lines().any(|l| l == s), "no line {s:?} in\n{text}");
        };
        line(r#"aadgate_request_duration_seconds_bucket{le="0.0001",kind="own",status="200"} 1"#);
        line(r#"aadgate_request_duration_seconds_bucket{le="0.00025",kind="own",status="200"} 2"#);
        line(r#"aadgate_request_duration_seconds_bucket{le="60.0",kind="own",status="200"} 2"#);
        line(r#"aadgate_request_duration_seconds_bucket{le="+Inf",kind="own",status="200"} 3"#);
        line(r#"aadgate_request_duration_seconds_count{kind="own",status="200"} 3"#);
        line(r#"aadgate_request_duration_seconds_sum{kind="own",status="200"} 120.000201"#);
        line(&format!(
            r#"aadgate_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ));
    }

    #[test]
    fn label_sets_are_resolved_once_and_only_used_ones_are_shown() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.request(RequestKind::Refused, 302, Duration::from_millis(1));
            m.store_operation(StoreOp::ClaimOnce, false, Duration::from_millis(1));
        }
        m.request(RequestKind::Forwarded, 999, Duration::ZERO);
        let text = m.encode();
        assert!(
            text.contains(
                r#"aadgate_request_duration_seconds_count{kind="refused",status="302"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"aadgate_request_duration_seconds_count{kind="forwarded",status="999"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"aadgate_session_store_operation_duration_seconds_count{op="claim_once",result="error"} 3"#), "{text}");
        assert!(!text.contains(r#"status="200""#), "{text}");
        assert_eq!(
            m.requests
                .family
                .get_or_create(&RequestLabels {
                    kind: "refused",
                    status: 302
                })
                .0
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .sum::<u64>(),
            3
        );
    }
}
