//! Batches: accumulation by record count and age, splitting of oversized inputs, and the
//! ids that let the collector recognise a re-sent batch.

use bellwether_proto::otlp::logs::{ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans};
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use tokio::time::Instant;

/// One export unit, ready for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `<instance-id>:<boot-id>:<sequence>`; a retry re-sends the same id.
    pub id: String,
    /// Log records plus spans in the payload.
    pub records: usize,
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Logs(ExportLogsServiceRequest),
    Spans(ExportTraceServiceRequest),
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Logs(_) => "logs",
            Payload::Spans(_) => "spans",
        }
    }
}

/// Hands out batch ids. The sequence restarts with each process; the random boot id keeps
/// ids of different runs apart.
#[derive(Debug)]
pub struct BatchIds {
    prefix: String,
    next: u64,
}

/// Longest instance id kept in a batch id, so the id stays well under 256 bytes.
const MAX_INSTANCE_ID_IN_BATCH_ID: usize = 200;

impl BatchIds {
    pub fn new(instance_id: &str, boot_id: &str) -> Self {
        // gRPC metadata values must be visible ASCII.
        let sanitize = |s: &str, max: usize| -> String {
            s.chars()
                .take(max)
                .map(|c| if c.is_ascii_graphic() { c } else { '_' })
                .collect()
        };
        Self {
            prefix: format!(
                "{}:{}",
                sanitize(instance_id, MAX_INSTANCE_ID_IN_BATCH_ID),
                sanitize(boot_id, 32)
            ),
            next: 0,
        }
    }

    pub fn next_id(&mut self) -> String {
        let id = format!("{}:{}", self.prefix, self.next);
        self.next += 1;
        id
    }
}

/// A resource-level container of records that can be split at record granularity.
pub trait ResourceBatch: Sized {
    fn count(&self) -> usize;
    /// Moves the first `n` records (with their resource and scope) into a new value.
    fn split_front(&mut self, n: usize) -> Self;
}

impl ResourceBatch for ResourceLogs {
    fn count(&self) -> usize {
        self.scope_logs.iter().map(|s| s.log_records.len()).sum()
    }

    fn split_front(&mut self, n: usize) -> Self {
        let mut head = ResourceLogs {
            resource: self.resource.clone(),
            scope_logs: Vec::new(),
            schema_url: self.schema_url.clone(),
        };
        let mut remaining = n;
        while remaining > 0 && !self.scope_logs.is_empty() {
            let first = &mut self.scope_logs[0];
            if first.log_records.len() <= remaining {
                remaining -= first.log_records.len();
                head.scope_logs.push(self.scope_logs.remove(0));
            } else {
                let rest = first.log_records.split_off(remaining);
                let taken = std::mem::replace(&mut first.log_records, rest);
                head.scope_logs.push(ScopeLogs {
                    scope: first.scope.clone(),
                    log_records: taken,
                    schema_url: first.schema_url.clone(),
                });
                remaining = 0;
            }
        }
        head
    }
}

impl ResourceBatch for ResourceSpans {
    fn count(&self) -> usize {
        self.scope_spans.iter().map(|s| s.spans.len()).sum()
    }

    fn split_front(&mut self, n: usize) -> Self {
        let mut head = ResourceSpans {
            resource: self.resource.clone(),
            scope_spans: Vec::new(),
            schema_url: self.schema_url.clone(),
        };
        let mut remaining = n;
        while remaining > 0 && !self.scope_spans.is_empty() {
            let first = &mut self.scope_spans[0];
            if first.spans.len() <= remaining {
                remaining -= first.spans.len();
                head.scope_spans.push(self.scope_spans.remove(0));
            } else {
                let rest = first.spans.split_off(remaining);
                let taken = std::mem::replace(&mut first.spans, rest);
                head.scope_spans.push(ScopeSpans {
                    scope: first.scope.clone(),
                    spans: taken,
                    schema_url: first.schema_url.clone(),
                });
                remaining = 0;
            }
        }
        head
    }
}

