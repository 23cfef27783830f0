//! Alert routing end to end: a real `bellwether serve` judges releases from raw OTLP
//! traffic and notifies real HTTP receivers on loopback (webhook, Slack, PagerDuty), routed
//! by service and code rules, delivered through the durable outbox.
//!
//! - [`routing`]: a bad release pages its owning team on every receiver, once; a new error
//!   in billing code goes to billing by the code rule.
//! - [`delivery`]: a failing receiver gets the notification once it recovers; a
//!   notification pending at a crash is delivered once after the restart.
//! - [`resolve`]: a healthy next release resolves the alerts on every receiver.
//! - [`support`]: the receivers, the routing config and the traffic they share.

mod delivery;
mod resolve;
mod routing;
mod support;
