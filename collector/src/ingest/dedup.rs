//! "Count an error at most once per trace per fingerprint": retries of one request (one
//! trace) that fail the same way count once, in one batch or across batches.
//!
//! Each service keeps the hashes of the last [`RECENT_ERRORS_PER_SERVICE`] (trace,
//! fingerprint) pairs it counted, in memory (a ring: the oldest is forgotten first).
//! Errors without a trace id always count. A summarizer only *reads* this set; the pairs
//! of a batch are added once the batch is stored, so a batch that failed to store and is
//! sent again still counts.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

/// (trace, fingerprint) pairs remembered per service (about 2.5 MB when full).
pub const RECENT_ERRORS_PER_SERVICE: usize = 100_000;

/// The key of an error within a trace; `None` without a (non-zero) trace id.
pub fn error_key(trace_id: &[u8], fingerprint: &str) -> Option<u64> {
    if trace_id.iter().all(|&b| b == 0) {
        return None;
    }
    let mut hasher = DefaultHasher::new();
    trace_id.hash(&mut hasher);
    fingerprint.hash(&mut hasher);
    Some(hasher.finish())
}

#[derive(Debug, Default)]
struct Ring {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

/// Recently counted (trace, fingerprint) pairs of every service.
#[derive(Debug)]
pub struct RecentErrors {
    capacity: usize,
    services: Mutex<HashMap<String, Ring>>,
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
        }
    }

    fn services(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ring>> {
        // A panic while holding the lock leaves a valid set behind: keep using it.
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn contains(&self, service: &str, key: u64) -> bool {
        self.services()
            .get(service)
            .is_some_and(|ring| ring.set.contains(&key))
    }

    /// Remembers the pairs of a stored batch.
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
        assert_eq!(error_key(&[], "a"), None);
        assert_eq!(error_key(&[0; 16], "a"), None);
        let a = error_key(&[1; 16], "a");
        assert!(a.is_some());
        assert_eq!(a, error_key(&[1; 16], "a"));
        assert_ne!(a, error_key(&[1; 16], "b"));
        assert_ne!(a, error_key(&[2; 16], "a"));
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
    }
}
