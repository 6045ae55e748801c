//! SLA clocks as pure computation: given a target, a calendar and the clock's timeline
//! (started, paused with a reason, resumed, stopped), what does the clock say at `now`, and
//! when do its remaining warnings and its breach fall due.
//!
//! Owns [`Target`], the timeline marks and [`ClockStatus`]. It must not decide *when* a
//! clock pauses (that is policy: the engine maps hold reasons to pause marks, and runs the
//! vendor's underpinning-contract clock as a second timeline) nor store or schedule timers:
//! [`pending`] lists the instants, the engine writes them as durable timers.
//!
//! Stages are reached on the half-open rule of the calendar: a clock stopped or paused
//! exactly at its due instant has met its target; a running clock evaluated at its due
//! instant has breached. Stop is final; a reopened ticket continues its clock by recording
//! the resolution as a pause and the reopening as a resume.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::sla::calendar::{Calendar, CalendarError};

/// Warning thresholds used when a policy names none, in percent of the target.
pub const DEFAULT_WARNINGS: [u8; 3] = [50, 75, 90];

/// What a clock must achieve: an amount of business time, and when to warn before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Business time allowed before the clock breaches; positive.
    business: SignedDuration,
    /// Warning thresholds in percent of `business`, ascending, each 1..=99.
    warnings: Vec<u8>,
}

impl Target {
    /// A target of `business` time with warnings at `warnings` percent (any order).
    pub fn new(business: SignedDuration, warnings: &[u8]) -> Result<Target, ClockError> {
        if !business.is_positive() {
            return Err(ClockError::NonPositiveTarget(business));
        }
        let mut sorted = warnings.to_vec();
        sorted.sort_unstable();
        let bad: Vec<u8> = sorted
            .iter()
            .copied()
            .filter(|p| !(1..=99).contains(p))
            .collect();
        if !bad.is_empty() {
            return Err(ClockError::WarningOutOfRange(bad));
        }
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(ClockError::DuplicateWarning(pair[0]));
        }
        Ok(Target {
            business,
            warnings: sorted,
        })
    }

    /// The business time allowed.
    pub fn business(&self) -> SignedDuration {
        self.business
    }

    /// The warning thresholds, ascending.
    pub fn warnings(&self) -> &[u8] {
        &self.warnings
    }

    /// Every stage with the elapsed business time that reaches it, earliest first.
    fn stages(&self) -> Vec<(Stage, SignedDuration)> {
        let total = self.business.as_nanos();
        self.warnings
            .iter()
            .map(|&p| {
                let share = SignedDuration::from_nanos_i128(total * i128::from(p) / 100);
                (Stage::Warning(p), share)
            })
            .chain([(Stage::Breach, self.business)])
            .collect()
    }
}

/// One change of a clock's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mark", rename_all = "snake_case")]
pub enum Mark {
    /// The clock starts running (first mark only).
    Start,
    /// The clock stops counting; `reason` says why (e.g. a hold reason) for history/reports.
    Pause { reason: String },
    /// A paused clock runs again.
    Resume,
    /// The clock is done (target met or not); nothing may follow.
    Stop,
}

/// A mark and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When the clock changed state.
    pub at: Timestamp,
    /// What changed.
    pub mark: Mark,
}

/// A point in a clock's life that rules hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", content = "percent", rename_all = "snake_case")]
pub enum Stage {
    /// This percentage of the target has elapsed.
    Warning(u8),
    /// The whole target has elapsed while the clock ran.
    Breach,
}

/// A stage and the instant it is (or was) reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageAt {
    /// Which stage.
    pub stage: Stage,
    /// When it is or was reached.
    pub at: Timestamp,
}

/// Where the clock stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// No start mark at or before `now`.
    NotStarted,
    /// Counting since `since` (the start or the last resume).
    Running { since: Timestamp },
    /// Not counting since `since`, for `reason`.
    Paused { since: Timestamp, reason: String },
    /// Done at `at`.
    Stopped { at: Timestamp },
}

/// What a clock says at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockStatus {
    /// Running, paused, stopped or not started.
    pub phase: Phase,
    /// Business time counted while running.
    pub elapsed: SignedDuration,
    /// Wall-clock time spent paused (what "on hold for 3 days" reports show).
    pub paused: SignedDuration,
    /// Target minus elapsed; negative once breached (overdue by that much business time).
    pub remaining: SignedDuration,
    /// When the target is (or was) due, if the clock is running; paused clocks have none.
    pub due: Option<Timestamp>,
    /// Stages already reached, earliest first, with the instant each was reached.
    pub reached: Vec<StageAt>,
    /// The first warning not yet reached, and when it falls due if the clock is running.
    pub next_warning: Option<NextWarning>,
    /// When the clock breached, if it has.
    pub breached_at: Option<Timestamp>,
}

/// The next warning of a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextWarning {
    /// Its threshold in percent.
    pub percent: u8,
    /// When it falls due; `None` while the clock is paused or stopped.
    pub at: Option<Timestamp>,
}

/// A target or timeline that cannot be evaluated, or a calendar that cannot answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("an SLA target must be positive, got {0:#}")]
    NonPositiveTarget(SignedDuration),
    #[error("warning thresholds must be 1..=99 percent, got {0:?}")]
    WarningOutOfRange(Vec<u8>),
    #[error("warning threshold {0}% is given twice")]
    DuplicateWarning(u8),
    #[error("timeline mark {index} ({at}) is earlier than the mark before it")]
    OutOfOrder { index: usize, at: Timestamp },
    #[error("timeline mark {index}: {mark} is not allowed while the clock is {state}")]
    IllegalMark {
        index: usize,
        mark: &'static str,
        state: &'static str,
    },
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

