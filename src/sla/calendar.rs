//! Business calendars and business-time arithmetic: when is a calendar open, how much
//! business time lies between two instants, and when has a given amount of it elapsed.
//!
//! Owns the [`Calendar`] value (time zone, weekly open ranges, holidays) and its pure
//! arithmetic. It must not read configuration files, the wall clock or the store: callers
//! pass every instant in, so SLA clocks, timers and tests all share the same answers.
//!
//! Semantics, stated once:
//! - Open ranges are local wall-clock times in the calendar's time zone. Business time is
//!   measured in real elapsed time, so an open range spanning a DST change is an hour
//!   shorter (spring) or longer (autumn) that day. Local times inside a DST gap are read as
//!   jiff's "compatible" disambiguation does (shifted forward by the gap).
//! - A range whose end is not after its start (`22:00-06:00`) crosses midnight and belongs
//!   to the day it starts on: a holiday on that day closes all of it, a holiday on the next
//!   day closes none of it.
//! - Intervals are half-open: a calendar open 09:00-17:00 is open at 09:00, closed at 17:00.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, Unit};

/// Seconds in a civil day: the end of a range that closes at midnight (`24:00`).
pub const DAY_SECONDS: u32 = 86_400;

/// The longest run of days without any business time that arithmetic walks through before
/// giving up (a safety net: [`Calendar::new`] already refuses calendars that never open).
const MAX_CLOSED_DAYS: i64 = 366 * 10;

/// One weekly open range as configured, e.g. Monday 09:00-12:00 or Friday 22:00-06:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRange {
    /// The weekday the range starts on (and belongs to, for holidays).
    pub day: Weekday,
    /// Seconds after local midnight when the range opens, `0..86400`.
    pub start: u32,
    /// Seconds after local midnight when it closes, `1..=86400`; not after `start` means the
    /// range closes the next day.
    pub end: u32,
}

impl OpenRange {
    /// True when the range closes on the next day.
    fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// The range as written in the configuration, e.g. `mon 22:00-06:00`.
    pub fn label(&self) -> String {
        format!(
            "{} {}-{}",
            weekday_key(self.day),
            clock_text(self.start),
            clock_text(self.end)
        )
    }
}

/// A closed day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holiday {
    /// Closed on this date only.
    Date(Date),
    /// Closed on this month and day every year (`*-12-25`); February 29 only in leap years.
    Yearly {
        /// 1..=12.
        month: i8,
        /// 1..=31, valid for the month.
        day: i8,
    },
}

/// What makes a set of ranges and holidays unusable as a calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarProblem {
    #[error("{0}: a range must not be empty; write 00:00-24:00 for a whole day")]
    EmptyRange(String),
    #[error("{0}: times must lie within 00:00..24:00")]
    OutsideDay(String),
    #[error("{first} overlaps {second}")]
    Overlap { first: String, second: String },
    #[error("no business hours at all: give at least one day a range")]
    NoBusinessHours,
    #[error("the yearly holidays close every day of the year")]
    ClosedAllYear,
}

/// Why an arithmetic question has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("business time must not be negative, got {0:#}")]
    NegativeDuration(SignedDuration),
    #[error("calendar `{0}`: the answer lies outside the supported dates (years -9999..=9999)")]
    OutOfRange(String),
    #[error("calendar `{calendar}` has no business hours for {days} days in a row from {from}")]
    NeverOpens {
        calendar: String,
        from: Date,
        days: i64,
    },
}

/// A half-open range of seconds within one local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Secs {
    start: u32,
    end: u32,
}

impl Secs {
    fn len(self) -> i64 {
        i64::from(self.end - self.start)
    }
}

