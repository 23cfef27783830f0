use super::*;

/// A flag evaluated in `buckets` buckets; each variant with (requests, errors) a bucket.
fn flag(name: &str, buckets: i64, variants: &[(&str, u64, u64)]) -> FlagInput {
    FlagInput {
        flag: name.to_owned(),
        variants: variants
            .iter()
            .map(|&(variant, requests, errors)| {
                let per_bucket = (0..buckets)
                    .map(|b| {
                        let sample = Sample {
                            exposure: requests,
                            errors,
                        };
                        (1_700_000_000_000 + b * 10_000, sample)
                    })
                    .collect();
                (variant.to_owned(), per_bucket)
            })
            .collect(),
    }
}

#[test]
fn the_failing_variant_is_named_with_its_flag() {
    // new-checkout=on fails 9 % (9 of 100 a bucket), off 0.3 % on average; dark-mode is
    // evaluated too and changes nothing.
    let mut checkout = flag("new-checkout", 30, &[("on", 100, 9), ("off", 100, 0)]);
    for (i, sample) in checkout
        .variants
        .get_mut("off")
        .into_iter()
        .flat_map(|b| b.values_mut())
        .enumerate()
    {
        sample.errors = u64::from(i % 3 == 0);
    }
    let dark = flag("dark-mode", 30, &[("true", 100, 1), ("false", 100, 1)]);
    let (figures, evidence) = judge_flags(&[checkout, dark], &Thresholds::default());
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!(evidence[0].kind, "flag_variant_regression");
    assert!(
        evidence[0]
            .summary
            .starts_with("errors concentrated where `new-checkout` = `on`: 9.000% vs 0.333%"),
        "{}",
        evidence[0].summary
    );
    let on = figures.iter().find(|f| f.variant == "on").expect("on");
    assert!(on.regression);
    assert_eq!(
        (on.requests, on.errors, on.other_requests, on.other_errors),
        (3_000, 270, 3_000, 10)
    );
    assert!(
        figures.iter().filter(|f| f.regression).count() == 1,
        "{figures:?}"
    );
    // Four variants tested.
    let threshold = on.log_threshold.expect("tested");
    assert!((threshold - (4.0f64 / 0.01).ln()).abs() < 1e-9);
}

#[test]
fn a_flag_with_one_variant_is_not_tested() {
    let only = flag("beta", 30, &[("on", 100, 20)]);
    let (figures, evidence) = judge_flags(&[only], &Thresholds::default());
    assert!(evidence.is_empty());
    assert_eq!(figures.len(), 1);
    assert_eq!(figures[0].log_e_value, None);
    assert!(!figures[0].regression);
}
