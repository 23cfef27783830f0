//! `bellwether alerts`: list, acknowledge and silence alerts through the HTTP API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::encode_component;
use super::{ApiClient, ClientError, DEFAULT_URL};

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub action: Option<AlertsAction>,
    /// Collector HTTP API base URL. Repeat the flag or separate URLs with commas to name
    /// several nodes of a cluster: when one cannot be reached the next is asked.
    #[arg(
        long,
        env = "BELLWETHER_URL",
        value_name = "URL",
        default_value = DEFAULT_URL,
        global = true
    )]
    pub url: Vec<String>,
    /// Bearer token for a collector that requires one.
    #[arg(long, env = "BELLWETHER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// List alerts, newest first (the default).
    List {
        /// firing, acknowledged or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        service: Option<String>,
    },
    /// Acknowledge an alert: no more repeats.
    Ack {
        id: String,
        /// Who acknowledges.
        #[arg(long)]
        by: Option<String>,
    },
    /// Silence matching alerts for a while.
    Silence {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        team: Option<String>,
        /// error_spike, new_issue or latency_regression.
        #[arg(long)]
        kind: Option<String>,
        /// How long, e.g. 2h, 30m.
        #[arg(long)]
        duration: String,
        #[arg(long)]
        comment: String,
        #[arg(long)]
        created_by: Option<String>,
    },
    /// List silences.
    Silences,
    /// Remove a silence.
    Unsilence { id: String },
}

pub async fn run(args: AlertsArgs) -> ExitCode {
    let json_out = args.json;
    let action = args.action.unwrap_or(AlertsAction::List {
        state: None,
        team: None,
        service: None,
    });
    let result = async {
        let client = ApiClient::from_urls(&args.url)?.with_token(args.token.as_deref())?;
        let value: Value = match &action {
            AlertsAction::List {
                state,
                team,
                service,
            } => {
                let query: Vec<String> = [("state", state), ("team", team), ("service", service)]
                    .into_iter()
                    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_component(v))))
                    .collect();
                let mut path = "/api/v1/alerts".to_owned();
                if !query.is_empty() {
                    path.push('?');
                    path.push_str(&query.join("&"));
                }
                client.get(&path).await?
            }
            AlertsAction::Ack { id, by } => {
                let path = format!("/api/v1/alerts/{}/ack", encode_component(id));
                client.post(&path, &json!({ "by": by })).await?
            }
            AlertsAction::Silence {
                service,
                environment,
                version,
                team,
                kind,
                duration,
                comment,
                created_by,
            } => {
                let mut matchers = serde_json::Map::new();
                for (key, value) in [
                    ("service", service),
                    ("environment", environment),
                    ("version", version),
                    ("team", team),
                    ("kind", kind),
                ] {
                    if let Some(v) = value {
                        matchers.insert(key.to_owned(), json!(v));
                    }
                }
                let body = json!({
                    "matchers": matchers,
                    "duration": duration,
                    "comment": comment,
                    "created_by": created_by,
                });
                client.post("/api/v1/silences", &body).await?
            }
            AlertsAction::Silences => client.get("/api/v1/silences").await?,
            AlertsAction::Unsilence { id } => {
                let path = format!("/api/v1/silences/{}", encode_component(id));
                client.delete(&path).await?
            }
        };
        Ok::<_, ClientError>(value)
    };
    match result.await {
        Ok(value) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print!("{}", human(&action, &value));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn human(action: &AlertsAction, value: &Value) -> String {
    match action {
        AlertsAction::List { .. } => {
            let alerts = value.get("alerts").and_then(Value::as_array);
            let Some(alerts) = alerts.filter(|a| !a.is_empty()) else {
                return "no alerts\n".to_owned();
            };
            let rows: Vec<Vec<String>> = alerts
                .iter()
                .map(|a| {
                    let release = a.get("release").cloned().unwrap_or_default();
                    vec![
                        text(a, "id").to_owned(),
                        text(a, "state").to_owned(),
                        text(a, "kind").to_owned(),
                        text(a, "team").to_owned(),
                        format!(
                            "{} {} {}",
                            text(&release, "service"),
                            text(&release, "environment"),
                            text(&release, "version")
                        ),
                        text(a, "started_at").to_owned(),
                        text(a, "summary").to_owned(),
                    ]
                })
                .collect();
            table(
                &[
                    "ID", "STATE", "KIND", "TEAM", "RELEASE", "STARTED", "SUMMARY",
                ],
                &rows,
            )
        }
        AlertsAction::Ack { .. } => {
            let alert = value.get("alert").cloned().unwrap_or_default();
            format!("{} {}\n", text(&alert, "id"), text(&alert, "state"))
        }
        AlertsAction::Silence { .. } => {
            let s = value.get("silence").cloned().unwrap_or_default();
            let ends = s
                .get("ends_at_unix_ms")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            format!(
                "silence {} until {}\n",
                text(&s, "id"),
                bellwether_model::time::rfc3339_utc(ends)
            )
        }
        AlertsAction::Silences => {
            let silences = value.get("silences").and_then(Value::as_array);
            let Some(silences) = silences.filter(|s| !s.is_empty()) else {
                return "no silences\n".to_owned();
            };
            let rows: Vec<Vec<String>> = silences
                .iter()
                .map(|s| {
                    let ends = s
                        .get("ends_at_unix_ms")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    vec![
                        text(s, "id").to_owned(),
                        s.get("matchers").map(Value::to_string).unwrap_or_default(),
                        bellwether_model::time::rfc3339_utc(ends),
                        text(s, "comment").to_owned(),
                    ]
                })
                .collect();
            table(&["ID", "MATCHERS", "ENDS", "COMMENT"], &rows)
        }
        AlertsAction::Unsilence { id } => format!("silence {id} removed\n"),
    }
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}
