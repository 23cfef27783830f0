//! A writer of the Prometheus text exposition format (version 0.0.4).
//!
//! Hand-written rather than `prometheus-client`: most series here are not long-lived
//! counters but figures computed from the stores at scrape time (releases, verdicts,
//! alerts, outbox), which that crate's registry of metric objects does not fit; the few
//! process counters are atomics next to their call sites. What this writes is checked
//! by `promtool check metrics` in the end-to-end tests.

use std::fmt::Write;

/// Content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prefix of every collector metric.
pub const PREFIX: &str = "bellwether_";

#[derive(Default)]
pub struct Text(String);

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Formats a sample value; integers without a fraction, non-finite as Prometheus spells them.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

impl Text {
    /// `# HELP` and `# TYPE` of a family (`name` without the prefix).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.0, "# TYPE {PREFIX}{name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.0, "{PREFIX}{name}");
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    pub fn finish(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_and_escaped_labels() {
        let mut text = Text::default();
        text.family("things_total", "counter", "Things.");
        text.sample("things_total", &[("name", "a\"b\\c\nd")], 3.0);
        text.sample("things_total", &[], 0.25);
        assert_eq!(
            text.finish(),
            "# HELP bellwether_things_total Things.\n\
             # TYPE bellwether_things_total counter\n\
             bellwether_things_total{name=\"a\\\"b\\\\c\\nd\"} 3\n\
             bellwether_things_total 0.25\n"
        );
    }

    #[test]
    fn numbers_follow_the_format() {
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.001), "0.001");
    }
}
