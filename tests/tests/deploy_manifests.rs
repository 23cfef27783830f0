//! What `deploy/` ships (the Dockerfile, the Kubernetes manifests, the rollout tools'
//! resources and the GitHub Action) names only what the built binaries accept, the
//! checker catches it when something does not, and the action's steps record a
//! deployment and turn the gate's exit code into the job's outcome against a real
//! collector. The image itself is not built here (there is no container runtime).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use bellwether_e2e::detection::{
    baseline_then_deploy, release_traffic, start_collector_with_config,
};
use bellwether_e2e::git_repo::{Author, GitRepo};
use bellwether_e2e::manifests::{self, action, Files};
use bellwether_e2e::{bin_path, Collector};
use bellwether_testkit::clock::bucket_aligned_now_ms;
use bellwether_testkit::traffic::{self, Mix};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn deploy_names_only_flags_variables_and_ports_the_binaries_accept() -> Result<()> {
    let files = Files::read(&repo())?;
    let report = manifests::check(&files)?;
    ensure!(report.problems.is_empty(), "{:#?}", report.problems);
    for file in [
        "deploy/kubernetes/collector/statefulset.yaml",
        "deploy/kubernetes/collector/service.yaml",
        "deploy/kubernetes/collector/config.yaml",
        "deploy/kubernetes/example-app/deployment.yaml",
        "deploy/kubernetes/kustomization.yaml",
        "deploy/argo-rollouts/analysis-template.yaml",
        "deploy/flagger/canary.yaml",
        "deploy/github-actions/bellwether-gate/action.yml",
    ] {
        ensure!(
            report.yaml_files.iter().any(|f| f == file),
            "{file} not read: {report:?}"
        );
    }
    // The collector's config in the ConfigMap went through `serve --check-config`.
    ensure!(report.configs_checked == 1, "{report:?}");
    Ok(())
}

/// The problems after replacing `from` by `to` in the file whose path ends in `file`.
fn problems_after(file: &str, from: &str, to: &str) -> Result<Vec<String>> {
    let mut files = Files::read(&repo())?;
    let text = if file == "Dockerfile" {
        &mut files.dockerfile
    } else {
        &mut files
            .yaml
            .iter_mut()
            .find(|(path, _)| path.ends_with(file))
            .with_context(|| format!("no {file}"))?
            .1
    };
    ensure!(text.contains(from), "{file} has no {from:?}");
    *text = text.replacen(from, to, 1);
    Ok(manifests::check(&files)?.problems)
}

fn expect(file: &str, from: &str, to: &str, needle: &str) -> Result<()> {
    let problems = problems_after(file, from, to)?;
    ensure!(
        problems.iter().any(|p| p.contains(needle)),
        "{file}: {from:?} → {to:?} should give a problem with {needle:?}, gave {problems:#?}"
    );
    Ok(())
}

