//! A ticket's SLA record ([`TicketSla`]: the policy in force, each clock's timeline, the
//! escalation level, the timers scheduled) and the pure rule that keeps the timelines in step
//! with the ticket: [`reconcile`] compares what each clock should be doing given the ticket's
//! state and hold reason with what its timeline says, and appends the marks that differ.
//!
//! Level-triggered on purpose: whatever path changed the ticket (command, alert, rule,
//! housekeeping), the clocks follow its resulting state. It must not read the store or the
//! wall clock, and it does not compute due times (that is [`super::clock`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::sla::clock::{Mark, Stage, Transition};
use crate::sla::policy::{PolicyConfig, Reopen, ResponseMet};
use crate::tickets::{HoldReason, State, lifecycle};

/// The clock met by the first response.
pub const RESPONSE: &str = "response";
/// The clock met by resolution.
pub const RESOLUTION: &str = "resolution";
/// The vendor's underpinning-contract clock: runs while the ticket awaits the vendor.
pub const VENDOR: &str = "vendor";

/// Everything SLA about one ticket. Stored in the ticket record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TicketSla {
    /// The policy in force; `None` while no policy applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Set when a rule chose the policy, so a priority change does not choose again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
    /// Each clock by name ([`RESPONSE`], [`RESOLUTION`], [`VENDOR`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clocks: BTreeMap<String, ClockTrack>,
    /// Escalation level: 0 until a rule escalates, +1 each time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub escalation: u32,
    /// The timer rows stored for this ticket, so a recompute deletes exactly these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timers: Vec<Scheduled>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TicketSla {
    /// True when nothing SLA has happened to the ticket (not stored then).
    pub fn is_empty(&self) -> bool {
        *self == TicketSla::default()
    }
}

/// One clock of a ticket.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ClockTrack {
    /// Start, pauses, resumes and stop, in order.
    pub timeline: Vec<Transition>,
    /// How often a reopen reset the clock (its timeline then starts again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resets: u32,
    /// For the vendor clock: whose underpinning contract it measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Stages whose timer has fired (since the last reset): each fires once, and a stage
    /// reached but not yet fired keeps its timer whatever the clock does next.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<Stage>,
}

/// A timer row stored for a ticket: the clock, the stage and when it falls due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    /// Which clock.
    pub clock: String,
    /// Which warning or the breach.
    #[serde(flatten)]
    pub stage: Stage,
    /// When it falls due.
    pub due: Timestamp,
}

/// What the ticket tells the clocks, beside its state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signals<'a> {
    /// The event was an acknowledgement of the ticket's alert.
    pub acknowledged: bool,
    /// The event was a person's public comment.
    pub public_comment: bool,
    /// The vendor the ticket waits on, if known.
    pub vendor: Option<&'a str>,
}

/// What a clock should be doing now.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    Run,
    Pause(String),
    Stop,
}

/// Where a timeline stands after its last mark.
#[derive(Debug, Clone, PartialEq)]
enum Now {
    NotStarted,
    Running,
    Paused(String),
    Stopped,
}

fn standing(timeline: &[Transition]) -> Now {
    match timeline.last().map(|t| &t.mark) {
        None => Now::NotStarted,
        Some(Mark::Start | Mark::Resume) => Now::Running,
        Some(Mark::Pause { reason }) => Now::Paused(reason.clone()),
        Some(Mark::Stop) => Now::Stopped,
    }
}

