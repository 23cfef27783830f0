//! Severity names and numbers, mapped onto OpenTelemetry `SeverityNumber`.

use bellwether_proto::otlp::logs::SeverityNumber;

/// The six OpenTelemetry severity ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    /// The first `SeverityNumber` of the level's range.
    pub fn number(self) -> i32 {
        let number = match self {
            Level::Trace => SeverityNumber::Trace,
            Level::Debug => SeverityNumber::Debug,
            Level::Info => SeverityNumber::Info,
            Level::Warn => SeverityNumber::Warn,
            Level::Error => SeverityNumber::Error,
            Level::Fatal => SeverityNumber::Fatal,
        };
        number as i32
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }

    /// The level whose `SeverityNumber` range (1–24) contains `number`.
    fn from_otel_number(number: i64) -> Option<Level> {
        Some(match number {
            1..=4 => Level::Trace,
            5..=8 => Level::Debug,
            9..=12 => Level::Info,
            13..=16 => Level::Warn,
            17..=20 => Level::Error,
            21..=24 => Level::Fatal,
            _ => return None,
        })
    }
}

/// A severity as found in a record: the number to store and the text to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Severity {
    pub number: i32,
    pub text: String,
}

/// Level names accepted in structured fields, in any letter case.
const FIELD_NAMES: [(&str, Level); 27] = [
    ("trace", Level::Trace),
    ("verbose", Level::Trace),
    ("trc", Level::Trace),
    ("finest", Level::Trace),
    ("finer", Level::Trace),
    ("debug", Level::Debug),
    ("dbg", Level::Debug),
    ("fine", Level::Debug),
    ("info", Level::Info),
    ("inf", Level::Info),
    ("information", Level::Info),
    ("informational", Level::Info),
    ("notice", Level::Info),
    ("warn", Level::Warn),
    ("warning", Level::Warn),
    ("wrn", Level::Warn),
    ("error", Level::Error),
    ("err", Level::Error),
    ("eror", Level::Error),
    ("severe", Level::Error),
    ("fatal", Level::Fatal),
    ("critical", Level::Fatal),
    ("crit", Level::Fatal),
    ("panic", Level::Fatal),
    ("alert", Level::Fatal),
    ("emerg", Level::Fatal),
    ("emergency", Level::Fatal),
];

/// Level words accepted at the start of a plain-text line, in any letter case.
const PLAIN_NAMES: [(&str, Level); 9] = [
    ("TRACE", Level::Trace),
    ("DEBUG", Level::Debug),
    ("INFO", Level::Info),
    ("WARN", Level::Warn),
    ("WARNING", Level::Warn),
    ("ERROR", Level::Error),
    ("ERR", Level::Error),
    ("FATAL", Level::Fatal),
    ("CRITICAL", Level::Fatal),
];

/// The level named `word`, ignoring ASCII case (no lowercased copy is made).
fn lookup(names: &[(&str, Level)], word: &str) -> Option<Level> {
    names
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|(_, level)| *level)
}

/// Severity from a structured field's string value (`"warning"`, `"ERR"`, `"30"`).
pub fn from_field_text(text: &str) -> Option<Severity> {
    let trimmed = text.trim();
    if let Ok(number) = trimmed.parse::<i64>() {
        return from_field_number(number);
    }
    let level = lookup(&FIELD_NAMES, trimmed)?;
    Some(Severity {
        number: level.number(),
        text: trimmed.to_owned(),
    })
}

/// Severity from a numeric field. The multiples of ten from 10 to 60 are read as
/// pino/bunyan levels (the most common numeric levels in JSON logs); other values in
/// 1–24 are OpenTelemetry severity numbers.
pub fn from_field_number(number: i64) -> Option<Severity> {
    let (number, level) = match number {
        10 => (Level::Trace.number(), Level::Trace),
        20 => (Level::Debug.number(), Level::Debug),
        30 => (Level::Info.number(), Level::Info),
        40 => (Level::Warn.number(), Level::Warn),
        50 => (Level::Error.number(), Level::Error),
        60 => (Level::Fatal.number(), Level::Fatal),
        n => {
            let level = Level::from_otel_number(n)?;
            (i32::try_from(n).ok()?, level)
        }
    };
    Some(Severity {
        number,
        text: level.name().to_owned(),
    })
}

