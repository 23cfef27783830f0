//! Ownership: which team owns a release or an error, and by which rule.
//!
//! Rules, in order of precedence:
//! 1. code rules (`[[routing.code]]` and a CODEOWNERS file) on the error's top in-app
//!    frame path or module — the last matching rule wins, as in CODEOWNERS;
//! 2. service rules (`[[routing.services]]`) on `service.name` and optionally the
//!    environment — the first matching rule wins;
//! 3. the `bellwether.team` resource attribute, when it names a configured team;
//! 4. `routing.default_team`.
//!
//! A release-level alert (error spike, latency) goes to the service owner (2–4); a new
//! error signature goes to the owner of its code (1, else 2–4).
//!
//! [`config`] reads and validates the TOML sections and resolves receiver secrets;
//! [`codeowners`] parses a CODEOWNERS file; [`glob`] is the pattern language.

pub mod codeowners;
pub mod config;
pub mod duration;
mod receivers;
mod validate;

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use bellwether_model::alert::CodeLocation;
use bellwether_model::glob::{Glob, GlobError};

/// A service rule: `match` on `service.name`, optionally `environment`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRule {
    pub service: Glob,
    pub environment: Option<Glob>,
    pub team: String,
    pub origin: RuleOrigin,
}

/// A code rule from the config or a CODEOWNERS line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRule {
    pub pattern: CodePattern,
    /// `None`: a CODEOWNERS line whose owners map to no configured team (un-owned code).
    pub team: Option<String>,
    pub origin: RuleOrigin,
}

/// Where a rule was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum RuleOrigin {
    /// `routing.services[index]` or `routing.code[index]` of the config file.
    Config {
        key: String,
        line: Option<usize>,
    },
    Codeowners {
        file: String,
        line: usize,
    },
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleOrigin::Config {
                key,
                line: Some(line),
            } => write!(f, "{key} (line {line})"),
            RuleOrigin::Config { key, line: None } => f.write_str(key),
            RuleOrigin::Codeowners { file, line } => write!(f, "{file}:{line}"),
        }
    }
}

/// A CODEOWNERS-style pattern over file paths or modules.
///
/// A leading `/` anchors the pattern at the root; a pattern without any other `/`
/// matches at any depth; a trailing `/` or a last segment without wildcards also
/// matches everything below it. Frame paths are also tried with leading directories
/// stripped one at a time (so `/app/src/billing/a.rs` matches `src/billing/**`) unless
/// the pattern is anchored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodePattern {
    source: String,
    globs: Vec<Glob>,
    anchored: bool,
}

impl CodePattern {
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let trimmed = pattern.trim();
        let anchored = trimmed.starts_with('/');
        let body = trimmed.trim_start_matches('/');
        let directory = body.ends_with('/');
        let body = body.trim_end_matches('/');
        if body.is_empty() {
            // `/` or `*`-less empty pattern: everything.
            return Ok(Self {
                source: pattern.to_owned(),
                globs: vec![Glob::new("**")?],
                anchored,
            });
        }
        let body = if !anchored && !body.contains('/') {
            format!("**/{body}")
        } else {
            body.to_owned()
        };
        let last_is_literal = body
            .rsplit('/')
            .next()
            .is_some_and(|s| !s.contains(['*', '?', '[']));
        let mut globs = Vec::new();
        if !directory {
            globs.push(Glob::new(&body)?);
        }
        if directory || last_is_literal {
            globs.push(Glob::new(&format!("{body}/**"))?);
        }
        Ok(Self {
            source: pattern.to_owned(),
            globs,
            anchored,
        })
    }

    /// A module pattern (`billing::*`, `com.acme.billing.*`) matched on modules.
    pub fn module(pattern: &str) -> Result<Self, GlobError> {
        Self::new(&module_to_path(pattern))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn matches(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        let hit = |candidate: &str| self.globs.iter().any(|g| g.is_match(candidate));
        if hit(path) {
            return true;
        }
        !self.anchored
            && path
                .match_indices('/')
                .any(|(i, _)| path.get(i + 1..).is_some_and(&hit))
    }
}

/// `a::b::c` and `a.b.c` → `a/b/c`.
fn module_to_path(module: &str) -> String {
    module.replace("::", "/").replace('.', "/")
}

/// Why a team was chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum MatchedBy {
    Code {
        pattern: String,
        origin: RuleOrigin,
        matched: String,
    },
    Service {
        pattern: String,
        origin: RuleOrigin,
    },
    ResourceAttribute,
    Default,
}

impl fmt::Display for MatchedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatchedBy::Code {
                pattern,
                origin,
                matched,
            } => write!(f, "code rule `{pattern}` at {origin} matched {matched}"),
            MatchedBy::Service { pattern, origin } => {
                write!(f, "service rule `{pattern}` at {origin}")
            }
            MatchedBy::ResourceAttribute => f.write_str("resource attribute bellwether.team"),
            MatchedBy::Default => f.write_str("routing.default_team"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub team: String,
    pub matched_by: MatchedBy,
}

/// The validated ownership rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// `None` when no routing is configured: alerts are kept but go nowhere.
    pub default_team: Option<String>,
    pub teams: BTreeSet<String>,
    pub services: Vec<ServiceRule>,
    /// CODEOWNERS lines first, then `[[routing.code]]`: the later rule wins.
    pub code: Vec<CodeRule>,
}

/// Team name used when nothing is configured.
pub const UNROUTED: &str = "unrouted";

