//! `dashboards/`: the Grafana dashboards are valid, importable JSON with a Prometheus
//! datasource variable; the rules pass `promtool check rules`; and every metric name they
//! query is one the collector or the agent really exports (read from their `/metrics`),
//! whose text passes `promtool check metrics`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bellwether_e2e::agent_sources::{agent_metrics, start_agent};
use bellwether_e2e::browser::tool_or_skip;
use bellwether_e2e::prometheus::{exported_names, parse, referenced_names};
use bellwether_e2e::{Collector, Identity};
use bellwether_testkit::eventually;

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

fn read(name: &str) -> Result<String> {
    let path = dashboards_dir().join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

const DASHBOARDS: [&str; 2] = ["release-health.json", "agent-fleet.json"];

/// Every `datasource` object in the dashboard, wherever it sits.
fn datasources<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if key == "datasource" {
                    out.push(v);
                }
                datasources(v, out);
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| datasources(v, out)),
        _ => {}
    }
}

#[test]
fn dashboards_are_importable_grafana_json() -> Result<()> {
    for name in DASHBOARDS {
        let dashboard: serde_json::Value =
            serde_json::from_str(&read(name)?).with_context(|| format!("{name} is not JSON"))?;
        for key in ["uid", "title"] {
            assert!(
                dashboard[key].as_str().is_some_and(|s| !s.is_empty()),
                "{name}: no {key}"
            );
        }
        assert!(
            dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{name}"
        );
        let variables = dashboard["templating"]["list"]
            .as_array()
            .context("no templating")?;
        let datasource = variables
            .iter()
            .find(|v| v["type"] == "datasource")
            .with_context(|| format!("{name}: no datasource variable"))?;
        assert_eq!(datasource["query"], "prometheus", "{name}");
        let var = format!("${{{}}}", datasource["name"].as_str().unwrap_or_default());
        let mut found = Vec::new();
        datasources(&dashboard, &mut found);
        for ds in found {
            let grafana = ds["type"] == "grafana";
            assert!(
                grafana || ds["uid"] == var.as_str(),
                "{name}: a datasource is not {var}: {ds}"
            );
        }
        let panels = dashboard["panels"].as_array().context("no panels")?;
        let mut ids = BTreeSet::new();
        for panel in panels {
            assert!(
                ids.insert(panel["id"].as_u64()),
                "{name}: duplicate panel id {}",
                panel["id"]
            );
            if panel["type"] == "row" {
                continue;
            }
            let targets = panel["targets"]
                .as_array()
                .context("panel without targets")?;
            assert!(
                !targets.is_empty(),
                "{name}: {} queries nothing",
                panel["title"]
            );
            for t in targets {
                assert!(
                    t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                    "{name}: {t}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn prometheus_rules_pass_promtool() -> Result<()> {
    let Some(promtool) = tool_or_skip(&["promtool"], "promtool (Debian package `prometheus`)")?
    else {
        return Ok(());
    };
    let output = std::process::Command::new(promtool)
        .args(["check", "rules"])
        .arg(dashboards_dir().join("prometheus-rules.yml"))
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check rules failed:\n{text}"
    );
    assert!(text.contains("SUCCESS"), "{text}");
    Ok(())
}

#[tokio::test]
async fn every_queried_metric_is_exported() -> Result<()> {
    let mut wanted = BTreeSet::new();
    for name in DASHBOARDS.iter().chain(&["prometheus-rules.yml"]) {
        wanted.extend(referenced_names(&read(name)?));
    }
    assert!(
        wanted.len() > 15,
        "suspiciously few metric names: {wanted:?}"
    );

    let dir = tempfile::tempdir()?;
    let collector = Collector::start(&dir.path().join("collector"))?;
    let (_, text) =
        bellwether_e2e::agent_ops::http_get_text(&format!("{}/metrics", collector.url())).await?;
    let (families, _) = parse(&text)?;
    let mut exported = exported_names(&families);

    // The agent: its fixed series, plus the per-file ones a tailed file brings.
    let log = dir.path().join("app.log");
    std::fs::write(&log, "first line\n")?;
    let identity = Identity {
        service: "metrics-check",
        version: "1",
        environment: "test",
        commit: "abc",
        deploy_id: "d-1",
    };
    let glob = log.display().to_string();
    let (_agent, admin) = start_agent(
        &identity,
        &collector.grpc_url(),
        &dir.path().join("agent"),
        &["--file", &glob],
    )?;
    let agent_wanted: BTreeSet<&String> = wanted
        .iter()
        .filter(|n| n.starts_with("bellwether_agent_"))
        .collect();
    let agent_names = eventually(Duration::from_secs(20), || async {
        let (families, _) = parse(&agent_metrics(admin)?)?;
        let names = exported_names(&families);
        Ok(agent_wanted
            .iter()
            .all(|n| names.contains(*n))
            .then_some(names))
    })
    .await;
    match agent_names {
        Ok(names) => exported.extend(names),
        Err(_) => {
            let (families, _) = parse(&agent_metrics(admin)?)?;
            exported.extend(exported_names(&families));
        }
    }

    let missing: Vec<&String> = wanted.iter().filter(|n| !exported.contains(*n)).collect();
    if !missing.is_empty() {
        bail!("queried but not exported: {missing:?}\nexported: {exported:?}");
    }

    // Both writers are hand-written: Prometheus' own linter checks what they wrote.
    promtool_check_metrics("collector", &text)?;
    promtool_check_metrics("agent", &agent_metrics(admin)?)?;
    Ok(())
}

/// `promtool check metrics` over an exposition: format, HELP and TYPE, naming rules.
fn promtool_check_metrics(whose: &str, exposition: &str) -> Result<()> {
    use std::io::Write;
    let Some(promtool) = tool_or_skip(&["promtool"], "promtool (Debian package `prometheus`)")?
    else {
        return Ok(());
    };
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(exposition.as_bytes())?;
    let output = child.wait_with_output()?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool check metrics failed on the {whose}'s /metrics:\n{report}"
    );
    Ok(())
}
