//! itsmd: an ITSM process platform as one daemon.
//!
//! Monitoring tools post alerts, agents and vendors use the HTTP API; every input becomes an
//! event that one engine thread records, runs through the ops engineers' Rhai rules, and
//! applies to tickets (incidents, requests, problems, changes), committing each batch
//! durably before anyone is told "accepted".
//!
//! # Layout
//!
//! A capability is a folder with its wire formats, model, config section, engine step, routes,
//! client commands and tests; the engine core knows capabilities only through its one dispatch
//! (`engine::batch`). docs/architecture.md has the flow, the invariants and the whole map.
//!
//! - [`event`]: the engine's one input type, the sum of every capability's input.
//! - [`engine`]: the single writer: bounded queue, batches, one transaction and one commit per
//!   batch, flushed on a thread of its own while the next batch is processed, then the
//!   acknowledgements; applying changes and rule decisions.
//! - [`alerts`]: alert model and fingerprint, the HTTP wire formats, their routes, correlation.
//! - [`mail`]: the mail model, the Maildir source, threading and loop protection.
//! - [`tickets`]: tickets and their ITIL state machines, priority, history, links, agents'
//!   commands, auto-close, change enablement (risk, templates, reviews, the change calendar),
//!   the ticket routes, `itsmd ticket` and `itsmd change`.
//! - [`sla`]: business calendars, SLA policies, clocks, the clock task.
//! - [`vendors`]: signed webhooks out (outbox, signing, retries, the dispatcher) and callbacks.
//! - [`reports`]: process reports (MTTA, MTTR, SLA compliance, …) computed from the history.
//! - [`auth`]: API tokens and roles.
//! - [`rules`]: the Rhai sandbox, rule sets, hooks and decisions, the tester and replay.
//! - [`store`]: the `Store` trait, `store::open`, its backends, and every key layout
//!   ([`store::layout`]).
//! - [`api`]: the router, serving, errors, limits, health, metrics and admin routes.
//! - [`console`]: the agent console: server-rendered HTML with htmx under `/ui/`, local
//!   accounts signed in with a session cookie.
//! - [`cli`]: the shared HTTP client, export/import and replay commands.
//! - [`config`]: the TOML root, embedded defaults and validation (all errors at once).
//! - [`reload`]: SIGHUP, rule-file changes and admin requests swap in new configuration and
//!   rules, all or nothing.
//! - [`retention`]: the journal's retention sweep, `itsmd compact`.
//! - [`backup`]: the whole store as JSON lines (export) and back (import).
//! - [`daemon`]: wires everything together and owns graceful shutdown.
//! - [`egress`]: where the daemon may connect on its own (vendor webhooks, the SMTP relay).
//! - [`clock`], [`metrics`], [`systemd`], [`telemetry`]: time as a dependency, metric names,
//!   readiness notification, logging; `suggest`: "did you mean" for misspelt names.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod console;
pub mod daemon;
pub mod egress;
pub mod engine;
pub mod event;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod mail;
pub mod metrics;
pub mod reload;
pub mod reports;
pub mod retention;
pub mod rules;
pub mod sla;
pub mod store;
pub(crate) mod suggest;
pub mod systemd;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod tickets;
pub mod vendors;