#[test]
fn the_checker_rejects_what_the_binaries_do_not_accept() -> Result<()> {
    let agent = "example-app/deployment.yaml";
    let collector = "collector/statefulset.yaml";
    // Flags, variables, subcommands.
    expect(
        agent,
        "--k8s-labels-file",
        "--k8s-label-file",
        "has no flag --k8s-label-file",
    )?;
    expect(
        agent,
        "name: BELLWETHER_TOKEN",
        "name: BELLWETHER_TOKN",
        "reads no variable BELLWETHER_TOKN",
    )?;
    expect(
        collector,
        "name: BELLWETHER_CI_TOKEN",
        "name: BELLWETHER_CI_TOKN",
        "reads no variable BELLWETHER_CI_TOKN",
    )?;
    expect(
        collector,
        r#"args: ["serve","#,
        r#"args: ["server","#,
        "`bellwether server` is no subcommand",
    )?;
    // Ports and probes.
    expect(
        collector,
        "containerPort: 4318",
        "containerPort: 4319",
        "containerPort Some(4319)",
    )?;
    expect(collector, "path: /readyz", "path: /ready", "asks /ready")?;
    expect(
        agent,
        "- 0.0.0.0:8481",
        "- 0.0.0.0:8482",
        "containerPort Some(8481)",
    )?;
    expect(
        "collector/service.yaml",
        "targetPort: otlp-grpc",
        "targetPort: grpc",
        "targetPort grpc",
    )?;
    expect(
        "argo-rollouts/analysis-template.yaml",
        "svc:8480",
        "svc:8481",
        "is no port of a Service",
    )?;
    // Volumes and the files the binaries read from them.
    expect(
        collector,
        "mountPath: /var/lib/bellwether\n",
        "mountPath: /data\n",
        "data directory",
    )?;
    expect(
        agent,
        "fieldPath: metadata.labels",
        "fieldPath: metadata.annotations",
        "no downwardAPI file",
    )?;
    expect(
        agent,
        "app.kubernetes.io/version: \"1.4.2\"\n        bellwether",
        "app.kubernetes.io/version: 1.5\n        bellwether",
        "is not a string",
    )?;
    expect(
        "collector/config.yaml",
        "token_env = \"BELLWETHER_CI_TOKEN\"",
        "token_envv = \"BELLWETHER_CI_TOKEN\"",
        "--check-config` refuses",
    )?;
    expect(
        "collector/config.yaml",
        "name: bellwether-config",
        "name: bellwether-conf",
        "on no shipped ConfigMap",
    )?;
    // The Dockerfile.
    expect(
        "Dockerfile",
        "EXPOSE 8480 4317 4318",
        "EXPOSE 8480 4317",
        "is not what `bellwether serve` listens on",
    )?;
    expect(
        "Dockerfile",
        "\"--http-addr\"",
        "\"--http-adr\"",
        "has no flag --http-adr",
    )?;
    expect(
        "Dockerfile",
        "USER 10001:10001",
        "USER root",
        "runs as root",
    )?;
    expect(
        "Dockerfile",
        "/out/bellwether-agent /usr/local/bin/bellwether-agent",
        "/out/bellwether-agent /usr/local/bin/bellwether-agentd",
        "not a built binary",
    )?;
    expect(
        "Dockerfile",
        "VOLUME [\"/var/lib/bellwether\"]",
        "VOLUME [\"/data\"]",
        "is not a VOLUME",
    )?;
    // The action.
    let act = "bellwether-gate/action.yml";
    expect(
        act,
        "--min-duration",
        "--min-durations",
        "has no flag --min-durations",
    )?;
    expect(
        act,
        "BELLWETHER_URL: ${{ inputs.url }}",
        "BELLWETHER_URI: ${{ inputs.url }}",
        "reads no variable BELLWETHER_URI",
    )?;
    expect(
        act,
        "${{ inputs.timeout }}",
        "${{ inputs.timout }}",
        "inputs.timout is used but not declared",
    )?;
    // YAML that does not parse.
    expect(
        "flagger/canary.yaml",
        "kind: Canary",
        "kind: [Canary",
        "canary.yaml",
    )?;
    Ok(())
}

const CONFIG: &str = r#"
[detection]
evaluation_interval = "250ms"
min_duration = "2s"
baseline_window = "10m"
"#;

/// One run of the action.
struct ActionRun {
    /// The steps that ran.
    steps: Vec<String>,
    /// The exit code of the last one.
    code: Option<i32>,
    /// What the steps wrote to GITHUB_OUTPUT.
    outputs: BTreeMap<String, String>,
    /// The steps' output and the step summary, for messages.
    logs: String,
}

impl ActionRun {
    fn result(&self) -> Option<&str> {
        self.outputs.get("result").map(String::as_str)
    }
}

