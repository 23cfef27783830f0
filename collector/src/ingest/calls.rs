//! What a span says beyond its own success: the dependency a client or producer span
//! called ([`dependency_of`]), and the feature flags a trace evaluated ([`FlagTally`]),
//! as span events or as log records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bellwether_proto::otlp::common::any_value::Value;
use bellwether_proto::otlp::common::KeyValue;
use bellwether_proto::otlp::logs::LogRecord;
use bellwether_proto::otlp::trace::span::SpanKind;
use bellwether_proto::otlp::trace::Span;

use super::summarize::is_error_span;
use bellwether_model::dependency::{DependencyCounts, FLAG_SEPARATOR, OTHER};

/// Longest dependency, flag or variant name kept, in bytes (longer ones are cut at a
/// character boundary).
const MAX_NAME: usize = 200;

/// The dependency a span of kind CLIENT or PRODUCER called, by the first of
/// `peer.service`; `server.address` (`:server.port`); `db.system.name` (or `db.system`)
/// with `/db.namespace`; `rpc.service`; `messaging.destination.name`. A call with none
/// of them counts under [`OTHER`]; other kinds of span are not calls.
pub fn dependency_of(span: &Span) -> Option<String> {
    let call = span.kind == SpanKind::Client as i32 || span.kind == SpanKind::Producer as i32;
    if !call {
        return None;
    }
    let get = |key: &str| attribute(&span.attributes, key);
    let server = || {
        let address = get("server.address")?;
        Some(match get("server.port") {
            Some(port) => format!("{address}:{port}"),
            None => address,
        })
    };
    let database = || {
        let system = get("db.system.name").or_else(|| get("db.system"))?;
        Some(match get("db.namespace") {
            Some(namespace) => format!("{system}/{namespace}"),
            None => system,
        })
    };
    let name = get("peer.service")
        .or_else(server)
        .or_else(database)
        .or_else(|| get("rpc.service"))
        .or_else(|| get("messaging.destination.name"))
        .unwrap_or_else(|| OTHER.to_owned());
    Some(cut(name))
}

/// A scalar attribute as a non-empty string; NUL (the store's key separator) is replaced.
pub(super) fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    let text = match value {
        Value::StringValue(s) => s.trim().to_owned(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BoolValue(b) => b.to_string(),
        _ => return None,
    };
    if text.is_empty() {
        return None;
    }
    Some(text.replace('\0', "\u{fffd}"))
}

