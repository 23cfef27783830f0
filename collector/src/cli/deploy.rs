//! `bellwether deploy`: records a deployment through the HTTP API.

use std::process::ExitCode;

use crate::api::json::{DeploymentJson, DeploymentRequest};

use super::{ApiClient, DeployArgs};

pub async fn run(args: DeployArgs) -> ExitCode {
    let request = DeploymentRequest {
        service: args.service,
        environment: args.environment,
        version: args.version,
        commit: args.commit,
        deploy_id: args.deploy_id,
        pipeline_url: args.pipeline_url,
        notes: args.notes,
        team: args.team,
        started_at_unix_ms: None,
    };
    let result = async {
        ApiClient::from_urls(&args.url)?
            .with_token(args.token.as_deref())?
            .post::<_, DeploymentJson>("/api/v1/deployments", &request)
            .await
    };
    match result.await {
        Ok(deployment) => {
            print!("{}", describe(&deployment));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn describe(d: &DeploymentJson) -> String {
    let mut out = format!(
        "recorded deployment {} {} in {}\n",
        d.service, d.version, d.environment
    );
    let source = match d.source {
        bellwether_model::release::Source::Recorded => "recorded",
        bellwether_model::release::Source::Detected => "detected",
    };
    let fields = [
        ("started_at", Some(d.started_at.as_str())),
        ("commit", d.commit.as_deref()),
        ("deploy_id", d.deploy_id.as_deref()),
        ("pipeline_url", d.pipeline_url.as_deref()),
        ("notes", d.notes.as_deref()),
        ("team", d.team.as_deref()),
        ("source", Some(source)),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            out.push_str(&format!("  {name:<13}{value}\n"));
        }
    }
    out
}
