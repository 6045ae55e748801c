//! Tests of SLA clock computation on a Mon–Fri 09:00–17:00 Berlin office calendar.
//! 2026-03-02 is a Monday; 2026-03-06 a Friday.

use jiff::civil::date;

use crate::sla::calendar_config::CalendarConfig;
use crate::sla::clock::*;

fn office() -> Calendar {
    let h = vec!["09:00-17:00".to_string()];
    CalendarConfig {
        timezone: "Europe/Berlin".into(),
        mon: h.clone(),
        tue: h.clone(),
        wed: h.clone(),
        thu: h.clone(),
        fri: h,
        ..CalendarConfig::default()
    }
    .build("office")
    .expect("valid")
}

fn t(d: i8, h: i8, m: i8) -> Timestamp {
    date(2026, 3, d)
        .at(h, m, 0, 0)
        .in_tz("Europe/Berlin")
        .expect("valid")
        .timestamp()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn target(h: i64) -> Target {
    Target::new(hours(h), &DEFAULT_WARNINGS).expect("valid")
}

fn start(at: Timestamp) -> Transition {
    Transition {
        at,
        mark: Mark::Start,
    }
}
fn pause(at: Timestamp) -> Transition {
    Transition {
        at,
        mark: Mark::Pause {
            reason: "awaiting_caller".into(),
        },
    }
}
fn resume(at: Timestamp) -> Transition {
    Transition {
        at,
        mark: Mark::Resume,
    }
}
fn stop(at: Timestamp) -> Transition {
    Transition {
        at,
        mark: Mark::Stop,
    }
}

#[test]
fn a_running_clock_reports_elapsed_remaining_due_and_the_next_warning() {
    let timeline = [start(t(2, 9, 0))];
    let s = status(&target(8), &office(), &timeline, t(2, 13, 0)).unwrap();
    assert_eq!(s.phase, Phase::Running { since: t(2, 9, 0) });
    assert_eq!(s.elapsed, hours(4));
    assert_eq!(s.remaining, hours(4));
    assert_eq!(s.paused, SignedDuration::ZERO);
    assert_eq!(s.due, Some(t(2, 17, 0)));
    // 50 % of 8 h is reached exactly now.
    assert_eq!(
        s.reached,
        vec![StageAt {
            stage: Stage::Warning(50),
            at: t(2, 13, 0)
        }]
    );
    assert_eq!(
        s.next_warning,
        Some(NextWarning {
            percent: 75,
            at: Some(t(2, 15, 0))
        })
    );
    assert_eq!(s.breached_at, None);
}

#[test]
fn pausing_and_resuming_shifts_the_due_time() {
    let office = office();
    let plain = status(&target(8), &office, &[start(t(2, 9, 0))], t(2, 9, 30)).unwrap();
    assert_eq!(plain.due, Some(t(2, 17, 0)));

    // Paused 10:00–12:00: 1 h done, 7 h left from 12:00 → 5 h Monday, 2 h Tuesday.
    let timeline = [start(t(2, 9, 0)), pause(t(2, 10, 0)), resume(t(2, 12, 0))];
    let s = status(&target(8), &office, &timeline, t(2, 12, 30)).unwrap();
    assert_eq!(s.elapsed, hours(1) + SignedDuration::from_mins(30));
    assert_eq!(s.paused, hours(2));
    assert_eq!(s.due, Some(t(3, 11, 0)));

    // While paused there is no due time and nothing to schedule.
    let s = status(&target(8), &office, &timeline[..2], t(2, 11, 0)).unwrap();
    assert_eq!(
        s.phase,
        Phase::Paused {
            since: t(2, 10, 0),
            reason: "awaiting_caller".into()
        }
    );
    assert_eq!(s.due, None);
    assert_eq!(s.elapsed, hours(1));
    assert_eq!(s.paused, hours(1));
    assert_eq!(
        s.next_warning,
        Some(NextWarning {
            percent: 50,
            at: None
        })
    );
    assert!(
        pending(&target(8), &office, &timeline[..2], t(2, 11, 0))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_pause_across_the_weekend_moves_the_due_time_to_monday() {
    // 16 h target from Thursday 09:00: 14 h done by the pause on Friday 15:00.
    let timeline = [start(t(5, 9, 0)), pause(t(6, 15, 0)), resume(t(9, 11, 0))];
    let s = status(&target(16), &office(), &timeline, t(9, 11, 0)).unwrap();
    assert_eq!(s.elapsed, hours(14));
    assert_eq!(s.paused, hours(68)); // Friday 15:00 → Monday 11:00 on the wall clock
    assert_eq!(s.due, Some(t(9, 13, 0)));
    // Without the pause it would have been due on Friday at 17:00.
    let unpaused = status(&target(16), &office(), &timeline[..1], t(6, 15, 0)).unwrap();
    assert_eq!(unpaused.due, Some(t(6, 17, 0)));
}

#[test]
fn warnings_and_breach_fall_due_at_the_right_instants() {
    // The example: 4 h from Friday 16:30 is due Monday 12:30.
    let office = office();
    let target = target(4);
    let timeline = [start(t(6, 16, 30))];
    let minute = SignedDuration::from_mins(1);
    let expected = [
        (Stage::Warning(50), t(9, 10, 30)), // 2 h: 30 min Friday, 1.5 h Monday
        (Stage::Warning(75), t(9, 11, 30)), // 3 h
        (Stage::Warning(90), t(9, 12, 6)),  // 3 h 36 min
        (Stage::Breach, t(9, 12, 30)),
    ];
    let timers = pending(&target, &office, &timeline, t(6, 16, 30)).unwrap();
    let want: Vec<StageAt> = expected
        .iter()
        .map(|&(stage, at)| StageAt { stage, at })
        .collect();
    assert_eq!(timers, want);

    // Each stage is reached exactly at its instant, not a minute before.
    for (i, &(stage, at)) in expected.iter().enumerate() {
        let before = status(&target, &office, &timeline, at.checked_sub(minute).unwrap()).unwrap();
        assert_eq!(before.reached.len(), i, "{stage:?} reached early");
        let on_time = status(&target, &office, &timeline, at).unwrap();
        assert_eq!(on_time.reached.last(), Some(&StageAt { stage, at }));
        // The timers still to schedule are exactly the later stages.
        let rest = pending(&target, &office, &timeline, at).unwrap();
        assert_eq!(rest, want[i + 1..].to_vec());
    }
}

#[test]
fn a_breached_clock_keeps_its_breach_instant_and_goes_negative() {
    let timeline = [start(t(2, 9, 0))];
    let s = status(&target(8), &office(), &timeline, t(3, 11, 0)).unwrap();
    assert_eq!(s.breached_at, Some(t(2, 17, 0)));
    assert_eq!(s.due, Some(t(2, 17, 0)));
    assert_eq!(s.remaining, hours(-2));
    assert_eq!(s.reached.len(), 4);
    assert_eq!(s.next_warning, None);
    assert!(
        pending(&target(8), &office(), &timeline, t(3, 11, 0))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn stopping_at_or_before_the_due_instant_meets_the_target() {
    let office = office();
    for (stop_at, breached) in [
        (t(2, 16, 0), None),
        (t(2, 17, 0), None), // exactly at the due instant: met
        (t(3, 10, 0), Some(t(2, 17, 0))),
    ] {
        let timeline = [start(t(2, 9, 0)), stop(stop_at)];
        let s = status(&target(8), &office, &timeline, t(4, 12, 0)).unwrap();
        assert_eq!(s.phase, Phase::Stopped { at: stop_at });
        assert_eq!(s.breached_at, breached, "stopped at {stop_at}");
        assert_eq!(s.due, None);
        assert!(
            pending(&target(8), &office, &timeline, t(4, 12, 0))
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn a_clock_paused_exactly_at_its_due_instant_breaches_when_it_resumes() {
    let office = office();
    let timeline = [start(t(2, 9, 0)), pause(t(2, 17, 0)), resume(t(3, 10, 0))];
    let paused = status(&target(8), &office, &timeline, t(3, 9, 30)).unwrap();
    assert_eq!(paused.breached_at, None);
    assert_eq!(paused.remaining, SignedDuration::ZERO);
    let resumed = status(&target(8), &office, &timeline, t(3, 10, 0)).unwrap();
    assert_eq!(resumed.breached_at, Some(t(3, 10, 0)));
}

#[test]
fn marks_after_now_are_ignored() {
    let timeline = [start(t(2, 9, 0)), pause(t(2, 12, 0)), resume(t(2, 14, 0))];
    let s = status(&target(8), &office(), &timeline, t(2, 11, 0)).unwrap();
    assert_eq!(s.phase, Phase::Running { since: t(2, 9, 0) });
    assert_eq!(s.elapsed, hours(2));
    assert_eq!(s.due, Some(t(2, 17, 0)));
    let before = status(&target(8), &office(), &timeline, t(2, 8, 0)).unwrap();
    assert_eq!(before.phase, Phase::NotStarted);
    assert_eq!(before.elapsed, SignedDuration::ZERO);
    let empty = status(&target(8), &office(), &[], t(2, 8, 0)).unwrap();
    assert_eq!(empty.phase, Phase::NotStarted);
    assert!(
        pending(&target(8), &office(), &[], t(2, 8, 0))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn bad_timelines_name_the_offending_mark() {
    let office = office();
    let cases: [(&[Transition], &str); 5] = [
        (
            &[resume(t(2, 9, 0))],
            "mark 0: resume is not allowed while the clock is not started",
        ),
        (
            &[start(t(2, 9, 0)), resume(t(2, 10, 0))],
            "mark 1: resume is not allowed while the clock is running",
        ),
        (
            &[start(t(2, 9, 0)), pause(t(2, 10, 0)), pause(t(2, 11, 0))],
            "mark 2: pause is not allowed while the clock is paused",
        ),
        (
            &[start(t(2, 9, 0)), stop(t(2, 10, 0)), resume(t(2, 11, 0))],
            "mark 2: resume is not allowed while the clock is stopped",
        ),
        (
            &[start(t(2, 9, 0)), pause(t(2, 8, 0))],
            "mark 1 (2026-03-02T07:00:00Z) is earlier",
        ),
    ];
    for (timeline, needle) in cases {
        let err = status(&target(8), &office, timeline, t(2, 12, 0)).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn targets_are_checked() {
    assert!(matches!(
        Target::new(SignedDuration::ZERO, &[]),
        Err(ClockError::NonPositiveTarget(_))
    ));
    assert_eq!(
        Target::new(hours(1), &[0, 50, 100]),
        Err(ClockError::WarningOutOfRange(vec![0, 100]))
    );
    assert_eq!(
        Target::new(hours(1), &[75, 50, 75]),
        Err(ClockError::DuplicateWarning(75))
    );
    let t = Target::new(hours(1), &[90, 50]).unwrap();
    assert_eq!(t.warnings(), &[50, 90]);
    assert_eq!(t.business(), hours(1));
    // No warnings: only the breach is scheduled.
    let none = Target::new(hours(1), &[]).unwrap();
    let timers = pending(&none, &Calendar::always_open(), &[start(t_utc())], t_utc()).unwrap();
    assert_eq!(
        timers,
        vec![StageAt {
            stage: Stage::Breach,
            at: t_utc().checked_add(hours(1)).unwrap()
        }]
    );
}

fn t_utc() -> Timestamp {
    date(2026, 3, 2)
        .at(9, 0, 0, 0)
        .in_tz("UTC")
        .expect("valid")
        .timestamp()
}
