//! Whether errors concentrate in one variant of a feature flag: for every flag the new
//! release evaluated with two or more variants, each variant's requests against the
//! flag's other variants, bucket by bucket, with the concurrent test (both sides serve at
//! the same time, so whatever moves them together cancels), at α divided by the number
//! of variants tested. A variant that fails names the flag and the variant, so the
//! on-call engineer can turn the flag off instead of rolling the release back.
//!
//! Only the new release's own requests are compared, so a flag flipped without a deploy
//! (a variant first seen in a release already out) is judged from then on like any
//! other: the release's verdict may become degraded at a later evaluation.

use std::collections::BTreeMap;
use std::ops::Range;

use bellwether_detect::cutover::floors_met;
use bellwether_detect::evidence::{percent, rate};
use bellwether_detect::verdict::{Sample, Thresholds};
use bellwether_detect::{ConcurrentTest, Direction};
use bellwether_model::dependency::{FlagFigures, FLAG_SEPARATOR};
use bellwether_model::health::Evidence;
use bellwether_model::release::ReleaseKey;
use bellwether_store::{ReleaseStore, StoreError};

use crate::evaluate::analysis::{describe_log, finite};
use crate::evaluate::dependencies::sample_of;

/// One flag's variants: each with its requests per bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlagInput {
    pub flag: String,
    /// Variant → bucket start → requests that got it.
    pub variants: BTreeMap<String, BTreeMap<i64, Sample>>,
}

/// The requests of `release` per flag and variant over the buckets starting in `range`.
pub(super) fn gather_flags(
    store: &dyn ReleaseStore,
    release: &ReleaseKey,
    range: Range<i64>,
) -> Result<Vec<FlagInput>, StoreError> {
    let mut flags: BTreeMap<String, FlagInput> = BTreeMap::new();
    for bucket in store.flag_buckets(release, range)? {
        let Some((flag, variant)) = bucket.dependency.split_once(FLAG_SEPARATOR) else {
            continue;
        };
        let input = flags.entry(flag.to_owned()).or_insert_with(|| FlagInput {
            flag: flag.to_owned(),
            ..FlagInput::default()
        });
        let side = input
            .variants
            .entry(variant.to_owned())
            .or_default()
            .entry(bucket.bucket_start_unix_ms)
            .or_default();
        *side = side.plus(sample_of(&bucket.counts));
    }
    Ok(flags.into_values().collect())
}

fn sum(buckets: &BTreeMap<i64, Sample>) -> Sample {
    buckets
        .values()
        .copied()
        .fold(Sample::default(), Sample::plus)
}

/// Every variant's figures, and evidence for each variant whose errors concentrate past
/// the tolerance (the errors floors included) with an e-value of at least k/α for k
/// variants tested.
pub(super) fn judge_flags(
    flags: &[FlagInput],
    t: &Thresholds,
) -> (Vec<FlagFigures>, Vec<Evidence>) {
    let t = t.sanitized();
    let compared = flags
        .iter()
        .filter(|f| f.variants.len() >= 2)
        .map(|f| f.variants.len())
        .sum::<usize>()
        .max(1);
    let log_threshold = (compared as f64 / t.alpha).ln();
    let (mut figures, mut evidence) = (Vec::new(), Vec::new());
    for flag in flags {
        for (variant, buckets) in &flag.variants {
            let mut test = ConcurrentTest::new(t.rho);
            let mut starts: Vec<i64> = flag
                .variants
                .values()
                .flat_map(|b| b.keys().copied())
                .collect();
            starts.sort_unstable();
            starts.dedup();
            for start in starts {
                let mine = buckets.get(&start).copied().unwrap_or_default();
                let others = flag
                    .variants
                    .iter()
                    .filter(|(name, _)| *name != variant)
                    .filter_map(|(_, b)| b.get(&start).copied())
                    .fold(Sample::default(), Sample::plus);
                test.update(mine.exposure, others.exposure, mine.errors, others.errors);
            }
            let mine = sum(buckets);
            let others = Sample {
                exposure: test.baseline_exposure,
                errors: test.baseline_errors,
            };
            let tested = flag.variants.len() >= 2;
            let log_e = tested.then(|| test.log_e(Direction::Up, 1.0));
            let regression = log_e.is_some_and(|l| l >= log_threshold)
                && floors_met(
                    mine.errors as f64,
                    mine.exposure as f64,
                    rate(&others).unwrap_or(0.0),
                    t.min_errors,
                    t.min_abs_rise,
                );
            if regression {
                let summary = format!(
                    "errors concentrated where `{}` = `{variant}`: {} vs {} for its other \
                     variants ({} of {} requests, others {} of {}); e-value {} vs threshold \
                     {:.0} ({compared} variants tested at α = {})",
                    flag.flag,
                    percent(rate(&mine).unwrap_or(0.0)),
                    percent(rate(&others).unwrap_or(0.0)),
                    mine.errors,
                    mine.exposure,
                    others.errors,
                    others.exposure,
                    describe_log(log_e.unwrap_or(0.0)),
                    log_threshold.exp(),
                    t.alpha,
                );
                evidence.push(
                    Evidence::new("flag_variant_regression", summary)
                        .with("flag", flag.flag.as_str())
                        .with("variant", variant.as_str())
                        .with("requests", mine.exposure)
                        .with("errors", mine.errors)
                        .with("other_requests", others.exposure)
                        .with("other_errors", others.errors)
                        .with("log_e_value", log_e.and_then(finite))
                        .with("log_threshold", log_threshold),
                );
            }
            figures.push(FlagFigures {
                flag: flag.flag.clone(),
                variant: variant.clone(),
                requests: mine.exposure,
                errors: mine.errors,
                other_requests: others.exposure,
                other_errors: others.errors,
                log_e_value: log_e.and_then(finite),
                log_threshold: log_e.map(|_| log_threshold),
                regression,
            });
        }
    }
    (figures, evidence)
}

#[cfg(test)]
#[path = "flags_tests.rs"]
mod tests;
