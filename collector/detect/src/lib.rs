//! Detection statistics: did a new release make errors worse than its baseline?
//!
//! # Why martingales
//!
//! A verdict is recomputed every few seconds for up to an hour. A fixed-sample test (a
//! Poisson or binomial p-value) looked at that often fires far more often than its α on
//! a perfectly good release. Instead every statistic here is a *test martingale*: a
//! running value M ≥ 0 whose expectation, on a good release, is ≤ 1 at every moment,
//! whatever the true error rate within the tolerance. Ville's inequality then bounds
//! the probability that M *ever* reaches 1/α by α, however often it is checked, so the
//! gate can look continuously and stop as soon as the evidence is there.
//!
//! M is a mixture over a grid of alternatives of likelihood ratios against the null
//! "new rate ≤ ρ × baseline rate". "Healthy" is a claim with the same kind of promise:
//! a mirror-image e-value for the null "new rate ≥ ρ × baseline rate" must reach 1/β,
//! so a release whose rate really rose past the tolerance is called healthy with
//! probability at most β, however often it is checked. A release at the tolerance
//! itself decides neither way and stays pending. Everything is closed form and
//! incremental. The recipe is `shared/DETECTION.md`; its cases map to modules:
//!
//! - [`special`]: ln Γ, incomplete gamma P/Q, gamma and normal quantiles, the exact
//!   Poisson bounds;
//! - [`mixture`]: the weighted grids of alternatives and the log-sum-exp mixture;
//! - [`two_sample`] (A): full cut-over against the baseline's pre-deploy window, both
//!   releases' counts in one e-process (no bound of the baseline rate), regression at
//!   M ≥ 1/α, healthy at its mirror image ≥ 1/β;
//! - [`concurrent`] (B): canary / rolling / blue-green, per-bucket attribution of
//!   errors between versions, both directions;
//! - [`cutover`]: the one-sample test against a fixed null rate, and the floors;
//! - [`signature`] (C): a new error fingerprint, at a Bonferroni-split α′;
//! - [`dispersion`] (D): over-dispersion φ from the baseline, damping the evidence;
//! - [`exposure`] (E): how much more exposure a decision needs at the current rate;
//! - [`latency`] (G): p95 up by more than a tolerance and a floor, always valid;
//! - [`verdict`]: [`assess_cutover`], the entry point: pending / healthy / degraded /
//!   unhealthy with evidence.
//!
//! All functions are pure, take any `u64` counts (zero exposure, errors above exposure,
//! `u64::MAX`) and never panic or return NaN in an [`Assessment`].

pub mod concurrent;
pub mod cutover;
pub mod dispersion;
pub mod evidence;
pub mod exposure;
pub mod latency;
pub mod mixture;
pub mod sample;
pub mod signature;
pub mod special;
pub mod two_sample;
pub mod verdict;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod verdict_tests;

pub use concurrent::ConcurrentTest;
pub use cutover::CutoverTest;
pub use dispersion::{dispersion, dispersion_upper, dispersion_with_exposure};
pub use signature::{assess_new_signature, new_signature_alpha, NewSignature};
pub use two_sample::{Direction, TwoSampleTest};
pub use verdict::{
    assess_cutover, assess_cutover_with_dispersion, log_healthy_e, Assessment, EvidenceItem,
    Sample, Thresholds, VerdictKind,
};
