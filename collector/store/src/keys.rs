//! Key and value encodings of the sled trees.
//!
//! - deployments: `service \0 environment \0 version` → Deployment as JSON
//! - buckets: `service \0 environment \0 version \0` + bucket start ms (u64 big-endian)
//!   → six little-endian u64: log_records, error_logs, spans, error_spans, server_spans,
//!   errors. Values written before the last two existed hold four u64 and read with
//!   zeros for them.
//! - totals: release key → the same six u64, summed over all buckets
//! - batches: batch id bytes → applied at, Unix ms (u64 big-endian)
//! - latency: bucket key → [`Reservoir`](super::Reservoir) (seen u64, then u32 µs each)
//! - issues: `service \0 fingerprint` → [`IssueRecord`](super::IssueRecord) as JSON
//! - issue_releases: release key `\0 fingerprint` → [`ReleaseIssue`](super::ReleaseIssue)
//!   as JSON
//! - issue_samples: release key `\0 fingerprint` → `Vec<IssueSample>` as JSON
//! - issue_buckets: release key `\0 fingerprint \0` + bucket start (u64 big-endian) → u64
//!   little-endian count
//! - release_fingerprints: release key → distinct fingerprints of the release (u64 LE)
//!
//! Identity strings never contain NUL (ingest and the API replace or reject it), and
//! fingerprint ids are hex digits or `other`, so the NUL separators keep `api` and `api2`
//! apart and make prefix scans exact.

use crate::StoreError;
use bellwether_model::release::{Counts, ReleaseKey};

/// `service \0 environment \0 version`.
pub fn release_key(release: &ReleaseKey) -> Vec<u8> {
    let mut key = Vec::with_capacity(
        release.service.len() + release.environment.len() + release.version.len() + 2,
    );
    key.extend_from_slice(release.service.as_bytes());
    key.push(0);
    key.extend_from_slice(release.environment.as_bytes());
    key.push(0);
    key.extend_from_slice(release.version.as_bytes());
    key
}

/// Prefix of every deployment key of one service (optionally one environment).
pub fn service_prefix(service: &str, environment: Option<&str>) -> Vec<u8> {
    let mut key = Vec::with_capacity(service.len() + 1);
    key.extend_from_slice(service.as_bytes());
    key.push(0);
    if let Some(environment) = environment {
        key.extend_from_slice(environment.as_bytes());
        key.push(0);
    }
    key
}

/// Bucket key; times before the epoch sort as the epoch.
/// The keys of the buckets under `prefix` whose start lies in `range`; None for an empty
/// range.
pub fn bucket_range(
    prefix: &[u8],
    range: &std::ops::Range<i64>,
) -> Option<std::ops::Range<Vec<u8>>> {
    (range.start < range.end)
        .then(|| bucket_key(prefix, range.start)..bucket_key(prefix, range.end))
}

pub fn bucket_key(release_key: &[u8], start_unix_ms: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(release_key.len() + 9);
    key.extend_from_slice(release_key);
    key.push(0);
    key.extend_from_slice(&(start_unix_ms.max(0) as u64).to_be_bytes());
    key
}

/// The bucket start of a bucket key, given the length of its release key.
pub fn bucket_start_of(key: &[u8], release_key_len: usize) -> Result<i64, StoreError> {
    let raw: [u8; 8] = key
        .get(release_key_len + 1..)
        .and_then(|tail| tail.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("bucket key of {} bytes", key.len())))?;
    i64::try_from(u64::from_be_bytes(raw))
        .map_err(|_| StoreError::Corrupt("bucket start out of range".to_owned()))
}

/// `release key \0 fingerprint`; also the prefix of that fingerprint's bucket keys.
pub fn release_issue_key(release_key: &[u8], fingerprint: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(release_key.len() + fingerprint.len() + 1);
    key.extend_from_slice(release_key);
    key.push(0);
    key.extend_from_slice(fingerprint.as_bytes());
    key
}

/// Prefix of every `release_issue_key` of one release.
pub fn release_issue_prefix(release_key: &[u8]) -> Vec<u8> {
    let mut key = release_key.to_vec();
    key.push(0);
    key
}

/// The fingerprint of a `release_issue_key`, given the length of its release key.
pub fn fingerprint_of(key: &[u8], release_key_len: usize) -> Result<String, StoreError> {
    key.get(release_key_len + 1..)
        .and_then(|tail| std::str::from_utf8(tail).ok())
        .map(str::to_owned)
        .ok_or_else(|| StoreError::Corrupt("issue key".to_owned()))
}

/// `service \0 fingerprint`.
pub fn issue_key(service: &str, fingerprint: &str) -> Vec<u8> {
    let mut key = service_prefix(service, None);
    key.extend_from_slice(fingerprint.as_bytes());
    key
}

pub const COUNTS_BYTES: usize = 64;
/// Sizes of counts values written before `server_spans` and `errors` (32), and before
/// `metric_requests` and `metric_errors` (48) existed; the missing counts read as 0.
const LEGACY_COUNTS_BYTES: [usize; 2] = [32, 48];

