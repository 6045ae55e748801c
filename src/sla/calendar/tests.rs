//! Tests of business-time arithmetic. Instants are written as local wall-clock times in the
//! calendar's zone so each expectation can be checked by reading a calendar.

use jiff::civil::date;

use crate::sla::calendar::*;
use crate::sla::calendar_config::CalendarConfig;

const BERLIN: &str = "Europe/Berlin";

fn cal(tz: &str, days: &[(&str, &[&str])], holidays: &[&str]) -> Calendar {
    let mut c = CalendarConfig {
        timezone: tz.into(),
        holidays: holidays.iter().map(|h| h.to_string()).collect(),
        ..CalendarConfig::default()
    };
    for (day, ranges) in days {
        let ranges: Vec<String> = ranges.iter().map(|r| r.to_string()).collect();
        match *day {
            "mon" => c.mon = ranges,
            "tue" => c.tue = ranges,
            "wed" => c.wed = ranges,
            "thu" => c.thu = ranges,
            "fri" => c.fri = ranges,
            "sat" => c.sat = ranges,
            "sun" => c.sun = ranges,
            other => panic!("bad day {other}"),
        }
    }
    c.build("test").unwrap_or_else(|p| panic!("{p:?}"))
}

/// Mon–Fri 09:00–17:00 in Berlin.
fn office(holidays: &[&str]) -> Calendar {
    let h: &[&str] = &["09:00-17:00"];
    cal(
        BERLIN,
        &[("mon", h), ("tue", h), ("wed", h), ("thu", h), ("fri", h)],
        holidays,
    )
}

/// The instant of a local wall-clock time in `tz`.
fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
    date(y, mo, d)
        .at(h, mi, 0, 0)
        .in_tz(tz)
        .expect("valid local time")
        .timestamp()
}

