//! `bellwether releases`: prints release history, newest first.

use std::process::ExitCode;

use crate::api::json::{ReleaseJson, ReleasesResponse};
use bellwether_model::release::Source;

use super::client::encode_component;
use super::deploy::span;
use super::{ApiClient, ReleasesArgs};

pub async fn run(args: ReleasesArgs) -> ExitCode {
    let mut query = Vec::new();
    if let Some(service) = &args.service {
        query.push(format!("service={}", encode_component(service)));
    }
    if let Some(environment) = &args.environment {
        query.push(format!("environment={}", encode_component(environment)));
    }
    let mut path = "/api/v1/releases".to_owned();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let result = async {
        ApiClient::from_urls(&args.url)?
            .with_token(args.token.as_deref())?
            .get::<ReleasesResponse>(&path)
            .await
    };
    match result.await {
        Ok(response) if args.json => match serde_json::to_string_pretty(&response) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Ok(response) => {
            print!("{}", table(&response.releases));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn table(releases: &[ReleaseJson]) -> String {
    if releases.is_empty() {
        return "no releases\n".to_owned();
    }
    let header = [
        "SERVICE",
        "ENVIRONMENT",
        "VERSION",
        "STARTED",
        "SOURCE",
        "LOGS",
        "ERROR_LOGS",
        "SPANS",
        "ERROR_SPANS",
        "CHANGES",
        "LEAD_TIME",
        "COMMIT",
    ];
    let rows: Vec<[String; 12]> = releases
        .iter()
        .map(|r| {
            let d = &r.deployment;
            [
                d.service.clone(),
                d.environment.clone(),
                d.version.clone(),
                d.started_at.clone(),
                match d.source {
                    Source::Recorded => "recorded".to_owned(),
                    Source::Detected => "detected".to_owned(),
                },
                r.totals.log_records.to_string(),
                r.totals.error_logs.to_string(),
                r.totals.spans.to_string(),
                r.totals.error_spans.to_string(),
                d.changes
                    .change_count
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                // The median: what half the release's commits waited at most.
                d.changes
                    .lead_time
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |l| span(l.median_seconds)),
                d.commit.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
