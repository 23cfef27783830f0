//! Timestamps found in log lines: RFC 3339 (and its common relaxations) and Unix epoch
//! numbers of any unit, all turned into Unix nanoseconds.

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Parses `YYYY-MM-DD[T| ]HH:MM:SS[(.|,)fraction][Z|±HH:MM|±HHMM]`. A missing offset
/// means UTC. Times before 1970 or beyond what `u64` nanoseconds hold are rejected.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    rfc3339_bytes(text.as_bytes())
}

/// [`parse_rfc3339`] of `date` and `clock` joined with a `T`, without building a string
/// for the usual lengths.
pub fn parse_date_and_clock(date: &[u8], clock: &[u8]) -> Option<u64> {
    let len = date.len() + 1 + clock.len();
    let mut joined = [0u8; 64];
    if len > joined.len() {
        return rfc3339_bytes(&[date, b"T", clock].concat());
    }
    joined[..date.len()].copy_from_slice(date);
    joined[date.len()] = b'T';
    joined[date.len() + 1..len].copy_from_slice(clock);
    rfc3339_bytes(&joined[..len])
}

fn rfc3339_bytes(b: &[u8]) -> Option<u64> {
    if b.len() < 19 {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    let separators_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !separators_ok
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut rest = &b[19..];
    let mut nanos: u64 = 0;
    if let Some((b'.' | b',', tail)) = rest.split_first() {
        let len = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        for (i, c) in tail[..len].iter().take(9).enumerate() {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &tail[len..];
    }

    let offset_seconds: i64 = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [_, _, b':', _, _] => (digits(tail, 0, 2)?, digits(tail, 3, 2)?),
                [_, _, _, _] => (digits(tail, 0, 2)?, digits(tail, 2, 2)?),
                [_, _] => (digits(tail, 0, 2)?, 0),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            let seconds = i64::from(h * 3600 + m * 60);
            if *sign == b'+' {
                seconds
            } else {
                -seconds
            }
        }
        _ => return None,
    };

    let days = days_from_civil(i64::from(year), month, day);
    // A leap second is folded onto the second before it.
    let second = second.min(59);
    let local = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let utc = u64::try_from(local - offset_seconds).ok()?;
    utc.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

/// A Unix timestamp given as a number whose unit is inferred from its magnitude:
/// seconds (< 1e11), milliseconds (< 1e14), microseconds (< 1e17), else nanoseconds.
pub fn from_unix_integer(value: u64) -> Option<u64> {
    match value {
        0 => None,
        v if v < 100_000_000_000 => v.checked_mul(NANOS_PER_SEC),
        v if v < 100_000_000_000_000 => v.checked_mul(1_000_000),
        v if v < 100_000_000_000_000_000 => v.checked_mul(1_000),
        v => Some(v),
    }
}

/// Like [`from_unix_integer`] for fractional numbers (`1700000000.123`).
pub fn from_unix_float(value: f64) -> Option<u64> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let scale = if value < 1e11 {
        1e9
    } else if value < 1e14 {
        1e6
    } else if value < 1e17 {
        1e3
    } else {
        1.0
    };
    // Whole and fractional parts apart, so the fraction keeps its precision.
    let whole = value.trunc() * scale;
    // `as` saturates; reject values that would.
    if whole >= u64::MAX as f64 {
        return None;
    }
    let fraction = (value.fract() * scale).round() as u64;
    (whole as u64).checked_add(fraction)
}

/// A timestamp field's string: RFC 3339 or a number.
pub fn parse_timestamp_text(text: &str) -> Option<u64> {
    let text = text.trim();
    // Most fields are RFC 3339, so that goes first. The order does not change results:
    // text with digits and a `-` where a date has them is never a number.
    if let Some(nanos) = parse_rfc3339(text) {
        return Some(nanos);
    }
    if let Ok(integer) = text.parse::<u64>() {
        return from_unix_integer(integer);
    }
    if let Ok(float) = text.parse::<f64>() {
        return from_unix_float(float);
    }
    parse_rfc3339(text)
}

