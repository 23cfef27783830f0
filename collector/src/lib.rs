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
//!   per-bucket counts and the release metadata found in resource attributes.
//! - [`store`]: the [`store::ReleaseStore`] trait and its sled implementation: deployments,
//!   buckets, totals and applied batch ids, all keyed by service first.
//! - [`releases`]: the queries and commands the HTTP API and gRPC service share.
//! - [`health`] + [`detect`]: a release's verdict against its baseline.
//! - [`api`]: the HTTP JSON API; [`grpc_release`]: `bellwether.v1.ReleaseService`.
//! - [`error`]: the one error type, mapped to gRPC codes and HTTP statuses.
//! - [`server`]: [`server::run`] wires it all up; `main` and the tests call it.
//! - [`cli`]: the `bellwether` command line (serve, deploy, releases).

#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod config;
pub mod detect;
pub mod error;
pub mod fingerprint;
pub mod grpc_release;
pub mod health;
pub mod ingest;
pub mod releases;
pub mod server;
pub mod store;
pub mod time;