/// A stretch of running time, clipped to `now`; `open` when it is still running at `now`.
struct Run {
    from: Timestamp,
    to: Timestamp,
    open: bool,
}

/// What the clock says at `now`. Marks after `now` are checked but otherwise ignored.
pub fn status(
    target: &Target,
    calendar: &Calendar,
    timeline: &[Transition],
    now: Timestamp,
) -> Result<ClockStatus, ClockError> {
    let (phase, runs, paused) = replay(timeline, now)?;
    let mut elapsed = SignedDuration::ZERO;
    let mut stages = target.stages().into_iter().peekable();
    let mut reached = Vec::new();
    for run in &runs {
        let len = calendar.between(run.from, run.to)?;
        while let Some(&(stage, threshold)) = stages.peek() {
            let need = threshold - elapsed;
            // Half-open: reaching a stage exactly when a run ends does not count, except
            // for the run still going at `now`.
            let within = if run.open { need <= len } else { need < len };
            if !within {
                break;
            }
            let at = calendar.add(run.from, need)?;
            reached.push(StageAt { stage, at });
            stages.next();
        }
        elapsed += len;
    }
    let remaining = target.business - elapsed;
    let running = matches!(phase, Phase::Running { .. });
    let breached_at = reached
        .iter()
        .find(|s| s.stage == Stage::Breach)
        .map(|s| s.at);
    let due = match (running, breached_at) {
        (false, _) => None,
        (true, Some(at)) => Some(at),
        (true, None) => Some(calendar.add(now, remaining)?),
    };
    let next_warning = match stages.next() {
        Some((Stage::Warning(percent), threshold)) => Some(NextWarning {
            percent,
            at: if running {
                Some(calendar.add(now, threshold - elapsed)?)
            } else {
                None
            },
        }),
        _ => None,
    };
    Ok(ClockStatus {
        phase,
        elapsed,
        paused,
        remaining,
        due,
        reached,
        next_warning,
        breached_at,
    })
}

/// For a clock running at `now`: every stage not yet reached and the instant it falls due,
/// earliest first (these become durable timers). Empty for a clock that is not running.
pub fn pending(
    target: &Target,
    calendar: &Calendar,
    timeline: &[Transition],
    now: Timestamp,
) -> Result<Vec<StageAt>, ClockError> {
    let current = status(target, calendar, timeline, now)?;
    if !matches!(current.phase, Phase::Running { .. }) {
        return Ok(Vec::new());
    }
    target
        .stages()
        .into_iter()
        .filter(|(stage, _)| !current.reached.iter().any(|r| r.stage == *stage))
        .map(|(stage, threshold)| {
            let at = calendar.add(now, threshold - current.elapsed)?;
            Ok(StageAt { stage, at })
        })
        .collect()
}

/// Checks the whole timeline, then turns the marks up to `now` into the phase at `now`, the
/// running stretches and the wall-clock time paused.
fn replay(
    timeline: &[Transition],
    now: Timestamp,
) -> Result<(Phase, Vec<Run>, SignedDuration), ClockError> {
    check(timeline)?;
    let mut phase = Phase::NotStarted;
    let mut runs = Vec::new();
    let mut paused = SignedDuration::ZERO;
    // Marks are in time order (checked), so the ones up to `now` are a prefix.
    for t in timeline.iter().take_while(|t| t.at <= now) {
        match &phase {
            Phase::Running { since } => runs.push(Run {
                from: *since,
                to: t.at,
                open: false,
            }),
            Phase::Paused { since, .. } => paused += t.at.duration_since(*since),
            Phase::NotStarted | Phase::Stopped { .. } => {}
        }
        phase = phase_after(t);
    }
    match &phase {
        Phase::Running { since } => runs.push(Run {
            from: *since,
            to: now,
            open: true,
        }),
        Phase::Paused { since, .. } => paused += now.duration_since(*since),
        Phase::NotStarted | Phase::Stopped { .. } => {}
    }
    Ok((phase, runs, paused))
}

/// Marks must be in time order and follow start → (pause → resume)* → stop.
fn check(timeline: &[Transition]) -> Result<(), ClockError> {
    let mut phase = Phase::NotStarted;
    let mut previous: Option<Timestamp> = None;
    for (index, t) in timeline.iter().enumerate() {
        if previous.is_some_and(|p| t.at < p) {
            return Err(ClockError::OutOfOrder { index, at: t.at });
        }
        previous = Some(t.at);
        let allowed = matches!(
            (&phase, &t.mark),
            (Phase::NotStarted, Mark::Start)
                | (Phase::Running { .. }, Mark::Pause { .. })
                | (Phase::Paused { .. }, Mark::Resume)
                | (Phase::Running { .. } | Phase::Paused { .. }, Mark::Stop)
        );
        if !allowed {
            return Err(ClockError::IllegalMark {
                index,
                mark: mark_name(&t.mark),
                state: phase_name(&phase),
            });
        }
        phase = phase_after(t);
    }
    Ok(())
}

/// The phase a (legal) mark leads to.
fn phase_after(t: &Transition) -> Phase {
    match &t.mark {
        Mark::Start | Mark::Resume => Phase::Running { since: t.at },
        Mark::Pause { reason } => Phase::Paused {
            since: t.at,
            reason: reason.clone(),
        },
        Mark::Stop => Phase::Stopped { at: t.at },
    }
}

fn mark_name(mark: &Mark) -> &'static str {
    match mark {
        Mark::Start => "start",
        Mark::Pause { .. } => "pause",
        Mark::Resume => "resume",
        Mark::Stop => "stop",
    }
}

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::NotStarted => "not started",
        Phase::Running { .. } => "running",
        Phase::Paused { .. } => "paused",
        Phase::Stopped { .. } => "stopped",
    }
}

#[cfg(test)]
mod tests;
