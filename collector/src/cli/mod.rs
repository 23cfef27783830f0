//! The `bellwether` command line: `serve`, `deploy`, `releases`, `gate`, `alerts`,
//! `owners`, `backup`, `restore`, `demo`.
//!
//! Flags fall back to environment variables (read once, by the parser, in `main`).
//! Exit codes: 0 success, 1 the API rejected the request (or the server failed),
//! 2 usage, configuration or connection error.

pub mod alerts;
mod backup;
mod client;
pub mod demo;
mod deploy;
mod gate;
mod git;
mod history;
pub mod owners;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use client::{encode_component, ApiClient, ClientError};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8480";

#[derive(Debug, Parser)]
#[command(
    name = "bellwether",
    version,
    about = "Bellwether release observability: collector and CLI"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: OTLP ingest, release store and HTTP API.
    Serve(ServeArgs),
    /// Record a deployment.
    Deploy(DeployArgs),
    /// Show release history.
    Releases(ReleasesArgs),
    /// Wait for a release's verdict: exit 0 pass, 1 fail, 2 usage or connection error,
    /// 3 still pending at the timeout.
    Gate(GateArgs),
    /// List, acknowledge and silence alerts.
    Alerts(alerts::AlertsArgs),
    /// Show which team owns a service or a file, and which rule decided it.
    Owners(owners::OwnersArgs),
    /// Write a point-in-time archive of a running collector's store (admin scope).
    Backup(backup::BackupArgs),
    /// Rebuild a data directory from a backup archive (with the collector stopped).
    Restore(backup::RestoreArgs),
    /// Tell the whole story on this machine: a collector, two services, a good and a bad
    /// release, alerts routed to teams, the gate, a roll forward; then serve the UI.
    Demo(demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (keys: data_dir, otlp_grpc_addr, otlp_http_addr, http_addr, and
    /// the [detection] table).
    #[arg(long, env = "BELLWETHER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./bellwether-data].
    #[arg(long, env = "BELLWETHER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (also serves bellwether.v1) [default: 127.0.0.1:4317].
    #[arg(long, env = "BELLWETHER_OTLP_GRPC_ADDR", value_name = "ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// OTLP/HTTP listen address [default: 127.0.0.1:4318].
    #[arg(long, env = "BELLWETHER_OTLP_HTTP_ADDR", value_name = "ADDR")]
    pub otlp_http_addr: Option<String>,
    /// HTTP API listen address [default: 127.0.0.1:8480].
    #[arg(long, env = "BELLWETHER_HTTP_ADDR", value_name = "ADDR")]
    pub http_addr: Option<String>,
    /// Run as a node of a cluster over these NATS servers (comma-separated
    /// nats://host:port URLs); without it, a single collector on its own store.
    #[arg(long, env = "BELLWETHER_CLUSTER", value_name = "URLS")]
    pub cluster: Option<String>,
    /// This node's id in the cluster, unique among its nodes [default: <hostname>-<http port>].
    #[arg(long, env = "BELLWETHER_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// Validate the configuration (routing, receivers, secrets) and exit: 0 ok, 2 error.
    #[arg(long)]
    pub check_config: bool,
    /// Allow listening on a non-loopback address without any [[auth.tokens]] configured.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[arg(long)]
    pub service: String,
    #[arg(long)]
    pub environment: String,
    #[arg(long)]
    pub version: String,
    /// Commit sha of the release.
    #[arg(long)]
    pub commit: Option<String>,
    /// Deploy id from the pipeline.
    #[arg(long)]
    pub deploy_id: Option<String>,
    #[arg(long)]
    pub notes: Option<String>,
    #[arg(long)]
    pub pipeline_url: Option<String>,
    /// Owning team.
    #[arg(long)]
    pub team: Option<String>,
    /// Record the change set from the git checkout (--repo): the commits from the
    /// previous deployment's commit of this service and environment to --commit
    /// (default HEAD), with the files each changed.
    #[arg(long)]
    pub git: bool,
    /// The git checkout --git reads [default: the current directory].
    #[arg(long, value_name = "DIR", requires = "git")]
    pub repo: Option<PathBuf>,
    /// Collector HTTP API base URL. Repeat the flag or separate URLs with commas to name
    /// several nodes of a cluster: when one cannot be reached the next is asked.
    #[arg(long, env = "BELLWETHER_URL", value_name = "URL", default_value = DEFAULT_URL)]
    pub url: Vec<String>,
    /// Bearer token for a collector that requires one.
    #[arg(long, env = "BELLWETHER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    /// Collector HTTP API base URL. Repeat the flag or separate URLs with commas to name
    /// several nodes of a cluster: when one cannot be reached the next is asked.
    #[arg(long, env = "BELLWETHER_URL", value_name = "URL", default_value = DEFAULT_URL)]
    pub url: Vec<String>,
    /// Bearer token for a collector that requires one.
    #[arg(long, env = "BELLWETHER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    #[arg(long)]
    pub service: String,
    #[arg(long)]
    pub version: String,
    #[arg(long)]
    pub environment: String,
    /// Pass only once the release has been deployed at least this long (on top of the
    /// collector's own minimum duration), e.g. 5m.
    #[arg(long, default_value = "0s", value_parser = bellwether_model::config::parse_duration)]
    pub min_duration: Duration,
    /// Give up (exit 3) when no verdict is reached within this long.
    #[arg(long, default_value = "15m", value_parser = bellwether_model::config::parse_duration)]
    pub timeout: Duration,
    /// Let a degraded release pass (an unhealthy one still fails).
    #[arg(long)]
    pub allow_degraded: bool,
    /// Collector HTTP API base URL. Repeat the flag or separate URLs with commas to name
    /// several nodes of a cluster: when one cannot be reached the next is asked.
    #[arg(long, env = "BELLWETHER_URL", value_name = "URL", default_value = DEFAULT_URL)]
    pub url: Vec<String>,
    /// Bearer token for a collector that requires one.
    #[arg(long, env = "BELLWETHER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Releases(args) => history::run(args).await,
        Command::Gate(args) => gate::run(args).await,
        Command::Alerts(args) => alerts::run(args).await,
        Command::Owners(args) => owners::run(args),
        Command::Backup(args) => backup::run_backup(args).await,
        Command::Restore(args) => backup::run_restore(args).await,
        Command::Demo(args) => demo::run(args).await,
    }
}
