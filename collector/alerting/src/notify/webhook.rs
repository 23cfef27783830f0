//! Generic webhook, schema `bellwether.webhook.v1`, signed when a secret is configured.
//!
//! Signature: header `bellwether-signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256 with the receiver's secret over `<unix seconds>.<raw body>`. Receivers
//! recompute it and reject timestamps too far from their clock (replay protection).

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::notify::{json_body, Outgoing, Receiver, RenderError};
use bellwether_model::alert::AlertSnapshot;
use bellwether_model::notification::{Event, Notification};
use bellwether_model::time::rfc3339_utc;

pub const SCHEMA: &str = "bellwether.webhook.v1";
pub const SIGNATURE_HEADER: &str = "bellwether-signature";
pub const ID_HEADER: &str = "bellwether-notification-id";

/// `t=<secs>,v1=<hex hmac>` over `<secs>.<body>`.
pub fn signature(secret: &[u8], timestamp_secs: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks a `t=…,v1=…` header against `body` (constant-time comparison).
pub fn verify(secret: &[u8], header: &str, body: &[u8]) -> Option<i64> {
    let mut timestamp = None;
    let mut given = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => given = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (timestamp, given) = (timestamp?, given?);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&given).ok().map(|()| timestamp)
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(rfc3339_utc(ms)))
}

fn alert_json(a: &AlertSnapshot) -> Value {
    json!({
        "id": a.id,
        "dedup_key": a.dedup_key,
        "kind": a.kind.as_str(),
        "severity": a.severity.as_str(),
        "summary": a.summary,
        "evidence": a.evidence,
        "fingerprint": a.fingerprint,
        "started_at": rfc3339_utc(a.started_at_unix_ms),
        "resolved_at": time(a.resolved_at_unix_ms),
        "resolution": a.resolution,
        "routed_by": a.routed_by,
    })
}

/// The webhook body (schema v1).
pub fn body(n: &Notification, now_unix_ms: i64) -> Value {
    let r = &n.release;
    let mut body = json!({
        "schema": SCHEMA,
        "id": n.id,
        "team": n.team,
        "service": r.service,
        "environment": r.environment,
        "release": {
            "version": r.version,
            "commit": r.commit,
            "deploy_id": r.deploy_id,
            "pipeline_url": r.pipeline_url,
            "notes": r.notes,
            "started_at": time(r.started_at_unix_ms),
        },
        "dashboard_url": n.release_link(),
        "sent_at": rfc3339_utc(now_unix_ms),
    });
    let extra = match &n.event {
        Event::Deploy => json!({
            "type": "deploy",
            "summary": n.headline(),
        }),
        Event::Alert {
            status,
            repeat,
            alerts,
        } => {
            let lead = n.lead();
            json!({
                "type": "alert",
                "status": status.as_str(),
                "repeat": repeat,
                "kind": lead.map(|a| a.kind.as_str()),
                "severity": lead.map(|a| a.severity.as_str()),
                "summary": n.headline(),
                "evidence": lead.map(|a| a.evidence.clone()).unwrap_or_default(),
                "started_at": time(alerts.iter().map(|a| a.started_at_unix_ms).min()),
                "resolved_at": time(alerts.iter().filter_map(|a| a.resolved_at_unix_ms).max()),
                "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
            })
        }
    };
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

pub fn render(
    n: &Notification,
    receiver: &Receiver,
    now_unix_ms: i64,
) -> Result<Outgoing, RenderError> {
    let body = json_body(&body(n, now_unix_ms))?;
    let mut headers = vec![(ID_HEADER, n.id.clone())];
    if let Some(secret) = &receiver.secret {
        headers.push((
            SIGNATURE_HEADER,
            signature(
                secret.expose().as_bytes(),
                now_unix_ms.div_euclid(1000),
                &body,
            ),
        ));
    }
    Ok(Outgoing {
        url: receiver.url.expose().to_owned(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_and_detects_tampering() {
        let header = signature(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify(b"s3cret", &header, b"{\"a\":1}"),
            Some(1_700_000_000)
        );
        assert_eq!(verify(b"s3cret", &header, b"{\"a\":2}"), None);
        assert_eq!(verify(b"other", &header, b"{\"a\":1}"), None);
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(verify(b"s3cret", &moved, b"{\"a\":1}"), None);
    }
}
