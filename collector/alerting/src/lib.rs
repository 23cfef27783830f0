//! Bellwether's alerting: from a release's verdicts to notifications that reach the team
//! that owns the failure.
//!
//! ```text
//! evaluator ──VerdictSink──> alerts::AlertBridge ──ReleaseVerdict──> alerts::AlertEngine
//!                                                                        │ routing: owner
//!                                                                        │ (code, service,
//!                                                                        │  CODEOWNERS rules)
//!                                                                        v
//!                     receivers <──HTTP POST── notify::outbox (durable, at least once)
//! ```
//!
//! Layers, each using only those below it:
//!
//! - [`notify`] (bottom): receivers (webhook, Slack, PagerDuty, Alertmanager), rendering
//!   a notification for each, the durable outbox and its delivery loop, delivery counts.
//! - [`routing`]: who owns an error (code rules, CODEOWNERS, service rules, default team)
//!   and the `[routing]`, `[[teams]]`, `[[receivers]]` config sections.
//! - [`alerts`] (top): the alert engine (grouping, deduplication, repeats, silences,
//!   acknowledgement, resolution) and the bridge from the evaluator's verdicts.
//!
//! Alert, silence and notification records are `bellwether_model` types; their durable
//! state is `bellwether_store::alerts`. Nothing here serves HTTP: the collector's API
//! exposes the engine.

#![forbid(unsafe_code)]

pub mod alerts;
pub mod notify;
pub mod routing;
