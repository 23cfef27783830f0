//! Silences: while active, matching alerts are recorded but not sent.

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::config::parse_duration;
use crate::glob::Glob;

/// Globs on alert labels; an absent matcher matches anything. At least one is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matchers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Matchers {
    fn fields(&self) -> [(&'static str, Option<&String>); 5] {
        [
            ("service", self.service.as_ref()),
            ("environment", self.environment.as_ref()),
            ("version", self.version.as_ref()),
            ("team", self.team.as_ref()),
            ("kind", self.kind.as_ref()),
        ]
    }

    fn validate(&self) -> Result<(), String> {
        let mut any = false;
        for (name, pattern) in self.fields() {
            if let Some(pattern) = pattern {
                Glob::new(pattern).map_err(|e| format!("matchers.{name}: {e}"))?;
                any = true;
            }
        }
        if any {
            Ok(())
        } else {
            Err(
                "a silence needs at least one matcher (service, environment, version, team, kind)"
                    .to_owned(),
            )
        }
    }

    pub fn matches(&self, alert: &Alert) -> bool {
        let values = [
            alert.release.service.as_str(),
            alert.release.environment.as_str(),
            alert.release.version.as_str(),
            alert.team.as_str(),
            alert.kind.as_str(),
        ];
        self.fields()
            .iter()
            .zip(values)
            .all(|((_, pattern), value)| match pattern {
                None => true,
                Some(p) => Glob::new(p).map(|g| g.is_match(value)).unwrap_or(false),
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Matchers,
    pub starts_at_unix_ms: i64,
    pub ends_at_unix_ms: i64,
    pub comment: String,
    pub created_by: Option<String>,
    pub created_at_unix_ms: i64,
}

impl Silence {
    pub fn is_active(&self, now_unix_ms: i64) -> bool {
        self.starts_at_unix_ms <= now_unix_ms && now_unix_ms < self.ends_at_unix_ms
    }

    pub fn silences(&self, alert: &Alert, now_unix_ms: i64) -> bool {
        self.is_active(now_unix_ms) && self.matchers.matches(alert)
    }
}

/// A silence as asked for through the API: an end time or a duration from the start.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    pub matchers: Matchers,
    pub starts_at_unix_ms: Option<i64>,
    pub ends_at_unix_ms: Option<i64>,
    /// `2h`, `30m`, … from the start.
    pub duration: Option<String>,
    pub comment: String,
    pub created_by: Option<String>,
}

impl SilenceRequest {
    /// Validates into a silence with `id`, created at `now_unix_ms`.
    pub fn into_silence(self, id: String, now_unix_ms: i64) -> Result<Silence, String> {
        self.matchers.validate()?;
        if self.comment.trim().is_empty() {
            return Err("comment must not be empty".to_owned());
        }
        let starts = self.starts_at_unix_ms.unwrap_or(now_unix_ms);
        let ends = match (self.ends_at_unix_ms, &self.duration) {
            (Some(end), None) => end,
            (None, Some(duration)) => {
                let d = parse_duration(duration).map_err(|e| format!("duration: {e}"))?;
                starts.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            }
            _ => return Err("give exactly one of ends_at_unix_ms or duration".to_owned()),
        };
        if ends <= starts {
            return Err("a silence must end after it starts".to_owned());
        }
        Ok(Silence {
            id,
            matchers: self.matchers,
            starts_at_unix_ms: starts,
            ends_at_unix_ms: ends,
            comment: self.comment,
            created_by: self.created_by,
            created_at_unix_ms: now_unix_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_validate() {
        let ok = SilenceRequest {
            matchers: Matchers {
                service: Some("checkout*".into()),
                ..Matchers::default()
            },
            duration: Some("2h".into()),
            comment: "maintenance".into(),
            ..SilenceRequest::default()
        };
        let silence = ok.clone().into_silence("s1".into(), 1000);
        assert_eq!(
            silence.map(|s| (s.starts_at_unix_ms, s.ends_at_unix_ms)),
            Ok((1000, 1000 + 7_200_000))
        );
        let no_matcher = SilenceRequest {
            matchers: Matchers::default(),
            ..ok.clone()
        };
        assert!(no_matcher.into_silence("s".into(), 0).is_err());
        let bad_glob = SilenceRequest {
            matchers: Matchers {
                kind: Some("[x".into()),
                ..Matchers::default()
            },
            ..ok.clone()
        };
        assert!(bad_glob
            .into_silence("s".into(), 0)
            .err()
            .is_some_and(|e| e.contains("matchers.kind")));
        let both = SilenceRequest {
            ends_at_unix_ms: Some(5),
            ..ok
        };
        assert!(both.into_silence("s".into(), 0).is_err());
    }
}
