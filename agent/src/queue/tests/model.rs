//! Random appends, removals, flushes and crashes, checked against a model of what the
//! queue must hold after each.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

/// splitmix64: a small deterministic generator, so a failing sequence replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the queue must hold: entries appended (an append returns only once flushed)
/// and not removed. A removal is durable only once something flushes after it, so
/// entries removed since the last flush may come back after a crash.
#[derive(Default)]
struct Model {
    /// seq → (marker, records, batch id)
    present: BTreeMap<u64, (u64, usize, String)>,
    /// Removed since the last flush.
    maybe: BTreeMap<u64, (u64, usize, String)>,
    highest_seq: Option<u64>,
}

#[test]
fn model_append_remove_crash_reopen() {
    for seed in 0..24u64 {
        run_model(seed, 120);
    }
}

fn run_model(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(seed);
    let mut model = Model::default();
    let mut next_marker = 1u64;
    let (mut queue, _, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    for step in 0..steps {
        let context = format!("seed {seed} step {step}");
        match rng.below(10) {
            // Append a group of 1..=3 batches.
            0..=3 => {
                let group: Vec<(Payload, usize)> = (0..1 + rng.below(3))
                    .map(|_| {
                        let records = 1 + rng.below(5) as usize;
                        next_marker += 1;
                        (payload(next_marker, records), records)
                    })
                    .collect();
                let seqs = queue.append(&group).expect("appends");
                // The append's flush made earlier removals durable.
                model.maybe.clear();
                for (seq, (p, records)) in seqs.iter().zip(&group) {
                    assert!(
                        model.highest_seq.is_none_or(|h| *seq > h),
                        "{context}: seq {seq} reused"
                    );
                    model.highest_seq = Some(*seq);
                    let id = queue.batch_id(*seq);
                    let marker = match p {
                        Payload::Logs(r) => {
                            r.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano
                        }
                        Payload::EncodedLogs(_) | Payload::Spans(_) | Payload::Metrics(_) => {
                            unreachable!("decoded logs only")
                        }
                    };
                    model.present.insert(*seq, (marker, *records, id));
                }
            }
            // Remove (deliver) the oldest, or a random one.
            4..=6 => {
                let pick = if rng.below(2) == 0 {
                    model.present.keys().next().copied()
                } else {
                    let n = model.present.len() as u64;
                    model.present.keys().nth(rng.below(n) as usize).copied()
                };
                if let Some(seq) = pick {
                    queue.remove(seq).expect("removes");
                    if let Some(entry) = model.present.remove(&seq) {
                        model.maybe.insert(seq, entry);
                    }
                }
            }
            7 => {
                queue.flush().expect("flushes");
                model.maybe.clear();
            }
            // Crash: drop without flushing, reopen.
            _ => {
                drop(queue);
                let (reopened, recovered, _) = open(dir.path(), DEFAULT_MAX_BYTES);
                queue = reopened;
                assert_eq!(recovered.corrupt_entries, 0, "{context}");
                check_reopened(&queue, &mut model, &context);
            }
        }
        let (batches, records, _) = queue.len();
        assert_eq!(batches, model.present.len() as u64, "{context}");
        let model_records: usize = model.present.values().map(|(_, r, _)| r).sum();
        assert_eq!(records, model_records as u64, "{context}");
    }
}

fn check_reopened(queue: &Queue, model: &mut Model, context: &str) {
    let mut found = BTreeSet::new();
    let mut cursor = None;
    while let Some(seq) = queue.next_after(cursor) {
        cursor = Some(seq);
        let queued = read(queue, seq);
        let expected = model
            .present
            .get(&seq)
            .or_else(|| model.maybe.get(&seq))
            .unwrap_or_else(|| panic!("{context}: seq {seq} should not be queued"));
        assert_eq!(marker(&queued.batch), expected.0, "{context}: seq {seq}");
        assert_eq!(queued.batch.records, expected.1, "{context}: seq {seq}");
        assert_eq!(queued.batch.id, expected.2, "{context}: seq {seq} id");
        found.insert(seq);
    }
    for seq in model.present.keys() {
        assert!(found.contains(seq), "{context}: durable seq {seq} lost");
    }
    // Removals that did not survive the crash are queued again.
    let maybe = std::mem::take(&mut model.maybe);
    for (seq, entry) in maybe {
        if found.contains(&seq) {
            model.present.insert(seq, entry);
        }
    }
}
