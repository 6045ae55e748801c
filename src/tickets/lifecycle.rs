//! The ITIL state machines and every rule about a transition, in one place: which targets a
//! state allows per kind (and per change type), and what a transition needs (hold reason,
//! resolution code, planned window, review outcome). An illegal transition is an error that
//! lists the allowed targets. Pure: the engine gathers the facts, this module judges them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::tickets::vocab::names;
use crate::tickets::{ChangeType, HoldReason, Kind, Resolution, ReviewOutcome};

/// Every state any ticket kind can be in. Which ones a kind uses is [`allowed`]'s business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    New,
    InProgress,
    OnHold,
    Resolved,
    Closed,
    Canceled,
    // Service request
    AwaitingApproval,
    Approved,
    Rejected,
    Fulfilled,
    // Problem
    Assess,
    RootCauseAnalysis,
    KnownError,
    FixInProgress,
    // Change
    Authorize,
    Scheduled,
    Implement,
    Review,
}

impl State {
    pub const ALL: [State; 18] = [
        State::New,
        State::InProgress,
        State::OnHold,
        State::Resolved,
        State::Closed,
        State::Canceled,
        State::AwaitingApproval,
        State::Approved,
        State::Rejected,
        State::Fulfilled,
        State::Assess,
        State::RootCauseAnalysis,
        State::KnownError,
        State::FixInProgress,
        State::Authorize,
        State::Scheduled,
        State::Implement,
        State::Review,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::New => "new",
            State::InProgress => "in_progress",
            State::OnHold => "on_hold",
            State::Resolved => "resolved",
            State::Closed => "closed",
            State::Canceled => "canceled",
            State::AwaitingApproval => "awaiting_approval",
            State::Approved => "approved",
            State::Rejected => "rejected",
            State::Fulfilled => "fulfilled",
            State::Assess => "assess",
            State::RootCauseAnalysis => "root_cause_analysis",
            State::KnownError => "known_error",
            State::FixInProgress => "fix_in_progress",
            State::Authorize => "authorize",
            State::Scheduled => "scheduled",
            State::Implement => "implement",
            State::Review => "review",
        }
    }

    /// Open means work may still happen: not resolved, fulfilled, closed, canceled or rejected.
    pub fn is_open(self) -> bool {
        !matches!(
            self,
            State::Resolved | State::Fulfilled | State::Closed | State::Canceled | State::Rejected
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = State::ALL.iter().map(|st| st.as_str()).collect();
                format!("unknown state {s:?}; expected one of {}", all.join(", "))
            })
    }
}

/// Which state machine a ticket follows: its kind, and for a change its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    Incident,
    Request,
    Problem,
    Change(ChangeType),
}

impl Flow {
    /// The flow of a ticket of `kind`; a change without a type follows the normal path.
    pub fn of(kind: Kind, change_type: Option<ChangeType>) -> Flow {
        match kind {
            Kind::Incident => Flow::Incident,
            Kind::Request => Flow::Request,
            Kind::Problem => Flow::Problem,
            Kind::Change => Flow::Change(change_type.unwrap_or(ChangeType::Normal)),
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Flow::Incident => Kind::Incident,
            Flow::Request => Kind::Request,
            Flow::Problem => Kind::Problem,
            Flow::Change(_) => Kind::Change,
        }
    }

    /// For messages: "incident", "emergency change".
    pub fn name(self) -> String {
        match self {
            Flow::Change(t) => format!("{t} change"),
            other => other.kind().as_str().to_string(),
        }
    }

    /// Every flow, for exhaustive tests and documentation.
    pub const ALL: [Flow; 6] = [
        Flow::Incident,
        Flow::Request,
        Flow::Problem,
        Flow::Change(ChangeType::Standard),
        Flow::Change(ChangeType::Normal),
        Flow::Change(ChangeType::Emergency),
    ];
}

