//! Labelled counters and gauges that components register at run time.
//!
//! ```
//! # use bellwether_agent::stats::Stats;
//! let stats = Stats::default();
//! let path = [("path", "/var/log/app.log")];
//! stats.series.add("file_rotations_total", "Rotations seen per tailed file", &path, 1.0);
//! stats.series.set("file_lag_bytes", "Bytes not read yet per tailed file", &path, 4096.0);
//! assert_eq!(stats.series.get("file_rotations_total", &path), Some(1.0));
//! stats.series.remove("file_lag_bytes", &path); // the file is gone
//! ```
//!
//! `/metrics` renders each as `bellwether_agent_<name>{labels} value`. Names follow the
//! Prometheus conventions: `[a-z_]+`, counters end in `_total`, units in the name.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard};

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    Counter,
    Gauge,
}

impl SeriesKind {
    fn name(self) -> &'static str {
        match self {
            SeriesKind::Counter => "counter",
            SeriesKind::Gauge => "gauge",
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    kind: SeriesKind,
    help: String,
    values: BTreeMap<Labels, f64>,
}

/// The registry; see the module documentation.
#[derive(Debug, Default)]
pub struct Series {
    families: Mutex<BTreeMap<String, Family>>,
}

fn labels(labels: &[(&str, &str)]) -> Labels {
    let mut out: Labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.sort();
    out
}

impl Series {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        self.families
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(
        &self,
        kind: SeriesKind,
        name: &str,
        help: &str,
        series: &[(&str, &str)],
        f: impl FnOnce(&mut f64),
    ) {
        let mut families = self.lock();
        let family = families.entry(name.to_owned()).or_insert_with(|| Family {
            kind,
            help: help.to_owned(),
            values: BTreeMap::new(),
        });
        f(family.values.entry(labels(series)).or_insert(0.0));
    }

    /// Adds `delta` to a counter.
    pub fn add(&self, name: &str, help: &str, series: &[(&str, &str)], delta: f64) {
        self.update(SeriesKind::Counter, name, help, series, |v| *v += delta);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, help: &str, series: &[(&str, &str)], value: f64) {
        self.update(SeriesKind::Gauge, name, help, series, |v| *v = value);
    }

    /// Forgets one series (e.g. of a file no longer tailed).
    pub fn remove(&self, name: &str, series: &[(&str, &str)]) {
        if let Some(family) = self.lock().get_mut(name) {
            family.values.remove(&labels(series));
        }
    }

    /// Current value of one series.
    pub fn get(&self, name: &str, series: &[(&str, &str)]) -> Option<f64> {
        self.lock()
            .get(name)
            .and_then(|f| f.values.get(&labels(series)).copied())
    }

    /// Appends every family in the Prometheus text format, names prefixed by `prefix`.
    pub fn render(&self, prefix: &str, out: &mut String) {
        for (name, family) in self.lock().iter() {
            let _ = writeln!(out, "# HELP {prefix}{name} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {prefix}{name} {}", family.kind.name());
            for (labels, value) in &family.values {
                let _ = writeln!(
                    out,
                    "{prefix}{name}{} {value}",
                    render_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                );
            }
        }
    }
}

/// `{k="v",...}`, or nothing without labels.
pub fn render_labels<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let inner: Vec<String> = labels
        .into_iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if inner.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", inner.join(","))
    }
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sorted_escaped_series() {
        let series = Series::default();
        series.add("file_rotations_total", "Rotations", &[("path", "/b")], 1.0);
        series.add(
            "file_rotations_total",
            "Rotations",
            &[("path", "/a\"x")],
            2.0,
        );
        series.add("file_rotations_total", "Rotations", &[("path", "/b")], 1.0);
        series.set("file_lag_bytes", "Lag", &[("path", "/b")], 10.0);
        series.set("file_lag_bytes", "Lag", &[("path", "/b")], 7.0);
        let mut out = String::new();
        series.render("bellwether_agent_", &mut out);
        assert_eq!(
            out,
            "# HELP bellwether_agent_file_lag_bytes Lag\n\
             # TYPE bellwether_agent_file_lag_bytes gauge\n\
             bellwether_agent_file_lag_bytes{path=\"/b\"} 7\n\
             # HELP bellwether_agent_file_rotations_total Rotations\n\
             # TYPE bellwether_agent_file_rotations_total counter\n\
             bellwether_agent_file_rotations_total{path=\"/a\\\"x\"} 2\n\
             bellwether_agent_file_rotations_total{path=\"/b\"} 2\n"
        );
        series.remove("file_lag_bytes", &[("path", "/b")]);
        assert_eq!(series.get("file_lag_bytes", &[("path", "/b")]), None);
    }
}
