//! Agent → collector security with the real binaries: the agent sends its bearer token
//! over mTLS with a CA made at test time and every line arrives exactly once; with a wrong
//! token nothing is counted, the agent says why, and the lines stay queued until an agent
//! with the right token delivers them.

use std::time::Duration;

use anyhow::{ensure, Result};
use bellwether_e2e::security::{start_secure_collector, start_stdin_agent, tls_log_records, Pki};
use bellwether_e2e::{Collector, Identity};
use bellwether_testkit::eventually;

const INGEST_TOKEN: &str = "ingest-token-0123456789abcdef";
const READ_TOKEN: &str = "read-token-0123456789abcdef";
const WRONG_TOKEN: &str = "wrong-token-0123456789abcdef";
const DEADLINE: Duration = Duration::from_secs(30);

fn identity(service: &'static str) -> Identity {
    Identity {
        service,
        version: "1.0.0",
        environment: "prod",
        commit: "",
        deploy_id: "",
    }
}

struct Setup {
    collector: Collector,
    pki: Pki,
    dir: tempfile::TempDir,
}

fn setup() -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::generate(dir.path())?;
    let collector = start_secure_collector(
        &dir.path().join("collector"),
        dir.path(),
        &pki,
        INGEST_TOKEN,
        READ_TOKEN,
    )?;
    Ok(Setup {
        collector,
        pki,
        dir,
    })
}

/// Flags for an agent exporting over mTLS with `token`.
fn tls_flags<'a>(pki: &'a Pki, token: &'a str) -> Vec<&'a str> {
    let path = |p: &'a std::path::Path| p.to_str().unwrap_or_default();
    vec![
        "--token",
        token,
        "--ca-file",
        path(&pki.ca_file),
        "--client-cert",
        path(&pki.client_cert_file),
        "--client-key",
        path(&pki.client_key_file),
    ]
}

#[tokio::test]
async fn agent_sends_its_token_over_mtls() -> Result<()> {
    let s = setup()?;
    let id = identity("secure-svc");
    let url = format!("https://{}", s.collector.otlp_grpc);
    let mut agent = start_stdin_agent(
        &id,
        &url,
        &s.dir.path().join("agent"),
        &tls_flags(&s.pki, INGEST_TOKEN),
    )?;
    let lines: Vec<String> = (0..25).map(|i| format!("secure line {i}")).collect();
    agent.write_lines(&lines.iter().map(String::as_str).collect::<Vec<_>>())?;
    agent.process.close_stdin();
    let status = agent.process.wait_exit(DEADLINE)?;
    let stderr = agent.process.stderr_text();
    ensure!(status.success(), "agent failed: {status}\n{stderr}");
    ensure!(
        !stderr.contains(INGEST_TOKEN),
        "the token was logged:\n{stderr}"
    );
    // The agent exits only after the collector acknowledged every batch.
    let counted = tls_log_records(&s.collector, &s.pki, READ_TOKEN, id.service).await?;
    ensure!(counted == 25, "counted {counted} of 25\n{stderr}");
    Ok(())
}

#[tokio::test]
async fn wrong_token_counts_nothing_and_keeps_the_lines_queued() -> Result<()> {
    let s = setup()?;
    let id = identity("refused-svc");
    let url = format!("https://{}", s.collector.otlp_grpc);
    let agent_dir = s.dir.path().join("agent");
    let mut flags = tls_flags(&s.pki, WRONG_TOKEN);
    flags.extend(["--flush-timeout", "2s"]);
    let mut agent = start_stdin_agent(&id, &url, &agent_dir, &flags)?;
    agent.write_lines(&["first", "second", "third", "fourth", "fifth"])?;
    agent.process.close_stdin();
    let status = agent.process.wait_exit(DEADLINE)?;
    let stderr = agent.process.stderr_text();
    ensure!(
        status.success(),
        "queued lines are not lost: exit 0 expected, got {status}\n{stderr}"
    );
    ensure!(
        stderr.contains("collector refused the agent's credentials")
            && stderr.contains("Unauthenticated"),
        "no auth error logged:\n{stderr}"
    );
    ensure!(
        stderr.contains("flush timeout reached"),
        "lines not kept queued:\n{stderr}"
    );
    ensure!(
        !stderr.contains(WRONG_TOKEN),
        "the token was logged:\n{stderr}"
    );
    let counted = tls_log_records(&s.collector, &s.pki, READ_TOKEN, id.service).await?;
    ensure!(counted == 0, "a refused agent got {counted} records in");

    // The same queue with the right token: the five lines were kept and now arrive.
    let mut agent = start_stdin_agent(&id, &url, &agent_dir, &tls_flags(&s.pki, INGEST_TOKEN))?;
    agent.process.close_stdin();
    let status = agent.process.wait_exit(DEADLINE)?;
    ensure!(
        status.success(),
        "{status}\n{}",
        agent.process.stderr_text()
    );
    let counted = eventually(DEADLINE, || async {
        let n = tls_log_records(&s.collector, &s.pki, READ_TOKEN, id.service).await?;
        Ok((n >= 5).then_some(n))
    })
    .await?;
    ensure!(counted == 5, "counted {counted} of 5");
    Ok(())
}