/// The states a ticket of `kind` may move to from `from` (a change on its normal path).
pub fn allowed(kind: Kind, from: State) -> &'static [State] {
    allowed_in(Flow::of(kind, None), from)
}

/// The states a ticket following `flow` may move to from `from`.
pub fn allowed_in(flow: Flow, from: State) -> &'static [State] {
    use State::*;
    match (flow, from) {
        (Flow::Incident, New) => &[InProgress, Resolved, Canceled],
        (Flow::Incident, InProgress) => &[OnHold, Resolved, Canceled],
        (Flow::Incident, OnHold) => &[InProgress, Resolved, Canceled],
        (Flow::Incident, Resolved) => &[InProgress, Closed],

        (Flow::Request, New) => &[AwaitingApproval, InProgress, Canceled],
        (Flow::Request, AwaitingApproval) => &[Approved, Rejected, Canceled],
        (Flow::Request, Approved) => &[InProgress, Canceled],
        (Flow::Request, InProgress) => &[OnHold, Fulfilled, Canceled],
        (Flow::Request, OnHold) => &[InProgress, Fulfilled, Canceled],
        (Flow::Request, Fulfilled) => &[InProgress, Closed],

        (Flow::Problem, New) => &[Assess],
        (Flow::Problem, Assess) => &[RootCauseAnalysis, Closed],
        (Flow::Problem, RootCauseAnalysis) => &[KnownError, Resolved],
        (Flow::Problem, KnownError) => &[FixInProgress, Resolved],
        (Flow::Problem, FixInProgress) => &[Resolved, RootCauseAnalysis],
        (Flow::Problem, Resolved) => &[Closed],

        // Emergency changes skip assessment; standard ones skip assessment and authorisation.
        (Flow::Change(ChangeType::Normal), New) => &[Assess, Canceled],
        (Flow::Change(ChangeType::Emergency), New) => &[Authorize, Canceled],
        (Flow::Change(ChangeType::Standard), New) => &[Scheduled, Canceled],
        (Flow::Change(ChangeType::Normal), Assess) => &[Authorize, Canceled],
        (Flow::Change(ChangeType::Normal | ChangeType::Emergency), Authorize) => {
            &[Scheduled, Rejected, Canceled]
        }
        (Flow::Change(_), Scheduled) => &[Implement, Canceled],
        (Flow::Change(_), Implement) => &[Review, Canceled],
        (Flow::Change(_), Review) => &[Closed],

        _ => &[],
    }
}

/// Final states: nothing follows them.
pub fn is_final(state: State) -> bool {
    matches!(state, State::Closed | State::Canceled | State::Rejected)
}

/// A reopen: work starts again on a resolved incident or a fulfilled request.
pub fn is_reopen(from: State, to: State) -> bool {
    matches!(from, State::Resolved | State::Fulfilled) && to == State::InProgress
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} cannot go from {from} to {to}; allowed: {}", list(.allowed))]
pub struct IllegalTransition {
    pub kind: &'static str,
    pub from: State,
    pub to: State,
    pub allowed: Vec<State>,
}

fn list(states: &[State]) -> String {
    if states.is_empty() {
        return "none (final state)".into();
    }
    names(states)
}

/// Checks one transition against the state machine (a change on its normal path).
pub fn check(kind: Kind, from: State, to: State) -> Result<(), IllegalTransition> {
    check_in(Flow::of(kind, None), from, to)
}

/// Checks one transition against the state machine of `flow`.
pub fn check_in(flow: Flow, from: State, to: State) -> Result<(), IllegalTransition> {
    let targets = allowed_in(flow, from);
    if targets.contains(&to) {
        Ok(())
    } else {
        Err(IllegalTransition {
            kind: flow.kind().as_str(),
            from,
            to,
            allowed: targets.to_vec(),
        })
    }
}

