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

/// Calls to one dependency (or requests that evaluated one flag variant) in one bucket,
/// and how many of them failed.
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
