//! Command-line interface. Every flag can also be set with its `BELLWETHER_*` variable.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::batch::Compression;
use crate::config::{parse_duration, Config, Listen, ListenAddrs};
use crate::export::{CredentialSources, Credentials, CredentialsError, Token};
use crate::identity::{Identity, IdentityFlags};
use crate::sources::exec::ExecConfig;
use crate::sources::files::{discover, StartAt};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "bellwether-agent",
    about = "Tags logs and spans with their release identity and ships them to a Bellwether collector",
    long_about = "Tags logs and spans with their release identity and ships them to a Bellwether \
collector.\n\nApplications send OTLP to the agent's gRPC and HTTP receivers, or pipe their output \
into it with --stdin (`my-batch-job | bellwether-agent --stdin`). Identity precedence: flag, then \
BELLWETHER_* variable, then OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, then the release file.",
    disable_version_flag = true
)]
pub struct Cli {
    /// Collector OTLP/gRPC endpoint
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_COLLECTOR",
        value_name = "URL",
        default_value = "http://127.0.0.1:4317"
    )]
    pub collector: String,

    /// OTLP/gRPC receiver address, or `off`
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_OTLP_GRPC_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc_addr: Listen,

    /// OTLP/HTTP receiver address, or `off`
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_OTLP_HTTP_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:4318"
    )]
    pub otlp_http_addr: Listen,

    /// Admin endpoint (/healthz, /stats) address, or `off`
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_ADMIN_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8481"
    )]
    pub admin_addr: Listen,

    /// Data directory, created at start-up; holds the durable queue (`queue/`), whose
    /// batches survive restarts and crashes and are delivered first after a start
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_DATA_DIR",
        value_name = "DIR",
        default_value = "./bellwether-agent-data"
    )]
    pub data_dir: PathBuf,

    /// Service name (service.name)
    #[arg(global = true, long, env = "BELLWETHER_SERVICE", value_name = "S")]
    pub service: Option<String>,

    /// Release version (service.version)
    #[arg(global = true, long, env = "BELLWETHER_VERSION", value_name = "V")]
    pub version: Option<String>,

    /// Environment (deployment.environment.name); default `unknown`
    #[arg(global = true, long, env = "BELLWETHER_ENVIRONMENT", value_name = "E")]
    pub environment: Option<String>,

    /// Instance id (service.instance.id); default POD_NAME, HOSTNAME, /etc/hostname, random
    #[arg(global = true, long, env = "BELLWETHER_INSTANCE_ID", value_name = "I")]
    pub instance_id: Option<String>,

    /// Commit sha (vcs.ref.head.revision)
    #[arg(global = true, long, env = "BELLWETHER_COMMIT", value_name = "C")]
    pub commit: Option<String>,

    /// Deploy id from the pipeline (deployment.id)
    #[arg(global = true, long, env = "BELLWETHER_DEPLOY_ID", value_name = "D")]
    pub deploy_id: Option<String>,

    /// Owning team (bellwether.team)
    #[arg(global = true, long, env = "BELLWETHER_TEAM", value_name = "T")]
    pub team: Option<String>,

    /// KEY=VALUE file with identity values (BELLWETHER_* or attribute names as keys)
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_RELEASE_FILE",
        value_name = "PATH"
    )]
    pub release_file: Option<PathBuf>,

    /// Kubernetes labels file (a Downward API volume: key="value" per line):
    /// app.kubernetes.io/name and app.kubernetes.io/version give service and version;
    /// bellwether.io/environment, team, commit and deploy-id the rest. Read after the
    /// release file.
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_K8S_LABELS_FILE",
        value_name = "PATH"
    )]
    pub k8s_labels_file: Option<PathBuf>,

    /// Read log lines from standard input; exit after flushing when it ends
    #[arg(global = true, long, env = "BELLWETHER_STDIN")]
    pub stdin: bool,

    /// Tail files matching GLOB (repeatable; the variable takes a comma-separated list).
    /// New matching files are found within a second; rotation by rename and by
    /// copytruncate is followed; positions are kept in the data directory
    #[arg(
        global = true,
        long = "file",
        env = "BELLWETHER_FILE",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub files: Vec<String>,

    /// Where to start a file that has no saved position and exists at start-up:
    /// `beginning` or `end`. Files that appear later are always read from their start
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_FILE_START_AT",
        value_name = "WHERE",
        default_value = "beginning"
    )]
    pub file_start_at: StartAt,

    /// A multi-line record (a log line and the stack trace under it) is complete once no
    /// line followed for this long
    #[arg(global = true, long, env = "BELLWETHER_MULTILINE_TIMEOUT", value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub multiline_timeout: Duration,

    /// Most records in one export batch (also bounded to 4 MiB encoded). Batches are cut
    /// from what is waiting, never held back to fill up, so a large bound costs a quiet
    /// service nothing and saves a busy one per-batch work on both sides
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_BATCH_MAX_RECORDS",
        value_name = "N",
        default_value = "4096"
    )]
    pub batch_max_records: NonZeroUsize,

    /// Longest a record waits for its batch to fill (e.g. 500ms, 1s)
    #[arg(global = true, long, env = "BELLWETHER_BATCH_TIMEOUT", value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub batch_timeout: Duration,

    /// Longest shutdown may spend delivering queued data; what is left stays queued in
    /// the data directory for the next start (exit 0)
    #[arg(global = true, long, env = "BELLWETHER_FLUSH_TIMEOUT", value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub flush_timeout: Duration,

    /// Bound of the durable queue, in stored (compressed) bytes (e.g. 65536, 64KiB, 256MiB).
    /// When full, files and stdin wait and OTLP requests wait up to 10 s, then get
    /// RESOURCE_EXHAUSTED / 429
    #[arg(global = true, long, env = "BELLWETHER_QUEUE_MAX_BYTES", value_name = "SIZE", default_value = "256MiB", value_parser = crate::queue::parse_byte_size)]
    pub queue_max_bytes: u64,

    /// Space to keep free on the data directory's file system (e.g. 32MiB; 0 = no check).
    /// Below it the agent holds its sources back as for a full queue (OTLP gets
    /// RESOURCE_EXHAUSTED / 503), keeps what it acknowledged, and resumes when space is back
    #[arg(global = true, long, env = "BELLWETHER_DISK_RESERVE", value_name = "SIZE", default_value = "32MiB", value_parser = crate::queue::disk::parse_reserve)]
    pub disk_reserve: u64,

    /// Memory the durable queue's metadata database may use as page cache (e.g. 8MiB)
    #[arg(global = true, long, env = "BELLWETHER_QUEUE_CACHE_BYTES", value_name = "SIZE", default_value = "8MiB", value_parser = crate::queue::parse_byte_size)]
    pub queue_cache_bytes: u64,

    /// Compression of the batches sent to the collector: gzip or none. Batches are
    /// compressed once, when they are queued
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_COMPRESSION",
        value_name = "ALGO",
        default_value = "gzip"
    )]
    pub compression: Compression,

    /// Most batches in flight to the collector at once
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_EXPORT_CONCURRENCY",
        value_name = "N",
        default_value = "4"
    )]
    pub export_concurrency: NonZeroUsize,

    /// Bearer token sent to the collector with every export (a token with the `ingest`
    /// scope); never logged
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<Token>,

    /// File holding the bearer token (surrounding whitespace ignored)
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub token_file: Option<PathBuf>,

    /// PEM CA certificate(s) trusted for an https:// collector instead of the built-in
    /// Mozilla roots
    #[arg(global = true, long, env = "BELLWETHER_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// PEM client certificate chain presented to the collector (mTLS); needs --client-key
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_CLIENT_CERT",
        value_name = "PEM",
        requires = "client_key"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of --client-cert
    #[arg(
        global = true,
        long,
        env = "BELLWETHER_CLIENT_KEY",
        value_name = "PEM",
        requires = "client_cert"
    )]
    pub client_key: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one the agent runs its receivers (and `--stdin`, `--file`).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run CMD as a child process and ship its stdout and stderr as logs; the agent
    /// forwards SIGTERM / SIGINT to it and exits with its exit code
    /// (`bellwether-agent run --service checkout -- java -jar app.jar`)
    Run(RunArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Do not copy the child's output to the agent's own stdout / stderr
    #[arg(long, env = "BELLWETHER_NO_PASSTHROUGH")]
    pub no_passthrough: bool,

    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("invalid --file / BELLWETHER_FILE: {0}")]
    InvalidGlob(String),
    #[error("--stdin cannot be combined with `run`: the child reads standard input")]
    StdinWithRun,
}

