//! The `bellwether` binary: serve, deploy and releases as a pipeline would run them.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const BIN: &str = env!("CARGO_BIN_EXE_bellwether");
const DEADLINE: Duration = Duration::from_secs(30);

/// Starts `bellwether serve` on ephemeral ports; returns the child and kind → address.
async fn serve(
    data_dir: &std::path::Path,
) -> Result<(Child, HashMap<String, String>), Box<dyn std::error::Error + Send + Sync>> {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("BELLWETHER_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let mut addrs = HashMap::new();
    tokio::time::timeout(DEADLINE, async {
        while addrs.len() < 3 {
            let Some(line) = lines.next_line().await? else {
                break;
            };
            if let Some(rest) = line.split("listening kind=").nth(1) {
                let mut parts = rest.split(" addr=");
                if let (Some(kind), Some(addr)) = (parts.next(), parts.next()) {
                    addrs.insert(kind.to_owned(), addr.trim().to_owned());
                }
            }
        }
        // Keep draining so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok::<_, std::io::Error>(())
    })
    .await??;
    for kind in ["otlp-grpc", "otlp-http", "http"] {
        assert!(
            addrs.contains_key(kind),
            "no listening line for {kind}: {addrs:?}"
        );
    }
    Ok((child, addrs))
}

async fn cli(
    args: &[&str],
) -> Result<(i32, String, String), Box<dyn std::error::Error + Send + Sync>> {
    let output = tokio::time::timeout(
        DEADLINE,
        Command::new(BIN)
            .args(args)
            .env_remove("BELLWETHER_URL")
            .output(),
    )
    .await??;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn deploy_and_releases_against_a_served_collector() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut child, addrs) = serve(dir.path()).await?;
    let url = format!("http://{}", addrs["http"]);

    let (code, stdout, stderr) = cli(&[
        "deploy",
        "--service",
        "checkout",
        "--environment",
        "production",
        "--version",
        "1.4.2",
        "--commit",
        "abc123",
        "--deploy-id",
        "d-1",
        "--notes",
        "canary",
        "--team",
        "payments",
        "--url",
        &url,
    ])
    .await?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("checkout") && stdout.contains("1.4.2") && stdout.contains("abc123"),
        "{stdout}"
    );

    let (code, stdout, stderr) = cli(&["releases", "--service", "checkout", "--url", &url]).await?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("1.4.2") && stdout.contains("recorded"),
        "{stdout}"
    );

    let (code, stdout, _) = cli(&["releases", "--json", "--url", &url]).await?;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(json["releases"][0]["deploy_id"], "d-1");

    // The API rejects an empty service: exit 1 with its message.
    let (code, _, stderr) = cli(&[
        "deploy",
        "--service",
        "",
        "--environment",
        "p",
        "--version",
        "1",
        "--url",
        &url,
    ])
    .await?;
    assert_eq!(code, 1);
    assert!(stderr.contains("service must not be empty"), "{stderr}");

    // Usage error: exit 2.
    let (code, _, _) = cli(&["deploy", "--service", "x", "--url", &url]).await?;
    assert_eq!(code, 2);

    // SIGTERM stops the server cleanly.
    let pid = child.id().ok_or("server exited early")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(status.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait()).await??;
    assert!(exit.success(), "{exit:?}");

    // Data survives into a new process.
    let (mut child, addrs) = serve(dir.path()).await?;
    let (code, stdout, _) =
        cli(&["releases", "--url", &format!("http://{}", addrs["http"])]).await?;
    assert_eq!(code, 0);
    assert!(stdout.contains("1.4.2"), "{stdout}");
    child.kill().await?;
    Ok(())
}

#[tokio::test]
async fn unreachable_collector_exits_2() -> TestResult {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, stderr) = cli(&[
        "deploy",
        "--service",
        "a",
        "--environment",
        "b",
        "--version",
        "c",
        "--url",
        &url,
    ])
    .await?;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let (code, _, _) = cli(&["releases", "--url", "ftp://x"]).await?;
    assert_eq!(code, 2);
    Ok(())
}

#[tokio::test]
async fn bad_configuration_names_the_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bellwether.toml");
    std::fs::write(&config, "http_adr = \"127.0.0.1:0\"\n")?;
    let config = config.to_string_lossy().into_owned();
    let (code, _, stderr) = cli(&["serve", "--config", &config]).await?;
    assert_eq!(code, 2);
    assert!(stderr.contains("http_adr"), "{stderr}");
    let (code, _, stderr) = cli(&["serve", "--http-addr", "nowhere"]).await?;
    assert_eq!(code, 2);
    assert!(stderr.contains("http_addr"), "{stderr}");
    Ok(())
}