/// What a transition brings, and what the ticket already has, as far as the rules care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The hold reason given with the transition.
    pub hold_reason: Option<HoldReason>,
    /// The resolution code given with the transition.
    pub resolution: Option<Resolution>,
    /// The review outcome given with the transition.
    pub outcome: Option<ReviewOutcome>,
    /// Whether the change has a planned window.
    pub has_window: bool,
    /// Whether the ticket has a duplicate_of link.
    pub duplicate_of: bool,
}

/// Why a legal transition still cannot happen: something it needs is missing or misplaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct Unmet {
    /// The request field at fault (hold_reason, resolution, window, outcome, links); owned
    /// only when it came from another node's answer.
    pub field: std::borrow::Cow<'static, str>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unmet(Vec<Unmet>),
}

/// The resolution codes a transition to `to` accepts, or `None` when it takes none.
pub fn resolutions(flow: Flow, from: State, to: State) -> Option<&'static [Resolution]> {
    use Resolution::*;
    match (flow, from, to) {
        (Flow::Incident, _, State::Resolved) => Some(&[
            Fixed,
            Workaround,
            NoFaultFound,
            UserError,
            Duplicate,
            AlertCleared,
        ]),
        (Flow::Problem, State::FixInProgress, State::Resolved) => Some(&[Fixed, Workaround]),
        // Resolving straight from analysis means the risk is accepted, not fixed.
        (Flow::Problem, _, State::Resolved) => Some(&[RiskAccepted]),
        (Flow::Problem, State::Assess, State::Closed) => Some(&[Duplicate]),
        _ => None,
    }
}

/// Judges a transition: legal in the flow, and everything it needs is there (and nothing
/// that does not belong to it). Every unmet need is reported, not just the first.
pub fn validate(flow: Flow, from: State, to: State, facts: &Facts) -> Result<(), TransitionError> {
    check_in(flow, from, to)?;
    let mut unmet = Vec::new();
    let mut need = |field: &'static str, message: String| {
        unmet.push(Unmet {
            field: field.into(),
            message,
        })
    };

    match (to == State::OnHold, facts.hold_reason) {
        (true, None) => need(
            "hold_reason",
            format!(
                "going on hold needs a hold reason: one of {}",
                names(HoldReason::ALL)
            ),
        ),
        (false, Some(_)) => need(
            "hold_reason",
            format!("a hold reason only goes with a transition to on_hold, not to {to}"),
        ),
        _ => {}
    }

    match (resolutions(flow, from, to), facts.resolution) {
        (Some(codes), None) => need(
            "resolution",
            format!(
                "{} from {from} to {to} needs a resolution code: one of {}",
                flow.name(),
                names(codes)
            ),
        ),
        (Some(codes), Some(r)) if !codes.contains(&r) => need(
            "resolution",
            format!(
                "resolution {r} does not fit {} from {from} to {to}; one of {}",
                flow.name(),
                names(codes)
            ),
        ),
        (None, Some(_)) => need(
            "resolution",
            format!("a resolution code does not go with a transition to {to}"),
        ),
        _ => {}
    }
    if facts.resolution == Some(Resolution::Duplicate) && !facts.duplicate_of {
        need(
            "resolution",
            "closing as duplicate needs a duplicate_of link to the ticket it duplicates".into(),
        );
    }

    if matches!(flow, Flow::Change(_)) && to == State::Scheduled && !facts.has_window {
        need(
            "window",
            "a change needs a planned window (start, end) before it is scheduled".into(),
        );
    }
    let closes_review =
        matches!(flow, Flow::Change(_)) && from == State::Review && to == State::Closed;
    match (closes_review, facts.outcome) {
        (true, None) => need(
            "outcome",
            format!(
                "closing a change needs the review outcome: one of {}",
                names(ReviewOutcome::ALL)
            ),
        ),
        (false, Some(_)) => need(
            "outcome",
            "a review outcome only goes with closing a change from review".into(),
        ),
        _ => {}
    }
    if unmet.is_empty() {
        Ok(())
    } else {
        Err(TransitionError::Unmet(unmet))
    }
}

#[cfg(test)]
mod tests;