impl Cli {
    /// The identity values given on the command line (or their variables).
    pub fn identity_flags(&self) -> IdentityFlags {
        IdentityFlags {
            service: self.service.clone(),
            version: self.version.clone(),
            environment: self.environment.clone(),
            instance_id: self.instance_id.clone(),
            commit: self.commit.clone(),
            deploy_id: self.deploy_id.clone(),
            team: self.team.clone(),
        }
    }

    pub fn listen_addrs(&self) -> ListenAddrs {
        ListenAddrs {
            otlp_grpc: self.otlp_grpc_addr,
            otlp_http: self.otlp_http_addr,
            admin: self.admin_addr,
        }
    }

    /// Reads the token file and the PEM files named on the command line.
    pub fn credentials(&self) -> Result<Credentials, CredentialsError> {
        Credentials::load(&CredentialSources {
            token: self.token.as_ref(),
            token_file: self.token_file.as_deref(),
            ca_file: self.ca_file.as_deref(),
            client_cert: self.client_cert.as_deref().zip(self.client_key.as_deref()),
        })
    }

    /// Checks what cannot be expressed in clap and builds the run configuration.
    pub fn config(&self, identity: Identity) -> Result<Config, CliError> {
        discover::validate(&self.files).map_err(CliError::InvalidGlob)?;
        let mut config = Config::new(identity);
        config.multiline.timeout = self.multiline_timeout;
        config.files.globs = self.files.clone();
        config.files.start_at = self.file_start_at;
        config.files.multiline = config.multiline;
        if let Some(Command::Run(run)) = &self.command {
            if self.stdin {
                return Err(CliError::StdinWithRun);
            }
            let (program, args) = match run.command.split_first() {
                Some((program, args)) => (program.clone(), args.to_vec()),
                None => (String::new(), Vec::new()),
            };
            config.exec = Some(ExecConfig {
                program,
                args,
                passthrough: !run.no_passthrough,
                multiline: config.multiline,
            });
        }
        config.collector = self.collector.clone();
        config.data_dir = self.data_dir.clone();
        config.batch.max_records = self.batch_max_records.get();
        config.batch.timeout = self.batch_timeout;
        config.flush_timeout = self.flush_timeout;
        config.queue_max_bytes = self.queue_max_bytes;
        config.disk_reserve = self.disk_reserve;
        config.queue_cache_bytes = self.queue_cache_bytes;
        config.compression = self.compression;
        config.export_concurrency = self.export_concurrency.get();
        Ok(config)
    }
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
