//! What `GET /api/v1/tickets/{id}/sla` shows: every clock of a ticket at one instant, with
//! its target, business time elapsed, paused time, remaining time, due time, next warning,
//! breach state and the timeline as running and paused segments — the answer to "why was
//! this escalated".
//!
//! Pure: computed from the ticket record, the policies and calendars in force, and `now`.
//! It must not read the store or the wall clock.

use jiff::Timestamp;
use serde::Serialize;

use crate::config::duration::Friendly;
use crate::sla::calendar_config::Calendars;
use crate::sla::clock;
use crate::sla::clock::{Mark, Phase, Stage, StageAt};
use crate::sla::policy::SlaConfig;
use crate::sla::track::{ClockTrack, Scheduled};
use crate::tickets::{Ticket, TicketId};

/// A ticket's SLA at `at`.
#[derive(Debug, Clone, Serialize)]
pub struct SlaView {
    /// Which ticket.
    pub ticket: TicketId,
    /// The instant the figures are for.
    pub at: Timestamp,
    /// The policy in force, if any.
    pub policy: Option<String>,
    /// True when a rule chose the policy.
    pub pinned: bool,
    /// Escalation level.
    pub escalation: u32,
    /// Every clock, in name order.
    pub clocks: Vec<ClockView>,
    /// The timers still to fire, earliest first.
    pub timers: Vec<Scheduled>,
}

