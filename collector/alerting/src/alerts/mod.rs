//! Alerts: from release verdicts to routed, grouped, deduplicated notifications.
//!
//! ```text
//! evaluator ──ReleaseVerdict──> AlertEngine::observe ──> alerts (sled)
//!                                     │ tick(): group window, repeats, silences
//!                                     v
//!                               notify::outbox ──> receivers
//! ```
//!
//! - One alert per (service, environment, version, kind[, fingerprint]): its id is a hash
//!   of that [`dedup_key`], stable across restarts, and is PagerDuty's `dedup_key`.
//! - States: firing → acknowledged → resolved. A release turning healthy resolves its
//!   alerts; a newer healthy release of the same service and environment resolves the
//!   older release's alerts ("superseded by V").
//! - Alerts of one release and team raised within the group window go out as one
//!   notification; firing, unacknowledged alerts are re-sent every repeat interval.
//! - Silences match on service, environment, version, team and kind (globs).
//!
//! [`engine`] holds the logic; the durable state is `bellwether_store::alerts`, the API
//! routes are in the collector's API.

pub mod bridge;
pub mod engine;

pub mod plan;
pub mod service;

pub use engine::{AlertEngine, AlertError};
pub use service::AlertService;
