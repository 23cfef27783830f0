//! The `bellwether` command line: `serve`, `deploy`, `releases`.
//!
//! Flags fall back to environment variables (read once, by the parser, in `main`).
//! Exit codes: 0 success, 1 the API rejected the request (or the server failed),
//! 2 usage, configuration or connection error.

mod client;
mod deploy;
mod history;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use client::{ApiClient, ClientError};

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
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file (keys: data_dir, otlp_grpc_addr, otlp_http_addr, http_addr).
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
    /// Collector HTTP API base URL.
    #[arg(long, env = "BELLWETHER_URL", default_value = DEFAULT_URL)]
    pub url: String,
}

#[derive(Debug, Args)]
pub struct ReleasesArgs {
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub environment: Option<String>,
    /// Collector HTTP API base URL.
    #[arg(long, env = "BELLWETHER_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Releases(args) => history::run(args).await,
    }
}