/// Records waiting to form a batch.
#[derive(Debug)]
pub struct Pending<T> {
    items: Vec<T>,
    count: usize,
    oldest: Option<Instant>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            count: 0,
            oldest: None,
        }
    }
}

impl<T: ResourceBatch> Pending<T> {
    /// Adds an item; items without records are discarded.
    pub fn push(&mut self, item: T, now: Instant) {
        let count = item.count();
        if count == 0 {
            return;
        }
        self.count += count;
        self.oldest.get_or_insert(now);
        self.items.push(item);
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// When the oldest waiting record was added.
    pub fn oldest(&self) -> Option<Instant> {
        self.oldest
    }

    /// Takes up to `max` records (at least one), splitting an item if needed. Returns the
    /// items and their record count; `None` when empty.
    pub fn take(&mut self, max: usize, now: Instant) -> Option<(Vec<T>, usize)> {
        if self.count == 0 {
            return None;
        }
        let max = max.max(1);
        let mut taken = Vec::new();
        let mut taken_count = 0;
        while taken_count < max && !self.items.is_empty() {
            let room = max - taken_count;
            let first = &mut self.items[0];
            let count = first.count();
            if count <= room {
                taken_count += count;
                taken.push(self.items.remove(0));
            } else {
                taken.push(first.split_front(room));
                taken_count += room;
            }
        }
        self.count -= taken_count;
        // Left-overs restart the age clock: they are flushed one timeout from now at most.
        self.oldest = (self.count > 0).then_some(now);
        Some((taken, taken_count))
    }
}

#[cfg(test)]
mod tests {
    use bellwether_proto::otlp::logs::LogRecord;
    use bellwether_proto::otlp::resource::Resource;
    use bellwether_proto::otlp::trace::Span;

    use super::*;
    use crate::otlp::string_kv;

    fn logs(scopes: &[usize]) -> ResourceLogs {
        ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "svc")],
                ..Resource::default()
            }),
            scope_logs: scopes
                .iter()
                .map(|n| ScopeLogs {
                    log_records: (0..*n)
                        .map(|i| LogRecord {
                            time_unix_nano: i as u64,
                            ..LogRecord::default()
                        })
                        .collect(),
                    ..ScopeLogs::default()
                })
                .collect(),
            schema_url: String::new(),
        }
    }

    #[test]
    fn split_front_keeps_resource_and_order() {
        let mut rl = logs(&[2, 3]);
        let head = rl.split_front(3);
        assert_eq!(head.count(), 3);
        assert_eq!(rl.count(), 2);
        assert_eq!(head.resource, rl.resource);
        assert_eq!(head.scope_logs.len(), 2);
        assert_eq!(head.scope_logs[1].log_records[0].time_unix_nano, 0);
        assert_eq!(rl.scope_logs[0].log_records[0].time_unix_nano, 1);
    }

    #[test]
    fn split_front_spans() {
        let mut rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span::default(); 5],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        };
        let head = rs.split_front(2);
        assert_eq!((head.count(), rs.count()), (2, 3));
    }

    #[test]
    fn pending_takes_exact_batches() {
        let now = Instant::now();
        let mut pending = Pending::default();
        pending.push(logs(&[700]), now);
        pending.push(logs(&[0]), now);
        pending.push(logs(&[400]), now);
        assert_eq!(pending.count(), 1100);
        let sizes: Vec<usize> = std::iter::from_fn(|| pending.take(512, now))
            .map(|(items, n)| {
                assert_eq!(items.iter().map(ResourceBatch::count).sum::<usize>(), n);
                n
            })
            .collect();
        assert_eq!(sizes, [512, 512, 76]);
        assert_eq!(pending.oldest(), None);
    }

    #[test]
    fn batch_ids_are_sequential_and_ascii() {
        let mut ids = BatchIds::new("pod 7\u{e9}", "abc");
        assert_eq!(ids.next_id(), "pod_7_:abc:0");
        assert_eq!(ids.next_id(), "pod_7_:abc:1");
        let mut long = BatchIds::new(&"x".repeat(1000), &"b".repeat(100));
        assert!(long.next_id().len() <= 256);
    }
}
