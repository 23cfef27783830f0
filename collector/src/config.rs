//! `bellwether serve` settings: flag or environment variable, else config file (TOML),
//! else default; validated into typed values. Errors name the offending key.
//!
//! | key | flag | env | default |
//! |---|---|---|---|
//! | (config file path) | `--config` | `BELLWETHER_CONFIG` | none |
//! | `data_dir` | `--data-dir` | `BELLWETHER_DATA_DIR` | `./bellwether-data` |
//! | `otlp_grpc_addr` | `--otlp-grpc-addr` | `BELLWETHER_OTLP_GRPC_ADDR` | `127.0.0.1:4317` |
//! | `otlp_http_addr` | `--otlp-http-addr` | `BELLWETHER_OTLP_HTTP_ADDR` | `127.0.0.1:4318` |
//! | `http_addr` | `--http-addr` | `BELLWETHER_HTTP_ADDR` | `127.0.0.1:8480` |
//!
//! The `[detection]` table (file only) is validated by [`crate::evaluate::settings`].
//! `[routing]`, `[[teams]]` and `[[receivers]]` (file only) by [`bellwether_alerting::routing::config`].
//! `[[auth.tokens]]` (file only) by [`crate::auth::config`]; `[limits]` by [`crate::limits`];
//! `[retention]` by [`crate::retention`]; `[tls]` by [`crate::tls`]; `[cluster]` (and
//! `--cluster`, `--node-id`) by [`crate::cluster::settings`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bellwether_model::config::ConfigError;

use bellwether_alerting::routing::config::{
    validate, Alerting, AlertingConfig, RoutingConfigError, Source,
};

use serde::Deserialize;

use crate::evaluate::settings::{self as detection, DetectionFile, DetectionSettings};

pub const DEFAULT_DATA_DIR: &str = "./bellwether-data";
pub const DEFAULT_OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
pub const DEFAULT_OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8480";

/// Validated serve settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub detection: DetectionSettings,
    /// Routing and receivers; `bellwether serve` fills it via [`bellwether_alerting::routing::config`].
    pub alerting: bellwether_alerting::routing::config::Alerting,
    /// Bearer tokens; `bellwether serve` fills them via [`crate::auth::config`]. Empty
    /// means no authentication.
    pub auth: crate::auth::Tokens,
    /// Bounds on what clients can make the collector hold (`[limits]`).
    pub limits: crate::limits::Limits,
    /// How long data is kept (`[retention]`).
    pub retention: crate::retention::Retention,
    /// TLS for every listener; `bellwether serve` fills it via [`crate::tls::load`].
    pub tls: Option<crate::tls::TlsSettings>,
    /// A node of a cluster (`--cluster`, `[cluster]`); `None`: a single collector.
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl Settings {
    /// Settings with every listener on an ephemeral loopback port (for tests and demos).
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: data_dir.into(),
            otlp_grpc_addr: any,
            otlp_http_addr: any,
            http_addr: any,
            detection: DetectionSettings::default(),
            alerting: bellwether_alerting::routing::config::Alerting::default(),
            auth: crate::auth::Tokens::default(),
            limits: crate::limits::Limits::default(),
            retention: crate::retention::Retention::default(),
            tls: None,
            cluster: None,
        }
    }
}

/// The config file as written: every key optional, unknown keys rejected.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub otlp_grpc_addr: Option<String>,
    pub otlp_http_addr: Option<String>,
    pub http_addr: Option<String>,
    pub detection: Option<DetectionFile>,
    /// `[routing]`, `[[teams]]`, `[[receivers]]`: validated by [`bellwether_alerting::routing::config`].
    pub routing: Option<bellwether_alerting::routing::config::RawRouting>,
    #[serde(default)]
    pub teams: Vec<toml::Spanned<bellwether_alerting::routing::config::RawTeam>>,
    #[serde(default)]
    pub receivers: Vec<toml::Spanned<bellwether_alerting::routing::config::RawReceiver>>,
    /// `[[auth.tokens]]`: validated by [`crate::auth::config`].
    pub auth: Option<crate::auth::config::RawAuth>,
    /// `[limits]`: see [`crate::limits`].
    pub limits: Option<crate::limits::RawLimits>,
    /// `[retention]`: see [`crate::retention`].
    pub retention: Option<crate::retention::RawRetention>,
    /// `[tls]`: read by [`crate::tls::load`].
    pub tls: Option<crate::tls::RawTls>,
    /// `[cluster]`: see [`crate::cluster::settings`].
    pub cluster: Option<crate::cluster::RawCluster>,
}

/// Values given on the command line or in the environment; they beat the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub otlp_grpc_addr: Option<String>,
    pub otlp_http_addr: Option<String>,
    pub http_addr: Option<String>,
    /// `--cluster`: comma-separated NATS URLs.
    pub cluster: Option<String>,
    pub node_id: Option<String>,
}

/// Reads and parses a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(path, &text)
}

pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })
}

fn addr(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    value
        .trim()
        .parse()
        .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
            key: key.to_owned(),
            value: value.clone(),
            reason: format!("{e} (expected IP:PORT, e.g. {default})"),
        })
}

