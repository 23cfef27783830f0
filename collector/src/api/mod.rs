//! The HTTP JSON API: health check, deployments (with their change sets), releases, per-release stats, health
//! (long-poll), verdict timelines, and the compact verdict and Flagger webhook that rollout
//! tools ask ([`rollouts`]), and the admin backup ([`backup`]).
//! Every error answers `{"error": "<message>"}`.

pub mod alerts;
pub mod backup;
pub mod changes;
mod health;
pub mod issues;
pub mod json;
pub mod rollouts;
mod routes;

pub use routes::router;
