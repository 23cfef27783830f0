//! "A failing request counts once": the error rate counts at most one error per trace,
//! and an issue at most one per (trace, fingerprint), in one batch or across batches.
//!
//! A request that is both traced and logged reports its failure several times — a span
//! with status ERROR, its `exception` event, an exception log record in the same trace —
//! and those records usually get different fingerprints (the log carries a stack trace,
//! the event often does not). Each error therefore has two keys ([`error_keys`]): its
//! *failure* (the trace alone), which decides whether it counts in the rate, and its
//! *issue* (trace and fingerprint), which decides whether it counts in its fingerprint.
//! Whichever record of a trace arrives first counts in the rate; retries of one request
//! that fail the same way count once in their issue. Logs and traces come in separate
//! export requests, in either order: the keys outlive a batch.
//!
//! Each service keeps the last [`RECENT_ERRORS_PER_SERVICE`] keys it counted, both kinds
//! in one set, in memory (a ring: the oldest is forgotten first). Errors without a trace
//! id always count, in the rate and in their issue. A summarizer only *reads* this set;
//! the keys of a batch are added once the batch is stored, so a batch that failed to
//! store and is sent again still counts.
//!
//! An SDK exports a request's span and its log record in two requests at about the same
//! time, so two batches that share a trace are often summarized at once, each before the
//! other is remembered. Summarizing takes no lock; a batch that counted keys then takes
//! the [`RecentErrors::ledger`], checks that none of them was remembered meanwhile
//! ([`RecentErrors::remembers_any`]; else it is summarized again), is stored and
//! remembered, and only then lets the next one check.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Keys remembered per service (about 2.5 MB when full): a failing request takes one
/// failure key and one issue key per fingerprint it reported, so this covers the last
/// 50 000 or so failing requests.
pub const RECENT_ERRORS_PER_SERVICE: usize = 100_000;

/// The two keys of an error within a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorKeys {
    /// The trace alone: the failing request, counted once in the rate.
    pub failure: u64,
    /// The trace and the fingerprint: counted once in the issue.
    pub issue: u64,
}

/// Hash domains, so that a failure key never equals an issue key by construction.
const FAILURE_DOMAIN: u8 = 1;
const ISSUE_DOMAIN: u8 = 2;

/// The keys of an error within a trace; `None` without a (non-zero) trace id.
pub fn error_keys(trace_id: &[u8], fingerprint: &str) -> Option<ErrorKeys> {
    if trace_id.iter().all(|&b| b == 0) {
        return None;
    }
    let keyed = |domain: u8, fingerprint: Option<&str>| {
        let mut hasher = DefaultHasher::new();
        domain.hash(&mut hasher);
        trace_id.hash(&mut hasher);
        fingerprint.hash(&mut hasher);
        hasher.finish()
    };
    Some(ErrorKeys {
        failure: keyed(FAILURE_DOMAIN, None),
        issue: keyed(ISSUE_DOMAIN, Some(fingerprint)),
    })
}

#[derive(Debug, Default)]
struct Ring {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

/// Recently counted error keys of every service.
#[derive(Debug)]
pub struct RecentErrors {
    capacity: usize,
    services: Mutex<HashMap<String, Ring>>,
    /// Held from checking a batch's keys until they are remembered.
    ledger: Mutex<()>,
}

impl Default for RecentErrors {
    fn default() -> Self {
        Self::new(RECENT_ERRORS_PER_SERVICE)
    }
}

impl RecentErrors {
    pub fn new(capacity_per_service: usize) -> Self {
        Self {
            capacity: capacity_per_service.max(1),
            services: Mutex::new(HashMap::new()),
            ledger: Mutex::new(()),
        }
    }

    /// The lock under which a batch that counted keys checks them
    /// ([`RecentErrors::remembers_any`]), is stored and remembers them.
    pub fn ledger(&self) -> MutexGuard<'_, ()> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn services(&self) -> MutexGuard<'_, HashMap<String, Ring>> {
        // A panic while holding the lock leaves a valid set behind: keep using it.
        self.services.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn contains(&self, service: &str, key: u64) -> bool {
        self.services()
            .get(service)
            .is_some_and(|ring| ring.set.contains(&key))
    }

    /// Whether any of a batch's keys has been remembered since it was summarized.
    pub fn remembers_any(&self, counted: &HashMap<String, HashSet<u64>>) -> bool {
        let services = self.services();
        counted.iter().any(|(service, keys)| {
            services
                .get(service)
                .is_some_and(|ring| keys.iter().any(|key| ring.set.contains(key)))
        })
    }

    /// Remembers the keys of a stored batch.
    pub fn insert_all(&self, counted: &HashMap<String, HashSet<u64>>) {
        if counted.is_empty() {
            return;
        }
        let mut services = self.services();
        for (service, keys) in counted {
            let ring = match services.get_mut(service) {
                Some(ring) => ring,
                None => services.entry(service.clone()).or_default(),
            };
            for &key in keys {
                if ring.set.insert(key) {
                    ring.order.push_back(key);
                }
                while ring.order.len() > self.capacity {
                    if let Some(old) = ring.order.pop_front() {
                        ring.set.remove(&old);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_need_a_trace_and_tell_fingerprints_apart() {
        assert_eq!(error_keys(&[], "a"), None);
        assert_eq!(error_keys(&[0; 16], "a"), None);
        let a = error_keys(&[1; 16], "a").expect("a trace id");
        assert_eq!(Some(a), error_keys(&[1; 16], "a"));
        let other_fingerprint = error_keys(&[1; 16], "b").expect("a trace id");
        assert_ne!(a.issue, other_fingerprint.issue);
        let other_trace = error_keys(&[2; 16], "a").expect("a trace id");
        assert_ne!(a.issue, other_trace.issue);
        assert_ne!(a.failure, other_trace.failure);
    }

    #[test]
    fn one_trace_is_one_failure_whatever_the_fingerprint() {
        let keys = |fingerprint: &str| error_keys(&[1; 16], fingerprint).expect("a trace id");
        let (a, b) = (keys("a"), keys("b"));
        assert_eq!(a.failure, b.failure);
        // Failure and issue keys live in distinct domains, even for an empty fingerprint.
        for k in [a, b, keys("")] {
            assert_ne!(k.failure, k.issue);
            assert_ne!(a.failure, k.issue);
        }
    }

    #[test]
    fn remembers_per_service_and_forgets_the_oldest() {
        let recent = RecentErrors::new(3);
        let batch = |service: &str, keys: &[u64]| {
            let mut map = HashMap::new();
            map.insert(service.to_owned(), keys.iter().copied().collect());
            map
        };
        // One key per batch: within a batch the keys are a set, in no particular order.
        recent.insert_all(&batch("api", &[1]));
        recent.insert_all(&batch("api", &[2]));
        assert!(recent.contains("api", 1));
        assert!(!recent.contains("web", 1), "services are apart");
        recent.insert_all(&batch("api", &[3]));
        recent.insert_all(&batch("api", &[4]));
        assert!(!recent.contains("api", 1), "oldest forgotten");
        assert!(recent.contains("api", 2) && recent.contains("api", 4));
        recent.insert_all(&batch("api", &[4]));
        assert!(recent.contains("api", 2), "a repeat does not evict");
        assert!(recent.remembers_any(&batch("api", &[9, 4])));
        assert!(!recent.remembers_any(&batch("api", &[9, 1])));
        assert!(!recent.remembers_any(&batch("web", &[4])));
    }
}
