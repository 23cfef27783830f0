//! Bounds on what one client can make the collector hold: every limit has a safe
//! default, can be changed in the `[limits]` table of the config file, answers a
//! violation with a clear error (or a cap), and counts it in
//! `bellwether_limit_exceeded_total{limit=…}` on `/metrics`.
//!
//! | key | default | on violation |
//! |---|---|---|
//! | `max_request_bytes` | 16 MiB | request refused: HTTP 413 / gRPC OUT_OF_RANGE (compressed and decompressed size) |
//! | `max_records_per_request` | 100,000 | request refused: HTTP 400 / gRPC INVALID_ARGUMENT |
//! | `max_attributes_per_record` | 128 | further attributes of the record (or resource) dropped |
//! | `max_attribute_key_bytes` | 256 | attribute dropped |
//! | `max_attribute_value_bytes` | 4,096 | string value truncated (release identity values: 256 bytes) |
//! | `max_services` | 1,000 | request refused when it brings a service beyond the limit |
//! | `max_versions_per_service` | 1,000 | request refused when it brings a version beyond the limit |
//! | `max_inflight_ingest` | 64 | OTLP requests being stored at once; a further request waits up to `ingest_admission_wait`, then is refused: HTTP 429 with `Retry-After: 1` / gRPC RESOURCE_EXHAUSTED (counted as limit="inflight") |
//! | `ingest_admission_wait` | 100ms | how long a request waits for an ingest slot (a duration: `250ms`, `1s`) |
//! | fingerprints per release | 1,000 (fixed) | further fingerprints count under `other` |
//! | samples per issue, latency samples per bucket | 5, 256 (fixed) | further samples replace older ones (reservoir) |
//!
//! Refused requests are not retryable (the sender should split or drop them), except
//! those refused for overload, which the sender should retry later. The service
//! and version limits apply to telemetry; deployments recorded through the API are
//! authenticated and limited to 256-byte names.

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use bellwether_proto::otlp::common::{any_value, KeyValue};
use bellwether_proto::otlp::logs_service::ExportLogsServiceRequest;
use bellwether_proto::otlp::trace_service::ExportTraceServiceRequest;
use serde::Deserialize;

use bellwether_model::config::ConfigError;
use bellwether_model::limit::{hit, Limit};

use crate::error::Error;
use bellwether_model::release::ReleaseKey;

/// Release identity attributes are names and keys: shorter than other values.
pub const MAX_IDENTITY_BYTES: usize = 256;
const IDENTITY_KEYS: [&str; 8] = [
    "service.name",
    "service.version",
    "deployment.environment.name",
    "deployment.environment",
    "service.instance.id",
    "vcs.ref.head.revision",
    "deployment.id",
    "bellwether.team",
];

/// Validated limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_records_per_request: usize,
    pub max_attributes_per_record: usize,
    pub max_attribute_key_bytes: usize,
    pub max_attribute_value_bytes: usize,
    pub max_services: usize,
    pub max_versions_per_service: usize,
    /// OTLP requests summarized and stored at once.
    pub max_inflight_ingest: usize,
    /// How long a request waits for one of those slots before it is refused.
    pub ingest_admission_wait: Duration,
    /// Ingest is refused (retryably) while the data directory's file system has less than
    /// this free; 0 turns the check off.
    pub min_free_disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 * 1024 * 1024,
            max_records_per_request: 100_000,
            max_attributes_per_record: 128,
            max_attribute_key_bytes: 256,
            max_attribute_value_bytes: 4096,
            max_services: 1_000,
            max_versions_per_service: 1_000,
            max_inflight_ingest: 64,
            ingest_admission_wait: Duration::from_millis(100),
            min_free_disk_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The `[limits]` table as written; every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_request_bytes: Option<usize>,
    pub max_records_per_request: Option<usize>,
    pub max_attributes_per_record: Option<usize>,
    pub max_attribute_key_bytes: Option<usize>,
    pub max_attribute_value_bytes: Option<usize>,
    pub max_services: Option<usize>,
    pub max_versions_per_service: Option<usize>,
    pub max_inflight_ingest: Option<usize>,
    /// A duration such as `100ms` or `1s`.
    pub ingest_admission_wait: Option<String>,
    pub min_free_disk_bytes: Option<u64>,
}