/// Merges overrides over the file over defaults and validates the result.
pub fn resolve(overrides: Overrides, file: FileConfig) -> Result<Settings, ConfigError> {
    let data_dir = overrides
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    if data_dir.as_os_str().is_empty() {
        return Err(ConfigError::Invalid {
            key: "data_dir".to_owned(),
            value: String::new(),
            reason: "must not be empty".to_owned(),
        });
    }
    let http_addr = addr(
        "http_addr",
        overrides.http_addr.or(file.http_addr),
        DEFAULT_HTTP_ADDR,
    )?;
    let cluster = file.cluster.unwrap_or_default().resolve(
        overrides.cluster,
        overrides.node_id,
        http_addr,
    )?;
    Ok(Settings {
        data_dir,
        otlp_grpc_addr: addr(
            "otlp_grpc_addr",
            overrides.otlp_grpc_addr.or(file.otlp_grpc_addr),
            DEFAULT_OTLP_GRPC_ADDR,
        )?,
        otlp_http_addr: addr(
            "otlp_http_addr",
            overrides.otlp_http_addr.or(file.otlp_http_addr),
            DEFAULT_OTLP_HTTP_ADDR,
        )?,
        http_addr,
        detection: detection::resolve(file.detection.as_ref())?,
        alerting: bellwether_alerting::routing::config::Alerting::default(),
        auth: crate::auth::Tokens::default(),
        limits: file.limits.unwrap_or_default().resolve()?,
        retention: file.retention.unwrap_or_default().resolve()?,
        tls: None,
        cluster,
    })
}

/// Validates the routing sections and resolves secrets; `env` looks up environment
/// variables (read by the caller, so tests pass their own).
pub fn load_alerting(
    file: &FileConfig,
    text: Option<&str>,
    config_path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Alerting, RoutingConfigError> {
    let config = alerting_from_file(file, text, config_path)?;
    let receivers = config.resolve_receivers(env)?;
    Ok(Alerting { config, receivers })
}

/// A config file's parse error with its line, e.g. `c.toml: line 12: unknown field ...`.
pub fn describe_parse_error(path: &Path, text: &str) -> Option<String> {
    let error = toml::from_str::<FileConfig>(text).err()?;
    let line = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| before.matches('\n').count() + 1);
    Some(match line {
        Some(line) => format!("{}: line {line}: {}", path.display(), error.message()),
        None => format!("{}: {}", path.display(), error.message()),
    })
}

/// Validates the routing sections of a parsed config file; `text` gives line numbers.
pub fn alerting_from_file(
    file: &FileConfig,
    text: Option<&str>,
    config_path: Option<&Path>,
) -> Result<AlertingConfig, RoutingConfigError> {
    let dir = config_path
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("."));
    validate(
        file.routing.as_ref(),
        &file.teams,
        &file.receivers,
        &Source { text, dir },
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn defaults_apply() -> Result<(), ConfigError> {
        let settings = resolve(Overrides::default(), FileConfig::default())?;
        assert_eq!(settings.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(settings.otlp_grpc_addr.port(), 4317);
        assert_eq!(settings.otlp_http_addr.port(), 4318);
        assert_eq!(settings.http_addr.port(), 8480);
        Ok(())
    }

    #[test]
    fn overrides_beat_file() -> Result<(), ConfigError> {
        let file = parse_file(
            Path::new("b.toml"),
            "data_dir = \"/var/lib/bw\"\nhttp_addr = \"0.0.0.0:9000\"\notlp_grpc_addr = \"127.0.0.1:0\"\n",
        )?;
        let overrides = Overrides {
            http_addr: Some("127.0.0.1:9001".into()),
            ..Overrides::default()
        };
        let settings = resolve(overrides, file)?;
        assert_eq!(settings.data_dir, PathBuf::from("/var/lib/bw"));
        assert_eq!(
            settings.http_addr,
            "127.0.0.1:9001".parse().map_err(|_| ConfigError::Parse {
                path: PathBuf::new(),
                message: String::new()
            })?
        );
        assert_eq!(settings.otlp_grpc_addr.port(), 0);
        Ok(())
    }

    #[test]
    fn detection_table_is_validated() {
        let file = parse_file(
            Path::new("b.toml"),
            "[detection]\nmin_duration = \"10s\"\n[[detection.services]]\nmatch = \"pay*\"\nrho = 3.0\n",
        );
        let settings = file.and_then(|f| resolve(Overrides::default(), f));
        let settings = settings.map_err(|e| e.to_string());
        assert!(
            settings
                .as_ref()
                .is_ok_and(
                    |s| s.detection.for_service("payments").thresholds.rho == 3.0
                        && s.detection.defaults.thresholds.min_duration == Duration::from_secs(10)
                ),
            "{settings:?}"
        );
        let err = parse_file(Path::new("b.toml"), "[detection]\nalhpa = 0.1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("alhpa"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = parse_file(Path::new("b.toml"), "http_adr = \"x\"\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("http_adr"), "{err}");

        let overrides = Overrides {
            otlp_http_addr: Some("localhost".into()),
            ..Overrides::default()
        };
        let err = resolve(overrides, FileConfig::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("invalid otlp_http_addr \"localhost\""),
            "{err}"
        );
    }
}
