//! Command-line interface. Every flag can also be set with its `BELLWETHER_*` variable.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{parse_duration, Config, Listen, ListenAddrs};
use crate::identity::{Identity, IdentityFlags};

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
        long,
        env = "BELLWETHER_COLLECTOR",
        value_name = "URL",
        default_value = "http://127.0.0.1:4317"
    )]
    pub collector: String,

    /// OTLP/gRPC receiver address, or `off`
    #[arg(
        long,
        env = "BELLWETHER_OTLP_GRPC_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc_addr: Listen,

    /// OTLP/HTTP receiver address, or `off`
    #[arg(
        long,
        env = "BELLWETHER_OTLP_HTTP_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:4318"
    )]
    pub otlp_http_addr: Listen,

    /// Admin endpoint (/healthz, /stats) address, or `off`
    #[arg(
        long,
        env = "BELLWETHER_ADMIN_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8481"
    )]
    pub admin_addr: Listen,

    /// Data directory, created at start-up. Reserved for the durable queue, which is not
    /// implemented yet: queued data is held in memory until then
    #[arg(
        long,
        env = "BELLWETHER_DATA_DIR",
        value_name = "DIR",
        default_value = "./bellwether-agent-data"
    )]
    pub data_dir: PathBuf,

    /// Service name (service.name)
    #[arg(long, env = "BELLWETHER_SERVICE", value_name = "S")]
    pub service: Option<String>,

    /// Release version (service.version)
    #[arg(long, env = "BELLWETHER_VERSION", value_name = "V")]
    pub version: Option<String>,

    /// Environment (deployment.environment.name); default `unknown`
    #[arg(long, env = "BELLWETHER_ENVIRONMENT", value_name = "E")]
    pub environment: Option<String>,

    /// Instance id (service.instance.id); default POD_NAME, HOSTNAME, /etc/hostname, random
    #[arg(long, env = "BELLWETHER_INSTANCE_ID", value_name = "I")]
    pub instance_id: Option<String>,

    /// Commit sha (vcs.ref.head.revision)
    #[arg(long, env = "BELLWETHER_COMMIT", value_name = "C")]
    pub commit: Option<String>,

    /// Deploy id from the pipeline (deployment.id)
    #[arg(long, env = "BELLWETHER_DEPLOY_ID", value_name = "D")]
    pub deploy_id: Option<String>,

    /// Owning team (bellwether.team)
    #[arg(long, env = "BELLWETHER_TEAM", value_name = "T")]
    pub team: Option<String>,

    /// KEY=VALUE file with identity values (BELLWETHER_* or attribute names as keys)
    #[arg(long, env = "BELLWETHER_RELEASE_FILE", value_name = "PATH")]
    pub release_file: Option<PathBuf>,

    /// Read log lines from standard input; exit after flushing when it ends
    #[arg(long, env = "BELLWETHER_STDIN")]
    pub stdin: bool,

    /// Tail files matching GLOB (not supported yet: start-up fails if given)
    #[arg(
        long = "file",
        env = "BELLWETHER_FILE",
        value_name = "GLOB",
        value_delimiter = ','
    )]
    pub files: Vec<String>,

    /// Most records in one export batch
    #[arg(
        long,
        env = "BELLWETHER_BATCH_MAX_RECORDS",
        value_name = "N",
        default_value = "512"
    )]
    pub batch_max_records: NonZeroUsize,

    /// Longest a record waits for its batch to fill (e.g. 500ms, 1s)
    #[arg(long, env = "BELLWETHER_BATCH_TIMEOUT", value_name = "DUR", default_value = "1s", value_parser = parse_duration)]
    pub batch_timeout: Duration,

    /// Longest shutdown may spend delivering queued data before giving up (exit 1)
    #[arg(long, env = "BELLWETHER_FLUSH_TIMEOUT", value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub flush_timeout: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error(
        "file tailing is not supported yet: remove --file / BELLWETHER_FILE (use --stdin or OTLP)"
    )]
    FileTailingUnsupported,
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

    /// Checks what cannot be expressed in clap and builds the run configuration.
    pub fn config(&self, identity: Identity) -> Result<Config, CliError> {
        if !self.files.is_empty() {
            return Err(CliError::FileTailingUnsupported);
        }
        let mut config = Config::new(identity);
        config.collector = self.collector.clone();
        config.data_dir = self.data_dir.clone();
        config.batch.max_records = self.batch_max_records.get();
        config.batch.timeout = self.batch_timeout;
        config.flush_timeout = self.flush_timeout;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(config.batch.max_records, 512);
        assert_eq!(config.flush_timeout, Duration::from_secs(30));
        assert_eq!(config.collector, "http://127.0.0.1:4317");
    }

    #[test]
    fn file_flag_is_refused_at_start_up() {
        let cli =
            Cli::try_parse_from(["bellwether-agent", "--file", "/var/log/*.log"]).expect("parses");
        let err = cli.config(identity()).expect_err("unsupported");
        assert!(err
            .to_string()
            .contains("file tailing is not supported yet"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = Cli::try_parse_from(["bellwether-agent", "--admin-addr", "nowhere"])
            .expect_err("invalid");
        assert!(err.to_string().contains("--admin-addr"), "{err}");
        let err = Cli::try_parse_from(["bellwether-agent", "--batch-max-records", "0"])
            .expect_err("invalid");
        assert!(err.to_string().contains("--batch-max-records"), "{err}");
    }
}
