//! `OTEL_RESOURCE_ATTRIBUTES` parsing, per the OpenTelemetry SDK environment variable
//! specification: `key1=value1,key2=value2`, values percent-encoded.

use std::collections::HashMap;

/// Parses `k=v,k2=v2`. Keys and values are trimmed and values percent-decoded; entries
/// without `=` or with an empty key are skipped rather than failing start-up, since the
/// variable is often set for the application rather than for Bellwether.
pub fn parse_resource_attributes(raw: &str) -> HashMap<String, String> {
    raw.split(',')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            Some((key.to_owned(), percent_decode(value.trim())))
        })
        .collect()
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is kept as is, and
/// invalid UTF-8 in the result is replaced.
fn percent_decode(value: &str) -> String {
    percent_encoding::percent_decode_str(value)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_trims() {
        let attrs = parse_resource_attributes(" service.name = checkout ,service.version=1.2.3");
        assert_eq!(
            attrs.get("service.name").map(String::as_str),
            Some("checkout")
        );
        assert_eq!(
            attrs.get("service.version").map(String::as_str),
            Some("1.2.3")
        );
        assert_eq!(attrs.len(), 2);
    }

    #[test]
    fn percent_decodes_values() {
        let attrs = parse_resource_attributes("team=a%2Cb%3Dc%20d,emoji=%F0%9F%94%94");
        assert_eq!(attrs.get("team").map(String::as_str), Some("a,b=c d"));
        assert_eq!(attrs.get("emoji").map(String::as_str), Some("\u{1F514}"));
    }

    #[test]
    fn value_may_contain_equals_and_bad_escapes_are_kept() {
        let attrs = parse_resource_attributes("a=x=y,b=100%,c=%zz");
        assert_eq!(attrs.get("a").map(String::as_str), Some("x=y"));
        assert_eq!(attrs.get("b").map(String::as_str), Some("100%"));
        assert_eq!(attrs.get("c").map(String::as_str), Some("%zz"));
    }

    #[test]
    fn skips_malformed_entries() {
        let attrs = parse_resource_attributes("novalue,,=empty-key,ok=1");
        assert_eq!(attrs.len(), 1);
        assert_eq!(attrs.get("ok").map(String::as_str), Some("1"));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let attrs = parse_resource_attributes("x=%FF");
        assert_eq!(attrs.get("x").map(String::as_str), Some("\u{FFFD}"));
    }
}
