//! Prometheus Alertmanager: `POST {url}/api/v2/alerts` with a list of alerts.
//!
//! Firing alerts are re-sent every `resend_interval` with `endsAt` three intervals
//! ahead, so Alertmanager keeps them active while Bellwether does; a resolve sends
//! `endsAt` = the resolution time.

use std::collections::BTreeMap;
use std::time::Duration;

/// How often firing alerts are re-sent to Alertmanager unless a receiver says otherwise.
pub const DEFAULT_RESEND_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

use serde_json::{json, Value};

use crate::notify::{json_body, Outgoing, Receiver, RenderError};
use bellwether_model::notification::{Event, Notification, Status};
use bellwether_model::time::rfc3339_utc;

pub fn body(n: &Notification, resend: Duration, now_unix_ms: i64) -> Result<Value, RenderError> {
    let Event::Alert { status, alerts, .. } = &n.event else {
        return Err(RenderError::Unsupported {
            receiver: "alertmanager",
            what: "deploy notifications",
        });
    };
    let r = &n.release;
    let keep_alive = i64::try_from(resend.as_millis().saturating_mul(3)).unwrap_or(i64::MAX);
    let list = alerts
        .iter()
        .map(|a| {
            let mut labels = BTreeMap::from([
                ("alertname", format!("bellwether_{}", a.kind.as_str())),
                ("service", r.service.clone()),
                ("environment", r.environment.clone()),
                ("version", r.version.clone()),
                ("team", n.team.clone()),
                ("severity", a.severity.as_str().to_owned()),
                ("kind", a.kind.as_str().to_owned()),
            ]);
            if let Some(fp) = &a.fingerprint {
                labels.insert("fingerprint", fp.clone());
            }
            let mut annotations = BTreeMap::from([
                ("summary", a.summary.clone()),
                (
                    "description",
                    a.evidence
                        .iter()
                        .map(|e| e.summary.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                ("routed_by", a.routed_by.clone()),
            ]);
            if let Some(commit) = &r.commit {
                annotations.insert("commit", commit.clone());
            }
            if let Some(resolution) = &a.resolution {
                annotations.insert("resolution", resolution.clone());
            }
            let ends_at = match status {
                Status::Resolved => a.resolved_at_unix_ms.unwrap_or(now_unix_ms),
                Status::Firing | Status::Acknowledged => now_unix_ms.saturating_add(keep_alive),
            };
            let mut alert = json!({
                "labels": labels,
                "annotations": annotations,
                "startsAt": rfc3339_utc(a.started_at_unix_ms),
                "endsAt": rfc3339_utc(ends_at),
            });
            if let (Some(link), Some(obj)) = (n.release_link(), alert.as_object_mut()) {
                obj.insert("generatorURL".into(), json!(link));
            }
            alert
        })
        .collect();
    Ok(Value::Array(list))
}

pub fn render(
    n: &Notification,
    receiver: &Receiver,
    now_unix_ms: i64,
) -> Result<Outgoing, RenderError> {
    let resend = receiver.resend_interval.unwrap_or(DEFAULT_RESEND_INTERVAL);
    Ok(Outgoing {
        url: format!(
            "{}/api/v2/alerts",
            receiver.url.expose().trim_end_matches('/')
        ),
        headers: Vec::new(),
        body: json_body(&body(n, resend, now_unix_ms)?)?,
    })
}