impl RawLimits {
    pub fn resolve(&self) -> Result<Limits, ConfigError> {
        let d = Limits::default();
        let pick = |key: &str, value: Option<usize>, default: usize, min: usize| {
            let value = value.unwrap_or(default);
            if value < min {
                return Err(ConfigError::Invalid {
                    key: format!("limits.{key}"),
                    value: value.to_string(),
                    reason: format!("must be at least {min}"),
                });
            }
            Ok(value)
        };
        Ok(Limits {
            max_request_bytes: pick(
                "max_request_bytes",
                self.max_request_bytes,
                d.max_request_bytes,
                1024,
            )?,
            max_records_per_request: pick(
                "max_records_per_request",
                self.max_records_per_request,
                d.max_records_per_request,
                1,
            )?,
            max_attributes_per_record: pick(
                "max_attributes_per_record",
                self.max_attributes_per_record,
                d.max_attributes_per_record,
                // Room for the release identity.
                IDENTITY_KEYS.len(),
            )?,
            max_attribute_key_bytes: pick(
                "max_attribute_key_bytes",
                self.max_attribute_key_bytes,
                d.max_attribute_key_bytes,
                32,
            )?,
            max_attribute_value_bytes: pick(
                "max_attribute_value_bytes",
                self.max_attribute_value_bytes,
                d.max_attribute_value_bytes,
                MAX_IDENTITY_BYTES,
            )?,
            max_services: pick("max_services", self.max_services, d.max_services, 1)?,
            max_versions_per_service: pick(
                "max_versions_per_service",
                self.max_versions_per_service,
                d.max_versions_per_service,
                1,
            )?,
            max_inflight_ingest: pick(
                "max_inflight_ingest",
                self.max_inflight_ingest,
                d.max_inflight_ingest,
                1,
            )?,
            ingest_admission_wait: match &self.ingest_admission_wait {
                None => d.ingest_admission_wait,
                Some(text) => bellwether_model::config::parse_duration(text).map_err(|reason| {
                    ConfigError::Invalid {
                        key: "limits.ingest_admission_wait".to_owned(),
                        value: text.clone(),
                        reason,
                    }
                })?,
            },
            min_free_disk_bytes: self.min_free_disk_bytes.unwrap_or(d.min_free_disk_bytes),
        })
    }
}

/// Refuses a request with more records than allowed.
pub fn check_records(limits: &Limits, records: usize) -> Result<(), Error> {
    if records > limits.max_records_per_request {
        hit(Limit::RecordsPerRequest, 1);
        return Err(Error::LimitExceeded(format!(
            "request has {records} records, more than max_records_per_request = {}: send smaller batches",
            limits.max_records_per_request
        )));
    }
    Ok(())
}

/// Caps the attributes of every resource and record of a logs request in place.
pub fn cap_logs(limits: &Limits, request: &mut ExportLogsServiceRequest) {
    for resource_logs in &mut request.resource_logs {
        if let Some(resource) = &mut resource_logs.resource {
            cap_attributes(limits, &mut resource.attributes);
        }
        for scope in &mut resource_logs.scope_logs {
            for record in &mut scope.log_records {
                cap_attributes(limits, &mut record.attributes);
            }
        }
    }
}

