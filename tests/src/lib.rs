//! Harness for Bellwether's end-to-end tests.
//!
//! The tests run the real `bellwether` and `bellwether-agent` binaries as child processes on
//! loopback with temporary data directories. This crate starts them ([`Collector`],
//! [`AgentProcess`]) as [`Supervised`] children, which learn the ports they bound from
//! their `listening kind=… addr=…` log lines, and talks to the collector's HTTP API
//! ([`http_get_json`], [`http_post_json`]). Traffic comes as raw OTLP requests
//! ([`detection`], built with `bellwether_testkit::otlp` and `::traffic`) or through the
//! OpenTelemetry SDK, the way an instrumented service sends it ([`sdk_traffic`]).
//! Receivers, polling and the HTTP client are `bellwether-testkit`'s, shared with the
//! collector's own tests.
//!
//! The binaries are looked up in `BELLWETHER_BIN_DIR`, else in the workspace's target
//! directory (`CARGO_TARGET_DIR` or `target/`), debug profile: run
//! `cargo build --workspace --bins` before `cargo test` (the README's test command does).

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context, Result};
use bellwether_testkit::http::{self, HttpResponse};
use bellwether_testkit::process::Supervised;

pub mod agent_ops;
pub mod agent_sources;
pub mod browser;
pub mod detection;
pub mod git_repo;
pub mod loggers;
pub mod manifests;
pub mod prometheus;
pub mod sdk_traffic;
pub mod security;
pub mod tmpfs;

/// Path of a workspace binary, with a clear error when it has not been built.
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("BELLWETHER_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
            target.join("debug")
        }
    };
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --workspace --bins` first (or set BELLWETHER_BIN_DIR)",
            path.display()
        );
    }
    Ok(path)
}

/// A command with an empty environment, so the host's `BELLWETHER_*` / `OTEL_*` variables
/// never leak into a test.
pub fn clean_command(bin: &str) -> Result<Command> {
    let mut cmd = Command::new(bin_path(bin)?);
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("BELLWETHER_LOG", "info");
    cmd.env("NO_COLOR", "1");
    Ok(cmd)
}

/// A running `bellwether serve`.
pub struct Collector {
    pub process: Supervised,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
}

impl Collector {
    /// Starts a collector on free loopback ports with its store in `data_dir`.
    pub fn start(data_dir: &Path) -> Result<Self> {
        Self::start_on(data_dir, "127.0.0.1:0")
    }

    /// Starts a collector whose OTLP gRPC listener binds `grpc_addr`.
    pub fn start_on(data_dir: &Path, grpc_addr: &str) -> Result<Self> {
        Self::start_with(data_dir, grpc_addr, &[])
    }

    /// [`start_on`](Self::start_on), with more arguments to `serve`.
    pub fn start_with(data_dir: &Path, grpc_addr: &str, extra: &[&str]) -> Result<Self> {
        let mut cmd = clean_command("bellwether")?;
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc-addr", grpc_addr])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let mut process = Supervised::spawn(cmd)?;
        let found = process.wait_for_listeners(&["otlp-grpc", "otlp-http", "http"])?;
        Ok(Self {
            otlp_grpc: found["otlp-grpc"],
            otlp_http: found["otlp-http"],
            http: found["http"],
            process,
        })
    }

    /// Base URL of the HTTP API.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// URL agents use to export OTLP/gRPC to this collector.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.otlp_grpc)
    }

    /// `GET path` on the HTTP API, expecting 200 and JSON.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = http_get_json(&format!("{}{path}", self.url())).await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {body}");
        }
        Ok(body)
    }
}

/// A running `bellwether-agent`.
pub struct AgentProcess {
    pub process: Supervised,
    pub listeners: HashMap<String, SocketAddr>,
}

/// The identity the end-to-end tests give their agents.
#[derive(Clone, Debug)]
pub struct Identity {
    pub service: &'static str,
    pub version: &'static str,
    pub environment: &'static str,
    pub commit: &'static str,
    pub deploy_id: &'static str,
}

impl AgentProcess {
    /// Starts an agent reading stdin, identity from `BELLWETHER_*` variables, exporting to
    /// `collector_url`. `receivers` also opens its OTLP receivers on free ports.
    pub fn start(
        identity: &Identity,
        collector_url: &str,
        data_dir: &Path,
        receivers: bool,
    ) -> Result<Self> {
        let mut cmd = clean_command("bellwether-agent")?;
        cmd.env("BELLWETHER_SERVICE", identity.service)
            .env("BELLWETHER_VERSION", identity.version)
            .env("BELLWETHER_ENVIRONMENT", identity.environment)
            .env("BELLWETHER_COMMIT", identity.commit)
            .env("BELLWETHER_DEPLOY_ID", identity.deploy_id)
            .env("BELLWETHER_INSTANCE_ID", "e2e-instance-1")
            .arg("--stdin")
            .args(["--collector", collector_url])
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--admin-addr", "127.0.0.1:0"]);
        let kinds: &[&str] = if receivers {
            cmd.args(["--otlp-grpc-addr", "127.0.0.1:0"])
                .args(["--otlp-http-addr", "127.0.0.1:0"]);
            &["otlp-grpc", "otlp-http", "admin"]
        } else {
            cmd.args(["--otlp-grpc-addr", "off"])
                .args(["--otlp-http-addr", "off"]);
            &["admin"]
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut process = Supervised::spawn(cmd)?;
        let listeners = process.wait_for_listeners(kinds)?;
        Ok(Self { process, listeners })
    }

    /// Writes lines to the agent's stdin.
    pub fn write_lines(&mut self, lines: &[&str]) -> Result<()> {
        use std::io::Write;
        let stdin = self.process.stdin().context("agent stdin is closed")?;
        for line in lines {
            writeln!(stdin, "{line}")?;
        }
        stdin.flush()?;
        Ok(())
    }
}

/// Runs a client subcommand of `bellwether` to completion: (exit status, stdout, stderr).
pub fn run_cli(args: &[&str]) -> Result<(ExitStatus, String, String)> {
    let mut cmd = clean_command("bellwether")?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_string(&mut stderr)?;
    }
    Ok((child.wait()?, stdout, stderr))
}

/// An answer's status and its body as JSON (`Null` when empty).
fn json_answer(response: HttpResponse) -> Result<(u16, serde_json::Value)> {
    let json = if response.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&response.body)
            .with_context(|| format!("non-JSON body: {}", response.text()))?
    };
    Ok((response.status, json))
}

/// Log records the collector at `collector_url` counted for `identity`'s release (0 before
/// the release exists).
pub async fn counted_log_records(collector_url: &str, identity: &Identity) -> Result<u64> {
    let url = format!(
        "{collector_url}/api/v1/releases/{}/{}/stats?environment={}",
        identity.service, identity.version, identity.environment
    );
    let (status, body) = http_get_json(&url).await?;
    match status {
        200 => body["release"]["totals"]["log_records"]
            .as_u64()
            .context("totals.log_records"),
        404 => Ok(0),
        other => bail!("stats answered {other}: {body}"),
    }
}

/// `GET url` → (status, JSON body).
pub async fn http_get_json(url: &str) -> Result<(u16, serde_json::Value)> {
    json_answer(http::get(url).await?)
}

/// `POST url` with a JSON body → (status, JSON body).
pub async fn http_post_json(
    url: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    json_answer(http::post_json(url, body).await?)
}
