//! Tests of the agent's command line.

use std::net::SocketAddr;

use super::*;

fn identity() -> Identity {
    Identity {
        service: "s".into(),
        version: "1".into(),
        environment: "unknown".into(),
        instance_id: "i".into(),
        commit: None,
        deploy_id: None,
        team: None,
    }
}

#[test]
fn defaults_and_overrides() {
    let cli = Cli::try_parse_from([
        "bellwether-agent",
        "--otlp-grpc-addr",
        "127.0.0.1:0",
        "--otlp-http-addr",
        "off",
        "--version",
        "1.2.3",
        "--batch-timeout",
        "250ms",
    ])
    .expect("parses");
    assert_eq!(
        cli.otlp_grpc_addr,
        Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)))
    );
    assert_eq!(cli.otlp_http_addr, Listen::Off);
    assert_eq!(cli.identity_flags().version.as_deref(), Some("1.2.3"));
    let config = cli.config(identity()).expect("valid");
    assert_eq!(config.batch.timeout, Duration::from_millis(250));
    assert_eq!(config.batch.max_records, 4096);
    assert_eq!(config.export_concurrency, 4);
    assert_eq!(config.flush_timeout, Duration::from_secs(30));
    assert_eq!(config.collector, "http://127.0.0.1:4317");
}

#[test]
fn file_globs_from_flags_and_variable_list() {
    let cli = Cli::try_parse_from([
        "bellwether-agent",
        "--file",
        "/var/log/a/*.log",
        "--file",
        "/var/log/b.log,/var/log/c.log",
        "--file-start-at",
        "end",
        "--multiline-timeout",
        "250ms",
    ])
    .expect("parses");
    let config = cli.config(identity()).expect("valid");
    assert_eq!(
        config.files.globs,
        ["/var/log/a/*.log", "/var/log/b.log", "/var/log/c.log"]
    );
    assert_eq!(config.files.start_at, StartAt::End);
    assert_eq!(config.files.multiline.timeout, Duration::from_millis(250));
    assert_eq!(config.multiline.timeout, Duration::from_millis(250));
    assert!(config.exec.is_none());

    let cli = Cli::try_parse_from(["bellwether-agent", "--file", "/var/log/["]).expect("parses");
    let err = cli.config(identity()).expect_err("bad glob");
    assert!(err.to_string().contains("--file"), "{err}");
}

#[test]
fn run_subcommand_keeps_flags_before_and_after_it() {
    let cli = Cli::try_parse_from([
        "bellwether-agent",
        "--service",
        "checkout",
        "run",
        "--version",
        "2",
        "--no-passthrough",
        "--",
        "sh",
        "-c",
        "echo --stdin; exit 3",
    ])
    .expect("parses");
    assert_eq!(cli.identity_flags().service.as_deref(), Some("checkout"));
    assert_eq!(cli.identity_flags().version.as_deref(), Some("2"));
    assert!(!cli.stdin, "arguments after -- belong to the child");
    let exec = cli.config(identity()).expect("valid").exec.expect("exec");
    assert_eq!(exec.program, "sh");
    assert_eq!(exec.args, ["-c", "echo --stdin; exit 3"]);
    assert!(!exec.passthrough);

    let flat = Cli::try_parse_from(["bellwether-agent", "--stdin"]).expect("flat flags");
    assert!(flat.stdin && flat.command.is_none());
    assert!(
        Cli::try_parse_from(["bellwether-agent", "run"]).is_err(),
        "CMD required"
    );
    let both =
        Cli::try_parse_from(["bellwether-agent", "--stdin", "run", "--", "true"]).expect("parses");
    assert_eq!(both.config(identity()).err(), Some(CliError::StdinWithRun));
}

#[test]
fn security_flags() {
    let cli =
        Cli::try_parse_from(["bellwether-agent", "--token", "t0ken-value-12345"]).expect("parses");
    let credentials = cli.credentials().expect("loads");
    assert_eq!(
        credentials.token.map(|t| t.header_value()).as_deref(),
        Some("Bearer t0ken-value-12345")
    );
    assert!(!format!("{cli:?}").contains("t0ken-value-12345"));
    let err = Cli::try_parse_from(["bellwether-agent", "--token", "a", "--token-file", "/tmp/t"])
        .expect_err("exclusive");
    assert!(err.to_string().contains("--token"), "{err}");
    let err = Cli::try_parse_from(["bellwether-agent", "--client-cert", "/tmp/c.pem"])
        .expect_err("needs the key");
    assert!(err.to_string().contains("--client-key"), "{err}");
    let err = Cli::try_parse_from(["bellwether-agent", "--token", "has space"])
        .expect("parses")
        .credentials()
        .expect_err("invalid token");
    assert!(err.to_string().contains("--token"), "{err}");
    assert!(!err.to_string().contains("has space"), "{err}");
    let err = Cli::try_parse_from(["bellwether-agent", "--ca-file", "/nonexistent/ca.pem"])
        .expect("parses")
        .credentials()
        .expect_err("missing file");
    assert!(err.to_string().contains("--ca-file"), "{err}");
}

#[test]
fn bad_values_name_the_flag() {
    let err =
        Cli::try_parse_from(["bellwether-agent", "--admin-addr", "nowhere"]).expect_err("invalid");
    assert!(err.to_string().contains("--admin-addr"), "{err}");
    let err =
        Cli::try_parse_from(["bellwether-agent", "--batch-max-records", "0"]).expect_err("invalid");
    assert!(err.to_string().contains("--batch-max-records"), "{err}");
}
