//! What every settings module shares: [`ConfigError`], which names the offending key, and
//! [`parse_duration`].
//!
//! The duration parser is hand-written rather than `humantime`'s because Bellwether's
//! config has always accepted a bare number as seconds (`12`) and fractions (`1.5s`),
//! which `humantime` refuses; it is 40 lines and tested below.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {key} {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

/// Parses a duration such as `250ms`, `30s`, `5m`, `1h30m` or `2d`; a bare number is
/// seconds. The error explains what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = || format!("expected a duration like 30s, 5m or 1h30m, got {text:?}");
    if text.is_empty() {
        return Err(expected());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(expected)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let value: f64 = number.parse().map_err(|_| expected())?;
        let scale = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3_600.0,
            "d" => 86_400.0,
            _ => return Err(expected()),
        };
        total = total
            .checked_add(Duration::try_from_secs_f64(value * scale).map_err(|_| expected())?)
            .ok_or_else(expected)?;
        rest = tail;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        for bad in ["", "5 minutes", "m", "-1s", "1x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
