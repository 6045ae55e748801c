//! The state machines, walked edge by edge against DESIGN.md §3 written out independently.

use State::*;

use crate::tickets::lifecycle::*;

/// Every edge of DESIGN.md §3, per flow, transcribed by hand.
fn design(flow: Flow) -> Vec<(State, State)> {
    let cancel_before_review = |states: &[State]| -> Vec<(State, State)> {
        states.iter().map(|s| (*s, Canceled)).collect()
    };
    match flow {
        Flow::Incident => vec![
            (New, InProgress),
            (InProgress, OnHold),
            (OnHold, InProgress),
            (New, Resolved),
            (InProgress, Resolved),
            (OnHold, Resolved),
            (Resolved, InProgress),
            (Resolved, Closed),
            (New, Canceled),
            (InProgress, Canceled),
            (OnHold, Canceled),
        ],
        Flow::Request => vec![
            (New, AwaitingApproval),
            (AwaitingApproval, Approved),
            (AwaitingApproval, Rejected),
            (Approved, InProgress),
            (New, InProgress),
            (InProgress, OnHold),
            (OnHold, InProgress),
            (InProgress, Fulfilled),
            (OnHold, Fulfilled),
            (Fulfilled, InProgress),
            (Fulfilled, Closed),
            (New, Canceled),
            (AwaitingApproval, Canceled),
            (Approved, Canceled),
            (InProgress, Canceled),
            (OnHold, Canceled),
        ],
        Flow::Problem => vec![
            (New, Assess),
            (Assess, RootCauseAnalysis),
            (RootCauseAnalysis, KnownError),
            (KnownError, FixInProgress),
            (FixInProgress, Resolved),
            (Resolved, Closed),
            (Assess, Closed),
            (RootCauseAnalysis, Resolved),
            (KnownError, Resolved),
            (FixInProgress, RootCauseAnalysis),
        ],
        Flow::Change(ChangeType::Normal) => {
            let mut e = vec![
                (New, Assess),
                (Assess, Authorize),
                (Authorize, Scheduled),
                (Scheduled, Implement),
                (Implement, Review),
                (Review, Closed),
                (Authorize, Rejected),
            ];
            e.extend(cancel_before_review(&[
                New, Assess, Authorize, Scheduled, Implement,
            ]));
            e
        }
        Flow::Change(ChangeType::Emergency) => {
            let mut e = vec![
                (New, Authorize),
                (Authorize, Scheduled),
                (Scheduled, Implement),
                (Implement, Review),
                (Review, Closed),
                (Authorize, Rejected),
            ];
            e.extend(cancel_before_review(&[
                New, Authorize, Scheduled, Implement,
            ]));
            e
        }
        Flow::Change(ChangeType::Standard) => {
            let mut e = vec![
                (New, Scheduled),
                (Scheduled, Implement),
                (Implement, Review),
                (Review, Closed),
            ];
            e.extend(cancel_before_review(&[New, Scheduled, Implement]));
            e
        }
    }
}

#[test]
fn every_edge_of_every_flow_matches_the_design_and_nothing_else_is_allowed() {
    for flow in Flow::ALL {
        let edges = design(flow);
        let mut allowed_count = 0;
        for from in State::ALL {
            for to in State::ALL {
                let expected = edges.contains(&(from, to));
                let got = check_in(flow, from, to);
                assert_eq!(
                    got.is_ok(),
                    expected,
                    "{} {from} → {to}: {got:?}",
                    flow.name()
                );
                if let Err(e) = got {
                    assert_eq!(e.allowed, allowed_in(flow, from), "{e}");
                } else {
                    allowed_count += 1;
                }
            }
        }
        assert_eq!(allowed_count, edges.len(), "{}", flow.name());
    }
}

#[test]
fn final_states_allow_nothing() {
    for flow in Flow::ALL {
        for s in [Closed, Canceled, Rejected] {
            assert!(is_final(s));
            assert!(allowed_in(flow, s).is_empty(), "{} {s}", flow.name());
        }
    }
}

#[test]
fn illegal_transition_lists_allowed_targets() {
    let err = check(Kind::Incident, Closed, InProgress).unwrap_err();
    assert!(err.allowed.is_empty());
    assert!(err.to_string().ends_with("allowed: none (final state)"));
    let err = check(Kind::Incident, New, Closed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "incident cannot go from new to closed; allowed: in_progress, resolved, canceled"
    );
    let err = check_in(Flow::Change(ChangeType::Standard), New, Assess).unwrap_err();
    assert_eq!(err.allowed, vec![Scheduled, Canceled]);
}