pub fn encode_counts(counts: &Counts) -> [u8; COUNTS_BYTES] {
    let mut out = [0u8; COUNTS_BYTES];
    for (chunk, value) in out.chunks_exact_mut(8).zip([
        counts.log_records,
        counts.error_logs,
        counts.spans,
        counts.error_spans,
        counts.server_spans,
        counts.errors,
        counts.metric_requests,
        counts.metric_errors,
    ]) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    out
}

pub fn decode_counts(raw: &[u8]) -> Result<Counts, StoreError> {
    if raw.len() != COUNTS_BYTES && !LEGACY_COUNTS_BYTES.contains(&raw.len()) {
        return Err(StoreError::Corrupt(format!(
            "counts value of {} bytes",
            raw.len()
        )));
    }
    let mut values = [0u64; COUNTS_BYTES / 8];
    for (value, chunk) in values.iter_mut().zip(raw.chunks_exact(8)) {
        *value = decode_u64(chunk)?;
    }
    Ok(Counts {
        log_records: values[0],
        error_logs: values[1],
        spans: values[2],
        error_spans: values[3],
        server_spans: values[4],
        errors: values[5],
        metric_requests: values[6],
        metric_errors: values[7],
    })
}

/// A little-endian u64 of exactly 8 bytes.
pub fn decode_u64(raw: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(raw)
        .map(u64::from_le_bytes)
        .map_err(|_| StoreError::Corrupt(format!("u64 value of {} bytes", raw.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_key_is_nul_separated() {
        let key = release_key(&ReleaseKey::new("api", "prod", "1.2"));
        assert_eq!(key, b"api\0prod\x001.2");
    }

    #[test]
    fn service_prefix_does_not_match_longer_service_names() {
        let api2 = release_key(&ReleaseKey::new("api2", "prod", "1"));
        let api = release_key(&ReleaseKey::new("api", "prod", "1"));
        assert!(!api2.starts_with(&service_prefix("api", None)));
        assert!(api.starts_with(&service_prefix("api", None)));
        assert!(api.starts_with(&service_prefix("api", Some("prod"))));
        assert!(!api.starts_with(&service_prefix("api", Some("pro"))));
    }

    #[test]
    fn bucket_keys_sort_by_time_and_round_trip() {
        let release = release_key(&ReleaseKey::new("api", "prod", "1"));
        let early = bucket_key(&release, 10_000);
        let late = bucket_key(&release, 1_700_000_000_000);
        assert!(early < late);
        assert_eq!(&early[..release.len() + 1], b"api\0prod\x001\0");
        assert_eq!(&early[release.len() + 1..], &10_000u64.to_be_bytes());
        assert_eq!(
            bucket_start_of(&late, release.len()).ok(),
            Some(1_700_000_000_000)
        );
        assert!(bucket_start_of(&late[..late.len() - 1], release.len()).is_err());
    }

    #[test]
    fn counts_are_eight_little_endian_u64() {
        let counts = Counts {
            log_records: 1,
            error_logs: 2,
            spans: 3,
            error_spans: u64::MAX,
            server_spans: 5,
            errors: 6,
            metric_requests: 7,
            metric_errors: 8,
        };
        let raw = encode_counts(&counts);
        assert_eq!(&raw[..8], &1u64.to_le_bytes());
        assert_eq!(&raw[24..32], &u64::MAX.to_le_bytes());
        assert_eq!(&raw[40..48], &6u64.to_le_bytes());
        assert_eq!(&raw[56..], &8u64.to_le_bytes());
        assert_eq!(decode_counts(&raw).ok(), Some(counts));
        assert!(decode_counts(&raw[..31]).is_err());
        assert!(decode_counts(&raw[..40]).is_err());
        assert!(decode_counts(&raw[..56]).is_err());
    }

    #[test]
    fn six_u64_values_of_older_stores_read_with_zero_metric_counts() {
        let counts = Counts {
            log_records: 1,
            error_logs: 2,
            server_spans: 5,
            errors: 6,
            ..Counts::default()
        };
        let raw = encode_counts(&counts);
        assert_eq!(decode_counts(&raw[..48]).ok(), Some(counts));
    }

    #[test]
    fn four_u64_values_of_older_stores_read_with_zero_new_fields() {
        let mut old = Vec::new();
        for value in [7u64, 1, 4, 2] {
            old.extend_from_slice(&value.to_le_bytes());
        }
        let counts = decode_counts(&old).ok();
        assert_eq!(
            counts,
            Some(Counts {
                log_records: 7,
                error_logs: 1,
                spans: 4,
                error_spans: 2,
                ..Counts::default()
            })
        );
    }

    #[test]
    fn issue_keys_nest_under_their_release() {
        let release = release_key(&ReleaseKey::new("api", "prod", "1"));
        let other = release_key(&ReleaseKey::new("api", "prod", "10"));
        let key = release_issue_key(&release, "00ff00ff00ff00ff");
        assert!(key.starts_with(&release_issue_prefix(&release)));
        assert!(!release_issue_key(&other, "ab").starts_with(&release_issue_prefix(&release)));
        assert_eq!(
            fingerprint_of(&key, release.len()).ok().as_deref(),
            Some("00ff00ff00ff00ff")
        );
        assert_eq!(issue_key("api", "other"), b"api\0other");
    }
}
