//! The HTTP JSON API: health check, deployments, releases, per-release stats, health
//! (long-poll) and verdict timelines.
//! Every error answers `{"error": "<message>"}`.

pub mod alerts;
mod health;
pub mod issues;
pub mod json;
mod routes;

pub use routes::router;
