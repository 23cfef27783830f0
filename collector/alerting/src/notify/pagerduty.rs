//! PagerDuty Events API v2: `trigger` / `acknowledge` / `resolve` keyed by the alert's
//! `dedup_key` (`POST {url}/v2/enqueue`), and deploys as Change Events
//! (`POST {url}/v2/change/enqueue`). `url` defaults to `https://events.pagerduty.com`.

use serde_json::{json, Value};

use crate::notify::{json_body, Outgoing, Receiver, RenderError};
use bellwether_model::notification::{Event, Notification, Status};
use bellwether_model::time::rfc3339_utc;

/// PagerDuty's limit on `payload.summary`.
pub const SUMMARY_BYTES: usize = 1024;

fn links(n: &Notification) -> Value {
    let mut links = Vec::new();
    if let Some(link) = n.release_link() {
        links.push(json!({ "href": link, "text": "Release in Bellwether" }));
    }
    if let Some(pipeline) = &n.release.pipeline_url {
        links.push(json!({ "href": pipeline, "text": "Pipeline" }));
    }
    Value::Array(links)
}

pub fn body(n: &Notification, routing_key: &str, now_unix_ms: i64) -> Result<Value, RenderError> {
    let r = &n.release;
    let source = format!("{}/{}", r.service, r.environment);
    match &n.event {
        Event::Deploy => Ok(json!({
            "routing_key": routing_key,
            "payload": {
                "summary": super::truncate(&n.headline(), SUMMARY_BYTES),
                "timestamp": rfc3339_utc(r.started_at_unix_ms.unwrap_or(now_unix_ms)),
                "source": source,
                "custom_details": {
                    "service": r.service,
                    "environment": r.environment,
                    "version": r.version,
                    "commit": r.commit,
                    "deploy_id": r.deploy_id,
                    "notes": r.notes,
                    "team": n.team,
                },
            },
            "links": links(n),
        })),
        Event::Alert { status, alerts, .. } => {
            let [alert] = alerts.as_slice() else {
                return Err(RenderError::Unsupported {
                    receiver: "pagerduty",
                    what: "several alerts in one event",
                });
            };
            let action = match status {
                Status::Firing => "trigger",
                Status::Acknowledged => "acknowledge",
                Status::Resolved => "resolve",
            };
            let mut event = json!({
                "routing_key": routing_key,
                "event_action": action,
                "dedup_key": alert.dedup_key,
            });
            if *status == Status::Firing {
                let summary = format!(
                    "{} {} in {}: {}",
                    r.service, r.version, r.environment, alert.summary
                );
                let details = json!({
                    "alert_id": alert.id,
                    "kind": alert.kind.as_str(),
                    "team": n.team,
                    "version": r.version,
                    "commit": r.commit,
                    "deploy_id": r.deploy_id,
                    "fingerprint": alert.fingerprint,
                    "evidence": alert.evidence,
                    "routed_by": alert.routed_by,
                });
                if let Some(obj) = event.as_object_mut() {
                    obj.insert(
                        "payload".into(),
                        json!({
                            "summary": super::truncate(&summary, SUMMARY_BYTES),
                            "source": source,
                            "severity": alert.severity.as_str(),
                            "timestamp": rfc3339_utc(alert.started_at_unix_ms),
                            "component": r.service,
                            "group": r.environment,
                            "class": alert.kind.as_str(),
                            "custom_details": details,
                        }),
                    );
                    obj.insert("links".into(), links(n));
                    obj.insert("client".into(), json!("Bellwether"));
                    if let Some(link) = n.release_link() {
                        obj.insert("client_url".into(), json!(link));
                    }
                }
            }
            Ok(event)
        }
    }
}

pub fn render(
    n: &Notification,
    receiver: &Receiver,
    now_unix_ms: i64,
) -> Result<Outgoing, RenderError> {
    let key = receiver
        .routing_key
        .as_ref()
        .map(|k| k.expose())
        .unwrap_or_default();
    let base = receiver.url.expose().trim_end_matches('/');
    let path = match n.event {
        Event::Deploy => "/v2/change/enqueue",
        Event::Alert { .. } => "/v2/enqueue",
    };
    Ok(Outgoing {
        url: format!("{base}{path}"),
        headers: Vec::new(),
        body: json_body(&body(n, key, now_unix_ms)?)?,
    })
}
