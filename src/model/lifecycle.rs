//! The ITIL state machines, in one place. An illegal transition is an error that lists the
//! allowed targets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Kind;

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
            .ok_or_else(|| format!("unknown state {s:?}"))
    }
}

/// The states a ticket of `kind` may move to from `from`.
pub fn allowed(kind: Kind, from: State) -> &'static [State] {
    use State::*;
    match (kind, from) {
        (Kind::Incident, New) => &[InProgress, Resolved, Canceled],
        (Kind::Incident, InProgress) => &[OnHold, Resolved, Canceled],
        (Kind::Incident, OnHold) => &[InProgress, Resolved, Canceled],
        (Kind::Incident, Resolved) => &[InProgress, Closed],

        (Kind::Request, New) => &[AwaitingApproval, InProgress, Canceled],
        (Kind::Request, AwaitingApproval) => &[Approved, Rejected, Canceled],
        (Kind::Request, Approved) => &[InProgress, Canceled],
        (Kind::Request, InProgress) => &[OnHold, Fulfilled, Canceled],
        (Kind::Request, OnHold) => &[InProgress, Fulfilled, Canceled],
        (Kind::Request, Fulfilled) => &[InProgress, Closed],

        (Kind::Problem, New) => &[Assess],
        (Kind::Problem, Assess) => &[RootCauseAnalysis, Closed],
        (Kind::Problem, RootCauseAnalysis) => &[KnownError, Resolved],
        (Kind::Problem, KnownError) => &[FixInProgress, Resolved],
        (Kind::Problem, FixInProgress) => &[Resolved, RootCauseAnalysis],
        (Kind::Problem, Resolved) => &[Closed],

        // The normal change path; the change type's shortcuts are added by the engine.
        (Kind::Change, New) => &[Assess, Canceled],
        (Kind::Change, Assess) => &[Authorize, Canceled],
        (Kind::Change, Authorize) => &[Scheduled, Rejected, Canceled],
        (Kind::Change, Scheduled) => &[Implement, Canceled],
        (Kind::Change, Implement) => &[Review, Canceled],
        (Kind::Change, Review) => &[Closed],

        _ => &[],
    }
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
    states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one transition against the state machine.
pub fn check(kind: Kind, from: State, to: State) -> Result<(), IllegalTransition> {
    let targets = allowed(kind, from);
    if targets.contains(&to) {
        Ok(())
    } else {
        Err(IllegalTransition {
            kind: kind.as_str(),
            from,
            to,
            allowed: targets.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_walk_and_reopen() {
        use State::*;
        for (from, to) in [
            (New, InProgress),
            (InProgress, OnHold),
            (OnHold, InProgress),
            (InProgress, Resolved),
            (Resolved, InProgress),
            (Resolved, Closed),
            (New, Canceled),
        ] {
            assert!(check(Kind::Incident, from, to).is_ok(), "{from} → {to}");
        }
    }

    #[test]
    fn illegal_transition_lists_allowed_targets() {
        let err = check(Kind::Incident, State::Closed, State::InProgress).unwrap_err();
        assert!(err.allowed.is_empty());
        let err = check(Kind::Incident, State::New, State::Closed).unwrap_err();
        assert_eq!(
            err.to_string(),
            "incident cannot go from new to closed; allowed: in_progress, resolved, canceled"
        );
    }

    #[test]
    fn states_parse_from_their_names() {
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>(), Ok(s));
        }
    }
}