/// Severity from the leading token of a plain-text line: `ERROR`, `[warn]`, `Info:`.
/// Only unambiguous level words are accepted so ordinary prose is not misread.
pub fn from_plain_token(token: &str) -> Option<Severity> {
    let stripped = token.trim_end_matches(':');
    let stripped = stripped
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .or_else(|| stripped.strip_prefix('(').and_then(|t| t.strip_suffix(')')))
        .or_else(|| stripped.strip_prefix('<').and_then(|t| t.strip_suffix('>')))
        .unwrap_or(stripped)
        .trim_end_matches(':');
    let level = lookup(&PLAIN_NAMES, stripped)?;
    Some(Severity {
        number: level.number(),
        text: stripped.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_numbers_match_opentelemetry() {
        let numbers: Vec<i32> = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
            Level::Fatal,
        ]
        .iter()
        .map(|l| l.number())
        .collect();
        assert_eq!(numbers, [1, 5, 9, 13, 17, 21]);
    }

    #[test]
    fn field_text_variants() {
        let cases = [
            ("error", 17),
            ("ERR", 17),
            ("warning", 13),
            ("Warn", 13),
            ("info", 9),
            ("debug", 5),
            ("trace", 1),
            ("fatal", 21),
            ("CRITICAL", 21),
            ("50", 17),
        ];
        for (text, number) in cases {
            let severity = from_field_text(text).unwrap_or_else(|| panic!("{text} maps"));
            assert_eq!(severity.number, number, "{text}");
        }
        assert_eq!(
            from_field_text("error").map(|s| s.text),
            Some("error".into())
        );
        assert_eq!(from_field_text("verbose-ish"), None);
    }

    /// The mapping as first written, with lowercased and uppercased copies.
    fn reference_field_level(text: &str) -> Option<Level> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "trace" | "verbose" | "trc" | "finest" | "finer" => Level::Trace,
            "debug" | "dbg" | "fine" => Level::Debug,
            "info" | "inf" | "information" | "informational" | "notice" => Level::Info,
            "warn" | "warning" | "wrn" => Level::Warn,
            "error" | "err" | "eror" | "severe" => Level::Error,
            "fatal" | "critical" | "crit" | "panic" | "alert" | "emerg" | "emergency" => {
                Level::Fatal
            }
            _ => return None,
        })
    }

    fn reference_plain_level(word: &str) -> Option<Level> {
        Some(match word.to_ascii_uppercase().as_str() {
            "TRACE" => Level::Trace,
            "DEBUG" => Level::Debug,
            "INFO" => Level::Info,
            "WARN" | "WARNING" => Level::Warn,
            "ERROR" | "ERR" => Level::Error,
            "FATAL" | "CRITICAL" => Level::Fatal,
            _ => return None,
        })
    }

    #[test]
    fn case_insensitive_lookup_matches_the_reference() {
        let mut words: Vec<String> = FIELD_NAMES
            .iter()
            .chain(&PLAIN_NAMES)
            .map(|(name, _)| (*name).to_owned())
            .collect();
        let variants: Vec<String> = words
            .iter()
            .flat_map(|w| {
                let mixed: String = w
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect();
                [
                    w.to_ascii_uppercase(),
                    w.to_ascii_lowercase(),
                    mixed,
                    format!(" {w}\t"),
                    format!("{w}x"),
                    w[1..].to_owned(),
                ]
            })
            .collect();
        words.extend(variants);
        words.extend(["", "İNFO", "ınfo", "ERROR\u{301}", "warn-ish"].map(str::to_owned));
        for word in &words {
            assert_eq!(
                from_field_text(word).map(|s| s.number),
                reference_field_level(word).map(Level::number),
                "{word:?}"
            );
            assert_eq!(
                lookup(&PLAIN_NAMES, word),
                reference_plain_level(word),
                "{word:?}"
            );
        }
    }

    #[test]
    fn numbers_pino_and_otel() {
        assert_eq!(from_field_number(30).map(|s| s.number), Some(9));
        assert_eq!(from_field_number(60).map(|s| s.number), Some(21));
        assert_eq!(
            from_field_number(18).map(|s| (s.number, s.text)),
            Some((18, "ERROR".into()))
        );
        assert_eq!(from_field_number(0), None);
        assert_eq!(from_field_number(99), None);
    }

    #[test]
    fn plain_tokens() {
        for token in ["ERROR", "error", "[ERROR]", "ERROR:", "[err]:", "(Err)"] {
            assert_eq!(
                from_plain_token(token).map(|s| s.number),
                Some(17),
                "{token}"
            );
        }
        assert_eq!(from_plain_token("WARNING").map(|s| s.number), Some(13));
        assert_eq!(from_plain_token("<critical>").map(|s| s.number), Some(21));
        assert_eq!(
            from_plain_token("[INFO]").map(|s| s.text),
            Some("INFO".into())
        );
        assert_eq!(from_plain_token("Errors"), None);
        assert_eq!(from_plain_token("notice"), None);
    }
}