fn digits(b: &[u8], start: usize, len: usize) -> Option<u32> {
    let slice = b.get(start..start + len)?;
    slice.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn rfc3339_variants() {
        let s = T * NANOS_PER_SEC;
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(s));
        assert_eq!(parse_rfc3339("2023-11-14 22:13:20"), Some(s));
        assert_eq!(parse_rfc3339("2023-11-14t22:13:20z"), Some(s));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.5Z"),
            Some(s + 500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20,123Z"),
            Some(s + 123_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456789123Z"),
            Some(s + 123_456_789)
        );
        assert_eq!(parse_rfc3339("2023-11-15T00:13:20+02:00"), Some(s));
        assert_eq!(parse_rfc3339("2023-11-14T17:13:20-0500"), Some(s));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800 * NANOS_PER_SEC)
        );
    }

    #[test]
    fn rfc3339_rejects_garbage() {
        for bad in [
            "",
            "2023-11-14",
            "2023-13-14T22:13:20Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+2",
            "2023-11-14T22:13:20Zjunk",
            "1969-12-31T23:59:59Z",
            "9999-12-31T23:59:59Z",
            "２023-11-14T22:13:20Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn date_and_clock_match_the_joined_text() {
        for (date, clock) in [
            ("2023-11-14", "22:13:20"),
            ("2023-11-14", "22:13:20,250"),
            ("2023-11-14", "00:00:00Z"),
            ("2023-11-14", ""),
            ("2023-02-30", "00:00:00Z"),
            (
                "2023-11-14",
                "22:13:20.123456789123456789123456789123456789123456789123456789Z",
            ),
            (
                "2023-11-14",
                "22:13:20.1234567891234567891234567891234567891234567891234567890Z",
            ),
        ] {
            assert_eq!(
                parse_date_and_clock(date.as_bytes(), clock.as_bytes()),
                parse_rfc3339(&format!("{date}T{clock}")),
                "{date} {clock}"
            );
        }
        assert_eq!(
            parse_date_and_clock(b"2023-11-14", b"22:13:20Z"),
            Some(T * NANOS_PER_SEC)
        );
    }

    #[test]
    fn timestamp_text_forms() {
        let s = T * NANOS_PER_SEC;
        assert_eq!(parse_timestamp_text(" 2023-11-14T22:13:20Z "), Some(s));
        assert_eq!(parse_timestamp_text("1700000000"), Some(s));
        assert_eq!(parse_timestamp_text("+1700000000"), Some(s));
        assert_eq!(parse_timestamp_text("1700000000.5"), Some(s + 500_000_000));
        assert_eq!(
            parse_timestamp_text("+12e-0000000000000001"),
            Some(1_200_000_000)
        );
        assert_eq!(parse_timestamp_text("2023-11-14"), None);
        assert_eq!(parse_timestamp_text("-5"), None);
    }

    #[test]
    fn unix_numbers_by_magnitude() {
        let s = T * NANOS_PER_SEC;
        assert_eq!(from_unix_integer(T), Some(s));
        assert_eq!(from_unix_integer(T * 1000), Some(s));
        assert_eq!(from_unix_integer(T * 1_000_000), Some(s));
        assert_eq!(from_unix_integer(s), Some(s));
        assert_eq!(from_unix_integer(0), None);
        assert_eq!(from_unix_float(1_700_000_000.25), Some(s + 250_000_000));
        assert_eq!(from_unix_float(-1.0), None);
        assert_eq!(from_unix_float(f64::NAN), None);
        assert_eq!(from_unix_float(1e30), None);
        assert_eq!(parse_timestamp_text("1700000000000"), Some(s));
        assert_eq!(parse_timestamp_text("2023-11-14T22:13:20Z"), Some(s));
    }
}
