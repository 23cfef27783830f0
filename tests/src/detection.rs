//! Helpers for verdict tests: a collector started with a config file (small detection
//! durations), deployments recorded with an explicit start time, and a release's raw OTLP
//! log traffic ([`bellwether_testkit::traffic`]) sent to it with exact release identity
//! per instance.

use std::path::Path;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use bellwether_testkit::clock::now_ms;
use bellwether_testkit::otlp::{export_logs, release_resource};
use bellwether_testkit::process::Supervised;
use bellwether_testkit::traffic::{self, Mix};

use crate::{clean_command, http_post_json, Collector};

/// Starts `bellwether serve --config <file>` on free loopback ports, the file holding
/// `config` (TOML) and written next to `data_dir`.
pub fn start_collector_with_config(data_dir: &Path, config: &str) -> Result<Collector> {
    start_collector_with_config_env(data_dir, config, &[])
}

/// [`start_collector_with_config`] with extra environment variables for the collector
/// (secrets that the config names with `*_env`).
pub fn start_collector_with_config_env(
    data_dir: &Path,
    config: &str,
    env: &[(&str, &str)],
) -> Result<Collector> {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "collector".to_owned());
    let config_path = data_dir.with_file_name(format!("{name}.toml"));
    std::fs::write(&config_path, config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let mut cmd = clean_command("bellwether")?;
    cmd.envs(env.iter().copied());
    cmd.arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--otlp-grpc-addr", "127.0.0.1:0"])
        .args(["--otlp-http-addr", "127.0.0.1:0"])
        .args(["--http-addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut process = Supervised::spawn(cmd)?;
    let found = process.wait_for_listeners(&["otlp-grpc", "otlp-http", "http"])?;
    Ok(Collector {
        otlp_grpc: found["otlp-grpc"],
        otlp_http: found["otlp-http"],
        http: found["http"],
        process,
    })
}

/// Records a deployment that started at `started_at_unix_ms`.
pub async fn record_deployment(
    collector: &Collector,
    service: &str,
    environment: &str,
    version: &str,
    started_at_unix_ms: i64,
) -> Result<()> {
    let body = serde_json::json!({
        "service": service,
        "environment": environment,
        "version": version,
        "started_at_unix_ms": started_at_unix_ms,
    });
    let (status, answer) =
        http_post_json(&format!("{}/api/v1/deployments", collector.url()), &body).await?;
    if status != 201 {
        bail!("recording {service} {version} answered {status}: {answer}");
    }
    Ok(())
}

/// The previous release `1`, deployed 30 min before `deploy_ms`, with its
/// [`traffic::baseline`] from instance `<service>-1-a`; then `version` recorded as
/// deployed at `deploy_ms`.
pub async fn baseline_then_deploy(
    collector: &Collector,
    service: &str,
    environment: &str,
    version: &str,
    deploy_ms: i64,
) -> Result<()> {
    record_deployment(
        collector,
        service,
        environment,
        "1",
        deploy_ms - 30 * 60_000,
    )
    .await?;
    let resource = release_resource(service, "1", environment, &format!("{service}-1-a"));
    export_logs(
        &collector.grpc_url(),
        &resource,
        traffic::baseline(deploy_ms),
    )
    .await?;
    record_deployment(collector, service, environment, version, deploy_ms).await
}

/// `mix` of `version` from each of two instances (`<service>-<version>-a` and `-b`),
/// timestamped now.
pub async fn release_traffic(
    collector: &Collector,
    service: &str,
    environment: &str,
    version: &str,
    mix: &Mix<'_>,
) -> Result<()> {
    for instance in ["a", "b"] {
        let resource = release_resource(
            service,
            version,
            environment,
            &format!("{service}-{version}-{instance}"),
        );
        export_logs(&collector.grpc_url(), &resource, mix.records(now_ms())).await?;
    }
    Ok(())
}
