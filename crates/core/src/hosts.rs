//! The hosts aadgate signs users in for: `public_url`'s, and with
//! forward-auth the other hosts listed in `forward_auth.hosts`. It is the
//! one rule for two decisions: which hosts `/auth/check` decides for, and
//! which absolute URLs sign-in may return to (anything else would be an
//! open redirect).

use url::Url;

use crate::flow::safe_return_path;

/// `public_url`'s host plus the configured patterns: exact names
/// (`dash.contoso.com`) or one leading wildcard label (`*.apps.contoso.com`,
/// any host under that domain, not the domain itself).
#[derive(Debug, Clone)]
pub struct ProtectedHosts {
    public: Url,
    patterns: Vec<HostPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot: `.apps.contoso.com`.
    Under(String),
}

/// A configured host pattern that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHostPattern(pub String);

impl ProtectedHosts {
    /// Only `public_url`'s host.
    pub fn only(public: &Url) -> Self {
        Self {
            public: public.clone(),
            patterns: Vec::new(),
        }
    }

    /// `public_url`'s host and `patterns`. A pattern is a lower-case DNS
    /// name, optionally starting with `*.`; no scheme, port, path or bare
    /// `*`.
    pub fn new(public: &Url, patterns: &[String]) -> Result<Self, BadHostPattern> {
        let parsed = patterns
            .iter()
            .map(|p| parse_pattern(p).ok_or_else(|| BadHostPattern(p.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            public: public.clone(),
            patterns: parsed,
        })
    }

    /// The exact names and wildcard domains configured (not `public_url`'s).
    pub fn patterns(&self) -> impl Iterator<Item = String> + '_ {
        self.patterns.iter().map(|p| match p {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Under(s) => format!("*{s}"),
        })
    }

    /// Whether `host` (a bare host name, no port; any case) is protected.
    pub fn contains(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.public.host_str() == Some(host.as_str()) {
            return true;
        }
        self.patterns.iter().any(|p| match p {
            HostPattern::Exact(h) => *h == host,
            HostPattern::Under(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        })
    }

    /// Where sign-in may return to: a local path (see
    /// [`safe_return_path`]), or an absolute `http(s)` URL on a protected
    /// host, with no user name or password, whose path passes the same
    /// checks. The URL is returned as the WHATWG parser (the browser's)
    /// reads it, so what was checked is what the browser follows.
    ///
    /// ```
    /// use aadgate_core::hosts::ProtectedHosts;
    /// let public = url::Url::parse("https://auth.contoso.com").unwrap();
    /// let hosts = ProtectedHosts::new(&public, &["*.apps.contoso.com".into()]).unwrap();
    /// assert_eq!(hosts.safe_return_target("/x").as_deref(), Some("/x"));
    /// assert_eq!(
    ///     hosts.safe_return_target("https://sales.apps.contoso.com/q?a=1").as_deref(),
    ///     Some("https://sales.apps.contoso.com/q?a=1")
    /// );
    /// for evil in [
    ///     "https://evil.com/",
    ///     "https://apps.contoso.com.evil.com/",
    ///     "https://sales.apps.contoso.com@evil.com/",
    ///     "https://x:y@sales.apps.contoso.com/",
    ///     "javascript://sales.apps.contoso.com/%0aalert(1)",
    ///     "https://sales.apps.contoso.com/..//evil.com",
    /// ] {
    ///     assert_eq!(hosts.safe_return_target(evil), None, "{evil}");
    /// }
    /// ```
    pub fn safe_return_target(&self, rd: &str) -> Option<String> {
        if rd.starts_with('/') {
            return safe_return_path(rd);
        }
        if rd.len() > 2048
            || rd
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return None;
        }
        let url = Url::parse(rd).ok()?;
        let scheme_ok = match url.scheme() {
            "https" => true,
            // Plain http only where public_url itself is plain http (loopback).
            "http" => self.public.scheme() == "http",
            _ => false,
        };
        if !scheme_ok || !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let Some(url::Host::Domain(host)) = url.host() else {
            return None;
        };
        if !self.contains(host) {
            return None;
        }
        // The path and query go through the same checks as a local path.
        let local = &url[url::Position::BeforePath..];
        safe_return_path(local)?;
        Some(url.to_string())
    }
}

fn parse_pattern(p: &str) -> Option<HostPattern> {
    let (wild, name) = match p.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    // A wildcard needs at least two labels under it (`*.com` is every site).
    if !is_domain_name(name) || (wild && !name.contains('.')) {
        return None;
    }
    Some(if wild {
        HostPattern::Under(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

/// Whether `name` is a lower-case DNS name: labels of letters, digits and
/// inner hyphens, no wildcard, scheme, port or path.
pub fn is_domain_name(name: &str) -> bool {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(valid_label)
}

/// Whether `host` is `domain` or under it (cookie `Domain` matching).
pub fn within_domain(host: &str, domain: &str) -> bool {
    let host = host.to_ascii_lowercase();
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(patterns: &[&str]) -> ProtectedHosts {
        let public = Url::parse("http://auth.example.localhost:4180").unwrap();
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        ProtectedHosts::new(&public, &p).unwrap()
    }

    #[test]
    fn patterns_are_strict() {
        let public = Url::parse("https://a.contoso.com").unwrap();
        for bad in [
            "*",
            "*.com",
            "https://x.com",
            "x.com:443",
            "x.com/",
            "X.com",
            "*.*.x.com",
            "",
            "a..b",
            "-a.com",
        ] {
            assert!(
                ProtectedHosts::new(&public, &[bad.to_owned()]).is_err(),
                "{bad}"
            );
        }
        assert!(ProtectedHosts::new(&public, &["x.com".into(), "*.y.x.com".into()]).is_ok());
    }

    #[test]
    fn membership() {
        let h = hosts(&["app.example.localhost", "*.apps.example.localhost"]);
        assert!(h.contains("auth.example.localhost"));
        assert!(h.contains("APP.example.localhost"));
        assert!(h.contains("a.apps.example.localhost"));
        assert!(!h.contains("apps.example.localhost"));
        assert!(!h.contains("xapps.example.localhost"));
        assert!(!h.contains("evil.localhost"));
    }

    #[test]
    fn return_targets() {
        let h = hosts(&["app.example.localhost"]);
        assert_eq!(
            h.safe_return_target("http://app.example.localhost:8080/d?x=1#f")
                .as_deref(),
            Some("http://app.example.localhost:8080/d?x=1#f")
        );
        for evil in [
            "http://evil.localhost/",
            "http://app.example.localhost.evil.com/",
            "http:\\\\evil.com",
            "http://app.example.localhost\\@evil.com/",
            "//app.example.localhost/",
            "ftp://app.example.localhost/",
            "http://127.0.0.1/",
            "http://app.example.localhost/\t",
        ] {
            assert_eq!(h.safe_return_target(evil), None, "{evil}");
        }
    }

    #[test]
    fn domain_matching() {
        assert!(within_domain("a.contoso.com", "contoso.com"));
        assert!(within_domain("contoso.com", "contoso.com"));
        assert!(!within_domain("evilcontoso.com", "contoso.com"));
    }
}
