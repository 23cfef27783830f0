//! A release named by a caller (service, version, and perhaps environment) looked up in
//! the store: shared by the API, the evaluator and the issue report.

use bellwether_model::release::{Deployment, DeploymentFilter, ReleaseKey};
use bellwether_store::ReleaseStore;

use crate::error::Error;

/// A release as named by a caller; the environment may be left for the store to infer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRef {
    pub service: String,
    pub environment: Option<String>,
    pub version: String,
}

/// Finds a release's deployment. Without an environment, the release must exist in
/// exactly one environment.
pub fn resolve(store: &dyn ReleaseStore, release: &ReleaseRef) -> Result<Deployment, Error> {
    let not_found = || {
        let mut what = format!("release {} {}", release.service, release.version);
        if let Some(environment) = &release.environment {
            what.push_str(&format!(" in environment {environment}"));
        }
        Error::NotFound(format!("{what} not found"))
    };
    if let Some(environment) = &release.environment {
        let key = ReleaseKey::new(&release.service, environment, &release.version);
        return store.deployment(&key)?.ok_or_else(not_found);
    }
    let filter = DeploymentFilter {
        service: Some(release.service.clone()),
        environment: None,
        version: Some(release.version.clone()),
    };
    let mut found = store.deployments(&filter)?;
    match found.len() {
        0 => Err(not_found()),
        1 => Ok(found.remove(0)),
        _ => {
            let environments: Vec<&str> = found
                .iter()
                .map(|d| d.release.environment.as_str())
                .collect();
            Err(Error::invalid(format!(
                "release {} {} exists in several environments ({}): pass environment",
                release.service,
                release.version,
                environments.join(", ")
            )))
        }
    }
}