/// Runs the action with these inputs (url, service checkout, version 2, environment prod
/// and `extra`).
fn run_action(dir: &Path, url: &str, extra: &[(&str, &str)]) -> Result<ActionRun> {
    let text =
        std::fs::read_to_string(repo().join("deploy/github-actions/bellwether-gate/action.yml"))?;
    let parsed = action::parse(&text)?;
    let mut given: BTreeMap<&str, &str> = [
        ("url", url),
        ("service", "checkout"),
        ("version", "2"),
        ("environment", "prod"),
    ]
    .into();
    given.extend(extra.iter().copied());
    let github: BTreeMap<&str, &str> = [
        ("sha", "0123abcd"),
        ("run_id", "77"),
        ("run_attempt", "1"),
        ("server_url", "https://github.example"),
        ("repository", "acme/checkout"),
    ]
    .into();
    let output_file = dir.join("github-output");
    let summary_file = dir.join("step-summary.md");
    std::fs::write(&output_file, "")?;
    std::fs::write(&summary_file, "")?;
    let bin_dir = bin_path("bellwether")?
        .parent()
        .context("bin dir")?
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = vec![
        ("PATH".to_owned(), path),
        (
            "GITHUB_OUTPUT".to_owned(),
            output_file.display().to_string(),
        ),
        (
            "GITHUB_STEP_SUMMARY".to_owned(),
            summary_file.display().to_string(),
        ),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    let steps = action::run(&parsed, &given, &github, &env, dir)?;
    let names = steps.iter().map(|(n, _)| n.clone()).collect();
    let code = steps.last().and_then(|(_, o)| o.status.code());
    let outputs = std::fs::read_to_string(&output_file)?
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let logs = steps
        .iter()
        .map(|(n, o)| {
            format!(
                "{n}: {}\n{}{}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect::<String>();
    let summary = std::fs::read_to_string(&summary_file)?;
    Ok(ActionRun {
        steps: names,
        code,
        outputs,
        logs: format!("{logs}\nsummary:\n{summary}"),
    })
}

fn dead_url() -> Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("http://127.0.0.1:{port}"))
}

async fn release(collector: &Collector, version: &str) -> Result<serde_json::Value> {
    let list = collector
        .get("/api/v1/releases?service=checkout&environment=prod")
        .await?;
    list["releases"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["version"] == version))
        .cloned()
        .with_context(|| format!("no release {version}: {list}"))
}

#[tokio::test]
async fn the_action_records_the_deployment_and_maps_the_gate_to_the_outcome() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let url = collector.url();
    baseline_then_deploy(&collector, "checkout", "prod", "2", bucket_aligned_now_ms()).await?;

    // No traffic yet: still pending at the timeout. By default that fails the job (3).
    let run = run_action(dir.path(), &url, &[("timeout", "1s")])?;
    ensure!(run.steps.len() == 2 && run.code == Some(3), "{}", run.logs);
    ensure!(run.result() == Some("pending"), "{:?}", run.outputs);
    ensure!(run.outputs.get("exit-code").map(String::as_str) == Some("3"));
    let recorded = release(&collector, "2").await?;
    ensure!(recorded["commit"] == "0123abcd", "{recorded}");
    ensure!(recorded["deploy_id"] == "77-1", "{recorded}");
    ensure!(
        recorded["pipeline_url"] == "https://github.example/acme/checkout/actions/runs/77",
        "{recorded}"
    );
    // on-pending: pass lets it through.
    let inputs = [
        ("timeout", "1s"),
        ("on-pending", "pass"),
        ("record-deployment", "false"),
    ];
    let run = run_action(dir.path(), &url, &inputs)?;
    ensure!(run.code == Some(0), "{}", run.logs);
    ensure!(run.result() == Some("pending"), "{:?}", run.outputs);

    // A good release's traffic: the gate passes, with the summary on the job's page.
    let good = Mix {
        total: 10_000,
        timeouts: 2,
        new_errors: 0,
        new_error: &traffic::declined,
    };
    release_traffic(&collector, "checkout", "prod", "2", &good).await?;
    let inputs = [
        ("record-deployment", "false"),
        ("min-duration", "1s"),
        ("timeout", "20s"),
    ];
    let run = run_action(dir.path(), &url, &inputs)?;
    ensure!(
        run.steps == ["Gate on the verdict"] && run.code == Some(0),
        "{}",
        run.logs
    );
    ensure!(run.result() == Some("passed"), "{:?}", run.outputs);
    ensure!(
        run.logs.contains("### Bellwether gate: PASS"),
        "{}",
        run.logs
    );

    // A bad one: recorded by the action, then an error spike; the job fails (1).
    let inputs = [("version", "3"), ("timeout", "1s"), ("on-pending", "pass")];
    let run = run_action(dir.path(), &url, &inputs)?;
    release(&collector, "3").await.context(run.logs)?;
    let bad = Mix {
        total: 2_000,
        timeouts: 20,
        new_errors: 10,
        new_error: &traffic::declined,
    };
    release_traffic(&collector, "checkout", "prod", "3", &bad).await?;
    let inputs = [
        ("version", "3"),
        ("record-deployment", "false"),
        ("timeout", "20s"),
    ];
    let run = run_action(dir.path(), &url, &inputs)?;
    ensure!(run.code == Some(1), "{}", run.logs);
    ensure!(run.result() == Some("failed"), "{:?}", run.outputs);

    // No collector: the deploy step fails (2) and the gate does not run.
    let run = run_action(dir.path(), &dead_url()?, &[("timeout", "1s")])?;
    ensure!(
        run.steps == ["Record the deployment"] && run.code == Some(2),
        "{}",
        run.logs
    );
    Ok(())
}

