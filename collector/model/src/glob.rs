//! Glob patterns over service names, file paths and modules.
//!
//! `*` matches within one path segment, `**` across segments (`a/**/b` also matches
//! `a/b`), `?` one character of a segment, `[abc]`, `[a-z]`, `[!a-z]` a class; `\` escapes.
//! Matching is linear in pattern × text (no backtracking blow-up).
//!
//! Hand-written rather than `globset`: `globset` refuses `**` that is not a whole path
//! component (`src/**.go`, `team-**`), which this matcher accepts and existing configs
//! may use, and compiles every pattern to a regex; this one is 190 lines, a dynamic
//! programme over the text, and tested below.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GlobError {
    #[error("empty pattern")]
    Empty,
    #[error("unclosed character class in {0:?}")]
    UnclosedClass(String),
    #[error("dangling escape at the end of {0:?}")]
    DanglingEscape(String),
    #[error("`***` in {0:?}: use `*` within a segment or `**` across segments")]
    TripleStar(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` not followed by `/`: anything.
    Any,
    /// `**/`: nothing, or anything ending in `/`.
    AnyDirs,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.contains("***") {
            return Err(GlobError::TripleStar(pattern.to_owned()));
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            match c {
                '\\' => {
                    let escaped = chars
                        .get(i)
                        .ok_or_else(|| GlobError::DanglingEscape(pattern.to_owned()))?;
                    tokens.push(Token::Literal(*escaped));
                    i += 1;
                }
                '?' => tokens.push(Token::One),
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                        tokens.push(Token::AnyDirs);
                    } else {
                        tokens.push(Token::Any);
                    }
                }
                '*' => tokens.push(Token::Star),
                '[' => {
                    let (token, next) = class(&chars, i)
                        .ok_or_else(|| GlobError::UnclosedClass(pattern.to_owned()))?;
                    tokens.push(token);
                    i = next;
                }
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Self {
            source: pattern.to_owned(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the pattern has no wildcard at all.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let n = text.len();
        // next[j]: tokens[i+1..] match text[j..]; cur[j]: tokens[i..] match text[j..].
        let mut next = vec![false; n + 1];
        next[n] = true;
        for token in self.tokens.iter().rev() {
            let mut cur = vec![false; n + 1];
            match token {
                Token::Star | Token::Any => {
                    cur[n] = next[n];
                    for j in (0..n).rev() {
                        let crosses = matches!(token, Token::Any) || text[j] != '/';
                        cur[j] = next[j] || (crosses && cur[j + 1]);
                    }
                }
                Token::AnyDirs => {
                    // ends_dir[j]: some k >= j has text[k] == '/' and next[k + 1].
                    let mut ends_dir = false;
                    cur[n] = next[n];
                    for j in (0..n).rev() {
                        ends_dir = ends_dir || (text[j] == '/' && next[j + 1]);
                        cur[j] = next[j] || ends_dir;
                    }
                }
                single => {
                    for j in 0..n {
                        cur[j] = next[j + 1] && matches_one(single, text[j]);
                    }
                }
            }
            next = cur;
        }
        next[0]
    }
}

fn matches_one(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::One => c != '/',
        Token::Class { negated, ranges } => {
            c != '/' && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
        Token::Star | Token::Any | Token::AnyDirs => false,
    }
}

/// Parses a class starting after `[`; returns the token and the index after `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        i += 1;
        if c == ']' && !first {
            return Some((Token::Class { negated, ranges }, i));
        }
        first = false;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let hi = *chars.get(i + 1)?;
            ranges.push((c.min(hi), c.max(hi)));
            i += 2;
        } else {
            ranges.push((c, c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern)
            .map(|g| g.is_match(text))
            .unwrap_or(false)
    }

    #[test]
    fn stars_and_segments() {
        assert!(m("checkout*", "checkout"));
        assert!(m("checkout*", "checkout-api"));
        assert!(!m("checkout*", "web-checkout"));
        assert!(m("src/billing/**", "src/billing/invoice.rs"));
        assert!(m("src/billing/**", "src/billing/a/b/c.rs"));
        assert!(!m("src/billing/**", "src/billingx/a.rs"));
        assert!(m("src/*.rs", "src/main.rs"));
        assert!(!m("src/*.rs", "src/a/main.rs"));
        assert!(m("**/test_*.py", "test_a.py"));
        assert!(m("**/test_*.py", "a/b/test_a.py"));
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/x/y/b"));
        assert!(!m("a/**/b", "a/xb"));
        assert!(m("v?", "v1"));
        assert!(!m("v?", "v12"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[]]", "]"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(m("**", "anything/at/all"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert!(matches!(
            Glob::new("src/[abc"),
            Err(GlobError::UnclosedClass(_))
        ));
        assert!(matches!(
            Glob::new("a\\"),
            Err(GlobError::DanglingEscape(_))
        ));
        assert!(matches!(Glob::new("a/***"), Err(GlobError::TripleStar(_))));
    }

    #[test]
    fn long_inputs_stay_fast() {
        let pattern = "*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(2000);
        assert!(!m(pattern, &text));
        assert!(Glob::new("checkout")
            .map(|g| g.is_literal())
            .unwrap_or(false));
    }
}
