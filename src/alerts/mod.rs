//! Alerts: what monitoring tools send and what becomes of it.
//!
//! Owns the alert model and its fingerprint ([`alert`]), the HTTP wire formats (Prometheus,
//! Alertmanager and Grafana webhooks, PagerDuty Events v2, the generic event: [`intake`],
//! pure bytes → alerts), their routes ([`api`], [`api_events`]), and the engine's alert step:
//! re-sends, correlation to an incident, the rules' `on_alert`, flapping and reopening
//! ([`step`], [`update`]); its settings are [`config`]. The wire formats never touch the store; the step runs inside the
//! engine's transaction.

pub mod alert;
pub mod api;
pub mod api_events;
pub mod changes;
pub mod config;
pub mod expiry;
pub mod intake;
pub(crate) mod step;
pub(crate) mod update;

#[cfg(test)]
mod step_tests;

pub use alert::{Alert, AlertFormat, AlertMember, AlertStatus, fingerprint};
pub use config::{AlertsConfig, PagerDutyConfig};
