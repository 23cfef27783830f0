use super::*;
use crate::batch::{Compression, Payload};
use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;

fn entry(seq: u64) -> (u64, Vec<u8>) {
    let payload = Payload::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(); 3],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    });
    let value = codec::encode(&format!("i:q:{seq}"), 3, seq, &payload, Compression::Gzip);
    (seq, value)
}

fn seqs(scan: &Scan) -> Vec<u64> {
    scan.entries.iter().map(|f| f.seq).collect()
}

#[test]
fn reads_back_what_was_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut segments, scan) = Segments::open(dir.path(), 1 << 20).expect("opens");
    assert!(scan.entries.is_empty());
    let entries = vec![entry(3), entry(4)];
    let locs = segments.append(&entries).expect("appends");
    for ((_, value), loc) in entries.iter().zip(&locs) {
        assert_eq!(&segments.read(*loc).expect("reads"), value);
    }
    drop(segments);
    let (segments, scan) = Segments::open(dir.path(), 1 << 20).expect("opens");
    assert_eq!(seqs(&scan), [3, 4]);
    assert_eq!(scan.damaged, 0);
    assert_eq!(scan.entries[1].loc, locs[1]);
    assert_eq!(scan.entries[1].header.enqueued_unix_ms, 4);
    assert_eq!(segments.firsts().collect::<Vec<_>>(), [3]);
}

#[test]
fn junk_between_frames_is_skipped_and_counted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut segments, _) = Segments::open(dir.path(), 1 << 20).expect("opens");
    let locs = segments
        .append(&[entry(0), entry(1), entry(2)])
        .expect("appends");
    drop(segments);
    let path = dir.path().join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&path).expect("reads");
    // Wipe the frame header of seq 1 and half of its entry: a run of damage.
    let start = locs[1].offset as usize - FRAME_HEADER;
    let end = locs[1].offset as usize + locs[1].len as usize / 2;
    bytes[start..end].fill(0);
    std::fs::write(&path, bytes).expect("writes");
    let (_, scan) = Segments::open(dir.path(), 1 << 20).expect("opens");
    assert_eq!(seqs(&scan), [0, 2]);
    assert_eq!(scan.damaged, 1);
}

#[test]
fn an_older_segment_cut_short_is_damage_the_newest_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut segments, _) = Segments::open(dir.path(), 1).expect("opens");
    segments.append(&[entry(0), entry(1)]).expect("appends");
    segments.append(&[entry(2), entry(3)]).expect("appends");
    drop(segments);
    for first in [0u64, 2] {
        let path = dir.path().join(format!("{first:020}.seg"));
        let bytes = std::fs::read(&path).expect("reads");
        std::fs::write(&path, &bytes[..bytes.len() - 10]).expect("cuts");
    }
    let (_, scan) = Segments::open(dir.path(), 1).expect("opens");
    assert_eq!(seqs(&scan), [0, 2]);
    assert_eq!(scan.damaged, 1, "only the older segment's loss counts");
    // Both were cut back to their last whole frame: the loss is counted once.
    let (_, scan) = Segments::open(dir.path(), 1).expect("opens");
    assert_eq!(seqs(&scan), [0, 2]);
    assert_eq!(scan.damaged, 0);
}

#[test]
fn files_that_are_not_segments_are_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "hello").expect("writes");
    let (segments, scan) = Segments::open(dir.path(), 1 << 20).expect("opens");
    assert!(scan.entries.is_empty());
    assert_eq!(segments.firsts().count(), 0);
    assert!(dir.path().join("notes.txt").exists());
}
