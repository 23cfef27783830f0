//! `bellwether deploy`: records a deployment through the HTTP API; with `--git`, also
//! its change set, read from a local checkout ([`super::git`]) over the range that
//! starts at the previous deployment's commit the collector knows.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::api::changes::ChangeJson;
use crate::api::json::{DeploymentJson, DeploymentRequest, ReleasesResponse};

use super::client::encode_component;
use super::git::{Found, Previous, Repo};
use super::{ApiClient, ClientError, DeployArgs};

pub async fn run(args: DeployArgs) -> ExitCode {
    let client =
        match ApiClient::from_urls(&args.url).and_then(|c| c.with_token(args.token.as_deref())) {
            Ok(client) => client,
            Err(e) => return fail(&e),
        };
    let mut request = DeploymentRequest {
        service: args.service,
        environment: args.environment,
        version: args.version,
        commit: args.commit,
        deploy_id: args.deploy_id,
        pipeline_url: args.pipeline_url,
        notes: args.notes,
        team: args.team,
        ..DeploymentRequest::default()
    };
    if args.git {
        let dir = args.repo.unwrap_or_else(|| PathBuf::from("."));
        match with_git_changes(&client, &mut request, dir).await {
            Ok(found) => {
                if let Some(warning) = &found.warning {
                    eprintln!("warning: {warning}");
                }
                if !found.note.is_empty() {
                    println!("{}", found.note);
                }
            }
            Err(e) => return fail(&e),
        }
    }
    match client
        .post::<_, DeploymentJson>("/api/v1/deployments", &request)
        .await
    {
        Ok(deployment) => {
            print!("{}", describe(&deployment));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &ClientError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// Fills `request`'s commit (resolved to its full sha) and change set from the checkout
/// at `dir`.
async fn with_git_changes(
    client: &ApiClient,
    request: &mut DeploymentRequest,
    dir: PathBuf,
) -> Result<Found, ClientError> {
    let git_error = |e: super::git::GitError| ClientError::Usage(e.to_string());
    // A bad checkout is reported before the collector is asked anything.
    let repo = tokio::task::spawn_blocking(move || Repo::open(&dir))
        .await
        .map_err(|e| ClientError::Usage(e.to_string()))?
        .map_err(git_error)?;
    let previous = previous_deployment(client, request).await?;
    let commit = request.commit.clone().unwrap_or_else(|| "HEAD".to_owned());
    let found = tokio::task::spawn_blocking(move || repo.changes_since(previous.as_ref(), &commit))
        .await
        .map_err(|e| ClientError::Usage(e.to_string()))?
        .map_err(git_error)?;
    request.commit = Some(found.commit.clone());
    request.changes = Some(
        found
            .changes
            .changes
            .iter()
            .cloned()
            .map(ChangeJson::from)
            .collect(),
    );
    request.changes_truncated = found.changes.changes_truncated;
    request.files_truncated = found.changes.files_truncated;
    Ok(found)
}

/// The newest deployment with a commit of the service and environment, other than this
/// version (recording the same version again compares with the one before it).
async fn previous_deployment(
    client: &ApiClient,
    request: &DeploymentRequest,
) -> Result<Option<Previous>, ClientError> {
    let path = format!(
        "/api/v1/releases?service={}&environment={}",
        encode_component(&request.service),
        encode_component(&request.environment)
    );
    let list: ReleasesResponse = client.get(&path).await?;
    // The list is newest first.
    Ok(list.releases.into_iter().find_map(|r| {
        let d = r.deployment;
        let same_release = d.service == request.service
            && d.environment == request.environment
            && d.version == request.version;
        match d.commit {
            Some(commit) if !same_release && !commit.is_empty() => Some(Previous {
                version: d.version,
                commit,
            }),
            _ => None,
        }
    }))
}

/// `3d4h`, `2h5m`, `7m30s`, `45s` (one word, for tables).
pub(super) fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m, s) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
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
    let changes = d.changes.change_count.map(|count| {
        let mut text = format!("{count} commits");
        let files: usize = d
            .changes
            .changes
            .iter()
            .flatten()
            .map(|c| c.files.len())
            .sum();
        text.push_str(&format!(", {files} files"));
        if d.changes.changes_truncated > 0 || d.changes.files_truncated > 0 {
            text.push_str(&format!(
                " ({} commits and {} files left off)",
                d.changes.changes_truncated, d.changes.files_truncated
            ));
        }
        text
    });
    let lead_time = d.changes.lead_time.as_ref().map(|l| {
        format!(
            "median {}, oldest {}",
            span(l.median_seconds),
            span(l.oldest_seconds)
        )
    });
    let fields = [
        ("started_at", Some(d.started_at.as_str())),
        ("commit", d.commit.as_deref()),
        ("deploy_id", d.deploy_id.as_deref()),
        ("pipeline_url", d.pipeline_url.as_deref()),
        ("notes", d.notes.as_deref()),
        ("team", d.team.as_deref()),
        ("source", Some(source)),
        ("changes", changes.as_deref()),
        ("lead_time", lead_time.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            out.push_str(&format!("  {name:<13}{value}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn spans_read_at_a_glance() {
        assert_eq!(span(45), "45s");
        assert_eq!(span(450), "7m30s");
        assert_eq!(span(7_500), "2h5m");
        assert_eq!(span(3 * 86_400 + 4 * 3_600 + 59), "3d4h");
        assert_eq!(span(-5), "0s");
    }
}
