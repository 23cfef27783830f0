use std::collections::BTreeSet;
use std::time::Duration;

use bellwether_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;

use super::*;
use crate::batch::Payload;

/// A payload of `records` log records whose first record carries `marker`.
fn payload(marker: u64, records: usize) -> Payload {
    Payload::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| LogRecord {
                        time_unix_nano: marker,
                        observed_time_unix_nano: i as u64,
                        ..LogRecord::default()
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    })
}

fn marker(batch: &Batch) -> u64 {
    match &batch.payload {
        Payload::Logs(request) => {
            request.resource_logs[0].scope_logs[0].log_records[0].time_unix_nano
        }
        // What the queue reads back is a decoded request.
        Payload::EncodedLogs(_) | Payload::Spans(_) | Payload::Metrics(_) => u64::MAX,
    }
}

fn open(dir: &Path, max_bytes: u64) -> (Queue, Recovered, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let (queue, recovered) = Queue::open(dir, "pod 7", max_bytes, stats.clone()).expect("opens");
    (queue, recovered, stats)
}

fn read(queue: &Queue, seq: u64) -> Queued {
    match queue.read(seq).expect("reads") {
        Read::Batch(queued) => queued,
        other => panic!("seq {seq}: {other:?}"),
    }
}

#[test]
fn appends_reads_in_order_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, recovered, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!(recovered, Recovered::default());
    let seqs = queue
        .append(&[(payload(1, 3), 3), (payload(2, 2), 2)])
        .expect("appends");
    assert_eq!(seqs, [0, 1]);
    let first = read(&queue, 0);
    assert_eq!(marker(&first.batch), 1);
    assert_eq!(first.batch.records, 3);
    let id = first.batch.id.clone();
    assert!(id.starts_with("pod_7:"), "{id}");
    assert!(id.ends_with(":0"), "{id}");
    assert_eq!(queue.next_after(None), Some(0));
    assert_eq!(queue.next_after(Some(0)), Some(1));
    assert_eq!(queue.next_after(Some(1)), None);
    assert_eq!(stats.queue_records.load(Ordering::Relaxed), 5);
    queue.remove(0).expect("removes");
    queue.flush().expect("flushes");
    drop(queue);

    let (queue, recovered, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!((recovered.batches, recovered.records), (1, 2));
    assert_eq!(stats.queue_records.load(Ordering::Relaxed), 2);
    let second = read(&queue, 1);
    assert_eq!(marker(&second.batch), 2);
    assert!(
        second.batch.id.starts_with(&id[..id.len() - 1]),
        "same queue id"
    );
    queue.remove(1).expect("removes");
    // The sequence is never reused, even once the queue is empty.
    let third = queue.append(&[(payload(3, 1), 1)]).expect("appends")[0];
    assert!(third > 1, "{third}");
    drop(queue);
    let (queue, recovered, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert!(!recovered.truncated && !recovered.reset);
    let fourth = queue.append(&[(payload(4, 1), 1)]).expect("appends")[0];
    assert!(fourth > third, "{fourth}");
}

/// The segment file holding `seq`, and where its entry is in it.
fn located(queue: &Queue, seq: u64) -> (PathBuf, segments::Loc) {
    let loc = queue.lock().index[&seq].loc;
    let path = queue
        .inner
        .segments_dir
        .join(format!("{:020}.seg", loc.segment));
    (path, loc)
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(SEGMENTS_DIR_NAME))
        .expect("lists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn damaged_entries_are_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    queue
        .append(&[(payload(1, 1), 1), (payload(2, 4), 4), (payload(3, 1), 1)])
        .expect("appends");
    let (path, loc) = located(&queue, 1);
    drop(queue);
    let mut bytes = std::fs::read(&path).expect("segment");
    bytes[(loc.offset + u64::from(loc.len) / 2) as usize] ^= 0xff;
    std::fs::write(&path, bytes).expect("writes");

    let (queue, recovered, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!(recovered.corrupt_entries, 1);
    assert_eq!((recovered.batches, recovered.records), (2, 2));
    assert_eq!(stats.queue_corrupt_entries.load(Ordering::Relaxed), 1);
    assert_eq!(queue.next_after(Some(0)), Some(2));
    assert_eq!(marker(&read(&queue, 2).batch), 3);
    // The sequence continues past the damaged entry.
    assert!(queue.append(&[(payload(4, 1), 1)]).expect("appends")[0] > 2);
}

#[test]
fn damage_found_when_reading_drops_only_that_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
    queue
        .append(&[(payload(1, 2), 2), (payload(2, 3), 3)])
        .expect("appends");
    let (path, loc) = located(&queue, 0);
    let mut bytes = std::fs::read(&path).expect("segment");
    bytes[(loc.offset + 8) as usize] ^= 0x01;
    std::fs::write(&path, bytes).expect("writes");
    assert!(matches!(queue.read_encoded(0), Ok(Read::Corrupt)));
    assert_eq!(stats.snapshot().dropped.corrupt, 2);
    assert_eq!(queue.len().1, 3);
    assert_eq!(marker(&read(&queue, 1).batch), 2);
}

/// Overwrites `len` bytes at `fraction` of the (only) segment file.
fn damage(dir: &Path, fraction: f64, len: usize) {
    let names = segment_files(dir);
    assert_eq!(names.len(), 1, "{names:?}");
    let file = dir.join(SEGMENTS_DIR_NAME).join(&names[0]);
    let mut bytes = std::fs::read(&file).expect("segment file");
    let at = (bytes.len() as f64 * fraction) as usize;
    let end = (at + len).min(bytes.len());
    bytes[at..end].fill(0x5a);
    std::fs::write(&file, bytes).expect("overwrites");
}

#[test]
fn damaged_segments_keep_what_is_intact_and_ids_are_not_reused() {
    for (fraction, len) in [(0.0, 512), (0.1, 64), (0.5, 4096), (0.9, 64)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (queue, _, _) = open(dir.path(), DEFAULT_MAX_BYTES);
        let mut ids = BTreeSet::new();
        for i in 0..50 {
            let seq = queue.append(&[(payload(i, 20), 20)]).expect("appends")[0];
            ids.insert(queue.batch_id(seq));
        }
        drop(queue);
        damage(dir.path(), fraction, len);

        let (queue, recovered, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
        let context = format!("damage at {fraction}: {recovered:?}");
        assert!(recovered.corrupt_entries >= 1, "{context}");
        assert_eq!(
            stats.queue_corrupt_entries.load(Ordering::Relaxed),
            recovered.corrupt_entries,
            "{context}"
        );
        assert!(recovered.batches < 50, "{context}");
        assert!(recovered.batches > 0, "{context}: everything lost");
        // What survived is intact, and new batches get ids never used before.
        let mut cursor = None;
        while let Some(seq) = queue.next_after(cursor) {
            cursor = Some(seq);
            let batch = read(&queue, seq).batch;
            assert!(ids.contains(&batch.id), "{context}");
            assert_eq!(marker(&batch), seq, "{context}");
        }
        let seq = queue.append(&[(payload(99, 1), 1)]).expect("appends")[0];
        assert!(!ids.contains(&queue.batch_id(seq)), "{context}: id reused");
    }
}

#[test]
fn a_lost_segment_is_detected_and_ids_are_not_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    let old: Vec<String> = (0..5)
        .map(|i| queue.batch_id(queue.append(&[(payload(i, 3), 3)]).expect("appends")[0]))
        .collect();
    drop(queue);
    for name in segment_files(dir.path()) {
        std::fs::remove_file(dir.path().join(SEGMENTS_DIR_NAME).join(name)).expect("removes");
    }
    let (queue, recovered, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert!(recovered.truncated, "{recovered:?}");
    assert_eq!(stats.queue_corrupt_resets.load(Ordering::Relaxed), 1);
    assert!(queue.is_empty());
    let new = queue.batch_id(queue.append(&[(payload(9, 1), 1)]).expect("appends")[0]);
    assert!(!old.contains(&new), "{new} reused");
}

#[test]
fn an_interrupted_append_is_cut_off_without_counting_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    queue
        .append(&[(payload(1, 2), 2), (payload(2, 2), 2)])
        .expect("appends");
    let (path, loc) = located(&queue, 1);
    drop(queue);
    // The second frame written only in part, as a crash in the middle of a write leaves it.
    let bytes = std::fs::read(&path).expect("segment");
    let cut = loc.offset as usize + loc.len as usize / 2;
    std::fs::write(&path, &bytes[..cut]).expect("cuts");

    let (queue, recovered, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!(recovered.corrupt_entries, 0, "{recovered:?}");
    assert_eq!((recovered.batches, recovered.records), (1, 2));
    assert_eq!(marker(&read(&queue, 0).batch), 1);
    // Appends go on after the cut, in a new segment, with new numbers.
    let seq = queue.append(&[(payload(3, 1), 1)]).expect("appends")[0];
    assert!(seq >= 2, "{seq}");
    drop(queue);
    let (queue, recovered, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!((recovered.batches, recovered.corrupt_entries), (2, 0));
    assert_eq!(marker(&read(&queue, seq).batch), 3);
}

#[test]
fn delivered_segments_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        segment_bytes: 1,
        ..Options::default()
    };
    let stats = Arc::new(Stats::default());
    let (queue, _) = Queue::open_with(dir.path(), "pod", options, stats.clone()).expect("opens");
    // Each append starts a segment of its own (they are over 1 byte).
    for i in 0..4 {
        queue.append(&[(payload(i, 2), 2)]).expect("appends");
    }
    assert_eq!(segment_files(dir.path()).len(), 4);
    queue.remove(0).expect("removes");
    queue.remove(1).expect("removes");
    // Deleted once the removals are durable.
    assert_eq!(segment_files(dir.path()).len(), 4);
    queue.flush().expect("flushes");
    assert_eq!(segment_files(dir.path()).len(), 2);
    // The segment still written to stays until another one is started.
    queue.remove(2).expect("removes");
    queue.remove(3).expect("removes");
    queue.flush().expect("flushes");
    assert_eq!(segment_files(dir.path()).len(), 1);
    queue.append(&[(payload(5, 1), 1)]).expect("appends");
    assert_eq!(segment_files(dir.path()).len(), 1, "the emptied one went");
    drop(queue);
    let (queue, recovered) = Queue::open_with(dir.path(), "pod", options, stats).expect("opens");
    assert_eq!((recovered.batches, recovered.corrupt_entries), (1, 0));
    assert!(!recovered.truncated);
    assert_eq!(marker(&read(&queue, 4).batch), 5);
}

#[test]
fn batches_of_the_earlier_format_are_moved_into_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = sled::open(dir.path().join(DIR_NAME)).expect("sled");
        let batches = db.open_tree("batches").expect("tree");
        let entry = codec::encode("pod:old:7", 2, 5, &payload(42, 2), Compression::None);
        batches.insert(7u64.to_be_bytes(), entry).expect("inserts");
        batches
            .insert(8u64.to_be_bytes(), b"damaged".to_vec())
            .expect("inserts");
        db.flush().expect("flushes");
    }
    let (queue, recovered, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!((recovered.batches, recovered.corrupt_entries), (1, 1));
    let batch = read(&queue, 7).batch;
    assert_eq!((batch.id.as_str(), marker(&batch)), ("pod:old:7", 42));
    assert!(queue.append(&[(payload(1, 1), 1)]).expect("appends")[0] > 7);
    drop(queue);
    let (_, recovered, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!((recovered.batches, recovered.corrupt_entries), (2, 0));
}

#[test]
fn an_unopenable_database_is_moved_aside_and_the_batches_sent_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (queue, _, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    let seqs = queue
        .append(&[(payload(1, 1), 1), (payload(2, 1), 1)])
        .expect("appends");
    let old_id = queue.batch_id(seqs[1]);
    queue.remove(seqs[0]).expect("removes");
    queue.flush().expect("flushes");
    drop(queue);
    // A configuration the storage engine refuses (its last 4 bytes are a checksum).
    let conf = dir.path().join(DIR_NAME).join("conf");
    std::fs::write(
        &conf,
        "segment_size: 1\nuse_compression: false\nversion: 0.34\nCRC!",
    )
    .expect("overwrites");

    let (queue, recovered, stats) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert!(recovered.reset, "{recovered:?}");
    assert_eq!(stats.queue_corrupt_resets.load(Ordering::Relaxed), 1);
    // Which batches were delivered is forgotten: both are sent again, under their ids.
    assert_eq!(recovered.batches, 2);
    assert_eq!(read(&queue, seqs[1]).batch.id, old_id);
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .expect("lists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("queue.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let new_id = queue.batch_id(queue.append(&[(payload(3, 1), 1)]).expect("appends")[0]);
    assert_ne!(new_id, old_id);
}

#[tokio::test(start_paused = true)]
async fn admission_waits_for_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Stored uncompressed, so an append takes about its encoded size.
    let options = Options {
        max_bytes: 1000,
        compression: Compression::None,
        ..Options::default()
    };
    let (queue, _) =
        Queue::open_with(dir.path(), "pod 7", options, Arc::new(Stats::default())).expect("opens");
    // An empty queue admits even an oversized item.
    let big = queue.admit(5000).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), queue.admit(1))
            .await
            .is_err(),
        "full while the big item is reserved"
    );
    drop(big);
    let a = queue.admit(600).await;
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.admit(600).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    drop(a);
    let b = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("admitted once room is freed")
        .expect("joins");
    // Appended bytes count against the bound, and removing them frees it.
    drop(b);
    queue.append(&[(payload(1, 40), 40)]).expect("appends");
    let (_, _, bytes) = queue.len();
    assert!(bytes > 400, "{bytes}");
    assert!(
        tokio::time::timeout(Duration::from_millis(10), queue.admit(1000 - bytes + 1))
            .await
            .is_err()
    );
    queue.remove(0).expect("removes");
    let _fits = tokio::time::timeout(Duration::from_millis(10), queue.admit(1000))
        .await
        .expect("room after removal");
}

#[test]
fn parses_byte_sizes() {
    assert_eq!(parse_byte_size("65536"), Ok(65536));
    assert_eq!(parse_byte_size("64KiB"), Ok(64 * 1024));
    assert_eq!(parse_byte_size("256MiB"), Ok(256 << 20));
    assert_eq!(parse_byte_size("1g"), Ok(1 << 30));
    assert!(parse_byte_size("0").is_err());
    assert!(parse_byte_size("lots").is_err());
    assert!(parse_byte_size("5 parsecs").is_err());
}

mod model;
