//! SLA time: business calendars and the pure computation of SLA clocks.
//!
//! Owns calendars (time zone, weekly business hours, holidays), business-time arithmetic,
//! and what a clock's timeline means at a given instant (elapsed, remaining, due, warnings,
//! breach). Everything here is pure: it must not read the wall clock, the store or files,
//! and it does not schedule anything; the engine stores the timers this module computes.

pub mod calendar;
pub mod calendar_config;
pub mod clock;
pub mod policy;
pub mod task;
pub mod timers;
pub mod track;
pub mod view;

pub use calendar::{Calendar, CalendarError, CalendarProblem, Holiday, OpenRange};
pub use calendar_config::{ALWAYS_OPEN, CalendarConfig, Calendars};
pub use clock::{ClockStatus, Mark, Phase, Stage, StageAt, Target, Transition};
pub use policy::{PolicyConfig, SlaConfig};
pub use timers::Timer;
pub use track::TicketSla;
