//! Which services a collector acts for: a single collector acts for all of them; a node
//! of a cluster only for the services whose partition it holds the lease of, so that
//! verdicts are written and alerts sent once per cluster.

use std::fmt;
use std::sync::Arc;

type Owns = dyn Fn(&str) -> bool + Send + Sync;

/// Cheap to clone; asked right before each action it guards.
#[derive(Clone, Default)]
pub struct Scope {
    owns: Option<Arc<Owns>>,
}

impl Scope {
    /// Every service (a single collector).
    pub fn all() -> Self {
        Self::default()
    }

    /// The services for which `owns` says yes at the moment it is asked.
    pub fn only(owns: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self {
            owns: Some(Arc::new(owns)),
        }
    }

    /// Whether this collector acts for `service` now.
    pub fn owns(&self, service: &str) -> bool {
        self.owns.as_ref().is_none_or(|owns| owns(service))
    }

    /// Whether other collectors share the state (a cluster): what this one holds in
    /// memory may be changed by them.
    pub fn is_shared(&self) -> bool {
        self.owns.is_some()
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_shared() {
            "Scope::only(..)"
        } else {
            "Scope::all()"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_owns_everything_and_only_asks() {
        assert!(Scope::all().owns("anything"));
        assert!(!Scope::all().is_shared());
        let scope = Scope::only(|s| s.starts_with("pay"));
        assert!(scope.owns("payments"));
        assert!(!scope.owns("checkout"));
        assert!(scope.is_shared());
    }
}