/// A business calendar: when work happens, in which time zone, minus holidays.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Names the calendar in errors and lets clocks refer to it.
    name: String,
    /// The zone whose wall clock the ranges and holidays are written in.
    tz: TimeZone,
    /// Per weekday (Monday = 0), the parts of that day's ranges before midnight, sorted.
    own: [Vec<Secs>; 7],
    /// Per weekday, the parts after midnight of that day's ranges that cross midnight; they
    /// fall on the next day but are closed by a holiday on this one.
    tail: [Vec<Secs>; 7],
    /// Dates closed once.
    fixed_holidays: BTreeSet<Date>,
    /// (month, day) pairs closed every year.
    yearly_holidays: BTreeSet<(i8, i8)>,
    /// Open seconds of a week without holidays or DST changes; lets long spans skip whole
    /// weeks instead of walking every day.
    week_seconds: i64,
    /// Open around the clock with no holidays: arithmetic is plain instant arithmetic.
    always_open: bool,
}

impl Calendar {
    /// The built-in calendar `24x7`: always open, no holidays.
    pub fn always_open() -> Calendar {
        let ranges: Vec<OpenRange> = (0..7)
            .map(|i| OpenRange {
                day: weekday(i),
                start: 0,
                end: DAY_SECONDS,
            })
            .collect();
        match Calendar::new("24x7", TimeZone::UTC, &ranges, &[]) {
            Ok(c) => c,
            // Seven whole, disjoint days cannot be rejected.
            Err(problems) => unreachable!("built-in 24x7 calendar rejected: {problems:?}"),
        }
    }

