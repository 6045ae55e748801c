//! Change enablement beyond the state machine: a change's plan (service, risk, back-out plan),
//! the standard change catalogue (`[changes.templates.ID]`), the post-implementation review,
//! the change calendar with its conflicts, and the incidents a change may have caused.
//!
//! - [`fields`]: the change fields of a create or an update, checked in the engine (a
//!   standard change is made from a known template, which fills its plan).
//! - [`review`]: the engine's review command; an emergency change closes only after one.
//! - [`calendar`]: the changes whose windows overlap a range, with their conflicts.
//! - [`suspects`]: an incident opened on a service during a change's window is linked to it
//!   (`possibly_caused_by`) in the same engine commit.
//! - [`api`], [`cli`]: `GET /api/v1/changes/templates`, `GET /api/v1/changes/calendar`,
//!   `POST /api/v1/tickets/{id}/review`, and `itsmd change calendar|templates`.
//!
//! Who authorises (by type and risk) is [`crate::tickets::config`]'s and the votes are
//! [`crate::tickets::transitions`]'.

pub mod api;
pub mod calendar;
pub mod cli;
pub(crate) mod fields;
pub(crate) mod review;
pub(crate) mod suspects;
