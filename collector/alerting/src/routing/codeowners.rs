//! A CODEOWNERS file (GitHub / GitLab syntax) as code rules.
//!
//! Each line is `pattern owner…`; `#` starts a comment; GitLab `[Section]` headers are
//! skipped. Owners `@org/team` map to configured teams (see
//! [`super::config`]); the first owner that maps decides the team. A line whose owners
//! map to none still counts as the last match, leaving that code to the service owner.

use std::path::Path;

use crate::routing::{CodePattern, CodeRule, RuleOrigin};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: bad pattern {pattern:?}: {reason}")]
pub struct CodeownersError {
    pub file: String,
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

/// Parses `text`; `team_of` maps an owner (`@org/team`, `@user`, email) to a team name.
pub fn parse(
    file: &Path,
    text: &str,
    team_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<CodeRule>, CodeownersError> {
    let mut rules = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw
            .split_once(" #")
            .map_or(raw, |(before, _)| before)
            .trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let mut parts = split_unescaped(line).into_iter();
        let Some(pattern) = parts.next() else {
            continue;
        };
        let team = parts.find_map(|owner| team_of(&owner));
        let compiled = CodePattern::new(&pattern).map_err(|e| CodeownersError {
            file: file.display().to_string(),
            line: index + 1,
            pattern: pattern.clone(),
            reason: e.to_string(),
        })?;
        rules.push(CodeRule {
            pattern: compiled,
            team,
            origin: RuleOrigin::Codeowners {
                file: file.display().to_string(),
                line: index + 1,
            },
        });
    }
    Ok(rules)
}

/// Splits on whitespace, keeping `\ ` (an escaped space) inside a pattern.
fn split_unescaped(line: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(' ') => current.push(' '),
                Some(other) => {
                    current.push('\\');
                    current.push(other);
                }
                None => current.push('\\'),
            },
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    parts.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Ownership;
    use bellwether_model::alert::CodeLocation;

    #[test]
    fn last_matching_line_wins_and_owners_map_to_teams() -> Result<(), CodeownersError> {
        let text = "# owners\n*.rs @acme/platform\n/src/billing/ @acme/billing @alice\n\
                    src/billing/legacy/ @bob # nobody's team\n[Docs]\ndocs/ docs@acme.io\n";
        let team_of = |owner: &str| owner.strip_prefix("@acme/").map(str::to_owned);
        let code = parse(Path::new("CODEOWNERS"), text, &team_of)?;
        assert_eq!(code.len(), 4);
        let ownership = Ownership {
            code,
            ..Ownership::default()
        };
        let at = |path: &str| {
            ownership.code_owner(&CodeLocation {
                path: Some(path.into()),
                module: None,
            })
        };
        assert_eq!(
            at("src/billing/a.rs").map(|o| o.team),
            Some("billing".into())
        );
        assert_eq!(at("src/cart/a.rs").map(|o| o.team), Some("platform".into()));
        // The last match maps to no team: no code owner.
        assert_eq!(at("src/billing/legacy/a.rs"), None);
        let owner = at("src/billing/a.rs").map(|o| o.matched_by.to_string());
        assert_eq!(
            owner.as_deref(),
            Some("code rule `/src/billing/` at CODEOWNERS:3 matched src/billing/a.rs")
        );
        Ok(())
    }

    #[test]
    fn bad_pattern_names_file_and_line() {
        let err = parse(Path::new("CODEOWNERS"), "\n\nsrc/[x @acme/a\n", &|_| None);
        assert_eq!(err.err().map(|e| e.line), Some(3));
    }
}
