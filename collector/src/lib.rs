//! The Bellwether collector: receives telemetry tagged with release identity, counts it
//! per release and time bucket, and answers "which releases exist and how are they doing?".
//!
//! # Layout and data flow
//!
//! ```text
//! OTLP/gRPC  (ingest::grpc) ─┐
//!                            ├─ ingest::summarize ─> store (sled, one transaction per batch)
//! OTLP/HTTP  (ingest::http) ─┘                             │
//!                                                          ├─> releases ─> api (HTTP JSON)
//!                                              health ─────┤            └─> grpc_release
//!                                              (detect)    │                (bellwether.v1)
//! ```
//!
//! - [`config`]: serve settings (flags, environment, TOML file) validated into [`config::Settings`].
//! - [`ingest`]: OTLP receivers; [`ingest::summarize`] turns a request into per-release,
//!   per-bucket counts, error fingerprints, latency samples and the release metadata
//!   found in resource attributes.
//! - [`store`]: the [`store::ReleaseStore`] trait and its sled implementation: deployments,
//!   buckets, totals, issues, latency samples and applied batch ids, all keyed by service
//!   first.
//! - [`issues`]: a release's error fingerprints classified new / regressed / existing.
//! - [`releases`]: the queries and commands the HTTP API and gRPC service share.
//! - [`evaluate`]: the evaluator task: baselines (canary or cut-over), [`detect`]'s
//!   statistics, new issues and latency → verdicts with evidence ([`health`]), kept in a
//!   sled tree and pushed to long-polls and watches.
//! - [`api`]: the HTTP JSON API; [`grpc_release`]: `bellwether.v1.ReleaseService`.
//! - [`routing`] → [`alerts`] → [`notify`]: verdicts become alerts owned by a team (code,
//!   service and CODEOWNERS rules), grouped and deduplicated, written to a durable outbox
//!   and delivered to webhook, Slack, PagerDuty and Alertmanager receivers.
//! - [`ui`]: the web UI at `/` and its summary endpoints; [`metrics`]: `/metrics` for
//!   Prometheus.
//! - [`auth`]: bearer tokens with scopes, checked on every listener.
//! - [`limits`]: bounds on requests, attributes, services and versions, with counters.
//! - [`retention`]: deletes buckets, samples, verdict timelines and resolved alerts past
//!   their configured ages.
//! - [`tls`]: rustls for the three listeners, with optional client certificates.
//! - [`error`]: the one error type, mapped to gRPC codes and HTTP statuses.
//! - [`server`]: [`server::run`] wires it all up; `main` and the tests call it.
//! - [`cli`]: the `bellwether` command line (serve, deploy, releases).

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;

pub mod error;
pub mod evaluate;

pub mod grpc_release;
pub mod ingest;
pub mod issues;
pub mod limits;
pub mod lookup;
pub mod metrics;
pub mod releases;
pub mod retention;
pub mod server;

pub mod tls;
pub mod ui;
