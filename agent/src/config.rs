//! Validated settings and the listeners bound from them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::batch::Compression;
use crate::export::{Credentials, RetryPolicy};
use crate::identity::Identity;
use crate::parse::MultilineConfig;
use crate::pipeline::BatchConfig;
use crate::sources::exec::ExecConfig;
use crate::sources::files::FilesConfig;

/// Everything [`run`](crate::run) needs besides its sockets and input.
#[derive(Debug, Clone)]
pub struct Config {
    pub identity: Identity,
    /// Collector OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub collector: String,
    /// Token and TLS settings presented to the collector.
    pub credentials: Credentials,
    /// Created at start-up; holds the durable queue.
    pub data_dir: PathBuf,
    pub batch: BatchConfig,
    /// How long shutdown may take to deliver what is queued.
    pub flush_timeout: Duration,
    pub retry: RetryPolicy,
    /// Deadline of one export call.
    pub export_timeout: Duration,
    /// Capacity of the source → pipeline channel, in source messages.
    pub queue_capacity: usize,
    /// Bound of the data handed over by sources and not yet queued, in encoded bytes.
    pub pipeline_max_bytes: usize,
    /// Page cache of the queue's storage engine, in bytes.
    pub queue_cache_bytes: u64,
    /// Compression of queued batches, and so of export requests.
    pub compression: Compression,
    /// Batches in flight to the collector at once.
    pub export_concurrency: usize,
    /// Bound of the durable queue in `data_dir`, in encoded bytes.
    pub queue_max_bytes: u64,
    /// Space kept free on `data_dir`'s file system (0: not checked).
    pub disk_reserve: u64,
    /// Multi-line joining of standard input (files and the child's output carry their own).
    pub multiline: MultilineConfig,
    /// File tailing; off when it has no globs.
    pub files: FilesConfig,
    /// The child run by `bellwether-agent run`.
    pub exec: Option<ExecConfig>,
}

impl Config {
    /// A configuration with the documented defaults.
    pub fn new(identity: Identity) -> Self {
        Self {
            identity,
            collector: "http://127.0.0.1:4317".to_owned(),
            credentials: Credentials::default(),
            data_dir: PathBuf::from("./bellwether-agent-data"),
            batch: BatchConfig {
                max_records: 4096,
                max_bytes: crate::pipeline::DEFAULT_BATCH_MAX_BYTES,
                timeout: Duration::from_secs(1),
            },
            flush_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            export_timeout: Duration::from_secs(10),
            queue_capacity: 1024,
            pipeline_max_bytes: crate::pipeline::DEFAULT_MAX_IN_FLIGHT_BYTES,
            queue_cache_bytes: crate::queue::DEFAULT_CACHE_BYTES,
            compression: Compression::Gzip,
            export_concurrency: crate::export::DEFAULT_CONCURRENCY,
            queue_max_bytes: crate::queue::DEFAULT_MAX_BYTES,
            disk_reserve: crate::queue::disk::DEFAULT_RESERVE_BYTES,
            multiline: MultilineConfig::default(),
            files: FilesConfig::default(),
            exec: None,
        }
    }
}

/// A listener address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.trim()
            .parse()
            .map(Listen::On)
            .map_err(|_| format!("expected HOST:PORT with an IP address, or `off`, got {s:?}"))
    }
}

/// The three listener addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddrs {
    pub otlp_grpc: Listen,
    pub otlp_http: Listen,
    pub admin: Listen,
}

/// Bound sockets, handed to [`run`](crate::run); `None` means disabled.
#[derive(Debug, Default)]
pub struct Listeners {
    pub otlp_grpc: Option<TcpListener>,
    pub otlp_http: Option<TcpListener>,
    pub admin: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({kind}): {source}")]
pub struct BindError {
    kind: &'static str,
    addr: SocketAddr,
    source: std::io::Error,
}

impl Listeners {
    /// Binds every enabled listener.
    pub async fn bind(addrs: &ListenAddrs) -> Result<Self, BindError> {
        Ok(Self {
            otlp_grpc: bind_one("otlp-grpc", addrs.otlp_grpc).await?,
            otlp_http: bind_one("otlp-http", addrs.otlp_http).await?,
            admin: bind_one("admin", addrs.admin).await?,
        })
    }
}

async fn bind_one(kind: &'static str, listen: Listen) -> Result<Option<TcpListener>, BindError> {
    match listen {
        Listen::Off => Ok(None),
        Listen::On(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| BindError { kind, addr, source }),
    }
}

/// Parses `500ms`, `1s`, `1.5s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 500ms, 1s or 2m, got {text:?}"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("duration out of range: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values() {
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!("OFF".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!(
            "127.0.0.1:0".parse::<Listen>(),
            Ok(Listen::On(SocketAddr::from(([127, 0, 0, 1], 0))))
        );
        assert!("localhost".parse::<Listen>().is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("").is_err());
    }

    #[tokio::test]
    async fn binds_port_zero_and_skips_off() {
        let any = Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)));
        let listeners = Listeners::bind(&ListenAddrs {
            otlp_grpc: any,
            otlp_http: Listen::Off,
            admin: any,
        })
        .await
        .expect("binds");
        let port = listeners
            .otlp_grpc
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        assert!(port.is_some_and(|p| p != 0));
        assert!(listeners.otlp_http.is_none());
    }
}
