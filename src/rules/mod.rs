//! Rules: ops engineers' Rhai scripts deciding what happens to tickets.
//!
//! Owns the sandboxed Rhai engine, loading and compiling a rule set, and running hooks. A
//! hook records [`Decision`]s on a ticket handle; it never changes a ticket itself. The engine
//! validates and applies decisions, so running rules has no side effects and can be repeated
//! (tests, dry runs). A rule that fails has its decisions for that event dropped and is
//! reported as a [`RuleFailure`].

mod actions;
mod decision;
mod fields;
mod handle;
pub mod literals;
pub mod queries;
pub mod replay;
mod ruleset;
mod run;
mod sandbox;
pub mod tester;
pub mod time;

pub use decision::{Decided, Decision, OpenTicket, Provenance};
pub use handle::{TicketView, bind_matrix};
pub use ruleset::{CompileError, RuleFile, RuleSet};
pub use run::{HookRun, RuleFailure, Rules};
pub use sandbox::Limits;
