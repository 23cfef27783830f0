//! Slack incoming webhook: `text` (notification fallback) and Block Kit `blocks`.

use serde_json::{json, Value};

use crate::notify::{json_body, Outgoing, Receiver, RenderError};
use bellwether_model::notification::{Event, Notification, Status};

/// Slack caps a section's text at 3000 characters.
const SECTION_BYTES: usize = 2900;

fn field(label: &str, value: &str) -> Value {
    json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") })
}

pub fn body(n: &Notification) -> Value {
    let r = &n.release;
    let emoji = match &n.event {
        Event::Deploy => ":rocket:",
        Event::Alert {
            status: Status::Resolved,
            ..
        } => ":white_check_mark:",
        Event::Alert {
            status: Status::Acknowledged,
            ..
        } => ":eyes:",
        Event::Alert { .. } => ":rotating_light:",
    };
    let text = format!("{emoji} {}", n.headline());
    let mut fields = vec![
        field("Service", &r.service),
        field("Environment", &r.environment),
        field("Version", &r.version),
        field("Team", &n.team),
    ];
    if let Some(commit) = &r.commit {
        fields.push(field("Commit", commit));
    }
    let mut blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": super::truncate(&text, SECTION_BYTES) } }),
        json!({ "type": "section", "fields": fields }),
    ];
    match &n.event {
        Event::Deploy => {
            if let Some(notes) = &r.notes {
                blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": super::truncate(notes, SECTION_BYTES) } }));
            }
        }
        Event::Alert { alerts, .. } => {
            let mut lines = Vec::new();
            for a in alerts {
                lines.push(format!(
                    "• *{}* ({}) {}",
                    a.kind.as_str(),
                    a.severity.as_str(),
                    a.summary
                ));
                for e in &a.evidence {
                    lines.push(format!("    – {}", e.summary));
                }
                if let Some(resolution) = &a.resolution {
                    lines.push(format!("    resolved: {resolution}"));
                }
            }
            blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": super::truncate(&lines.join("\n"), SECTION_BYTES) } }));
        }
    }
    if let Some(link) = n.release_link() {
        blocks.push(json!({ "type": "context", "elements": [
            { "type": "mrkdwn", "text": format!("<{link}|Open in Bellwether>") }
        ] }));
    }
    json!({ "text": text, "blocks": blocks })
}

pub fn render(n: &Notification, receiver: &Receiver) -> Result<Outgoing, RenderError> {
    Ok(Outgoing {
        url: receiver.url.expose().to_owned(),
        headers: Vec::new(),
        body: json_body(&body(n))?,
    })
}