#[tokio::test]
async fn the_action_with_git_records_the_change_set() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = start_collector_with_config(&dir.path().join("data"), CONFIG)?;
    let url = collector.url();
    let repo = GitRepo::init(&dir.path().join("checkout"))?;
    let author = Author {
        name: "Ada Lovelace",
        email: "ada@example.com",
    };
    let first = repo.commit(author, 1_764_000_000, "one", &[("src/a.py", "a\n")])?;
    let path = repo.dir.display().to_string();
    let with_git = |version: &'static str, commit: &str| {
        vec![
            ("version", version),
            ("timeout", "1s"),
            ("on-pending", "pass"),
            ("git", "true"),
            ("repo", path.as_str()),
            ("commit", commit),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect::<Vec<_>>()
    };
    let run_with = |inputs: &[(&str, String)]| {
        let inputs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_action(dir.path(), &url, &inputs)
    };
    let run = run_with(&with_git("1", &first))?;
    ensure!(run.code == Some(0), "{}", run.logs);
    ensure!(run.logs.contains("first deployment here"), "{}", run.logs);
    let second = repo.commit(author, 1_764_003_600, "two", &[("src/b.py", "b\n")])?;
    let third = repo.commit(author, 1_764_007_200, "three", &[("src/a.py", "c\n")])?;
    let run = run_with(&with_git("2", &third))?;
    ensure!(run.code == Some(0), "{}", run.logs);
    let stats = collector
        .get("/api/v1/releases/checkout/2/stats?environment=prod")
        .await?;
    let shas: Vec<&str> = stats["release"]["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["sha"].as_str())
        .collect();
    ensure!(shas == [third.as_str(), second.as_str()], "{stats}");
    ensure!(stats["release"]["changes"][1]["files"] == serde_json::json!(["src/b.py"]));
    ensure!(release(&collector, "2").await?["change_count"] == 2);

    // A value other than true or false stops the deploy step (2).
    let mut bad = with_git("3", &third);
    bad[3].1 = "yes".to_owned();
    let run = run_with(&bad)?;
    ensure!(
        run.steps == ["Record the deployment"] && run.code == Some(2),
        "{}",
        run.logs
    );
    ensure!(
        run.logs.contains("git must be true or false"),
        "{}",
        run.logs
    );
    Ok(())
}
