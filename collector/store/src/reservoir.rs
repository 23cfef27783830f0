//! A bounded uniform sample of durations (reservoir sampling, Vitter's algorithm R), and
//! its merge: a batch's reservoir of a bucket is merged into the stored one.
//!
//! Randomness comes from SplitMix64 over the reservoir's own state, so a run is
//! reproducible and no RNG needs seeding or sharing between threads.

use crate::StoreError;
use bellwether_model::issue::MAX_LATENCY_SAMPLES;

/// At most [`MAX_LATENCY_SAMPLES`] durations (microseconds, saturating at `u32::MAX`,
/// about 71 minutes) drawn uniformly from `seen` durations.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservoir {
    pub seen: u64,
    pub values_us: Vec<u32>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A duration in nanoseconds as saturating microseconds.
pub fn duration_micros(duration_ns: u64) -> u32 {
    u32::try_from(duration_ns / 1_000).unwrap_or(u32::MAX)
}

impl Reservoir {
    /// Offers one more duration.
    pub fn offer(&mut self, value_us: u32) {
        self.seen = self.seen.saturating_add(1);
        if self.values_us.len() < MAX_LATENCY_SAMPLES {
            self.values_us.push(value_us);
            return;
        }
        let j = splitmix(self.seen ^ (u64::from(value_us) << 32)) % self.seen.max(1);
        if let Some(slot) = self.values_us.get_mut(j as usize) {
            *slot = value_us;
        }
    }

    /// Merges `other` (drawn from a disjoint set of durations) into `self`. Each kept value
    /// comes from either side in proportion to how many durations that side still stands
    /// for, so the result is (approximately) a uniform sample of the union.
    pub fn merge(&mut self, other: &Reservoir) {
        let total_seen = self.seen.saturating_add(other.seen);
        if self.values_us.len() + other.values_us.len() <= MAX_LATENCY_SAMPLES {
            self.values_us.extend_from_slice(&other.values_us);
            self.seen = total_seen;
            return;
        }
        let mut a = std::mem::take(&mut self.values_us);
        let mut b = other.values_us.clone();
        // Weight each side stands for, and what one of its values is worth.
        let per_a = (self.seen / a.len().max(1) as u64).max(1);
        let per_b = (other.seen / b.len().max(1) as u64).max(1);
        let (mut weight_a, mut weight_b) = (
            self.seen.max(a.len() as u64),
            other.seen.max(b.len() as u64),
        );
        let mut state = splitmix(self.seen ^ other.seen.rotate_left(17));
        let mut out = Vec::with_capacity(MAX_LATENCY_SAMPLES);
        while out.len() < MAX_LATENCY_SAMPLES && !(a.is_empty() && b.is_empty()) {
            state = splitmix(state);
            let take_a = if a.is_empty() {
                false
            } else if b.is_empty() {
                true
            } else {
                state % weight_a.saturating_add(weight_b).max(1) < weight_a
            };
            state = splitmix(state);
            let (side, weight, per) = if take_a {
                (&mut a, &mut weight_a, per_a)
            } else {
                (&mut b, &mut weight_b, per_b)
            };
            let index = (state % side.len().max(1) as u64) as usize;
            if index < side.len() {
                out.push(side.swap_remove(index));
            }
            *weight = weight.saturating_sub(per).max(side.len() as u64);
        }
        self.values_us = out;
        self.seen = total_seen;
    }

    /// `seen` (u64 little-endian), then each value (u32 little-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + 4 * self.values_us.len());
        out.extend_from_slice(&self.seen.to_le_bytes());
        for value in &self.values_us {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Result<Reservoir, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("latency sample of {} bytes", raw.len()));
        let (head, tail) = raw.split_at_checked(8).ok_or_else(corrupt)?;
        if tail.len() % 4 != 0 || tail.len() / 4 > MAX_LATENCY_SAMPLES {
            return Err(corrupt());
        }
        let seen = u64::from_le_bytes(head.try_into().map_err(|_| corrupt())?);
        let values_us = tail
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Reservoir { seen, values_us })
    }

    /// The sampled durations in milliseconds.
    pub fn millis(&self) -> Vec<f64> {
        self.values_us
            .iter()
            .map(|&us| f64::from(us) / 1_000.0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(values: std::ops::Range<u32>) -> Reservoir {
        let mut r = Reservoir::default();
        for v in values {
            r.offer(v);
        }
        r
    }

    #[test]
    fn keeps_everything_until_full_then_stays_bounded() {
        let small = filled(0..100);
        assert_eq!((small.seen, small.values_us.len()), (100, 100));
        let big = filled(0..100_000);
        assert_eq!(big.seen, 100_000);
        assert_eq!(big.values_us.len(), MAX_LATENCY_SAMPLES);
        // Uniform: the sample's mean is near the population's (49 999.5), not the first 256.
        let mean =
            big.values_us.iter().map(|&v| f64::from(v)).sum::<f64>() / MAX_LATENCY_SAMPLES as f64;
        assert!((35_000.0..65_000.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn merge_weights_sides_by_what_they_stand_for() {
        // 90 000 small values against 10 000 large ones: about 90 % small after merging.
        let mut many_small = filled(0..90_000);
        many_small.values_us.iter_mut().for_each(|v| *v = 1);
        let mut few_large = filled(0..10_000);
        few_large.values_us.iter_mut().for_each(|v| *v = 1_000);
        many_small.merge(&few_large);
        assert_eq!(many_small.seen, 100_000);
        assert_eq!(many_small.values_us.len(), MAX_LATENCY_SAMPLES);
        let large = many_small.values_us.iter().filter(|&&v| v == 1_000).count();
        assert!((5..=60).contains(&large), "{large} large values of 256");

        let mut a = filled(0..10);
        a.merge(&filled(100..105));
        assert_eq!((a.seen, a.values_us.len()), (15, 15));
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let r = filled(0..300);
        assert_eq!(Reservoir::decode(&r.encode()).ok(), Some(r));
        assert!(Reservoir::decode(&[1, 2, 3]).is_err());
        assert!(Reservoir::decode(&[0; 10]).is_err());
        assert_eq!(duration_micros(2_500_000), 2_500);
        assert_eq!(duration_micros(u64::MAX), u32::MAX);
        let ms = filled(1_500..1_501).millis();
        assert_eq!(ms, vec![1.5]);
    }
}
