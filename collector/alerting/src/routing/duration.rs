//! Human durations for display: `30s`, `5m`, `2h`, `1d`, `1h30m`, `250ms`; parsed by
//! [`bellwether_model::config::parse_duration`].

use std::time::Duration;

/// `2h`, `1h30m`, `45s`, `250ms` — the inverse of [`bellwether_model::config::parse_duration`].
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    if ms > 0 {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_what_the_config_parser_reads() {
        let cases = [
            ("30s", 30_000),
            ("2h", 7_200_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("1d", 86_400_000),
        ];
        for (text, ms) in cases {
            assert_eq!(format_duration(Duration::from_millis(ms)), text);
            assert_eq!(
                bellwether_model::config::parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }
}
