//! Cutting batches by record count and encoded size, splitting oversized inputs at
//! record granularity.

use crate::batch::ResourceBatch;

/// Records waiting to form batches, with their encoded sizes.
#[derive(Debug)]
pub struct Pending<T> {
    items: std::collections::VecDeque<(T, usize)>,
    count: usize,
    bytes: usize,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            items: std::collections::VecDeque::new(),
            count: 0,
            bytes: 0,
        }
    }
}

impl<T: ResourceBatch> Pending<T> {
    /// Adds an item; items without records are discarded.
    pub fn push(&mut self, item: T) {
        let bytes = item.batch_len();
        self.push_sized(item, bytes);
    }

    /// [`push`](Self::push), with the item's encoded size known already.
    pub fn push_sized(&mut self, item: T, bytes: usize) {
        let count = item.count();
        if count == 0 {
            return;
        }
        self.count += count;
        self.bytes += bytes;
        self.items.push_back((item, bytes));
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Encoded size of everything waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes up to `max_records` records and about `max_bytes` encoded bytes (at least
    /// one record), splitting an item if needed. Returns the items and their record
    /// count; `None` when empty.
    pub fn take(&mut self, max_records: usize, max_bytes: usize) -> Option<(Vec<T>, usize)> {
        if self.count == 0 {
            return None;
        }
        let max_records = max_records.max(1);
        let mut taken = Vec::new();
        let (mut taken_count, mut taken_bytes) = (0, 0);
        while taken_count < max_records && taken_bytes < max_bytes {
            let Some((first, first_bytes)) = self.items.front_mut() else {
                break;
            };
            let count = first.count();
            let room = max_records - taken_count;
            let room_bytes = max_bytes - taken_bytes;
            if count <= room && *first_bytes <= room_bytes {
                taken_count += count;
                taken_bytes += *first_bytes;
                self.bytes -= *first_bytes;
                if let Some((item, _)) = self.items.pop_front() {
                    taken.push(item);
                }
                continue;
            }
            // Split: as many records as fit by count and, assuming records of similar
            // size, by bytes. A single record larger than the bound still goes alone.
            let by_bytes = count.saturating_mul(room_bytes) / (*first_bytes).max(1);
            let mut n = room.min(by_bytes).min(count);
            if n == 0 {
                if taken_count > 0 {
                    break;
                }
                n = 1;
            }
            if n >= count {
                let bytes = *first_bytes;
                if let Some((item, _)) = self.items.pop_front() {
                    self.bytes -= bytes;
                    taken_bytes += bytes;
                    taken_count += count;
                    taken.push(item);
                }
            } else {
                let head = first.split_front(n);
                let head_bytes = head.batch_len();
                // The rest keeps the resource (now in both) and the other records; its
                // size is derived rather than walked again, which for one large item cut
                // into many batches would walk the same records over and over.
                let rest_bytes = (*first_bytes + first.shared_len()).saturating_sub(head_bytes);
                self.bytes = (self.bytes + rest_bytes).saturating_sub(*first_bytes);
                *first_bytes = rest_bytes;
                taken_bytes += head_bytes;
                taken_count += n;
                taken.push(head);
            }
        }
        self.count -= taken_count;
        if self.count == 0 {
            self.bytes = 0;
        }
        Some((taken, taken_count))
    }
}

#[cfg(test)]
mod tests {
    use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    use bellwether_proto::otlp::resource::Resource;

    use super::*;
    use crate::batch::EncodedLogs;
    use crate::otlp::string_kv;

    fn logs(records: usize) -> EncodedLogs {
        let item = ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "svc")],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| LogRecord {
                        time_unix_nano: i as u64,
                        ..LogRecord::default()
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            schema_url: String::new(),
        };
        EncodedLogs::encode(item, 0).pop().unwrap_or_default()
    }

    #[test]
    fn pending_takes_exact_batches() {
        let mut pending = Pending::default();
        pending.push(logs(700));
        pending.push(logs(0));
        pending.push(logs(400));
        assert_eq!(pending.count(), 1100);
        let sizes: Vec<usize> = std::iter::from_fn(|| pending.take(512, usize::MAX))
            .map(|(items, n)| {
                assert_eq!(items.iter().map(ResourceBatch::count).sum::<usize>(), n);
                n
            })
            .collect();
        assert_eq!(sizes, [512, 512, 76]);
        assert_eq!((pending.count(), pending.bytes()), (0, 0));
    }

    #[test]
    fn pending_splits_by_encoded_size() {
        let mut pending = Pending::default();
        pending.push(logs(1000));
        let total = pending.bytes();
        let max_bytes = total / 4;
        let mut batches = Vec::new();
        while let Some((items, n)) = pending.take(usize::MAX, max_bytes) {
            let bytes: usize = items.iter().map(ResourceBatch::batch_len).sum();
            // Records are of similar size: each batch stays near the bound.
            assert!(bytes <= max_bytes + max_bytes / 10, "{bytes} > {max_bytes}");
            batches.push(n);
        }
        assert_eq!(batches.iter().sum::<usize>(), 1000);
        assert!((4..=6).contains(&batches.len()), "{batches:?}");
    }

    #[test]
    fn an_oversized_record_goes_alone() {
        let mut pending = Pending::default();
        pending.push(logs(3));
        let (items, n) = pending.take(10, 1).expect("non-empty");
        assert_eq!((items.len(), n), (1, 1));
        assert_eq!(pending.count(), 2);
    }
}
