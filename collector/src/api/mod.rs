//! The HTTP JSON API: health check, deployments, releases, per-release stats and health.
//! Every error answers `{"error": "<message>"}`.

pub mod json;
mod routes;

pub use routes::router;
