//! Timestamps for traffic: now in the units OTLP and the API use, and now rounded down to
//! the collector's count bucket.

use std::time::{SystemTime, UNIX_EPOCH};

use bellwether_model::release::bucket_start;
use bellwether_model::time::now_unix_ms;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    now_unix_ms()
}

/// Now, in Unix nanoseconds (OTLP's `time_unix_nano`).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now, rounded down to the start of the collector's 10 s bucket. A baseline laid out
/// back from it fills each of its buckets whole, so its dispersion, and with it the
/// exposure a verdict needs, no longer depend on where in a bucket the test started
/// (from some starting points a baseline's first bucket held a sliver of traffic and
/// one error, which tripled the exposure needed).
pub fn bucket_aligned_now_ms() -> i64 {
    bucket_start(now_ms())
}
