//! itsmd: an ITSM process platform as one daemon.
//!
//! Monitoring tools post alerts, agents and vendors use the HTTP API; every input becomes an
//! event that one engine thread records, runs through the ops engineers' Rhai rules, and
//! applies to tickets (incidents, requests, problems, changes), committing each batch
//! durably before anyone is told "accepted".
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, its embedded defaults and validation (all errors at
//!   once).
//! - [`model`]: plain domain data with no I/O: events, alerts and their fingerprint, tickets,
//!   lifecycles (the ITIL state machines), priority, history, mail.
//! - [`sources`]: producers of events: HTTP wire formats, the Maildir.
//! - [`engine`]: the single writer: bounded queue, batches, correlation, applying decisions,
//!   one commit and one flush per batch, then the acknowledgements.
//! - [`rules`]: the Rhai sandbox, rule sets, hooks and the decisions they record.
//! - [`sla`]: business calendars, SLA policies and clock computation, the timer layout and
//!   the clock task that hands due timers to the engine.
//! - [`outbound`]: vendor webhooks: Standard Webhooks signing, secrets, the retry schedule.
//! - [`records`]: where each record lives in the store (keys, indexes) and typed reads.
//! - [`report`]: process reports (MTTA, MTTR, SLA compliance, breaches, backlog, volume,
//!   escalations) computed from the history, and their text tables.
//! - [`reload`]: SIGHUP, rule-file changes and admin requests swap in new configuration and
//!   rules, all or nothing.
//! - [`store`]: the `Store` trait, its sled and in-memory implementations.
//! - [`api`]: axum routes; reads from the store, writes through the engine.
//! - [`backup`]: the whole store as JSON lines (export) and back (import).
//! - [`cli`]: client subcommands (`itsmd ticket …`) that talk to a running daemon over HTTP.
//! - [`daemon`]: wires everything together and owns graceful shutdown.
//! - [`clock`]: time as a dependency, so tests can drive it.
//! - [`metrics`]: every exported metric, named in one place.
//! - [`systemd`]: readiness notification to systemd.
//! - [`telemetry`]: logging setup.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod event;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod mail;
pub mod metrics;
pub mod reload;
pub mod reports;
pub mod rules;
pub mod sla;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod tickets;
pub mod vendors;
