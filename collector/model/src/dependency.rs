//! Calls a release made to its dependencies (client and producer spans), per dependency.

use serde::{Deserialize, Serialize};

/// Distinct dependencies kept per release; calls to any further one count under
/// [`OTHER`].
pub const MAX_DEPENDENCIES: usize = 50;

/// Where calls to dependencies beyond [`MAX_DEPENDENCIES`] (or without a name) count.
pub const OTHER: &str = "other";

/// Calls to one dependency in one bucket, and how many of them failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyCounts {
    pub calls: u64,
    pub errors: u64,
}

impl DependencyCounts {
    pub fn add(&mut self, other: &DependencyCounts) {
        self.calls = self.calls.saturating_add(other.calls);
        self.errors = self.errors.saturating_add(other.errors);
    }

    /// Both counts as 16 bytes (big-endian), as stored.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.calls.to_be_bytes());
        out[8..].copy_from_slice(&self.errors.to_be_bytes());
        out
    }

    /// The counts [`encode`](Self::encode) wrote; None for any other length.
    pub fn decode(raw: &[u8]) -> Option<Self> {
        let calls = u64::from_be_bytes(raw.get(..8)?.try_into().ok()?);
        let errors = u64::from_be_bytes(raw.get(8..16)?.try_into().ok()?);
        (raw.len() == 16).then_some(Self { calls, errors })
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
}

/// One bucket of calls to one dependency.
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
        let counts = DependencyCounts {
            calls: 1_000_000_007,
            errors: 3,
        };
        assert_eq!(DependencyCounts::decode(&counts.encode()), Some(counts));
        assert_eq!(DependencyCounts::decode(&[0; 15]), None);
        assert_eq!(DependencyCounts::decode(&[0; 17]), None);
    }

    #[test]
    fn adding_saturates() {
        let mut a = DependencyCounts {
            calls: u64::MAX - 1,
            errors: 1,
        };
        a.add(&DependencyCounts {
            calls: 5,
            errors: 2,
        });
        assert_eq!(
            a,
            DependencyCounts {
                calls: u64::MAX,
                errors: 3
            }
        );
    }
}
