//! SLA time: business calendars, SLA policies, the clocks of each ticket and their timers.
//!
//! Owns calendars (time zone, weekly business hours, holidays), business-time arithmetic,
//! what a clock's timeline means at a given instant (elapsed, remaining, due, warnings,
//! breach), policies and how a ticket's state moves its clocks ([`track`]), the timer key
//! layout ([`timers`], read-only) and the clock task ([`task`]) that hands due timers to the
//! engine. All but the task is pure: nothing here reads the wall clock or writes the store;
//! the engine keeps the timelines and writes the timers these modules compute.

pub mod calendar;
pub mod calendar_config;
pub mod clock;
pub mod policy;
pub mod step;
pub mod task;
pub mod track;
pub mod view;

pub use calendar::{Calendar, CalendarError, CalendarProblem, Holiday, OpenRange};
pub use calendar_config::{ALWAYS_OPEN, CalendarConfig, Calendars};
pub use clock::{ClockStatus, Mark, Phase, Stage, StageAt, Target, Transition};
pub use policy::{PolicyConfig, SlaConfig};
pub use track::TicketSla;