fn unmet_fields(r: Result<(), TransitionError>) -> Vec<String> {
    match r {
        Err(TransitionError::Unmet(u)) => u.iter().map(|u| u.field.to_string()).collect(),
        other => panic!("expected unmet needs, got {other:?}"),
    }
}

#[test]
fn on_hold_needs_a_hold_reason_and_only_on_hold_takes_one() {
    let ok = Facts {
        hold_reason: Some(HoldReason::AwaitingVendor),
        ..Facts::default()
    };
    assert_eq!(validate(Flow::Incident, InProgress, OnHold, &ok), Ok(()));
    assert_eq!(
        unmet_fields(validate(
            Flow::Incident,
            InProgress,
            OnHold,
            &Facts::default()
        )),
        vec!["hold_reason"]
    );
    assert_eq!(
        unmet_fields(validate(Flow::Incident, New, InProgress, &ok)),
        vec!["hold_reason"]
    );
}

#[test]
fn resolving_needs_a_fitting_resolution_code() {
    let with = |r| Facts {
        resolution: Some(r),
        ..Facts::default()
    };
    assert_eq!(
        validate(
            Flow::Incident,
            InProgress,
            Resolved,
            &with(Resolution::Fixed)
        ),
        Ok(())
    );
    let err = validate(Flow::Incident, InProgress, Resolved, &Facts::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("needs a resolution code: one of fixed"),
        "{err}"
    );
    // Resolving a problem from analysis means accepting the risk.
    assert_eq!(
        validate(
            Flow::Problem,
            KnownError,
            Resolved,
            &with(Resolution::RiskAccepted)
        ),
        Ok(())
    );
    assert_eq!(
        unmet_fields(validate(
            Flow::Problem,
            KnownError,
            Resolved,
            &with(Resolution::Fixed)
        )),
        vec!["resolution"]
    );
    // A resolution on a transition that resolves nothing is refused.
    assert_eq!(
        unmet_fields(validate(
            Flow::Incident,
            New,
            InProgress,
            &with(Resolution::Fixed)
        )),
        vec!["resolution"]
    );
    // Fulfilling a request takes no code.
    assert_eq!(
        validate(Flow::Request, InProgress, Fulfilled, &Facts::default()),
        Ok(())
    );
}

#[test]
fn a_duplicate_needs_its_link() {
    let dup = Facts {
        resolution: Some(Resolution::Duplicate),
        ..Facts::default()
    };
    assert_eq!(
        unmet_fields(validate(Flow::Problem, Assess, Closed, &dup)),
        vec!["resolution"]
    );
    let linked = Facts {
        duplicate_of: true,
        ..dup
    };
    assert_eq!(validate(Flow::Problem, Assess, Closed, &linked), Ok(()));
    assert_eq!(validate(Flow::Incident, New, Resolved, &linked), Ok(()));
}

#[test]
fn a_change_needs_a_window_to_be_scheduled_and_an_outcome_to_close() {
    let flow = Flow::Change(ChangeType::Standard);
    assert_eq!(
        unmet_fields(validate(flow, New, Scheduled, &Facts::default())),
        vec!["window"]
    );
    let windowed = Facts {
        has_window: true,
        ..Facts::default()
    };
    assert_eq!(validate(flow, New, Scheduled, &windowed), Ok(()));
    assert_eq!(
        unmet_fields(validate(flow, Review, Closed, &Facts::default())),
        vec!["outcome"]
    );
    let reviewed = Facts {
        outcome: Some(ReviewOutcome::Failed),
        ..Facts::default()
    };
    assert_eq!(validate(flow, Review, Closed, &reviewed), Ok(()));
}

#[test]
fn every_unmet_need_is_reported_at_once() {
    let facts = Facts {
        hold_reason: Some(HoldReason::AwaitingCaller),
        resolution: None,
        ..Facts::default()
    };
    assert_eq!(
        unmet_fields(validate(Flow::Incident, InProgress, Resolved, &facts)),
        vec!["hold_reason", "resolution"]
    );
}

#[test]
fn reopen_is_resolved_or_fulfilled_back_to_work() {
    assert!(is_reopen(Resolved, InProgress));
    assert!(is_reopen(Fulfilled, InProgress));
    assert!(!is_reopen(OnHold, InProgress));
}

#[test]
fn states_parse_from_their_names() {
    for s in State::ALL {
        assert_eq!(s.as_str().parse::<State>(), Ok(s));
    }
}
