//! The agent in a Kubernetes pod: its identity from the pod's labels file (the Downward
//! API volume format), with no identity variable set, end to end into a collector.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bellwether_e2e::{clean_command, Collector};
use bellwether_testkit::eventually;
use bellwether_testkit::process::Supervised;

#[tokio::test]
async fn the_labels_file_names_the_release() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let labels = dir.path().join("labels");
    std::fs::write(
        &labels,
        "app.kubernetes.io/name=\"checkout\"\napp.kubernetes.io/version=\"2.4.0\"\n\
         bellwether.io/environment=\"production\"\nbellwether.io/team=\"payments\"\n\
         pod-template-hash=\"5d8f9c\"\n",
    )?;
    let mut cmd = clean_command("bellwether-agent")?;
    cmd.env("POD_NAME", "checkout-5d8f9c-x2x7q")
        .arg("--stdin")
        .args(["--collector", &collector.grpc_url()])
        .arg("--data-dir")
        .arg(dir.path().join("agent"))
        .arg("--k8s-labels-file")
        .arg(&labels)
        .args(["--admin-addr", "127.0.0.1:0"])
        .args(["--otlp-grpc-addr", "off", "--otlp-http-addr", "off"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut agent = Supervised::spawn(cmd)?;
    {
        use std::io::Write;
        let stdin = agent.stdin().context("agent stdin")?;
        for i in 0..3 {
            writeln!(stdin, "{{\"level\":\"info\",\"msg\":\"order {i} placed\"}}")?;
        }
        stdin.flush()?;
    }
    agent.close_stdin();
    let status = agent.wait_exit(Duration::from_secs(30))?;
    ensure!(
        status.success(),
        "agent exited {status}: {}",
        agent.stderr_text()
    );

    let stats = eventually(Duration::from_secs(20), || async {
        let stats = collector
            .get("/api/v1/releases/checkout/2.4.0/stats?environment=production")
            .await;
        Ok(stats
            .ok()
            .filter(|s| s["release"]["totals"]["log_records"] == 3))
    })
    .await
    .context("the labels' release never counted 3 records")?;
    ensure!(stats["release"]["team"] == "payments", "{stats}");

    // A labels file that is not in the Downward API format stops the agent with the line.
    std::fs::write(&labels, "app.kubernetes.io/name=checkout\n")?;
    let output = clean_command("bellwether-agent")?
        .arg("--stdin")
        .args(["--collector", &collector.grpc_url()])
        .arg("--data-dir")
        .arg(dir.path().join("agent-2"))
        .arg("--k8s-labels-file")
        .arg(&labels)
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(!output.status.success(), "a bad labels file was accepted");
    ensure!(
        stderr.contains("labels file") && stderr.contains("line 1"),
        "{stderr}"
    );
    Ok(())
}