    /// Builds a calendar, or lists every problem with the ranges and holidays.
    pub fn new(
        name: impl Into<String>,
        tz: TimeZone,
        ranges: &[OpenRange],
        holidays: &[Holiday],
    ) -> Result<Calendar, Vec<CalendarProblem>> {
        let mut problems = Vec::new();
        let mut own: [Vec<Secs>; 7] = Default::default();
        let mut tail: [Vec<Secs>; 7] = Default::default();
        // Every piece that falls on a weekday, with the label of its range, to find overlaps.
        let mut on_day: [Vec<(Secs, String)>; 7] = Default::default();
        for r in ranges {
            if r.start >= DAY_SECONDS || r.end == 0 || r.end > DAY_SECONDS {
                problems.push(CalendarProblem::OutsideDay(r.label()));
                continue;
            }
            if r.start == r.end {
                problems.push(CalendarProblem::EmptyRange(r.label()));
                continue;
            }
            let i = day_index(r.day);
            if r.crosses_midnight() {
                let before = Secs {
                    start: r.start,
                    end: DAY_SECONDS,
                };
                let after = Secs {
                    start: 0,
                    end: r.end,
                };
                own[i].push(before);
                tail[i].push(after);
                on_day[i].push((before, r.label()));
                on_day[(i + 1) % 7].push((after, r.label()));
            } else {
                let piece = Secs {
                    start: r.start,
                    end: r.end,
                };
                own[i].push(piece);
                on_day[i].push((piece, r.label()));
            }
        }
        for pieces in &mut on_day {
            pieces.sort();
            for pair in pieces.windows(2) {
                if pair[1].0.start < pair[0].0.end {
                    problems.push(CalendarProblem::Overlap {
                        first: pair[0].1.clone(),
                        second: pair[1].1.clone(),
                    });
                }
            }
        }
        let week_seconds: i64 = own
            .iter()
            .chain(tail.iter())
            .flatten()
            .map(|s| s.len())
            .sum();
        if week_seconds == 0 && problems.is_empty() {
            problems.push(CalendarProblem::NoBusinessHours);
        }
        let mut fixed_holidays = BTreeSet::new();
        let mut yearly_holidays = BTreeSet::new();
        for h in holidays {
            match *h {
                Holiday::Date(d) => {
                    fixed_holidays.insert(d);
                }
                Holiday::Yearly { month, day } => {
                    yearly_holidays.insert((month, day));
                }
            }
        }
        // 366: every month-day of a leap year. Fewer leave some weekday open in some year.
        if yearly_holidays.len() >= 366 {
            problems.push(CalendarProblem::ClosedAllYear);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for day in own.iter_mut().chain(tail.iter_mut()) {
            day.sort();
        }
        let whole_day = [Secs {
            start: 0,
            end: DAY_SECONDS,
        }];
        let always_open = holidays.is_empty() && own.iter().all(|d| d[..] == whole_day);
        Ok(Calendar {
            name: name.into(),
            tz,
            own,
            tail,
            fixed_holidays,
            yearly_holidays,
            week_seconds,
            always_open,
        })
    }

    /// The calendar's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// True when the calendar is open at `t`.
    pub fn is_open(&self, t: Timestamp) -> Result<bool, CalendarError> {
        if self.always_open {
            return Ok(true);
        }
        let d = self.local_date(t);
        for day in [self.add_days(d, -1)?, d] {
            if self
                .day_intervals(day)?
                .iter()
                .any(|&(a, b)| a <= t && t < b)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Business time in `[a, b)`; zero when `b` is not after `a`.
    pub fn between(&self, a: Timestamp, b: Timestamp) -> Result<SignedDuration, CalendarError> {
        if b <= a {
            return Ok(SignedDuration::ZERO);
        }
        if self.always_open {
            return Ok(b.duration_since(a));
        }
        // Days near either end are clipped to [a, b); the days in between are whole. A day of
        // margin on each side covers ambiguous local midnights.
        let lo = self.add_days(self.local_date(a), -1)?;
        let hi = self.add_days(self.local_date(b), 1)?;
        let days = days_from(lo, hi) + 1;
        let mut total = SignedDuration::ZERO;
        if days <= 6 {
            for i in 0..days {
                total += self.clipped(self.add_days(lo, i)?, a, b)?;
            }
            return Ok(total);
        }
        for i in 0..3 {
            total += self.clipped(self.add_days(lo, i)?, a, b)?;
        }
        total += self.whole_days(self.add_days(lo, 3)?, days - 6)?;
        for i in days - 3..days {
            total += self.clipped(self.add_days(lo, i)?, a, b)?;
        }
        Ok(total)
    }

    /// The instant at which `business` time has elapsed in the calendar from `start`: the
    /// earliest `t` with `between(start, t) == business`. Zero gives `start` itself; a target
    /// ending exactly at closing time gives the closing instant.
    pub fn add(
        &self,
        start: Timestamp,
        business: SignedDuration,
    ) -> Result<Timestamp, CalendarError> {
        self.add_walking(start, business, true)
    }

    /// [`Calendar::add`], with skipping whole weeks optional so tests can compare both.
    fn add_walking(
        &self,
        start: Timestamp,
        business: SignedDuration,
        skip_weeks: bool,
    ) -> Result<Timestamp, CalendarError> {
        if business.is_negative() {
            return Err(CalendarError::NegativeDuration(business));
        }
        if business.is_zero() {
            return Ok(start);
        }
        if self.always_open {
            return start.checked_add(business).map_err(|_| self.out_of_range());
        }
        let mut remaining = business;
        let first = self.local_date(start);
        // The day before, in case `start` sits in an hour repeated around midnight.
        let mut day = self.add_days(first, -1)?;
        let mut closed_run = 0;
        loop {
            let mut open_today = false;
            for (a, b) in self.day_intervals(day)? {
                let a = a.max(start);
                if a >= b {
                    continue;
                }
                open_today = true;
                let len = b.duration_since(a);
                if remaining <= len {
                    return a.checked_add(remaining).map_err(|_| self.out_of_range());
                }
                remaining -= len;
            }
            closed_run = if open_today { 0 } else { closed_run + 1 };
            if closed_run > MAX_CLOSED_DAYS {
                return Err(CalendarError::NeverOpens {
                    calendar: self.name.clone(),
                    from: self.add_days(day, -closed_run)?,
                    days: closed_run,
                });
            }
            day = self.add_days(day, 1)?;
            if skip_weeks && day > first {
                // Every day from here on lies wholly after `start`.
                self.skip_weeks(&mut day, &mut remaining)?;
            }
        }
    }

    /// Moves `day` forward by whole weeks while that leaves more than a week of business time
    /// to walk, subtracting the business time skipped.
    fn skip_weeks(
        &self,
        day: &mut Date,
        remaining: &mut SignedDuration,
    ) -> Result<(), CalendarError> {
        let week = self.week_seconds;
        loop {
            let left = remaining.as_secs();
            if week == 0 || left <= 2 * week {
                return Ok(());
            }
            // Keep a week in hand: holidays and DST changes make real weeks differ a little.
            let mut weeks = left / week - 1;
            loop {
                let span = self.whole_days(*day, weeks * 7)?;
                if span.is_positive() && span < *remaining {
                    *remaining -= span;
                    *day = self.add_days(*day, weeks * 7)?;
                    break;
                }
                weeks /= 2;
                if weeks == 0 {
                    return Ok(());
                }
            }
        }
    }

    /// Business time of `n` whole local days from `from`: nominal weeks, corrected on the
    /// few days that differ from nominal (holidays, the days after them, DST changes).
    fn whole_days(&self, from: Date, n: i64) -> Result<SignedDuration, CalendarError> {
        let weeks = n / 7;
        let week_end = self.add_days(from, weeks * 7)?;
        let mut total = weeks * self.week_seconds;
        for day in self.irregular_days(from, week_end)? {
            total += self.actual_seconds(day)? - self.nominal_seconds(day)?;
        }
        let mut out = SignedDuration::from_secs(total);
        for i in 0..n % 7 {
            out += self.clipped_all(self.add_days(week_end, i)?)?;
        }
        Ok(out)
    }

    /// Days in `[from, to)` whose business time may differ from their weekday's nominal one.
    fn irregular_days(&self, from: Date, to: Date) -> Result<BTreeSet<Date>, CalendarError> {
        let mut out = BTreeSet::new();
        if from >= to {
            return Ok(out);
        }
        let before = self.add_days(from, -1)?;
        let mut holidays: Vec<Date> = self.fixed_holidays.range(before..to).copied().collect();
        for year in before.year()..=to.year() {
            for &(month, day) in &self.yearly_holidays {
                if let Ok(d) = Date::new(year, month, day)
                    && d >= before
                    && d < to
                {
                    holidays.push(d);
                }
            }
        }
        for h in holidays {
            // A holiday closes its own ranges and the after-midnight parts on the next day.
            out.insert(h);
            out.insert(self.add_days(h, 1)?);
        }
        let lo = self.midnight(before)?;
        let hi = self.midnight(self.add_days(to, 1)?)?;
        for transition in self.tz.following(lo) {
            let t = transition.timestamp();
            if t > hi {
                break;
            }
            let d = self.local_date(t);
            for delta in -1..=1 {
                out.insert(self.add_days(d, delta)?);
            }
        }
        out.retain(|d| *d >= from && *d < to);
        Ok(out)
    }

    /// Open seconds of `day`'s weekday in a week without holidays or DST changes.
    fn nominal_seconds(&self, day: Date) -> Result<i64, CalendarError> {
        let prev = self.add_days(day, -1)?;
        let own: i64 = self.own[day_index(day.weekday())]
            .iter()
            .map(|s| s.len())
            .sum();
        let tail: i64 = self.tail[day_index(prev.weekday())]
            .iter()
            .map(|s| s.len())
            .sum();
        Ok(own + tail)
    }

    /// Real open seconds of `day` (holidays and DST applied).
    fn actual_seconds(&self, day: Date) -> Result<i64, CalendarError> {
        Ok(self.clipped_all(day)?.as_secs())
    }

    /// Business time of `day`.
    fn clipped_all(&self, day: Date) -> Result<SignedDuration, CalendarError> {
        Ok(self
            .day_intervals(day)?
            .iter()
            .map(|&(a, b)| b.duration_since(a))
            .sum())
    }

    /// Business time of `day` within `[a, b)`.
    fn clipped(
        &self,
        day: Date,
        a: Timestamp,
        b: Timestamp,
    ) -> Result<SignedDuration, CalendarError> {
        Ok(self
            .day_intervals(day)?
            .iter()
            .map(|&(x, y)| {
                let (x, y) = (x.max(a), y.min(b));
                if x < y {
                    y.duration_since(x)
                } else {
                    SignedDuration::ZERO
                }
            })
            .sum())
    }

    /// The open intervals of local date `day` as instants, sorted and disjoint.
    fn day_intervals(&self, day: Date) -> Result<Vec<(Timestamp, Timestamp)>, CalendarError> {
        let mut secs: Vec<Secs> = Vec::new();
        if !self.is_holiday(day) {
            secs.extend(&self.own[day_index(day.weekday())]);
        }
        let prev = self.add_days(day, -1)?;
        if !self.is_holiday(prev) {
            secs.extend(&self.tail[day_index(prev.weekday())]);
        }
        secs.sort();
        let mut merged: Vec<Secs> = Vec::with_capacity(secs.len());
        for s in secs {
            match merged.last_mut() {
                Some(last) if last.end >= s.start => last.end = last.end.max(s.end),
                _ => merged.push(s),
            }
        }
        let mut out = Vec::with_capacity(merged.len());
        for s in merged {
            let a = self.instant(day, s.start)?;
            let b = self.instant(day, s.end)?;
            // A range inside a DST gap can map to nothing.
            if a < b {
                out.push((a, b));
            }
        }
        Ok(out)
    }

    fn is_holiday(&self, day: Date) -> bool {
        self.fixed_holidays.contains(&day)
            || self.yearly_holidays.contains(&(day.month(), day.day()))
    }

    /// The instant of local time `secs` after midnight of `day` (86400 = next midnight).
    fn instant(&self, day: Date, secs: u32) -> Result<Timestamp, CalendarError> {
        if secs >= DAY_SECONDS {
            return self.midnight(self.add_days(day, 1)?);
        }
        let time = Time::new(
            (secs / 3600) as i8,
            (secs / 60 % 60) as i8,
            (secs % 60) as i8,
            0,
        )
        .map_err(|_| self.out_of_range())?;
        self.tz
            .to_ambiguous_timestamp(day.to_datetime(time))
            .compatible()
            .map_err(|_| self.out_of_range())
    }

    fn midnight(&self, day: Date) -> Result<Timestamp, CalendarError> {
        self.tz
            .to_ambiguous_timestamp(day.to_datetime(Time::midnight()))
            .compatible()
            .map_err(|_| self.out_of_range())
    }

    fn local_date(&self, t: Timestamp) -> Date {
        self.tz.to_datetime(t).date()
    }

    fn add_days(&self, day: Date, n: i64) -> Result<Date, CalendarError> {
        Span::new()
            .try_days(n)
            .and_then(|span| day.checked_add(span))
            .map_err(|_| self.out_of_range())
    }

    fn out_of_range(&self) -> CalendarError {
        CalendarError::OutOfRange(self.name.clone())
    }
}

/// Whole days from `a` to `b` (negative when `b` is earlier).
fn days_from(a: Date, b: Date) -> i64 {
    // Both dates are within jiff's range, so the difference always fits in days.
    a.until((Unit::Day, b))
        .map(|span| i64::from(span.get_days()))
        .unwrap_or(0)
}

fn day_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

fn weekday(index: i8) -> Weekday {
    Weekday::Monday.wrapping_add(index)
}

/// The configuration key of a weekday: `mon` … `sun`.
pub fn weekday_key(day: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][day_index(day)]
}

/// `HH:MM` (or `HH:MM:SS`) for seconds after midnight.
fn clock_text(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

#[cfg(test)]
mod tests;
