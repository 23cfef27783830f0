//! Release identity: the attributes that tie every record to the build and release that
//! produced it.
//!
//! [`resolve`] applies one precedence for every field: command-line flag, then the
//! `BELLWETHER_*` variable, then `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES`, then the
//! release file, then the Kubernetes labels file ([`k8s_labels`]). The process environment is never read here: the caller passes a map, so
//! tests describe an environment instead of mutating the real one.

mod k8s_labels;
mod otel;
mod release_file;

use std::collections::HashMap;

pub use k8s_labels::{load_labels_file, parse_labels_file, LabelsFileError};
pub use otel::parse_resource_attributes;
pub use release_file::{load_release_file, parse_release_file, ReleaseFile, ReleaseFileError};

/// A snapshot of the process environment.
pub type EnvMap = HashMap<String, String>;

/// Resource attribute keys the agent sets.
pub mod attr {
    pub const SERVICE_NAME: &str = "service.name";
    pub const SERVICE_VERSION: &str = "service.version";
    pub const ENVIRONMENT: &str = "deployment.environment.name";
    /// Deprecated spelling of [`ENVIRONMENT`], accepted on input only.
    pub const ENVIRONMENT_DEPRECATED: &str = "deployment.environment";
    pub const INSTANCE_ID: &str = "service.instance.id";
    pub const COMMIT: &str = "vcs.ref.head.revision";
    pub const DEPLOY_ID: &str = "deployment.id";
    pub const TEAM: &str = "bellwether.team";
    /// Prefix under which an application's own, differing value is kept.
    pub const APP_PREFIX: &str = "bellwether.app.";
}

/// One identity field, with the names it goes by in each source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Service,
    Version,
    Environment,
    InstanceId,
    Commit,
    DeployId,
    Team,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Service,
        Field::Version,
        Field::Environment,
        Field::InstanceId,
        Field::Commit,
        Field::DeployId,
        Field::Team,
    ];

    /// The `BELLWETHER_*` environment variable.
    pub fn env_var(self) -> &'static str {
        match self {
            Field::Service => "BELLWETHER_SERVICE",
            Field::Version => "BELLWETHER_VERSION",
            Field::Environment => "BELLWETHER_ENVIRONMENT",
            Field::InstanceId => "BELLWETHER_INSTANCE_ID",
            Field::Commit => "BELLWETHER_COMMIT",
            Field::DeployId => "BELLWETHER_DEPLOY_ID",
            Field::Team => "BELLWETHER_TEAM",
        }
    }

    /// The resource attribute the field is written to.
    pub fn attribute(self) -> &'static str {
        match self {
            Field::Service => attr::SERVICE_NAME,
            Field::Version => attr::SERVICE_VERSION,
            Field::Environment => attr::ENVIRONMENT,
            Field::InstanceId => attr::INSTANCE_ID,
            Field::Commit => attr::COMMIT,
            Field::DeployId => attr::DEPLOY_ID,
            Field::Team => attr::TEAM,
        }
    }

    /// Looks the field up in a map keyed by attribute names, accepting the deprecated
    /// `deployment.environment` when the current name is absent.
    fn lookup_in(self, attrs: &HashMap<String, String>) -> Option<String> {
        let value = attrs.get(self.attribute()).and_then(|v| non_empty(v));
        match (value, self) {
            (None, Field::Environment) => attrs
                .get(attr::ENVIRONMENT_DEPRECATED)
                .and_then(|v| non_empty(v)),
            (value, _) => value,
        }
    }
}

/// Identity values given as command-line flags (clap also fills these from the
/// `BELLWETHER_*` variables; the resolver consults those itself as well, so the
/// precedence holds however the values arrive).
#[derive(Debug, Clone, Default)]
pub struct IdentityFlags {
    pub service: Option<String>,
    pub version: Option<String>,
    pub environment: Option<String>,
    pub instance_id: Option<String>,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub team: Option<String>,
}

