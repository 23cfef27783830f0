//! Feeds the evaluator's verdicts to the alert engine.
//!
//! The evaluator judges releases; the engine needs to know, per evaluation, whether the
//! error rate spiked, which new issues were flagged and where in the code they come from
//! (for code-owner routing), and whether latency regressed. [`AlertBridge`] reads that
//! from the published health and the issue store.

use std::sync::Arc;

use bellwether_stacktrace as stacktrace;

use crate::alerts::AlertEngine;
use bellwether_model::alert::CodeLocation;
use bellwether_model::alert::{EvidenceLine, Health, NewIssue, ReleaseVerdict};
use bellwether_model::health::VerdictSink;
use bellwether_model::health::{ReleaseHealth, Verdict};
use bellwether_model::release::Deployment;
use bellwether_store::{ReleaseStore, StoreError};

/// Evidence kind of a significant error-rate regression.
const REGRESSION: &str = "regression";
/// Evidence kind of a significant latency regression.
const LATENCY_REGRESSION: &str = "latency_regression";

/// A [`VerdictSink`] that hands every scheduled verdict to an [`AlertEngine`].
pub struct AlertBridge {
    engine: AlertEngine,
    store: Arc<dyn ReleaseStore>,
}

impl AlertBridge {
    pub fn new(engine: AlertEngine, store: Arc<dyn ReleaseStore>) -> Self {
        Self { engine, store }
    }

    fn verdict(
        &self,
        deployment: &Deployment,
        health: &ReleaseHealth,
    ) -> Result<ReleaseVerdict, StoreError> {
        Ok(ReleaseVerdict {
            deployment: deployment.clone(),
            health: match health.verdict {
                Verdict::Pending => Health::Pending,
                Verdict::Healthy => Health::Healthy,
                Verdict::Degraded => Health::Degraded,
                Verdict::Unhealthy => Health::Unhealthy,
            },
            error_spike: health.evidence.iter().any(|e| e.kind == REGRESSION),
            evidence: health
                .evidence
                .iter()
                .map(|e| EvidenceLine {
                    kind: e.kind.clone(),
                    summary: e.summary.clone(),
                })
                .collect(),
            new_issues: self.new_issues(deployment, &health.figures.flagged_issues)?,
            latency_regression: health
                .evidence
                .iter()
                .find(|e| e.kind == LATENCY_REGRESSION)
                .map(|e| e.summary.clone()),
            at_unix_ms: health.evaluated_at_unix_ms,
        })
    }

    fn new_issues(
        &self,
        deployment: &Deployment,
        flagged: &[String],
    ) -> Result<Vec<NewIssue>, StoreError> {
        if flagged.is_empty() {
            return Ok(Vec::new());
        }
        let release = &deployment.release;
        let counts = self.store.release_issue_counts(release)?;
        let mut issues = Vec::with_capacity(flagged.len());
        for fingerprint in flagged {
            let title = self
                .store
                .issue(&release.service, fingerprint)?
                .map(|record| record.title)
                .unwrap_or_else(|| fingerprint.clone());
            let samples = self.store.issue_samples(release, fingerprint)?;
            let code = samples
                .iter()
                .find_map(|s| code_location(&s.stack))
                .unwrap_or_default();
            issues.push(NewIssue {
                fingerprint: fingerprint.clone(),
                title,
                code,
                count: counts
                    .iter()
                    .find(|c| &c.fingerprint == fingerprint)
                    .map_or(0, |c| c.count),
                sample: samples.first().map(|s| s.message.clone()),
            });
        }
        Ok(issues)
    }
}

/// The top in-app frame of a stack trace, as routing sees code.
fn code_location(stack: &str) -> Option<CodeLocation> {
    let parsed = stacktrace::parse(stack)?;
    let frame = parsed.top_in_app_frame()?;
    Some(CodeLocation {
        path: frame.file.clone(),
        module: Some(parsed.qualified_name(frame)),
    })
}

impl VerdictSink for AlertBridge {
    fn observe(&self, deployment: &Deployment, health: &ReleaseHealth) {
        let result = self
            .verdict(deployment, health)
            .map_err(|e| e.to_string())
            .and_then(|v| self.engine.observe_blocking(&v).map_err(|e| e.to_string()));
        if let Err(error) = result {
            tracing::warn!(
                service = %deployment.release.service,
                environment = %deployment.release.environment,
                version = %deployment.release.version,
                error = %error,
                "alerting on a verdict failed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_location_is_the_top_in_app_frame() {
        let stack = "Traceback (most recent call last):\n  File \"/app/src/billing/invoice.py\", line 12, in total\n    return sum(x) / n\nZeroDivisionError: division by zero";
        let code = code_location(stack).expect("a frame");
        assert_eq!(code.path.as_deref(), Some("/app/src/billing/invoice.py"));
        assert!(code.module.as_deref().unwrap_or_default().contains("total"));
        assert_eq!(code_location("no stack here"), None);
    }
}
