//! The types every collector crate shares, at the bottom of the collector's layers: no
//! IO, no async runtime, no storage engine.
//!
//! - [`release`]: a release's key, the counts of one time bucket, deployments.
//! - [`change`]: a release's change set (commits and files) and its lead time.
//! - [`issue`]: error fingerprints of a release (issues), their samples, latency samples,
//!   and the bounds on how many are kept.
//! - [`health`]: verdicts, the evidence behind them, the verdict timeline, and the
//!   [`health::VerdictSink`] that hears every evaluation.
//! - [`alert`], [`silence`]: alerts and silences as stored and shown.
//! - [`notification`]: what a receiver is told, and the outbox's records of it.
//! - [`glob`]: the glob patterns of service matchers, ownership rules and silences.
//! - [`config`]: the settings error every config module returns, and the duration parser.
//! - [`limit`]: counters of limit violations, read by `/metrics`.
//! - [`scope`]: which services a collector acts for (all, or a cluster node's share).
//! - [`time`]: the clock, RFC 3339 formatting and parsing.

#![forbid(unsafe_code)]

pub mod alert;
pub mod change;
pub mod config;
pub mod dependency;
pub mod glob;
pub mod health;
pub mod issue;
pub mod limit;
pub mod notification;
pub mod release;
pub mod scope;
pub mod silence;
pub mod time;
