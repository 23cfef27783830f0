use std::sync::Arc;

use bellwether_proto::otlp::common::any_value::Value;
use tokio::sync::mpsc;

use super::*;
use crate::otlp::as_str;
use crate::sources::testing;
use crate::stats::Stats;

fn config(script: &str) -> ExecConfig {
    ExecConfig {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        passthrough: false,
        multiline: MultilineConfig {
            timeout: Duration::from_millis(100),
            ..MultilineConfig::default()
        },
    }
}

/// (stream, body) of every record received until `n` arrived.
async fn received(rx: &mut mpsc::Receiver<Telemetry>, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let Ok(Some(Telemetry::Logs(logs))) = tokio::time::timeout_at(deadline, rx.recv()).await
        else {
            break;
        };
        for record in logs
            .into_iter()
            .flat_map(|rl| rl.scope_logs)
            .flat_map(|sl| sl.log_records)
        {
            let stream = record
                .attributes
                .iter()
                .find(|kv| kv.key == IOSTREAM_ATTR)
                .and_then(
                    |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    },
                )
                .unwrap_or_default();
            let body = as_str(record.body.as_ref()).unwrap_or("").to_owned();
            out.push((stream, body));
        }
    }
    out
}

#[tokio::test]
async fn ships_both_streams_and_reports_the_exit_code() {
    let stats = Arc::new(Stats::default());
    let (sender, mut rx, _pipeline) = testing::pipeline(1 << 24, stats);
    let (_stop_tx, stop) = watch::channel(false);
    let script = "echo out one; echo 'ERROR err one' >&2; \
printf 'java.lang.IllegalStateException: x\\n\\tat a.B.c(B.java:1)\\n' >&2; \
printf 'no newline'; exit 3";
    let handle = spawn(config(script), sender, stop).expect("spawns");
    let code = tokio::time::timeout(Duration::from_secs(10), finished(Some(&handle)))
        .await
        .expect("child ends");
    assert_eq!(code, 3);
    let mut got = received(&mut rx, 3).await;
    got.sort();
    let pair = |s: &str, b: &str| (s.to_owned(), b.to_owned());
    assert_eq!(
        got,
        [
            pair(
                "stderr",
                "ERROR err one\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)"
            ),
            pair("stdout", "no newline"),
            pair("stdout", "out one"),
        ]
    );
}

#[tokio::test]
async fn stop_terminates_the_child() {
    let stats = Arc::new(Stats::default());
    let (sender, mut rx, _pipeline) = testing::pipeline(1 << 24, stats);
    let (stop_tx, stop) = watch::channel(false);
    let script = "trap 'echo got term; exit 7' TERM; echo ready; while :; do sleep 0.05; done";
    let handle = spawn(config(script), sender, stop).expect("spawns");
    assert_eq!(received(&mut rx, 1).await[0].1, "ready");
    stop_tx.send(true).expect("running");
    let code = tokio::time::timeout(Duration::from_secs(10), finished(Some(&handle)))
        .await
        .expect("child ends");
    assert_eq!(code, 7);
    assert_eq!(received(&mut rx, 1).await[0].1, "got term");
}

#[test]
fn exit_codes_of_signals() {
    assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
    assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
}

#[tokio::test]
async fn a_missing_program_fails_to_start() {
    let stats = Arc::new(Stats::default());
    let (sender, _rx, _pipeline) = testing::pipeline(1 << 24, stats);
    let (_stop_tx, stop) = watch::channel(false);
    let mut config = config("");
    config.program = "/nonexistent/program".into();
    let err = spawn(config, sender, stop).err().expect("fails");
    assert!(err.to_string().contains("/nonexistent/program"), "{err}");
}
