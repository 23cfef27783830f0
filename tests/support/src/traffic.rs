//! A release's log traffic as the verdict tests lay it down.
//!
//! The previous release served for a while: its [`baseline`] is 20 000 records over the
//! five minutes before the next deploy, 0.1 % of them a [`timeout`]. The release under
//! test then sends a [`Mix`] per instance: some of the baseline's timeouts, some new
//! errors (a [`declined`] payment, or whatever the test makes), the rest orders placed.

use bellwether_proto::otlp::logs::LogRecord;

use crate::otlp::{log_record, SEVERITY_ERROR, SEVERITY_INFO};

/// Records in a [`baseline`].
pub const BASELINE_RECORDS: i64 = 20_000;
/// Every this many baseline records, one is a timeout (0.1 %).
const BASELINE_ERROR_EVERY: i64 = 1_000;
/// Spacing of the baseline's records: 20 000 of them fill the 5 minutes before a deploy.
const BASELINE_STEP_MS: i64 = 14;
const BASELINE_SPAN_MS: i64 = 300_000;

/// The error every release has: an upstream `TimeoutError`.
pub fn timeout(unix_ms: i64) -> LogRecord {
    log_record(
        "upstream timeout",
        SEVERITY_ERROR,
        Some(("TimeoutError", "upstream timed out")),
        unix_ms,
    )
}

/// A request that went well.
pub fn order_placed(unix_ms: i64) -> LogRecord {
    log_record("order placed", SEVERITY_INFO, None, unix_ms)
}

/// A new exception: `PaymentDeclinedError`.
pub fn declined(unix_ms: i64) -> LogRecord {
    log_record(
        "payment failed",
        SEVERITY_ERROR,
        Some(("PaymentDeclinedError", "card 4242 declined by issuer")),
        unix_ms,
    )
}

/// The previous release's traffic: [`BASELINE_RECORDS`] records evenly over the 5 minutes
/// before `deploy_ms`, one in a thousand a [`timeout`].
pub fn baseline(deploy_ms: i64) -> Vec<LogRecord> {
    (0..BASELINE_RECORDS)
        .map(|i| {
            let at = deploy_ms - BASELINE_SPAN_MS + i * BASELINE_STEP_MS;
            if i % BASELINE_ERROR_EVERY == 0 {
                timeout(at)
            } else {
                order_placed(at)
            }
        })
        .collect()
}

/// What one instance of the release under test sends: `total` records, the first
/// `timeouts` of them baseline-like [`timeout`]s, the next `new_errors` made by
/// `new_error`, the rest [`order_placed`].
#[derive(Clone, Copy)]
pub struct Mix<'a> {
    pub total: usize,
    pub timeouts: usize,
    pub new_errors: usize,
    pub new_error: &'a dyn Fn(i64) -> LogRecord,
}

impl Mix<'_> {
    /// The records, all at `unix_ms`.
    pub fn records(&self, unix_ms: i64) -> Vec<LogRecord> {
        (0..self.total)
            .map(|i| {
                if i < self.timeouts {
                    timeout(unix_ms)
                } else if i < self.timeouts + self.new_errors {
                    (self.new_error)(unix_ms)
                } else {
                    order_placed(unix_ms)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(records: &[LogRecord]) -> usize {
        records
            .iter()
            .filter(|r| r.severity_number == SEVERITY_ERROR)
            .count()
    }

    #[test]
    fn the_baseline_fills_the_five_minutes_before_the_deploy_at_a_tenth_of_a_percent() {
        let records = baseline(1_000_000_000);
        assert_eq!(records.len(), 20_000);
        assert_eq!(errors(&records), 20);
        let first = records.first().map(|r| r.time_unix_nano);
        let last = records.last().map(|r| r.time_unix_nano);
        assert_eq!(first, Some((1_000_000_000 - 300_000) * 1_000_000));
        assert!(last < Some(1_000_000_000 * 1_000_000));
    }

    #[test]
    fn a_mix_puts_timeouts_then_new_errors_first() {
        let mix = Mix {
            total: 100,
            timeouts: 2,
            new_errors: 3,
            new_error: &declined,
        };
        let records = mix.records(5);
        assert_eq!(records.len(), 100);
        assert_eq!(errors(&records), 5);
        let kinds: Vec<_> = records[..6]
            .iter()
            .map(|r| r.attributes.first().map(|a| a.key.as_str()))
            .collect();
        assert_eq!(kinds[..5], [Some("exception.type"); 5]);
        assert_eq!(kinds[5], None);
        assert_eq!(records[2], declined(5));
    }
}