fn berlin(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
    at(BERLIN, y, mo, d, h, mi)
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

#[test]
fn friday_afternoon_plus_four_hours_is_monday_noon_thirty() {
    // 2026-03-06 is a Friday.
    let start = berlin(2026, 3, 6, 16, 30);
    assert_eq!(
        office(&[]).add(start, hours(4)).unwrap(),
        berlin(2026, 3, 9, 12, 30)
    );
    // With Monday a holiday the target moves to Tuesday.
    let with_holiday = office(&["2026-03-09"]);
    assert_eq!(
        with_holiday.add(start, hours(4)).unwrap(),
        berlin(2026, 3, 10, 12, 30)
    );
    assert_eq!(
        with_holiday
            .between(start, berlin(2026, 3, 10, 12, 30))
            .unwrap(),
        hours(4)
    );
}

#[test]
fn a_target_ending_at_closing_time_is_due_at_closing_time() {
    let c = office(&[]);
    let start = berlin(2026, 3, 6, 16, 30);
    assert_eq!(c.add(start, mins(30)).unwrap(), berlin(2026, 3, 6, 17, 0));
    assert_eq!(c.add(start, mins(31)).unwrap(), berlin(2026, 3, 9, 9, 1));
    assert_eq!(c.add(start, SignedDuration::ZERO).unwrap(), start);
}

#[test]
fn starting_while_closed_counts_from_the_next_opening() {
    let c = office(&[]);
    // Saturday 10:00 and Monday 07:00 both start counting at Monday 09:00.
    assert_eq!(
        c.add(berlin(2026, 3, 7, 10, 0), hours(1)).unwrap(),
        berlin(2026, 3, 9, 10, 0)
    );
    assert_eq!(
        c.add(berlin(2026, 3, 9, 7, 0), hours(8)).unwrap(),
        berlin(2026, 3, 9, 17, 0)
    );
    assert_eq!(
        c.between(berlin(2026, 3, 7, 0, 0), berlin(2026, 3, 9, 0, 0))
            .unwrap(),
        SignedDuration::ZERO
    );
}

#[test]
fn a_target_spanning_two_weekends() {
    let c = office(&[]);
    // Wednesday 15:00 + 50 h: Wed 2 h, Thu 8, Fri 8 (18), Mon–Fri 40 (58 > 50):
    // 32 h left after Friday → Mon 8, Tue 8, Wed 8, Thu 8 → Thursday 17:00.
    let start = berlin(2026, 3, 4, 15, 0);
    assert_eq!(c.add(start, hours(50)).unwrap(), berlin(2026, 3, 12, 17, 0));
    assert_eq!(c.add(start, hours(58)).unwrap(), berlin(2026, 3, 13, 17, 0));
    assert_eq!(c.add(start, hours(59)).unwrap(), berlin(2026, 3, 16, 10, 0));
    assert_eq!(
        c.between(start, berlin(2026, 3, 16, 10, 0)).unwrap(),
        hours(59)
    );
}

#[test]
fn several_ranges_a_day_skip_the_lunch_break() {
    let c = cal(BERLIN, &[("mon", &["09:00-12:00", "13:00-17:00"])], &[]);
    let monday = |h, m| berlin(2026, 3, 9, h, m);
    assert_eq!(c.add(monday(11, 0), hours(2)).unwrap(), monday(14, 0));
    assert_eq!(c.add(monday(11, 0), hours(1)).unwrap(), monday(12, 0));
    assert_eq!(c.between(monday(11, 30), monday(13, 30)).unwrap(), hours(1));
    assert!(!c.is_open(monday(12, 0)).unwrap());
    assert!(c.is_open(monday(11, 59)).unwrap());
    assert!(c.is_open(monday(13, 0)).unwrap());
    // 7 h on Monday, then the next Monday.
    assert_eq!(
        c.add(monday(9, 0), hours(8)).unwrap(),
        berlin(2026, 3, 16, 10, 0)
    );
}

#[test]
fn ranges_crossing_midnight_belong_to_the_day_they_start() {
    // Friday night shift only: Fri 22:00 – Sat 06:00.
    let c = cal(BERLIN, &[("fri", &["22:00-06:00"])], &[]);
    let fri_2300 = berlin(2026, 3, 6, 23, 0);
    assert_eq!(c.add(fri_2300, hours(3)).unwrap(), berlin(2026, 3, 7, 2, 0));
    assert_eq!(c.add(fri_2300, hours(7)).unwrap(), berlin(2026, 3, 7, 6, 0));
    assert_eq!(
        c.add(fri_2300, hours(8)).unwrap(),
        berlin(2026, 3, 13, 23, 0)
    );
    assert!(c.is_open(berlin(2026, 3, 7, 5, 59)).unwrap());
    assert!(!c.is_open(berlin(2026, 3, 7, 6, 0)).unwrap());
    assert!(!c.is_open(berlin(2026, 3, 6, 21, 59)).unwrap());
    assert_eq!(
        c.between(berlin(2026, 3, 1, 0, 0), berlin(2026, 3, 15, 0, 0))
            .unwrap(),
        hours(16)
    );

    // A holiday on Friday closes the whole shift, after midnight too.
    let fri_off = cal(BERLIN, &[("fri", &["22:00-06:00"])], &["2026-03-06"]);
    assert!(!fri_off.is_open(berlin(2026, 3, 7, 2, 0)).unwrap());
    assert_eq!(
        fri_off.add(berlin(2026, 3, 6, 12, 0), hours(1)).unwrap(),
        berlin(2026, 3, 13, 23, 0)
    );
    // A holiday on Saturday closes none of it.
    let sat_off = cal(BERLIN, &[("fri", &["22:00-06:00"])], &["2026-03-07"]);
    assert!(sat_off.is_open(berlin(2026, 3, 7, 2, 0)).unwrap());
}

#[test]
fn adjacent_ranges_across_midnight_join_up() {
    let c = cal(
        BERLIN,
        &[("mon", &["20:00-02:00"]), ("tue", &["02:00-04:00"])],
        &[],
    );
    let mon_2300 = berlin(2026, 3, 9, 23, 0);
    assert_eq!(
        c.add(mon_2300, hours(4)).unwrap(),
        berlin(2026, 3, 10, 3, 0)
    );
    assert_eq!(
        c.between(berlin(2026, 3, 9, 0, 0), berlin(2026, 3, 11, 0, 0))
            .unwrap(),
        hours(8)
    );
}

#[test]
fn spring_forward_shortens_the_business_day() {
    // Berlin, Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST.
    let c = cal(BERLIN, &[("sun", &["01:00-04:00"])], &[]);
    let day = |h, m| berlin(2026, 3, 29, h, m);
    assert_eq!(c.between(day(0, 0), day(23, 0)).unwrap(), hours(2));
    assert_eq!(c.add(day(1, 0), mins(90)).unwrap(), day(3, 30));
    assert_eq!(c.add(day(1, 0), hours(2)).unwrap(), day(4, 0));
    // The week before has the full three hours.
    assert_eq!(
        c.between(berlin(2026, 3, 22, 0, 0), berlin(2026, 3, 23, 0, 0))
            .unwrap(),
        hours(3)
    );
}

#[test]
fn fall_back_lengthens_the_business_day() {
    // Berlin, Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET.
    let c = cal(BERLIN, &[("sun", &["01:00-04:00"])], &[]);
    let open = berlin(2026, 10, 25, 1, 0);
    let close = berlin(2026, 10, 25, 4, 0);
    assert_eq!(close.duration_since(open), hours(4));
    assert_eq!(c.between(open, close).unwrap(), hours(4));
    assert_eq!(c.add(open, hours(4)).unwrap(), close);
    // An office day is unaffected: the change happens at night.
    let o = office(&[]);
    assert_eq!(
        o.add(berlin(2026, 10, 23, 16, 0), hours(2)).unwrap(),
        berlin(2026, 10, 26, 10, 0)
    );
}

#[test]
fn yearly_holidays_recur_and_fixed_ones_do_not() {
    let c = office(&["*-12-25", "2026-12-24"]);
    for (y, m, d, open) in [
        (2026, 12, 24, false), // fixed holiday, a Thursday
        (2026, 12, 25, false), // yearly, a Friday
        (2027, 12, 24, true),  // the fixed one does not recur (a Friday)
        (2028, 12, 25, false), // yearly again (a Monday)
        (2028, 12, 26, true),
    ] {
        assert_eq!(
            c.is_open(berlin(y, m, d, 10, 0)).unwrap(),
            open,
            "{y}-{m}-{d}"
        );
    }
    // Wednesday 23rd 16:00 + 2 h: 1 h on Wednesday, Thursday and Friday closed, Monday 10:00.
    assert_eq!(
        c.add(berlin(2026, 12, 23, 16, 0), hours(2)).unwrap(),
        berlin(2026, 12, 28, 10, 0)
    );
}

#[test]
fn the_24x7_calendar_is_plain_instant_arithmetic() {
    let c = Calendar::always_open();
    let start = at("UTC", 2026, 3, 6, 16, 30);
    assert_eq!(
        c.add(start, hours(100)).unwrap(),
        start.checked_add(hours(100)).unwrap()
    );
    assert_eq!(
        c.between(start, start.checked_add(hours(7)).unwrap())
            .unwrap(),
        hours(7)
    );
    assert!(c.is_open(start).unwrap());
    // A zone's whole days with no holidays are just as open, DST or not.
    let h: &[&str] = &["00:00-24:00"];
    let all_week = cal(
        BERLIN,
        &[
            ("mon", h),
            ("tue", h),
            ("wed", h),
            ("thu", h),
            ("fri", h),
            ("sat", h),
            ("sun", h),
        ],
        &[],
    );
    let spring = berlin(2026, 3, 28, 12, 0);
    assert_eq!(
        all_week.add(spring, hours(48)).unwrap(),
        spring.checked_add(hours(48)).unwrap()
    );
}

#[test]
fn between_is_zero_for_reversed_or_empty_spans() {
    let c = office(&[]);
    let a = berlin(2026, 3, 9, 10, 0);
    let b = berlin(2026, 3, 9, 12, 0);
    assert_eq!(c.between(b, a).unwrap(), SignedDuration::ZERO);
    assert_eq!(c.between(a, a).unwrap(), SignedDuration::ZERO);
    assert_eq!(c.between(a, b).unwrap(), hours(2));
}

#[test]
fn negative_targets_are_refused() {
    let err = office(&[])
        .add(berlin(2026, 3, 9, 10, 0), hours(-1))
        .unwrap_err();
    assert_eq!(err, CalendarError::NegativeDuration(hours(-1)));
    assert!(err.to_string().contains("must not be negative"), "{err}");
}

#[test]
fn long_targets_skip_weeks_and_land_exactly() {
    // Every day 09:00–17:00 UTC: 56 h a week. From Monday 09:00, k weeks of business time end
    // on the k-th Sunday at 17:00, i.e. 7k days later minus the 16 h from Sunday 17:00.
    let h: &[&str] = &["09:00-17:00"];
    let c = cal(
        "UTC",
        &[
            ("mon", h),
            ("tue", h),
            ("wed", h),
            ("thu", h),
            ("fri", h),
            ("sat", h),
            ("sun", h),
        ],
        &[],
    );
    let start = at("UTC", 2026, 3, 9, 9, 0);
    for weeks in [1, 3, 52, 52 * 30] {
        let due = c.add(start, hours(56 * weeks)).unwrap();
        let expected = start.checked_add(hours(24 * 7 * weeks - 16)).unwrap();
        assert_eq!(due, expected, "{weeks} weeks");
        assert_eq!(c.between(start, due).unwrap(), hours(56 * weeks));
    }
}

#[test]
fn skipping_weeks_agrees_with_walking_every_day() {
    let calendars = [
        office(&[
            "*-12-25",
            "*-12-26",
            "*-01-01",
            "2026-04-03",
            "2026-04-06",
            "*-02-29",
        ]),
        cal(
            BERLIN,
            &[
                ("mon", &["09:00-12:00", "13:00-17:00"]),
                ("fri", &["22:00-06:00"]),
                ("sun", &["01:00-04:00"]),
            ],
            &["*-01-01", "2027-03-28", "2026-10-23"],
        ),
        cal(
            "America/New_York",
            &[("sat", &["00:00-24:00"]), ("sun", &["23:00-01:00"])],
            &["*-07-04"],
        ),
        Calendar::always_open(),
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let origin = at("UTC", 2025, 1, 1, 0, 0);
    for c in &calendars {
        for _ in 0..150 {
            let start = origin
                .checked_add(SignedDuration::from_secs(rng.i64(0..6 * 365 * 86_400)))
                .unwrap();
            let target = SignedDuration::from_secs(rng.i64(0..4000 * 3600));
            let skipping = c.add(start, target).unwrap();
            let walking = c.add_walking(start, target, false).unwrap();
            assert_eq!(skipping, walking, "{} from {start} + {target:#}", c.name());
            assert!(skipping >= start);
            assert_eq!(
                c.between(start, skipping).unwrap(),
                target,
                "{start} + {target:#}"
            );
            // Splitting a span anywhere adds up.
            let mid = start
                .checked_add(SignedDuration::from_secs(
                    rng.i64(0..=skipping.duration_since(start).as_secs()),
                ))
                .unwrap();
            assert_eq!(
                c.between(start, mid).unwrap() + c.between(mid, skipping).unwrap(),
                target
            );
        }
    }
}

#[test]
fn is_open_agrees_with_between() {
    let c = cal(
        BERLIN,
        &[
            ("mon", &["09:00-12:00", "13:00-17:00"]),
            ("fri", &["22:00-06:00"]),
        ],
        &["2026-03-13"],
    );
    let mut t = berlin(2026, 3, 2, 0, 0);
    let end = berlin(2026, 3, 17, 0, 0);
    let step = mins(15);
    while t < end {
        let next = t.checked_add(step).unwrap();
        let open_for = c.between(t, next).unwrap();
        assert_eq!(c.is_open(t).unwrap(), open_for == step, "{t}");
        t = next;
    }
}

#[test]
fn a_calendar_that_stays_closed_for_years_is_an_error_not_a_hang() {
    // Open on Mondays only, but every date of eleven years is a holiday.
    let mut holidays = Vec::new();
    let mut d = date(2026, 1, 1);
    while d < date(2037, 1, 1) {
        holidays.push(d.to_string());
        d = d.tomorrow().unwrap();
    }
    let holidays: Vec<&str> = holidays.iter().map(String::as_str).collect();
    let c = cal("UTC", &[("mon", &["09:00-17:00"])], &holidays);
    let err = c.add(at("UTC", 2026, 1, 1, 0, 0), hours(1)).unwrap_err();
    assert!(matches!(err, CalendarError::NeverOpens { .. }), "{err:?}");
    // After the closed years it opens again on the first Monday.
    assert_eq!(
        c.add(at("UTC", 2037, 1, 1, 0, 0), hours(1)).unwrap(),
        at("UTC", 2037, 1, 5, 10, 0)
    );
}

#[test]
fn unusable_ranges_are_all_reported() {
    let r = |day, start, end| OpenRange { day, start, end };
    let problems = Calendar::new(
        "x",
        TimeZone::UTC,
        &[
            r(Weekday::Monday, 9 * 3600, 9 * 3600),
            r(Weekday::Monday, 0, DAY_SECONDS + 1),
            r(Weekday::Sunday, 20 * 3600, 8 * 3600),
            r(Weekday::Monday, 7 * 3600, 10 * 3600),
        ],
        &[],
    )
    .unwrap_err();
    assert_eq!(
        problems,
        vec![
            CalendarProblem::EmptyRange("mon 09:00-09:00".into()),
            CalendarProblem::OutsideDay("mon 00:00-24:00:01".into()),
            CalendarProblem::Overlap {
                first: "sun 20:00-08:00".into(),
                second: "mon 07:00-10:00".into()
            },
        ]
    );
    let closed = Calendar::new("x", TimeZone::UTC, &[], &[]).unwrap_err();
    assert_eq!(closed, vec![CalendarProblem::NoBusinessHours]);
    let mut every_day = Vec::new();
    let mut d = date(2024, 1, 1);
    while d.year() == 2024 {
        every_day.push(Holiday::Yearly {
            month: d.month(),
            day: d.day(),
        });
        d = d.tomorrow().unwrap();
    }
    let all_year = Calendar::new(
        "x",
        TimeZone::UTC,
        &[r(Weekday::Monday, 0, 3600)],
        &every_day,
    )
    .unwrap_err();
    assert_eq!(all_year, vec![CalendarProblem::ClosedAllYear]);
}
