//! Helpers for the agent's line sources: an agent tailing files or wrapping a command,
//! and its admin endpoint's `/metrics` text.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bellwether_testkit::process::Supervised;

use crate::{clean_command, Identity};

/// Starts `bellwether-agent` with `identity`, exporting to `collector_url`, with its data
/// in `data_dir`, OTLP receivers off, a free admin port, and `args` after the common ones
/// (e.g. `--file GLOB`, or `run -- CMD`). Waits for the admin listener.
pub fn start_agent(
    identity: &Identity,
    collector_url: &str,
    data_dir: &Path,
    args: &[&str],
) -> Result<(Supervised, SocketAddr)> {
    let mut cmd = clean_command("bellwether-agent")?;
    cmd.env("BELLWETHER_SERVICE", identity.service)
        .env("BELLWETHER_VERSION", identity.version)
        .env("BELLWETHER_ENVIRONMENT", identity.environment)
        .env("BELLWETHER_COMMIT", identity.commit)
        .env("BELLWETHER_DEPLOY_ID", identity.deploy_id)
        .env("BELLWETHER_INSTANCE_ID", "e2e-files-1")
        .args(["--collector", collector_url])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-addr", "127.0.0.1:0"])
        .args(["--otlp-grpc-addr", "off", "--otlp-http-addr", "off"])
        .args(["--batch-timeout", "200ms"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut process = Supervised::spawn(cmd)?;
    let found = process.wait_for_listeners(&["admin"])?;
    Ok((process, found["admin"]))
}

/// `GET path` on a plain HTTP/1.0 server: (status, body).
pub fn http_get_text(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("response without a header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("response without a status")?;
    Ok((status, body.to_owned()))
}

/// Sum of the `/metrics` samples named `name` whose labels contain `label` (every
/// sample of the name when `label` is empty); `None` when there is none.
pub fn metric_sum(metrics: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
        if metric != name || !labels.contains(label) {
            continue;
        }
        if let Ok(value) = value.parse::<f64>() {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

/// The agent's `/metrics` text.
pub fn agent_metrics(admin: SocketAddr) -> Result<String> {
    let (status, body) = http_get_text(admin, "/metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}: {body}");
    }
    Ok(body)
}