/// Brings every clock of `sla` in step with a ticket in `state` (on hold for `hold`) under
/// `policy` at `at`. Returns, per clock that changed, a line saying what happened.
pub fn reconcile(
    sla: &mut TicketSla,
    policy: &PolicyConfig,
    state: State,
    hold: Option<HoldReason>,
    signals: Signals<'_>,
    at: Timestamp,
) -> Vec<(String, String)> {
    let pausing = hold.filter(|h| state == State::OnHold && policy.pause_on.contains(h));
    let mut out = Vec::new();

    let met = |by: ResponseMet, happened: bool| happened && policy.response_met_by.contains(&by);
    let responded = met(ResponseMet::Acknowledged, signals.acknowledged)
        || met(ResponseMet::PublicComment, signals.public_comment)
        || met(ResponseMet::InProgress, state == State::InProgress);
    let response = if responded || !state.is_open() {
        Want::Stop
    } else if let Some(h) = pausing {
        Want::Pause(format!("on_hold: {h}"))
    } else {
        Want::Run
    };
    step(sla, RESPONSE, response, false, at, &mut out);

    let resolution = if lifecycle::is_final(state) {
        Want::Stop
    } else if !state.is_open() {
        match policy.reopen {
            Reopen::Resume => Want::Pause(state.as_str().to_string()),
            Reopen::Reset => Want::Stop,
        }
    } else if let Some(h) = pausing {
        Want::Pause(format!("on_hold: {h}"))
    } else {
        Want::Run
    };
    let restart = policy.reopen == Reopen::Reset && !lifecycle::is_final(state);
    step(sla, RESOLUTION, resolution, restart, at, &mut out);

    let waits_on_vendor = state == State::OnHold && hold == Some(HoldReason::AwaitingVendor);
    let vendor = if waits_on_vendor {
        Want::Run
    } else if !state.is_open() {
        Want::Stop
    } else {
        Want::Pause("vendor released".into())
    };
    let started = sla.clocks.contains_key(VENDOR);
    if started || waits_on_vendor {
        step(sla, VENDOR, vendor, true, at, &mut out);
        if let (Some(track), Some(v)) = (sla.clocks.get_mut(VENDOR), signals.vendor) {
            track.vendor.get_or_insert_with(|| v.to_string());
        }
    }
    out
}

/// Appends the marks that take clock `name` from where it stands to `want`. A stopped clock
/// runs again only when `restart` allows it, from zero.
fn step(
    sla: &mut TicketSla,
    name: &str,
    want: Want,
    restart: bool,
    at: Timestamp,
    out: &mut Vec<(String, String)>,
) {
    let track = sla.clocks.entry(name.to_string()).or_default();
    let mark = |m: Mark| Transition { at, mark: m };
    let said = match (standing(&track.timeline), want) {
        (Now::NotStarted, Want::Run) => {
            track.timeline.push(mark(Mark::Start));
            "started".to_string()
        }
        (Now::NotStarted, Want::Pause(reason)) => {
            track.timeline.push(mark(Mark::Start));
            track.timeline.push(mark(Mark::Pause {
                reason: reason.clone(),
            }));
            format!("started paused ({reason})")
        }
        (Now::Running, Want::Pause(reason)) => {
            track.timeline.push(mark(Mark::Pause {
                reason: reason.clone(),
            }));
            format!("paused ({reason})")
        }
        (Now::Paused(was), Want::Pause(reason)) if was != reason => {
            track.timeline.push(mark(Mark::Resume));
            track.timeline.push(mark(Mark::Pause {
                reason: reason.clone(),
            }));
            format!("paused ({reason})")
        }
        (Now::Paused(_), Want::Run) => {
            track.timeline.push(mark(Mark::Resume));
            "resumed".to_string()
        }
        (Now::Running | Now::Paused(_), Want::Stop) => {
            track.timeline.push(mark(Mark::Stop));
            "stopped".to_string()
        }
        (Now::Stopped, Want::Run) if restart => {
            track.timeline = vec![mark(Mark::Start)];
            track.fired.clear();
            track.resets += 1;
            "restarted from zero".to_string()
        }
        _ => String::new(),
    };
    if track.timeline.is_empty() {
        sla.clocks.remove(name);
    }
    if !said.is_empty() {
        out.push((name.to_string(), said));
    }
}

#[cfg(test)]
mod tests;
