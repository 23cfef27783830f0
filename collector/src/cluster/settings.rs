//! The `[cluster]` config section and its flags.
//!
//! | key | flag | env | default |
//! |---|---|---|---|
//! | `servers` | `--cluster URLS` | `BELLWETHER_CLUSTER` | none: a single collector |
//! | `node_id` | `--node-id ID` | `BELLWETHER_NODE_ID` | `<hostname>-<http port>` |
//! | `partitions` | | | 64 |
//! | `replicas` | | | 3 |
//! | `prefix` | | | `bellwether` |
//! | `lease_ttl` | | | `3s` |
//! | `credentials` | | | none (a NATS `.creds` file) |
//! | `advertise` | | | `http://<http_addr>` |

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use bellwether_model::config::{parse_duration, ConfigError};

/// The section as written; unknown keys are refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub servers: Option<Vec<String>>,
    pub node_id: Option<String>,
    pub partitions: Option<u32>,
    pub replicas: Option<usize>,
    pub prefix: Option<String>,
    pub lease_ttl: Option<String>,
    pub credentials: Option<PathBuf>,
    pub advertise: Option<String>,
}

/// A validated cluster configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `nats://host:port` URLs of the NATS servers.
    pub servers: Vec<String>,
    pub node_id: String,
    pub partitions: u32,
    pub replicas: usize,
    pub prefix: String,
    pub lease_ttl: Duration,
    pub credentials: Option<PathBuf>,
    /// Where other nodes and users reach this node's HTTP API.
    pub advertise: String,
}

fn invalid(key: &str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("cluster.{key}"),
        value: value.into(),
        reason: reason.into(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

impl RawCluster {
    /// `None` when no server is given (a single collector). `servers` and `node_id`
    /// from flags beat the file; `http_addr` gives the default node id and address.
    pub fn resolve(
        self,
        servers: Option<String>,
        node_id: Option<String>,
        http_addr: std::net::SocketAddr,
    ) -> Result<Option<ClusterSettings>, ConfigError> {
        let servers: Vec<String> = match servers {
            Some(list) => list
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            None => self.servers.unwrap_or_default(),
        };
        if servers.is_empty() {
            return Ok(None);
        }
        for server in &servers {
            server.parse::<async_nats::ServerAddr>().map_err(|e| {
                invalid(
                    "servers",
                    server.as_str(),
                    format!("{e} (expected nats://host:port)"),
                )
            })?;
        }
        let node_id = node_id
            .or(self.node_id)
            .unwrap_or_else(|| format!("{}-{}", hostname(), http_addr.port()));
        if node_id.is_empty()
            || node_id.len() > 128
            || !node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(invalid(
                "node_id",
                node_id,
                "1–128 characters of letters, digits, '-', '_', '.', ':'",
            ));
        }
        let partitions = self.partitions.unwrap_or(64);
        if !(1..=4096).contains(&partitions) {
            return Err(invalid(
                "partitions",
                partitions.to_string(),
                "must be 1–4096",
            ));
        }
        let replicas = self.replicas.unwrap_or(3);
        if ![1, 3, 5].contains(&replicas) {
            return Err(invalid(
                "replicas",
                replicas.to_string(),
                "must be 1, 3 or 5",
            ));
        }
        let prefix = self.prefix.unwrap_or_else(|| "bellwether".to_owned());
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid("prefix", prefix, "letters, digits and '_' only"));
        }
        let lease_ttl = match self.lease_ttl {
            None => Duration::from_secs(3),
            Some(text) => {
                parse_duration(&text).map_err(|e| invalid("lease_ttl", text.as_str(), e))?
            }
        };
        if lease_ttl < Duration::from_millis(500) || lease_ttl > Duration::from_secs(300) {
            return Err(invalid(
                "lease_ttl",
                format!("{lease_ttl:?}"),
                "must be between 500ms and 5m",
            ));
        }
        let advertise = self
            .advertise
            .unwrap_or_else(|| format!("http://{http_addr}"));
        Ok(Some(ClusterSettings {
            servers,
            node_id,
            partitions,
            replicas,
            prefix,
            lease_ttl,
            credentials: self.credentials,
            advertise,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], 8480))
    }

    #[test]
    fn no_servers_is_a_single_collector() {
        assert_eq!(
            RawCluster::default().resolve(None, None, addr()).ok(),
            Some(None)
        );
        assert_eq!(
            RawCluster::default()
                .resolve(Some(" , ".into()), None, addr())
                .ok(),
            Some(None)
        );
    }

    #[test]
    fn flags_beat_the_file_and_defaults_apply() -> Result<(), ConfigError> {
        let raw = RawCluster {
            servers: Some(vec!["nats://a:4222".into()]),
            node_id: Some("file".into()),
            ..RawCluster::default()
        };
        let settings = raw
            .resolve(
                Some("nats://127.0.0.1:4222,nats://127.0.0.1:4223".into()),
                Some("n1".into()),
                addr(),
            )?
            .ok_or_else(|| invalid("servers", "", "missing"))?;
        assert_eq!(settings.servers.len(), 2);
        assert_eq!(settings.node_id, "n1");
        assert_eq!((settings.partitions, settings.replicas), (64, 3));
        assert_eq!(settings.lease_ttl, Duration::from_secs(3));
        assert_eq!(settings.advertise, "http://127.0.0.1:8480");
        Ok(())
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                RawCluster {
                    partitions: Some(0),
                    ..RawCluster::default()
                },
                "cluster.partitions",
            ),
            (
                RawCluster {
                    replicas: Some(2),
                    ..RawCluster::default()
                },
                "cluster.replicas",
            ),
            (
                RawCluster {
                    lease_ttl: Some("1ms".into()),
                    ..RawCluster::default()
                },
                "cluster.lease_ttl",
            ),
            (
                RawCluster {
                    node_id: Some("a b".into()),
                    ..RawCluster::default()
                },
                "cluster.node_id",
            ),
            (
                RawCluster {
                    prefix: Some("a.b".into()),
                    ..RawCluster::default()
                },
                "cluster.prefix",
            ),
        ];
        for (raw, key) in cases {
            let err = raw
                .resolve(Some("nats://127.0.0.1:4222".into()), None, addr())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(key), "{key}: {err}");
        }
        let err = RawCluster::default()
            .resolve(Some("not a url at all".into()), None, addr())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("cluster.servers"), "{err}");
    }
}
