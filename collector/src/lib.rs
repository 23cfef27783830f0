//! The Bellwether collector: receives telemetry tagged with release identity, counts it
//! per release and time bucket, judges each release against its baseline, and answers
//! "which releases exist and how are they doing?". This crate is the top of the
//! collector's layers; the crates below it never depend on it.
//!
//! # Crates, bottom to top
//!
//! ```text
//! bellwether-model        release keys, counts, deployments, issues, verdicts, alerts,
//!                         notifications, settings errors, globs, the clock (no IO)
//! bellwether-detect       the statistics: always-valid tests (pure, no IO)
//! bellwether-fingerprint  which errors are the same error (pure, no IO)
//! bellwether-store        store traits and their sled implementations
//! bellwether-alerting     routing, the alert engine, notification delivery
//! bellwether-collector    ingest, evaluation, API, UI, metrics, CLI (this crate)
//! ```
//!
//! # Data flow
//!
//! ```text
//! OTLP/gRPC, OTLP/HTTP ─> ingest (summarize, fingerprint) ─> store (one sled transaction
//!                                                             per batch)
//!          evaluate (baselines, detect's tests) <─ store ─> releases, issues
//!                │ verdicts (sled), long-polls and watches         │
//!                └──VerdictSink──> alerting ──> receivers          └─> api, grpc_release, ui
//! ```
//!
//! # Modules, each using only modules in rows below its own
//!
//! ```text
//! cli                                    the `bellwether` command line
//! server                                 wires listeners, tasks and stores together
//! api  grpc_release  ingest  ui          HTTP JSON API; bellwether.v1; OTLP receivers; web UI
//! config  metrics  releases              settings composed; /metrics; release queries
//! evaluate                               the evaluator task and its verdicts
//! issues  retention                      issues classified per release; data ages
//! auth  limits  lookup                   tokens and scopes; bounds; a release by name
//! error  tls                             the one error type; rustls for the listeners
//! ```
//!
//! - [`ingest`]: OTLP receivers; [`ingest::summarize`] turns a request into per-release,
//!   per-bucket counts, error fingerprints, latency samples and the release metadata
//!   found in resource attributes, applied through `bellwether_store::ReleaseStore`.
//! - [`evaluate`]: the evaluator task: baselines (canary or cut-over),
//!   `bellwether_detect`'s statistics, new issues and latency → verdicts with evidence,
//!   kept through `bellwether_store::verdicts` and pushed to long-polls, watches and the
//!   alert engine.
//! - [`issues`]: a release's error fingerprints classified new / regressed / existing.
//! - [`releases`]: the queries and commands the HTTP API and gRPC service share;
//!   [`lookup`]: a release named by service and version found in the store.
//! - [`api`]: the HTTP JSON API (alerts, silences and the outbox included);
//!   [`grpc_release`]: `bellwether.v1.ReleaseService`.
//! - [`ui`]: the web UI at `/` and its summary endpoints; [`metrics`]: `/metrics`.
//! - [`auth`]: bearer tokens with scopes, checked on every listener.
//! - [`limits`]: bounds on requests, attributes, services and versions.
//! - [`retention`]: deletes buckets, samples, verdict timelines and resolved alerts past
//!   their configured ages.
//! - [`tls`]: rustls for the three listeners, with optional client certificates.
//! - [`error`]: the one error type, mapped to gRPC codes and HTTP statuses.
//! - [`config`]: serve settings (flags, environment, TOML file) composed from each
//!   module's own section and validated into [`config::Settings`].
//! - [`server`]: [`server::run`] wires it all up; `main` and the tests call it.
//! - [`cli`]: the `bellwether` command line (serve, deploy, gate, releases, alerts, demo).

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
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