/// One clock at `at`.
#[derive(Debug, Clone, Serialize)]
pub struct ClockView {
    /// response, resolution or vendor.
    pub name: String,
    /// For the vendor clock: whose contract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// not_started, running, paused or stopped.
    pub phase: &'static str,
    /// Why it is paused, while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// The target, e.g. "4h"; absent when the clock cannot be computed (see `problem`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The target in seconds of business time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_secs: Option<i64>,
    /// Business time counted while running, in seconds.
    pub elapsed_secs: i64,
    /// Wall-clock time spent paused, in seconds.
    pub paused_secs: i64,
    /// Business time left, in seconds; negative once breached.
    pub remaining_secs: i64,
    /// When the target is due while the clock runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<Timestamp>,
    /// The next warning's threshold and, while running, when it falls due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_warning: Option<NextWarningView>,
    /// Whether the target was missed.
    pub breached: bool,
    /// When it was missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<Timestamp>,
    /// Stages reached so far, with when.
    pub reached: Vec<StageAt>,
    /// Stages whose timer has fired (rules heard about them).
    pub fired: Vec<Stage>,
    /// How often a reopen reset the clock.
    pub resets: u32,
    /// The timeline as running and paused stretches.
    pub segments: Vec<Segment>,
    /// Why the figures could not be computed (calendar gone, bad timeline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The next warning of a clock.
#[derive(Debug, Clone, Serialize)]
pub struct NextWarningView {
    /// Threshold in percent.
    pub percent: u8,
    /// When it falls due, while the clock runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// A stretch of a clock's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// running or paused.
    pub state: &'static str,
    /// When it began.
    pub from: Timestamp,
    /// When it ended; absent while it goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Timestamp>,
    /// Why it was paused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where a ticket stands against its SLA, as `GET /api/v1/tickets?sla=` filters on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A clock missed its target.
    Breached,
    /// A clock still going (running or paused) passed a warning but has not breached.
    AtRisk,
    /// A clock is paused (on hold for the caller, a vendor, …).
    Paused,
}

impl std::str::FromStr for Standing {
    type Err = String;
    fn from_str(s: &str) -> Result<Standing, String> {
        match s {
            "breached" => Ok(Standing::Breached),
            "at_risk" => Ok(Standing::AtRisk),
            "paused" => Ok(Standing::Paused),
            _ => Err(format!(
                "unknown SLA standing {s:?}; expected one of breached, at_risk, paused"
            )),
        }
    }
}

impl SlaView {
    /// Whether some clock of the ticket stands as `standing`.
    pub fn stands(&self, standing: Standing) -> bool {
        self.clocks.iter().any(|c| match standing {
            Standing::Breached => c.breached,
            Standing::AtRisk => {
                !c.breached
                    && matches!(c.phase, "running" | "paused")
                    && c.reached
                        .iter()
                        .any(|r| matches!(r.stage, Stage::Warning(_)))
            }
            Standing::Paused => c.phase == "paused",
        })
    }
}

/// The SLA of `t` at `at` under the policies and calendars in force.
pub fn of(t: &Ticket, sla: &SlaConfig, calendars: &Calendars, at: Timestamp) -> SlaView {
    let policy = t.sla.policy.as_deref().and_then(|n| sla.policy(n));
    let clocks = t
        .sla
        .clocks
        .iter()
        .map(|(name, track)| {
            let computed = match policy {
                None => Err("the ticket's policy is not configured".to_string()),
                Some(p) => sla
                    .setup(calendars, p, name, track.vendor.as_deref())
                    .and_then(|c| {
                        let s = clock::status(&c.target, &c.calendar, &track.timeline, at)
                            .map_err(|e| e.to_string())?;
                        Ok((c.target.business(), s))
                    }),
            };
            clock_view(name, track, computed)
        })
        .collect();
    SlaView {
        ticket: t.id,
        at,
        policy: t.sla.policy.clone(),
        pinned: t.sla.pinned,
        escalation: t.sla.escalation,
        clocks,
        timers: t.sla.timers.clone(),
    }
}

fn clock_view(
    name: &str,
    track: &ClockTrack,
    computed: Result<(jiff::SignedDuration, clock::ClockStatus), String>,
) -> ClockView {
    let mut v = ClockView {
        name: name.to_string(),
        vendor: track.vendor.clone(),
        phase: "not_started",
        pause_reason: None,
        target: None,
        target_secs: None,
        elapsed_secs: 0,
        paused_secs: 0,
        remaining_secs: 0,
        due: None,
        next_warning: None,
        breached: false,
        breached_at: None,
        reached: Vec::new(),
        fired: track.fired.clone(),
        resets: track.resets,
        segments: segments(&track.timeline),
        problem: None,
    };
    match computed {
        Err(e) => v.problem = Some(e),
        Ok((target, s)) => {
            (v.phase, v.pause_reason) = match s.phase {
                Phase::NotStarted => ("not_started", None),
                Phase::Running { .. } => ("running", None),
                Phase::Paused { reason, .. } => ("paused", Some(reason)),
                Phase::Stopped { .. } => ("stopped", None),
            };
            v.target = Some(Friendly(target).to_string());
            v.target_secs = Some(target.as_secs());
            v.elapsed_secs = s.elapsed.as_secs();
            v.paused_secs = s.paused.as_secs();
            v.remaining_secs = s.remaining.as_secs();
            v.due = s.due;
            v.next_warning = s.next_warning.map(|w| NextWarningView {
                percent: w.percent,
                at: w.at,
            });
            v.breached = s.breached_at.is_some();
            v.breached_at = s.breached_at;
            v.reached = s.reached;
        }
    }
    v
}

/// The timeline as alternating running and paused stretches.
pub fn segments(timeline: &[clock::Transition]) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    for t in timeline {
        if let Some(last) = out.last_mut()
            && last.to.is_none()
        {
            last.to = Some(t.at);
        }
        let next = match &t.mark {
            Mark::Start | Mark::Resume => Some(("running", None)),
            Mark::Pause { reason } => Some(("paused", Some(reason.clone()))),
            Mark::Stop => None,
        };
        if let Some((state, reason)) = next {
            out.push(Segment {
                state,
                from: t.at,
                to: None,
                reason,
            });
        }
    }
    // Zero-length stretches (a pause reason changing in one instant) say nothing.
    out.retain(|s| s.to != Some(s.from));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::Transition;

    #[test]
    fn segments_alternate_and_drop_instant_ones() {
        let at = |m: i64| Timestamp::from_second(m * 60).unwrap();
        let t = |m, mark| Transition { at: at(m), mark };
        let pause = |r: &str| Mark::Pause { reason: r.into() };
        let timeline = [
            t(0, Mark::Start),
            t(10, pause("a")),
            t(20, Mark::Resume),
            t(20, pause("b")),
            t(30, Mark::Resume),
            t(40, Mark::Stop),
        ];
        let s = segments(&timeline);
        let shape: Vec<(&str, i64, Option<i64>)> = s
            .iter()
            .map(|s| {
                (
                    s.state,
                    s.from.as_second() / 60,
                    s.to.map(|t| t.as_second() / 60),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("running", 0, Some(10)),
                ("paused", 10, Some(20)),
                ("paused", 20, Some(30)),
                ("running", 30, Some(40)),
            ]
        );
        assert_eq!(s[2].reason.as_deref(), Some("b"));
        let open = segments(&timeline[..2]);
        assert_eq!(open[1].to, None);
    }
}
