//! Export error classification and retry delays.

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// What to do about a failed export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Transient: try again after the backoff delay.
    Retryable,
    /// The collector asked us to slow down, possibly saying for how long.
    Throttled(Option<Duration>),
    /// The collector refused the credentials: keep the batch and retry with backoff,
    /// logging an error (a fixed or rotated token lets delivery resume).
    Unauthorized,
    /// Retrying cannot help: drop the batch and count it.
    NonRetryable,
}

/// Classifies a gRPC status following the OTLP specification's retryable codes.
/// `UNKNOWN` is retried too: tonic reports some connection-level failures with it.
pub fn classify(status: &Status) -> Class {
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled
        | Code::OutOfRange
        | Code::DataLoss
        | Code::Unknown => Class::Retryable,
        Code::ResourceExhausted => Class::Throttled(retry_hint(status)),
        Code::Unauthenticated | Code::PermissionDenied => Class::Unauthorized,
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::Unimplemented
        | Code::Internal => Class::NonRetryable,
    }
}

/// The delay the server asked for: a `google.rpc.RetryInfo` detail, else a
/// `retry-after` metadata entry in seconds.
pub fn retry_hint(status: &Status) -> Option<Duration> {
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .or_else(|| {
            status
                .metadata()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        })
}

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Longest server-requested delay honoured.
    pub max_throttle: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            max_throttle: Duration::from_secs(60),
        }
    }
}

/// Exponential backoff for one batch: `initial`, doubling, capped at `max`, each delay
/// plus up to a quarter of itself in jitter so agents restarted together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    next: Duration,
}

impl Backoff {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            next: policy.initial,
            policy,
        }
    }

    /// The next delay; `jitter` is a fraction in `[0, 1)`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = self.next.min(self.policy.max);
        self.next = base.saturating_mul(2).min(self.policy.max);
        base + base.mul_f64(jitter.clamp(0.0, 1.0) / 4.0)
    }

    /// The delay for a throttled attempt: the server's hint (bounded), else the backoff.
    pub fn throttled_delay(&mut self, hint: Option<Duration>, jitter: f64) -> Duration {
        match hint {
            Some(hint) => {
                // Keep growing the backoff so a hint-less reply after this one waits longer.
                self.next_delay(0.0);
                // A zero hint must not turn into a busy loop.
                hint.clamp(self.policy.initial, self.policy.max_throttle)
            }
            None => self.next_delay(jitter),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn classification() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::Unknown,
        ] {
            assert_eq!(
                classify(&Status::new(code, "x")),
                Class::Retryable,
                "{code:?}"
            );
        }
        for code in [Code::InvalidArgument, Code::Unimplemented, Code::Internal] {
            assert_eq!(
                classify(&Status::new(code, "x")),
                Class::NonRetryable,
                "{code:?}"
            );
        }
        for code in [Code::Unauthenticated, Code::PermissionDenied] {
            assert_eq!(
                classify(&Status::new(code, "x")),
                Class::Unauthorized,
                "{code:?}"
            );
        }
        assert_eq!(
            classify(&Status::resource_exhausted("slow down")),
            Class::Throttled(None)
        );
    }

    #[test]
    fn throttle_hint_from_retry_info() {
        let status = Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        assert_eq!(
            classify(&status),
            Class::Throttled(Some(Duration::from_secs(3)))
        );
    }

    #[test]
    fn throttle_hint_from_retry_after_metadata() {
        let mut status = Status::resource_exhausted("slow down");
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from_static("7"));
        assert_eq!(
            classify(&status),
            Class::Throttled(Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut backoff = Backoff::new(RetryPolicy::default());
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.next_delay(0.0).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]
        );
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        let mut backoff = Backoff::new(RetryPolicy::default());
        let delay = backoff.next_delay(0.999_999);
        assert!(delay > Duration::from_millis(124) && delay < Duration::from_millis(125));
        let mut capped = Backoff::new(RetryPolicy {
            initial: Duration::from_secs(20),
            ..RetryPolicy::default()
        });
        let delay = capped.next_delay(0.5);
        assert_eq!(delay, Duration::from_millis(11_250));
    }

    #[test]
    fn throttled_delay_honours_bounded_hint() {
        let mut backoff = Backoff::new(RetryPolicy::default());
        assert_eq!(
            backoff.throttled_delay(Some(Duration::from_secs(2)), 0.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff.throttled_delay(Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(60)
        );
        assert_eq!(
            backoff.throttled_delay(None, 0.0),
            Duration::from_millis(400)
        );
    }
}
