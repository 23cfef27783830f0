//! Counts over a window, the unit every test reads.

/// Counts over a window: exposure (requests, root spans or log records) and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    pub exposure: u64,
    pub errors: u64,
}

impl Sample {
    /// Both counts added (saturating).
    pub fn plus(self, other: Sample) -> Sample {
        Sample {
            exposure: self.exposure.saturating_add(other.exposure),
            errors: self.errors.saturating_add(other.errors),
        }
    }
}