/// Caps the attributes of every resource, span and span event of a traces request.
pub fn cap_traces(limits: &Limits, request: &mut ExportTraceServiceRequest) {
    for resource_spans in &mut request.resource_spans {
        if let Some(resource) = &mut resource_spans.resource {
            cap_attributes(limits, &mut resource.attributes);
        }
        for scope in &mut resource_spans.scope_spans {
            for span in &mut scope.spans {
                cap_attributes(limits, &mut span.attributes);
                for event in &mut span.events {
                    cap_attributes(limits, &mut event.attributes);
                }
            }
        }
    }
}

/// Drops attributes with over-long keys and those past the count limit, and truncates
/// over-long string values (at a character boundary).
pub fn cap_attributes(limits: &Limits, attributes: &mut Vec<KeyValue>) {
    let before = attributes.len();
    attributes.retain(|kv| kv.key.len() <= limits.max_attribute_key_bytes);
    let long_keys = before - attributes.len();
    if long_keys > 0 {
        hit(Limit::AttributeKeyBytes, long_keys as u64);
    }
    if attributes.len() > limits.max_attributes_per_record {
        hit(
            Limit::AttributesPerRecord,
            (attributes.len() - limits.max_attributes_per_record) as u64,
        );
        attributes.truncate(limits.max_attributes_per_record);
    }
    let mut cut = 0;
    for kv in attributes.iter_mut() {
        let max = if IDENTITY_KEYS.contains(&kv.key.as_str()) {
            MAX_IDENTITY_BYTES
        } else {
            limits.max_attribute_value_bytes
        };
        if let Some(any_value::Value::StringValue(text)) =
            kv.value.as_mut().and_then(|v| v.value.as_mut())
        {
            if text.len() > max {
                let mut end = max;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                cut += 1;
            }
        }
    }
    if cut > 0 {
        hit(Limit::AttributeValueBytes, cut);
    }
}

/// The services and versions seen so far, so new ones can be refused past the limits.
#[derive(Debug, Default)]
pub struct Seen {
    versions: HashMap<String, HashSet<String>>,
}

impl Seen {
    pub fn new(known: impl IntoIterator<Item = ReleaseKey>) -> Self {
        let mut seen = Self::default();
        for release in known {
            seen.versions
                .entry(release.service)
                .or_default()
                .insert(release.version);
        }
        seen
    }

