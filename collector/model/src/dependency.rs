//! Calls a release made to its dependencies (client and producer spans), per dependency;
//! and its requests per feature-flag variant evaluated while serving them. Both are
//! counted as [`DependencyCounts`] (calls or requests, and how many failed).

use serde::{Deserialize, Serialize};

/// Distinct dependencies kept per release; calls to any further one count under
/// [`OTHER`].
pub const MAX_DEPENDENCIES: usize = 50;

/// Where calls to dependencies beyond [`MAX_DEPENDENCIES`] (or without a name) count.
pub const OTHER: &str = "other";

/// Distinct (flag, variant) pairs kept per release; requests under any further one are
/// not counted per variant (they still count in the release's totals).
pub const MAX_FLAG_VARIANTS: usize = 100;

/// Separates the flag from the variant in a stored (flag, variant) name; neither can
/// hold it (attribute values have NUL replaced).
pub const FLAG_SEPARATOR: char = '\0';

/// Upper bounds (ms) of the call-duration histogram's buckets: powers of √2 from 1 ms
/// to about 46 s; a last bucket holds the longer calls.
pub const DURATION_BUCKETS: usize = 32;

/// Upper bound (ms) of duration bucket `i` (infinite for the last).
pub fn duration_bound_ms(i: usize) -> f64 {
    if i + 1 >= DURATION_BUCKETS {
        f64::INFINITY
    } else {
        std::f64::consts::SQRT_2.powi(i as i32)
    }
}

/// The duration bucket of a call that took `ms` milliseconds.
pub fn duration_bucket(ms: f64) -> usize {
    if ms.is_nan() || ms <= 1.0 {
        return 0;
    }
    let i = (ms.log2() * 2.0).ceil();
    (i as usize).min(DURATION_BUCKETS - 1)
}

/// A representative duration (ms) of bucket `i`: the geometric middle of its bounds.
pub fn duration_middle_ms(i: usize) -> f64 {
    match i {
        0 => 0.5,
        i if i + 1 >= DURATION_BUCKETS => duration_bound_ms(i - 1) * 1.5,
        i => (duration_bound_ms(i - 1) * duration_bound_ms(i)).sqrt(),
    }
}

/// Calls to one dependency (or requests that evaluated one flag variant) in one bucket,
/// how many of them failed, and (for calls) how long they took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyCounts {
    pub calls: u64,
    pub errors: u64,
    /// Calls per duration bucket ([`duration_bucket`]); all zero when not measured.
    #[serde(default)]
    pub durations: [u32; DURATION_BUCKETS],
}

impl DependencyCounts {
    pub fn add(&mut self, other: &DependencyCounts) {
        self.calls = self.calls.saturating_add(other.calls);
        self.errors = self.errors.saturating_add(other.errors);
        for (mine, theirs) in self.durations.iter_mut().zip(&other.durations) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// The counts as stored: 16 bytes (calls and errors, big-endian), followed by the
    /// duration buckets (4 bytes each) when any is set.
    pub fn encode(&self) -> Vec<u8> {
        let timed = self.durations.iter().any(|&n| n > 0);
        let mut out = Vec::with_capacity(16 + if timed { 4 * DURATION_BUCKETS } else { 0 });
        out.extend_from_slice(&self.calls.to_be_bytes());
        out.extend_from_slice(&self.errors.to_be_bytes());
        if timed {
            for n in &self.durations {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        out
    }

    /// The counts [`encode`](Self::encode) wrote; None for any other length.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        if raw.len() != 16 && raw.len() != 16 + 4 * DURATION_BUCKETS {
            return None;
        }
        let calls = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
        let errors = u64::from_be_bytes(raw.get(8..16)?.try_into().ok()?);
        let mut durations = [0u32; DURATION_BUCKETS];
        for (i, n) in durations.iter_mut().enumerate() {
            if let Some(b) = raw.get(16 + 4 * i..20 + 4 * i) {
                *n = u32::from_be_bytes(b.try_into().ok()?);
            }
        }
        Some(Self {
            calls,
            errors,
            durations,
        })
    }
}

/// How a release's calls to one dependency compare with its baseline's, in a verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DependencyFigures {
    pub name: String,
    pub calls: u64,
    pub errors: u64,
    pub baseline_calls: u64,
    pub baseline_errors: u64,
    /// ln of the regression e-value of its error rate against the baseline's, and of
    /// the threshold it must reach (the number of dependencies tested over α); absent
    /// when nothing could be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_e_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_threshold: Option<f64>,
    /// Whether its error rate rose past the tolerance.
    pub regression: bool,
    /// p95 of the calls' durations (ms, from the duration buckets), new and baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_p95_ms: Option<f64>,
    /// Whether its calls became slower past the latency tolerance.
    #[serde(default)]
    pub latency_regression: bool,
}

/// How the requests that got one variant of a flag compare with the requests that got
/// its other variants, in a verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlagFigures {
    pub flag: String,
    pub variant: String,
    pub requests: u64,
    pub errors: u64,
    /// Requests that got another variant of the flag, and their errors.
    pub other_requests: u64,
    pub other_errors: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_e_value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_threshold: Option<f64>,
    /// Whether errors concentrate in this variant past the tolerance.
    pub regression: bool,
}

/// One bucket of calls to one dependency (or of requests of one flag variant, named
/// `<flag>\0<variant>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyBucket {
    pub bucket_start_unix_ms: i64,
    pub dependency: String,
    pub counts: DependencyCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_and_other_lengths_are_refused() {
        let mut counts = DependencyCounts {
            calls: 1_000_000_007,
            errors: 3,
            ..DependencyCounts::default()
        };
        assert_eq!(counts.encode().len(), 16, "untimed counts stay short");
        assert_eq!(DependencyCounts::decode(&counts.encode()), Some(counts));
        counts.durations[7] = 40;
        counts.durations[DURATION_BUCKETS - 1] = 1;
        assert_eq!(DependencyCounts::decode(&counts.encode()), Some(counts));
        assert_eq!(DependencyCounts::decode(&[0; 15]), None);
        assert_eq!(DependencyCounts::decode(&[0; 17]), None);
    }

    #[test]
    fn adding_saturates() {
        let mut a = DependencyCounts {
            calls: u64::MAX - 1,
            errors: 1,
            ..DependencyCounts::default()
        };
        a.durations[0] = u32::MAX;
        let mut b = DependencyCounts {
            calls: 5,
            errors: 2,
            ..DependencyCounts::default()
        };
        b.durations[0] = 3;
        a.add(&b);
        assert_eq!((a.calls, a.errors, a.durations[0]), (u64::MAX, 3, u32::MAX));
    }

    #[test]
    fn durations_fall_in_root_two_buckets() {
        assert_eq!(duration_bucket(0.2), 0);
        assert_eq!(duration_bucket(f64::NAN), 0);
        assert_eq!(duration_bucket(1.0), 0);
        assert_eq!(duration_bucket(1.3), 1);
        assert_eq!(duration_bucket(2.0), 2);
        assert_eq!(duration_bucket(100.0), 14);
        assert_eq!(duration_bucket(1e9), DURATION_BUCKETS - 1);
        for i in 1..DURATION_BUCKETS - 1 {
            let middle = duration_middle_ms(i);
            assert_eq!(duration_bucket(middle), i, "bucket {i}: {middle}");
        }
    }
}
