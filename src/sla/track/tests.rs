use jiff::Timestamp;

use crate::sla::track::*;
use crate::tickets::HoldReason::{AwaitingCaller, AwaitingChange, AwaitingVendor};

fn at(minute: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + minute * 60).unwrap()
}

fn marks(sla: &TicketSla, clock: &str) -> Vec<Mark> {
    sla.clocks[clock]
        .timeline
        .iter()
        .map(|t| t.mark.clone())
        .collect()
}

fn pause(reason: &str) -> Mark {
    Mark::Pause {
        reason: reason.into(),
    }
}

#[test]
fn holds_pause_only_for_the_policy_reasons_and_a_response_stops_once() {
    let policy = PolicyConfig::default();
    let mut sla = TicketSla::default();
    let none = Signals::default();
    reconcile(&mut sla, &policy, State::New, None, none, at(0));
    reconcile(&mut sla, &policy, State::New, None, none, at(1));
    assert_eq!(marks(&sla, RESPONSE), [Mark::Start]);
    reconcile(
        &mut sla,
        &policy,
        State::OnHold,
        Some(AwaitingChange),
        none,
        at(2),
    );
    assert_eq!(
        marks(&sla, RESOLUTION),
        [Mark::Start],
        "not a pausing reason"
    );
    reconcile(
        &mut sla,
        &policy,
        State::OnHold,
        Some(AwaitingCaller),
        none,
        at(3),
    );
    reconcile(
        &mut sla,
        &policy,
        State::OnHold,
        Some(AwaitingVendor),
        none,
        at(4),
    );
    assert_eq!(
        marks(&sla, RESOLUTION),
        [
            Mark::Start,
            pause("on_hold: awaiting_caller"),
            Mark::Resume,
            pause("on_hold: awaiting_vendor")
        ]
    );
    assert_eq!(marks(&sla, VENDOR), [Mark::Start]);
    let comment = Signals {
        public_comment: true,
        ..Signals::default()
    };
    let said = reconcile(
        &mut sla,
        &policy,
        State::OnHold,
        Some(AwaitingVendor),
        comment,
        at(5),
    );
    assert_eq!(said, [(RESPONSE.to_string(), "stopped".to_string())]);
    reconcile(&mut sla, &policy, State::InProgress, None, none, at(6));
    assert_eq!(marks(&sla, RESPONSE).last(), Some(&Mark::Stop));
    assert_eq!(marks(&sla, VENDOR), [Mark::Start, pause("vendor released")]);
}

#[test]
fn a_reopen_resumes_or_resets_the_resolution_clock_per_policy() {
    let none = Signals::default();
    let resume = PolicyConfig {
        reopen: Reopen::Resume,
        ..PolicyConfig::default()
    };
    let mut sla = TicketSla::default();
    reconcile(&mut sla, &resume, State::InProgress, None, none, at(0));
    reconcile(&mut sla, &resume, State::Resolved, None, none, at(10));
    reconcile(&mut sla, &resume, State::InProgress, None, none, at(20));
    assert_eq!(
        marks(&sla, RESOLUTION),
        [Mark::Start, pause("resolved"), Mark::Resume]
    );

    let reset = PolicyConfig {
        reopen: Reopen::Reset,
        ..PolicyConfig::default()
    };
    let mut sla = TicketSla::default();
    reconcile(&mut sla, &reset, State::InProgress, None, none, at(0));
    reconcile(&mut sla, &reset, State::Resolved, None, none, at(10));
    assert_eq!(marks(&sla, RESOLUTION), [Mark::Start, Mark::Stop]);
    let said = reconcile(&mut sla, &reset, State::InProgress, None, none, at(20));
    assert!(said.contains(&(RESOLUTION.to_string(), "restarted from zero".to_string())));
    assert_eq!(sla.clocks[RESOLUTION].timeline[0].at, at(20));
    assert_eq!(sla.clocks[RESOLUTION].resets, 1);
    reconcile(&mut sla, &reset, State::Closed, None, none, at(30));
    assert_eq!(marks(&sla, RESOLUTION), [Mark::Start, Mark::Stop]);
}
