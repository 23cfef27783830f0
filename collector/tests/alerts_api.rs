//! Alerts, silences and the outbox through the collector's HTTP API and the CLI, with
//! routing configured; a recorded deployment reaches the receivers that opted in.

mod alerting;
mod common;

use alerting::{Receivers, SECRET, WAIT};
use bellwether_collector::config::Settings;
use bellwether_collector::server::{self, Listeners};
use common::{get, post_json, request};
use serde_json::json;
use tokio::sync::oneshot;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn bellwether(
    args: Vec<String>,
) -> Result<(i32, String), Box<dyn std::error::Error + Send + Sync>> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bellwether"))
        .args(args)
        .env_remove("BELLWETHER_URL")
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

#[tokio::test]
async fn alert_routes_silences_outbox_and_deploy_notifications() -> TestResult {
    let dir = tempfile::tempdir()?;
    let receivers = Receivers::start().await?;
    let mut settings = Settings::ephemeral(dir.path());
    settings.alerting = receivers.alerting()?;
    let listeners = Listeners::bind(&settings).await?;
    let addr = listeners.http.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(settings, listeners, async {
        let _ = stopped.await;
    }));

    // Recording a deployment notifies the owning team's receivers that opted in.
    let deploy = json!({"service": "checkout", "environment": "production", "version": "9.1.0",
                        "commit": "abc123", "notes": "faster checkout"});
    let response = post_json(addr, "/api/v1/deployments", &deploy).await?;
    assert_eq!(response.status, 201, "{}", response.text());
    let hook = receivers.hook.wait_accepted(1, WAIT).await?;
    assert_eq!(hook[0].json()["type"], "deploy");
    assert_eq!(hook[0].json()["release"]["commit"], "abc123");
    receivers.pagerduty.wait_accepted(1, WAIT).await?;
    assert!(receivers.slack.requests().is_empty());
    assert!(receivers.others_silent());

    let alerts = get(addr, "/api/v1/alerts?state=firing&team=payments").await?;
    assert_eq!(alerts.status, 200);
    assert_eq!(alerts.json(), json!({"alerts": []}));
    let bad = get(addr, "/api/v1/alerts?state=burning").await?;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("burning")));
    let missing = post_json(addr, "/api/v1/alerts/bw-nope/ack", &json!({})).await?;
    assert_eq!(missing.status, 404);

    // Silences over HTTP.
    let created = post_json(
        addr,
        "/api/v1/silences",
        &json!({"matchers": {"service": "checkout*"}, "duration": "2h", "comment": "migration"}),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["silence"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let one = get(addr, &format!("/api/v1/silences/{id}")).await?;
    assert_eq!(one.json()["silence"]["comment"], "migration");
    let invalid = post_json(
        addr,
        "/api/v1/silences",
        &json!({"matchers": {}, "duration": "2h", "comment": "x"}),
    )
    .await?;
    assert_eq!(invalid.status, 400);
    let unknown_field = post_json(
        addr,
        "/api/v1/silences",
        &json!({"matchers": {"service": "a"}, "duration": "2h", "comment": "x", "colour": 1}),
    )
    .await?;
    assert_eq!(unknown_field.status, 400);
    assert!(unknown_field.text().contains("colour"));
    let deleted = request(
        "DELETE",
        addr,
        &format!("/api/v1/silences/{id}"),
        &[],
        Vec::new(),
    )
    .await?;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        get(addr, &format!("/api/v1/silences/{id}")).await?.status,
        404
    );

    // The same through the CLI.
    let url = format!("http://{addr}");
    let (code, out) = bellwether(
        [
            "alerts",
            "silence",
            "--service",
            "checkout",
            "--duration",
            "30m",
            "--comment",
            "deploy freeze",
            "--url",
            &url,
        ]
        .map(String::from)
        .to_vec(),
    )
    .await?;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("silence s-"), "{out}");
    let (code, out) = bellwether(
        ["alerts", "silences", "--url", &url]
            .map(String::from)
            .to_vec(),
    )
    .await?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("deploy freeze"), "{out}");
    let (code, out) =
        bellwether(["alerts", "list", "--url", &url].map(String::from).to_vec()).await?;
    assert_eq!((code, out.as_str()), (0, "no alerts\n"));
    let (code, out) = bellwether(
        ["alerts", "ack", "bw-nope", "--url", &url]
            .map(String::from)
            .to_vec(),
    )
    .await?;
    assert_eq!(code, 1, "{out}");

    // The outbox shows counters and never a secret.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let outbox = loop {
        let outbox = get(addr, "/api/v1/outbox").await?;
        assert_eq!(outbox.status, 200);
        if outbox.json()["counters"]["delivered"] == 2 || std::time::Instant::now() > deadline {
            break outbox;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(
        outbox.json()["counters"]["delivered"],
        2,
        "{}",
        outbox.text()
    );
    assert_eq!(outbox.json()["pending"], json!([]));
    assert!(!outbox.text().contains(SECRET));

    let _ = stop.send(());
    task.await??;
    Ok(())
}
