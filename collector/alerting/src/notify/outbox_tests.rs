//! Tests of the outbox's backoff.

use super::*;
use rand::SeedableRng;

#[test]
fn backoff_grows_with_jitter_and_caps() {
    let settings = DeliverySettings {
        max_age: Duration::from_secs(3600),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(2),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for attempt in 1..=40u32 {
        let full = Duration::from_millis(100)
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)))
            .min(Duration::from_secs(2));
        let wait = backoff(attempt, &settings, &mut rng);
        assert!(
            wait <= full && wait >= full / 2,
            "{attempt}: {wait:?} vs {full:?}"
        );
    }
}
