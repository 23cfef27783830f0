//! Process-wide counts of notification deliveries per receiver and result, read by
//! `/metrics` (`bellwether_notifications_total`). A plain mutex-guarded map in one static,
//! so the outbox needs no handle threaded through it; like any Prometheus counter they
//! only go up for the life of the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bellwether_model::notification::Counter;

use crate::notify::transport::Delivery;

/// Results of a notification attempt.
pub const NOTIFICATION_RESULTS: [&str; 4] = ["delivered", "retried", "rejected", "given_up"];

/// (receiver, result) → attempts.
static NOTIFICATIONS: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());

fn count_notification(receiver: &str, result: &'static str) {
    let mut map = NOTIFICATIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *map.entry((receiver.to_owned(), result)).or_default() += 1;
}

/// Counts one delivery attempt to `receiver`.
pub fn notification_attempt(receiver: &str, delivery: &Delivery) {
    let result = match delivery {
        Delivery::Delivered => "delivered",
        Delivery::Retry { .. } => "retried",
        Delivery::Reject { .. } => "rejected",
    };
    count_notification(receiver, result);
}

/// Counts a notification the outbox gave up on without an attempt (too old, or its
/// receiver is no longer configured).
pub fn notification_failed(receiver: &str, counter: Counter) {
    let result = match counter {
        Counter::GivenUp => "given_up",
        _ => "rejected",
    };
    count_notification(receiver, result);
}

/// (receiver, result) → attempts so far.
pub fn notifications_snapshot() -> BTreeMap<(String, &'static str), u64> {
    NOTIFICATIONS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_results_are_counted_per_receiver() {
        let name = "registry-test-receiver";
        notification_attempt(name, &Delivery::Delivered);
        notification_attempt(
            name,
            &Delivery::Retry {
                error: "503".into(),
                retry_after: None,
            },
        );
        notification_failed(name, Counter::GivenUp);
        let snapshot = notifications_snapshot();
        assert_eq!(snapshot.get(&(name.to_owned(), "delivered")), Some(&1));
        assert_eq!(snapshot.get(&(name.to_owned(), "retried")), Some(&1));
        assert_eq!(snapshot.get(&(name.to_owned(), "given_up")), Some(&1));
        assert_eq!(snapshot.get(&(name.to_owned(), "rejected")), None);
    }
}
