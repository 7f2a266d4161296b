//! Form and query parameters (`application/x-www-form-urlencoded`), parsed
//! leniently: malformed input never fails the request outright, and the
//! endpoints decide what a missing or repeated parameter means.

/// The parameters of one request, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a query string or form body.
    pub(crate) fn parse(input: &[u8]) -> Self {
        Self {
            pairs: url::form_urlencoded::parse(input).into_owned().collect(),
        }
    }

    /// The value of `name`, treating an empty value as absent (as Entra does).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that occurs more than once (RFC 6749 §3.1:
    /// parameters must not be included more than once).
    pub(crate) fn repeated<'n>(&self, names: &[&'n str]) -> Option<&'n str> {
        names
            .iter()
            .find(|name| self.pairs.iter().filter(|(k, _)| k == *name).count() > 1)
            .copied()
    }

    /// All pairs except those named `skip`.
    pub(crate) fn pairs_except<'a>(
        &'a self,
        skip: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k != skip)
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_treats_empty_as_missing() {
        let p = Params::parse(b"a=1&b=&c=x%20y+z&a=2");
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y z"));
        assert_eq!(p.repeated(&["b", "a"]), Some("a"));
        assert_eq!(p.repeated(&["b", "c"]), None);
        assert_eq!(p.pairs_except("a").count(), 2);
    }

    #[test]
    fn malformed_input_does_not_fail() {
        let p = Params::parse(b"%zz=%&=x&&q=%E2%82");
        assert!(p.get("q").is_some());
    }
}
