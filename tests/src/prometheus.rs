//! The Prometheus text format, as far as the metrics tests need it: a strict line parser,
//! the families a `/metrics` body declares, and the metric names a dashboard or rule file
//! queries.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").context("label without =\"")?;
        if !valid_name(key) {
            bail!("invalid label name {key:?}");
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => bail!("invalid escape {other:?} in label {key}"),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.context("unterminated label value")?;
        if labels.insert(key.to_owned(), value).is_some() {
            bail!("label {key} repeated");
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

/// Parses a `/metrics` body: (family name → type, samples). Every line must be a comment
/// or a well-formed sample, and every sample must belong to a declared family.
pub fn parse(text: &str) -> Result<(BTreeMap<String, String>, Vec<Sample>)> {
    let mut families = BTreeMap::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').with_context(at)?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                bail!("unknown type at {}", at());
            }
            families.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').with_context(at)?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().with_context(at)?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (
                name,
                parse_labels(rest.strip_suffix('}').with_context(at)?).with_context(at)?,
            ),
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            bail!("invalid metric name at {}", at());
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| families.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        if !families.contains_key(family) {
            bail!("sample of undeclared family at {}", at());
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok((families, samples))
}

/// The names a scrape can return for these families (histograms with their suffixes).
pub fn exported_names(families: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in families {
        names.insert(name.clone());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Every `bellwether_…` metric name in `text` (a dashboard's JSON or a rule file).
pub fn referenced_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("bellwether_") {
        let start = i + pos;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            names.insert(text[start..end].to_owned());
        }
        i = end.max(start + 1);
    }
    names
}

/// The value of the sample `name` with exactly these labels (among others).
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() -> Result<()> {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\",y=\"\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
        let (families, samples) = parse(text)?;
        assert_eq!(families.len(), 2);
        assert_eq!(value(&samples, "a_total", &[("x", "1\"2")]), Some(3.0));
        assert!(exported_names(&families).contains("h_bucket"));
        assert!(parse("undeclared 1\n").is_err());
        assert!(parse("# TYPE a gauge\na{x=\"1} 2\n").is_err());
        assert!(parse("# TYPE a gauge\na one\n").is_err());
        Ok(())
    }

    #[test]
    fn finds_referenced_names() {
        let names = referenced_names(
            r#"{"expr": "rate(bellwether_agent_records_sent_total[1m]) / bellwether_release_error_ratio", "uid": "bellwether-x", "n": "my_bellwether_y"}"#,
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "bellwether_agent_records_sent_total",
                "bellwether_release_error_ratio"
            ]
        );
    }
}