/// `text` cut to [`MAX_NAME`] bytes at a character boundary.
fn cut(mut text: String) -> String {
    if text.len() > MAX_NAME {
        let mut at = MAX_NAME;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

/// Names of the span events that record a flag evaluation (the current convention, and
/// the older one).
const FLAG_EVENTS: [&str; 2] = ["feature_flag.evaluation", "feature_flag"];

/// The (flag, variant) pairs `span`'s events evaluated: `feature_flag.key` with
/// `feature_flag.result.variant` (or the older `feature_flag.variant`, or the
/// `feature_flag.result.value` when no variant is named).
pub fn flag_evaluations(span: &Span) -> Vec<(String, String)> {
    span.events
        .iter()
        .filter(|event| FLAG_EVENTS.contains(&event.name.as_str()))
        .filter_map(|event| {
            let get = |key: &str| attribute(&event.attributes, key);
            let flag = get("feature_flag.key")?;
            let variant = get("feature_flag.result.variant")
                .or_else(|| get("feature_flag.variant"))
                .or_else(|| get("feature_flag.result.value"))?;
            Some((cut(flag), cut(variant)))
        })
        .collect()
}

/// The (flag, variant) a log record evaluated: one with `feature_flag.key` and a
/// variant (as on span events), whatever its event name.
pub fn flag_of_record(record: &LogRecord) -> Option<(String, String)> {
    let get = |key: &str| attribute(&record.attributes, key);
    let flag = get("feature_flag.key")?;
    let variant = get("feature_flag.result.variant")
        .or_else(|| get("feature_flag.variant"))
        .or_else(|| get("feature_flag.result.value"))?;
    Some((cut(flag), cut(variant)))
}

/// The flags one trace evaluated, until its request span counts them.
struct Evaluated {
    flags: BTreeSet<(String, String)>,
    /// Time and outcome of the first span that evaluated one, for a trace whose request
    /// span is not in the export.
    time_unix_nano: u64,
    failed: bool,
}

/// The flag evaluations of one export's spans, by trace: each request (its root or
/// server span) counts once for every (flag, variant) its trace evaluated, as failed
/// when the request span failed.
#[derive(Default)]
pub struct FlagTally {
    by_trace: HashMap<Vec<u8>, Evaluated>,
}

impl FlagTally {
    pub fn of_spans<'a>(spans: impl Iterator<Item = &'a Span>) -> Self {
        let mut tally = Self::default();
        for (n, span) in spans.enumerate() {
            let flags = flag_evaluations(span);
            if flags.is_empty() {
                continue;
            }
            // Without a trace id a span stands alone.
            let key = if span.trace_id.is_empty() {
                [&[0xff][..], &n.to_be_bytes()].concat()
            } else {
                span.trace_id.clone()
            };
            let time = span.end_time_unix_nano.max(span.start_time_unix_nano);
            let entry = tally.by_trace.entry(key).or_insert_with(|| Evaluated {
                flags: BTreeSet::new(),
                time_unix_nano: time,
                failed: is_error_span(span),
            });
            entry.flags.extend(flags);
        }
        tally
    }

    /// The flag evaluations recorded as log records of one export, by trace: each trace
    /// is one request, failed when any of its records in the export is an error
    /// (`is_error`); a record without a trace id stands alone.
    pub fn of_logs<'a>(
        records: impl Iterator<Item = &'a LogRecord> + Clone,
        is_error: impl Fn(&LogRecord) -> bool,
    ) -> Self {
        let mut tally = Self::default();
        for (n, record) in records.clone().enumerate() {
            let Some(flag) = flag_of_record(record) else {
                continue;
            };
            let key = if record.trace_id.is_empty() {
                [&[0xff][..], &n.to_be_bytes()].concat()
            } else {
                record.trace_id.clone()
            };
            let time = record.time_unix_nano.max(record.observed_time_unix_nano);
            let entry = tally.by_trace.entry(key).or_insert_with(|| Evaluated {
                flags: BTreeSet::new(),
                time_unix_nano: time,
                failed: is_error(record),
            });
            entry.flags.insert(flag);
        }
        if !tally.by_trace.is_empty() {
            for record in records.filter(|r| !r.trace_id.is_empty() && is_error(r)) {
                if let Some(evaluated) = tally.by_trace.get_mut(&record.trace_id) {
                    evaluated.failed = true;
                }
            }
        }
        tally
    }

    /// Counts the request `span` (a root or server span, in `bucket`) for the flags its
    /// trace evaluated.
    pub fn count_request(
        &mut self,
        span: &Span,
        bucket: i64,
        out: &mut BTreeMap<i64, BTreeMap<String, DependencyCounts>>,
    ) {
        if span.trace_id.is_empty() {
            return;
        }
        if let Some(evaluated) = self.by_trace.remove(&span.trace_id) {
            add(out, bucket, &evaluated.flags, is_error_span(span));
        }
    }

    /// Counts the traces whose request span was not in the export, each with the span
    /// that evaluated its flags; `bucket_of` maps a time to its bucket.
    pub fn count_rest(
        self,
        bucket_of: impl Fn(u64) -> i64,
        out: &mut BTreeMap<i64, BTreeMap<String, DependencyCounts>>,
    ) {
        for evaluated in self.by_trace.into_values() {
            let bucket = bucket_of(evaluated.time_unix_nano);
            add(out, bucket, &evaluated.flags, evaluated.failed);
        }
    }
}

fn add(
    out: &mut BTreeMap<i64, BTreeMap<String, DependencyCounts>>,
    bucket: i64,
    flags: &BTreeSet<(String, String)>,
    failed: bool,
) {
    let bucket = out.entry(bucket).or_default();
    for (flag, variant) in flags {
        let counts = bucket
            .entry(format!("{flag}{FLAG_SEPARATOR}{variant}"))
            .or_default();
        counts.calls += 1;
        counts.errors += u64::from(failed);
    }
}