impl IdentityFlags {
    fn get(&self, field: Field) -> Option<String> {
        let value = match field {
            Field::Service => &self.service,
            Field::Version => &self.version,
            Field::Environment => &self.environment,
            Field::InstanceId => &self.instance_id,
            Field::Commit => &self.commit,
            Field::DeployId => &self.deploy_id,
            Field::Team => &self.team,
        };
        value.as_deref().and_then(non_empty)
    }
}

/// The resolved release identity stamped on every resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub service: String,
    pub version: String,
    pub environment: String,
    pub instance_id: String,
    pub commit: Option<String>,
    pub deploy_id: Option<String>,
    pub team: Option<String>,
}

impl Identity {
    /// The attributes this identity sets, in a stable order; unknown optional fields
    /// are left out.
    pub fn attributes(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            (attr::SERVICE_NAME, self.service.as_str()),
            (attr::SERVICE_VERSION, self.version.as_str()),
            (attr::ENVIRONMENT, self.environment.as_str()),
            (attr::INSTANCE_ID, self.instance_id.as_str()),
        ];
        let optional = [
            (attr::COMMIT, &self.commit),
            (attr::DEPLOY_ID, &self.deploy_id),
            (attr::TEAM, &self.team),
        ];
        out.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (k, v))),
        );
        out
    }
}

/// Everything the resolver looks at, gathered by the caller.
#[derive(Debug, Clone, Copy)]
pub struct IdentityInputs<'a> {
    pub flags: &'a IdentityFlags,
    pub env: &'a EnvMap,
    pub release_file: Option<&'a ReleaseFile>,
    /// The pod's labels (Downward API volume), mapped to identity fields.
    pub k8s_labels: Option<&'a ReleaseFile>,
    /// Contents of `/etc/hostname`, if it could be read.
    pub etc_hostname: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no service name: set --service or BELLWETHER_SERVICE (or OTEL_SERVICE_NAME)")]
    MissingService,
    #[error(
        "no service version: set --version or BELLWETHER_VERSION (or service.version in OTEL_RESOURCE_ATTRIBUTES)"
    )]
    MissingVersion,
}

/// Resolves the identity. `random_id` is called only when no instance id is found.
pub fn resolve(
    inputs: IdentityInputs<'_>,
    random_id: impl FnOnce() -> String,
) -> Result<Identity, IdentityError> {
    let otel_attrs = inputs
        .env
        .get("OTEL_RESOURCE_ATTRIBUTES")
        .map(|raw| parse_resource_attributes(raw))
        .unwrap_or_default();
    let otel_service_name = inputs
        .env
        .get("OTEL_SERVICE_NAME")
        .and_then(|v| non_empty(v));

    let lookup = |field: Field| -> Option<String> {
        inputs
            .flags
            .get(field)
            .or_else(|| inputs.env.get(field.env_var()).and_then(|v| non_empty(v)))
            .or_else(|| match field {
                Field::Service => otel_service_name
                    .clone()
                    .or_else(|| field.lookup_in(&otel_attrs)),
                _ => field.lookup_in(&otel_attrs),
            })
            .or_else(|| inputs.release_file.and_then(|file| file.get(field)))
            .or_else(|| inputs.k8s_labels.and_then(|labels| labels.get(field)))
    };

    let service = lookup(Field::Service).ok_or(IdentityError::MissingService)?;
    let version = lookup(Field::Version).ok_or(IdentityError::MissingVersion)?;
    let environment = lookup(Field::Environment).unwrap_or_else(|| "unknown".to_owned());
    let instance_id = lookup(Field::InstanceId)
        .or_else(|| inputs.env.get("POD_NAME").and_then(|v| non_empty(v)))
        .or_else(|| inputs.env.get("HOSTNAME").and_then(|v| non_empty(v)))
        .or_else(|| inputs.etc_hostname.and_then(non_empty))
        .unwrap_or_else(random_id);
    Ok(Identity {
        service,
        version,
        environment,
        instance_id,
        commit: lookup(Field::Commit),
        deploy_id: lookup(Field::DeployId),
        team: lookup(Field::Team),
    })
}

/// A random identifier of 16 hex digits, used for the instance id of last resort and for
/// the per-process boot id.
pub fn random_hex_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn non_empty(value: &str) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests;