impl Ownership {
    /// The owner of a release: service rule > `bellwether.team` > default.
    pub fn service_owner(
        &self,
        service: &str,
        environment: &str,
        resource_team: Option<&str>,
    ) -> Owner {
        for rule in &self.services {
            let env_ok = rule
                .environment
                .as_ref()
                .is_none_or(|g| g.is_match(environment));
            if env_ok && rule.service.is_match(service) {
                return Owner {
                    team: rule.team.clone(),
                    matched_by: MatchedBy::Service {
                        pattern: rule.service.as_str().to_owned(),
                        origin: rule.origin.clone(),
                    },
                };
            }
        }
        if let Some(team) = resource_team.filter(|t| self.teams.contains(*t)) {
            return Owner {
                team: team.to_owned(),
                matched_by: MatchedBy::ResourceAttribute,
            };
        }
        match (&self.default_team, resource_team) {
            (Some(team), _) => Owner {
                team: team.clone(),
                matched_by: MatchedBy::Default,
            },
            // Nothing configured: keep what the release says about itself.
            (None, Some(team)) => Owner {
                team: team.to_owned(),
                matched_by: MatchedBy::ResourceAttribute,
            },
            (None, None) => Owner {
                team: UNROUTED.to_owned(),
                matched_by: MatchedBy::Default,
            },
        }
    }

    /// The last code rule matching `location` (path first, then module), if any.
    pub fn code_owner(&self, location: &CodeLocation) -> Option<Owner> {
        let mut found = None;
        for rule in &self.code {
            let matched = location
                .path
                .as_deref()
                .filter(|p| rule.pattern.matches(p))
                .or_else(|| {
                    location
                        .module
                        .as_deref()
                        .filter(|m| rule.pattern.matches(&module_to_path(m)))
                });
            if let Some(matched) = matched {
                found = Some((rule, matched.to_owned()));
            }
        }
        let (rule, matched) = found?;
        Some(Owner {
            team: rule.team.clone()?,
            matched_by: MatchedBy::Code {
                pattern: rule.pattern.as_str().to_owned(),
                origin: rule.origin.clone(),
                matched,
            },
        })
    }

    /// The owner of an error: its code's owner, else the service owner.
    pub fn issue_owner(
        &self,
        location: &CodeLocation,
        service: &str,
        environment: &str,
        resource_team: Option<&str>,
    ) -> Owner {
        self.code_owner(location)
            .unwrap_or_else(|| self.service_owner(service, environment, resource_team))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(key: &str) -> RuleOrigin {
        RuleOrigin::Config {
            key: key.to_owned(),
            line: None,
        }
    }

    fn ownership() -> Result<Ownership, GlobError> {
        Ok(Ownership {
            default_team: Some("platform".into()),
            teams: ["platform", "payments", "billing", "search"]
                .into_iter()
                .map(String::from)
                .collect(),
            services: vec![ServiceRule {
                service: Glob::new("checkout*")?,
                environment: None,
                team: "payments".into(),
                origin: origin("routing.services[0]"),
            }],
            code: vec![
                CodeRule {
                    pattern: CodePattern::new("*.rs")?,
                    team: Some("platform".into()),
                    origin: origin("routing.code[0]"),
                },
                CodeRule {
                    pattern: CodePattern::new("src/billing/**")?,
                    team: Some("billing".into()),
                    origin: origin("routing.code[1]"),
                },
                CodeRule {
                    pattern: CodePattern::module("search::*")?,
                    team: Some("search".into()),
                    origin: origin("routing.code[2]"),
                },
            ],
        })
    }

    #[test]
    fn precedence_code_then_service_then_attribute_then_default() -> Result<(), GlobError> {
        let o = ownership()?;
        let billing = CodeLocation {
            path: Some("/app/src/billing/invoice.rs".into()),
            module: None,
        };
        let owner = o.issue_owner(&billing, "checkout", "prod", Some("search"));
        assert_eq!(owner.team, "billing");
        assert!(owner.to_string_rule().contains("src/billing/**"));

        let other = CodeLocation {
            path: Some("src/cart/a.py".into()),
            module: None,
        };
        assert_eq!(
            o.issue_owner(&other, "checkout-api", "prod", None).team,
            "payments"
        );
        assert_eq!(
            o.service_owner("web", "prod", Some("search")).team,
            "search"
        );
        assert_eq!(
            o.service_owner("web", "prod", Some("search")).matched_by,
            MatchedBy::ResourceAttribute
        );
        // An unknown team in the attribute falls through to the default.
        assert_eq!(
            o.service_owner("web", "prod", Some("nobody")).team,
            "platform"
        );
        let module = CodeLocation {
            path: None,
            module: Some("search::index".into()),
        };
        assert_eq!(o.issue_owner(&module, "web", "prod", None).team, "search");
        // Last match wins: src/billing/x.rs matches `*.rs` then `src/billing/**`.
        let last = CodeLocation {
            path: Some("src/billing/x.rs".into()),
            module: None,
        };
        assert_eq!(o.code_owner(&last).map(|o| o.team), Some("billing".into()));
        Ok(())
    }

    #[test]
    fn codeowners_pattern_semantics() -> Result<(), GlobError> {
        let p = CodePattern::new("/docs/")?;
        assert!(p.matches("docs/a/b.md"));
        assert!(!p.matches("x/docs/a.md"));
        let p = CodePattern::new("apps/billing")?;
        assert!(p.matches("apps/billing/a.go"));
        let p = CodePattern::new("docs/*")?;
        assert!(p.matches("docs/a.md"));
        assert!(!p.matches("docs/a/b.md"));
        let p = CodePattern::new("Makefile")?;
        assert!(p.matches("a/b/Makefile"));
        Ok(())
    }

    impl Owner {
        fn to_string_rule(&self) -> String {
            self.matched_by.to_string()
        }
    }
}
