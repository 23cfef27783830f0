//! Resource-level containers of records: the unit the pipeline sizes, splits and tags.

use bellwether_proto::otlp::metrics::{ResourceMetrics, ScopeMetrics};
use bellwether_proto::otlp::resource::Resource;
use bellwether_proto::otlp::trace::{ResourceSpans, ScopeSpans};
use prost::Message;

/// A resource-level container of records that can be split at record granularity.
pub trait ResourceBatch: Sized {
    fn count(&self) -> usize;
    /// Encoded size, as one resource-level message of a request.
    fn batch_len(&self) -> usize;
    /// Moves the first `n` records (with their resource and scope) into a new value.
    fn split_front(&mut self, n: usize) -> Self;
    /// The resource the records share, which the pipeline tags.
    fn resource_mut(&mut self) -> &mut Option<Resource>;
    /// Encoded size of what [`split_front`](Self::split_front) copies into both halves:
    /// the resource, the schema url, and the scope the cut goes through.
    fn shared_len(&self) -> usize;
}

impl ResourceBatch for ResourceSpans {
    fn batch_len(&self) -> usize {
        Message::encoded_len(self)
    }

    fn resource_mut(&mut self) -> &mut Option<Resource> {
        &mut self.resource
    }

    fn count(&self) -> usize {
        self.scope_spans.iter().map(|s| s.spans.len()).sum()
    }

    fn shared_len(&self) -> usize {
        let scope = self.scope_spans.first().map_or(0, |s| {
            s.scope.as_ref().map_or(0, Message::encoded_len) + s.schema_url.len() + 8
        });
        self.resource.as_ref().map_or(0, Message::encoded_len) + self.schema_url.len() + 8 + scope
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

/// Metrics are split and counted by metric (each with all its data points).
impl ResourceBatch for ResourceMetrics {
    fn batch_len(&self) -> usize {
        Message::encoded_len(self)
    }

    fn resource_mut(&mut self) -> &mut Option<Resource> {
        &mut self.resource
    }

    fn count(&self) -> usize {
        self.scope_metrics.iter().map(|s| s.metrics.len()).sum()
    }

    fn shared_len(&self) -> usize {
        let scope = self.scope_metrics.first().map_or(0, |s| {
            s.scope.as_ref().map_or(0, Message::encoded_len) + s.schema_url.len() + 8
        });
        self.resource.as_ref().map_or(0, Message::encoded_len) + self.schema_url.len() + 8 + scope
    }

    fn split_front(&mut self, n: usize) -> Self {
        let mut head = ResourceMetrics {
            resource: self.resource.clone(),
            scope_metrics: Vec::new(),
            schema_url: self.schema_url.clone(),
        };
        let mut remaining = n;
        while remaining > 0 && !self.scope_metrics.is_empty() {
            let first = &mut self.scope_metrics[0];
            if first.metrics.len() <= remaining {
                remaining -= first.metrics.len();
                head.scope_metrics.push(self.scope_metrics.remove(0));
            } else {
                let rest = first.metrics.split_off(remaining);
                let taken = std::mem::replace(&mut first.metrics, rest);
                head.scope_metrics.push(ScopeMetrics {
                    scope: first.scope.clone(),
                    metrics: taken,
                    schema_url: first.schema_url.clone(),
                });
                remaining = 0;
            }
        }
        head
    }
}

#[cfg(test)]
mod tests {
    use bellwether_proto::otlp::trace::Span;

    use super::*;

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
}
