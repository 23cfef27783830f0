//! Harness for Bellwether's end-to-end tests.
//!
//! The tests run the real `bellwether` and `bellwether-agent` binaries as child processes on
//! loopback with temporary data directories. This crate starts them ([`Collector`],
//! [`AgentProcess`]), learns the ports they bound from their `listening kind=… addr=…` log
//! lines, and talks to the collector's HTTP API ([`http_get_json`], [`http_post_json`]).
//! Traffic comes as raw OTLP requests ([`detection`]) or through the OpenTelemetry SDK,
//! the way an instrumented service sends it ([`sdk_traffic`]).
//!
//! The binaries are looked up in `BELLWETHER_BIN_DIR`, else in the workspace's target
//! directory (`CARGO_TARGET_DIR` or `target/`), debug profile: run
//! `cargo build --workspace --bins` before `cargo test` (the README's test command does).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod agent_ops;
pub mod agent_sources;
pub mod browser;
pub mod detection;
pub mod loggers;
pub mod prometheus;
pub mod receiver;
pub mod sdk_traffic;
pub mod security;

/// How long a child gets to announce its listeners or to exit.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Removes ANSI escape sequences (colours) from a log line.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Parses `listening kind=K addr=A` out of a log line.
pub fn parse_listening(line: &str) -> Option<(String, SocketAddr)> {
    let line = strip_ansi(line);
    if !line.contains("listening") {
        return None;
    }
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(name))
            .map(|value| value.trim_matches('"').to_string())
    };
    let kind = field("kind=")?;
    let addr = field("addr=")?.parse().ok()?;
    Some((kind, addr))
}

/// A child process whose stderr is collected in the background and scanned for listeners.
pub struct Supervised {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    listeners: Arc<Mutex<HashMap<String, SocketAddr>>>,
}

impl Supervised {
    /// Spawns `cmd` with piped stderr (and stdin/stdout as given by the caller).
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawning child process")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let listeners = Arc::new(Mutex::new(HashMap::new()));
        let pipe = child.stderr.take().context("child has no stderr")?;
        let (lines, found) = (stderr.clone(), listeners.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some((kind, addr)) = parse_listening(&line) {
                    lock(&found).insert(kind, addr);
                }
                lock(&lines).push(line);
            }
        });
        Ok(Self {
            child,
            stderr,
            listeners,
        })
    }

    /// Waits until the child has announced a listener of each kind.
    pub fn wait_for_listeners(&mut self, kinds: &[&str]) -> Result<HashMap<String, SocketAddr>> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            {
                let found = lock(&self.listeners);
                if kinds.iter().all(|k| found.contains_key(*k)) {
                    return Ok(found.clone());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "child exited with {status} before listening:\n{}",
                    self.stderr_text()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "child did not announce {kinds:?} in time:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the child to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                // Let the stderr reader catch up with the final lines.
                std::thread::sleep(Duration::from_millis(50));
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "child still running after {timeout:?}:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        self.wait_exit(STARTUP_TIMEOUT)
    }

    /// The child's process id, for signals the harness does not send itself.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        lock(&self.stderr).join("\n")
    }

    /// The child's stdin, if it was piped.
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.child.stdin.as_mut()
    }

    /// Closes the child's stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let mut cmd = clean_command("bellwether")?;
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc-addr", grpc_addr])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
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

async fn request(req: hyper::Request<Full<Bytes>>) -> Result<(u16, serde_json::Value)> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| anyhow!("http request timed out"))??;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    let json = if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&body)
            .with_context(|| format!("non-JSON body: {}", String::from_utf8_lossy(&body)))?
    };
    Ok((status, json))
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
    let req = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
    request(req).await
}

/// `POST url` with a JSON body → (status, JSON body).
pub async fn http_post_json(
    url: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value)> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    request(req).await
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            return Err(last_error.unwrap_or_else(|| anyhow!("condition not met in {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line_is_parsed_with_and_without_colours() {
        let plain =
            "2026-11-26T19:00:00Z  INFO bellwether: listening kind=otlp-grpc addr=127.0.0.1:4317";
        assert_eq!(
            parse_listening(plain),
            Some(("otlp-grpc".into(), "127.0.0.1:4317".parse().unwrap()))
        );
        let coloured = "\u{1b}[32m INFO\u{1b}[0m listening \u{1b}[3mkind\u{1b}[0m\u{1b}[2m=\u{1b}[0mhttp \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:9";
        assert_eq!(
            parse_listening(coloured),
            Some(("http".into(), "127.0.0.1:9".parse().unwrap()))
        );
        assert_eq!(parse_listening("listening soon"), None);
    }
}
