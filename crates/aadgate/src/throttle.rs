//! Per-client limits on starting and completing sign-ins.
//!
//! Each sign-in costs aadgate a sealed cookie, a state record and, at the
//! callback, a token request to the provider; a client that loops over
//! `/auth/login` and `/auth/callback` must not be able to make that cost
//! unbounded or crowd out other users. A token bucket per client address
//! (`limits.signin_per_minute`, the same number as a burst) bounds it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Addresses remembered at most; beyond it buckets that have refilled are forgotten.
const MAX_CLIENTS: usize = 100_000;

pub(crate) struct SignInThrottle {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl SignInThrottle {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one sign-in step for `client`; `Err(seconds)` says when the
    /// next one will be allowed.
    pub(crate) fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let rate = capacity / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < capacity);
            if buckets.len() >= MAX_CLIENTS {
                buckets.clear();
            }
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil() as u64)
        }
    }
}

/// The client's address: the connection's peer, or, when the peer is one of
/// `trusted` proxies, the nearest address in `X-Forwarded-For` that is not.
pub fn client_address(headers: &HeaderMap, peer: SocketAddr, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut addr = peer.ip();
    if !is_trusted(&addr) {
        return addr;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for hop in hops.into_iter().rev() {
        addr = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_per_client_refills_over_a_minute() {
        let t = SignInThrottle::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.take(a, now).is_ok());
        }
        assert_eq!(t.take(a, now), Err(20));
        assert!(t.take(b, now).is_ok(), "another client is not affected");
        assert!(t.take(a, now + Duration::from_secs(20)).is_ok());
        assert!(SignInThrottle::new(0).take(a, now).is_ok());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 10.1.0.5".parse().unwrap());
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(
            client_address(&h, peer, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let outsider: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        assert_eq!(client_address(&h, outsider, &trusted), outsider.ip());
    }
}