    /// Admits every release of a request, or none: refused when one would bring a
    /// service or a version past the limits.
    pub fn admit<'r>(
        &mut self,
        limits: &Limits,
        releases: impl IntoIterator<Item = &'r ReleaseKey> + Clone,
    ) -> Result<(), Error> {
        let mut new_services = HashSet::new();
        let mut new_versions: HashMap<&str, HashSet<&str>> = HashMap::new();
        for release in releases.clone() {
            match self.versions.get(&release.service) {
                Some(versions) if versions.contains(&release.version) => continue,
                Some(_) => {}
                None => {
                    new_services.insert(release.service.as_str());
                }
            }
            new_versions
                .entry(release.service.as_str())
                .or_default()
                .insert(release.version.as_str());
        }
        if !new_services.is_empty()
            && self.versions.len() + new_services.len() > limits.max_services
        {
            hit(Limit::Services, 1);
            let mut names: Vec<_> = new_services.into_iter().collect();
            names.sort_unstable();
            return Err(Error::LimitExceeded(format!(
                "service limit reached (max_services = {}): {} not accepted",
                limits.max_services,
                names.join(", ")
            )));
        }
        for (service, versions) in &new_versions {
            let known = self.versions.get(*service).map_or(0, HashSet::len);
            if known + versions.len() > limits.max_versions_per_service {
                hit(Limit::VersionsPerService, 1);
                return Err(Error::LimitExceeded(format!(
                    "version limit of service {service} reached (max_versions_per_service = {})",
                    limits.max_versions_per_service
                )));
            }
        }
        for (service, versions) in new_versions {
            let entry = self.versions.entry(service.to_owned()).or_default();
            entry.extend(versions.into_iter().map(str::to_owned));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_model::limit::hits;
    use bellwether_proto::otlp::common::AnyValue;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn release(service: &str, version: &str) -> ReleaseKey {
        ReleaseKey {
            service: service.into(),
            environment: "prod".into(),
            version: version.into(),
        }
    }

    #[test]
    fn attributes_are_capped_and_counted() {
        let limits = Limits {
            max_attributes_per_record: 10,
            max_attribute_key_bytes: 32,
            max_attribute_value_bytes: 300,
            ..Limits::default()
        };
        let (keys, values, count) = (
            hits(Limit::AttributeKeyBytes),
            hits(Limit::AttributeValueBytes),
            hits(Limit::AttributesPerRecord),
        );
        let mut attributes = vec![
            kv("service.name", &"s".repeat(1000)),
            kv(&"k".repeat(33), "dropped"),
            kv("message", &"é".repeat(400)),
        ];
        attributes.extend((0..20).map(|i| kv(&format!("a{i}"), "v")));
        cap_attributes(&limits, &mut attributes);
        assert_eq!(attributes.len(), 10);
        assert!(attributes.iter().all(|kv| kv.key.len() <= 32));
        let text = |kv: &KeyValue| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            _ => String::new(),
        };
        assert_eq!(text(&attributes[0]).len(), MAX_IDENTITY_BYTES);
        assert_eq!(text(&attributes[1]).len(), 300);
        assert!(hits(Limit::AttributeKeyBytes) > keys);
        assert!(hits(Limit::AttributeValueBytes) >= values + 2);
        assert!(hits(Limit::AttributesPerRecord) >= count + 12);
    }

    #[test]
    fn new_services_and_versions_are_bounded() {
        let limits = Limits {
            max_services: 2,
            max_versions_per_service: 2,
            ..Limits::default()
        };
        let mut seen = Seen::new([release("a", "1")]);
        assert!(seen
            .admit(&limits, &[release("a", "1"), release("b", "1")])
            .is_ok());
        let err = seen.admit(&limits, &[release("c", "1")]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("max_services = 2")));
        assert!(seen.admit(&limits, &[release("a", "2")]).is_ok());
        assert!(seen.admit(&limits, &[release("a", "3")]).is_err());
        // Known releases keep flowing.
        assert!(seen
            .admit(&limits, &[release("a", "1"), release("b", "1")])
            .is_ok());
    }

    #[test]
    fn config_keys_are_checked() {
        let raw: RawLimits = toml::from_str("max_services = 5").unwrap_or_default();
        assert_eq!(raw.resolve().ok().map(|l| l.max_services), Some(5));
        let err = RawLimits {
            max_request_bytes: Some(10),
            ..RawLimits::default()
        }
        .resolve()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("limits.max_request_bytes"), "{err}");
        assert!(toml::from_str::<RawLimits>("max_service = 5").is_err());
        let raw: RawLimits =
            toml::from_str("max_inflight_ingest = 2\ningest_admission_wait = \"250ms\"")
                .unwrap_or_default();
        let resolved = raw.resolve().ok();
        assert_eq!(resolved.map(|l| l.max_inflight_ingest), Some(2));
        assert_eq!(
            resolved.map(|l| l.ingest_admission_wait),
            Some(Duration::from_millis(250))
        );
        let bad = |raw: RawLimits| raw.resolve().err().map(|e| e.to_string());
        let zero = bad(RawLimits {
            max_inflight_ingest: Some(0),
            ..RawLimits::default()
        });
        assert!(zero.is_some_and(|e| e.contains("limits.max_inflight_ingest")));
        let wait = bad(RawLimits {
            ingest_admission_wait: Some("soon".into()),
            ..RawLimits::default()
        });
        assert!(wait.is_some_and(|e| e.contains("limits.ingest_admission_wait")));
        assert!(check_records(&Limits::default(), 100_001).is_err());
        assert!(check_records(&Limits::default(), 100_000).is_ok());
    }
}
