//! Human-readable evidence lines and the number formatting they share.

use std::time::Duration;

use super::verdict::{EvidenceItem, Sample};

/// An evidence item of the given kind.
pub fn item(kind: &str, summary: String) -> EvidenceItem {
    EvidenceItem {
        kind: kind.to_owned(),
        summary,
    }
}

/// errors / exposure, or None without exposure.
pub fn rate(s: &Sample) -> Option<f64> {
    (s.exposure > 0).then(|| s.errors as f64 / s.exposure as f64)
}

/// "1.234% (12 errors / 1000)" or "no traffic yet".
pub fn describe_rate(s: &Sample) -> String {
    match rate(s) {
        Some(r) => format!("{} ({} errors / {})", percent(r), s.errors, s.exposure),
        None => format!("no traffic yet ({} errors / 0)", s.errors),
    }
}

/// A fraction as a percentage with enough digits for small error rates.
pub fn percent(r: f64) -> String {
    let p = r * 100.0;
    if p != 0.0 && p.abs() < 0.01 {
        format!("{p:.2e}%")
    } else {
        format!("{p:.3}%")
    }
}

/// ln M shown as M when it is of printable size.
pub fn describe_e_value(log_m: f64) -> String {
    if log_m.abs() < 30.0 {
        format!("{:.3}", log_m.exp())
    } else {
        format!("e^{log_m:.1}")
    }
}

/// "2h 3m 4s" style, seconds rounded up.
pub fn human_duration(d: Duration) -> String {
    let mut secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    let h = secs / 3_600;
    secs %= 3_600;
    let (m, s) = (secs / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// f64 → u64, rounding up; NaN and negatives are 0, overflow saturates.
pub fn ceil_u64(x: f64) -> u64 {
    if x.is_nan() || x <= 0.0 {
        0
    } else {
        // `as` saturates at u64::MAX for large and infinite values.
        x.ceil() as u64
    }
}

/// Seconds → Duration; None for NaN, negative or unrepresentable values.
pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(percent(0.0123), "1.230%");
        assert_eq!(percent(0.0), "0.000%");
        assert_eq!(percent(1e-6), "1.00e-4%");
        assert_eq!(human_duration(Duration::from_secs(59)), "59s");
        assert_eq!(human_duration(Duration::from_millis(61_500)), "1m 2s");
        assert_eq!(human_duration(Duration::from_secs(7_384)), "2h 3m 4s");
        assert_eq!(describe_e_value(0.0), "1.000");
        assert_eq!(describe_e_value(100.0), "e^100.0");
        assert_eq!(ceil_u64(f64::NAN), 0);
        assert_eq!(ceil_u64(f64::INFINITY), u64::MAX);
        assert_eq!(ceil_u64(2.1), 3);
        assert_eq!(duration_from_secs(-1.0), None);
        assert_eq!(duration_from_secs(f64::INFINITY), None);
        let s = Sample {
            exposure: 0,
            errors: 3,
        };
        assert_eq!(rate(&s), None);
        assert!(describe_rate(&s).contains("no traffic"));
    }
}
