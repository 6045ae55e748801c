//! Calendars as written in the configuration (`[calendars.NAME]`) and their translation into
//! [`Calendar`] values, collecting every problem with its key.
//!
//! Owns the config shape and its syntax (time zone names, `HH:MM-HH:MM` ranges, holiday
//! dates) plus the registry [`Calendars`] with the built-in `24x7`. It must not do calendar
//! arithmetic (that is [`super::calendar`]) nor read files: the caller hands in parsed TOML.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::sla::calendar::{Calendar, DAY_SECONDS, Holiday, OpenRange, weekday_key};

/// Name of the calendar that always exists and is always open.
pub const ALWAYS_OPEN: &str = "24x7";

/// One `[calendars.NAME]` table.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// IANA time zone the hours and holidays are written in; required, because a silent
    /// default would shift every deadline by the zone's offset.
    pub timezone: String,
    /// Monday's open ranges, `"HH:MM-HH:MM"`; a range ending at or before its start closes
    /// the next day. No ranges: closed that day.
    #[serde(deserialize_with = "one_or_many")]
    pub mon: Vec<String>,
    /// Tuesday's open ranges, as for `mon`.
    #[serde(deserialize_with = "one_or_many")]
    pub tue: Vec<String>,
    /// Wednesday's open ranges, as for `mon`.
    #[serde(deserialize_with = "one_or_many")]
    pub wed: Vec<String>,
    /// Thursday's open ranges, as for `mon`.
    #[serde(deserialize_with = "one_or_many")]
    pub thu: Vec<String>,
    /// Friday's open ranges, as for `mon`.
    #[serde(deserialize_with = "one_or_many")]
    pub fri: Vec<String>,
    /// Saturday's open ranges, as for `mon`.
    #[serde(deserialize_with = "one_or_many")]
    pub sat: Vec<String>,
    /// Sunday's open ranges, as for `mon`.
    #[serde(deserialize_with = "one_or_many")]
    pub sun: Vec<String>,
    /// Closed days: `"2026-12-25"` once, `"*-12-25"` every year.
    #[serde(deserialize_with = "one_or_many")]
    pub holidays: Vec<String>,
}

/// A day's ranges (or the holidays) as an array, or as one string when there is one:
/// `mon = "09:00-17:00"` reads as `mon = ["09:00-17:00"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a range \"HH:MM-HH:MM\" or an array of them")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl CalendarConfig {
    /// The ranges of each weekday, Monday first, with the weekday they belong to.
    fn days(&self) -> [(Weekday, &[String]); 7] {
        [
            (Weekday::Monday, &self.mon),
            (Weekday::Tuesday, &self.tue),
            (Weekday::Wednesday, &self.wed),
            (Weekday::Thursday, &self.thu),
            (Weekday::Friday, &self.fri),
            (Weekday::Saturday, &self.sat),
            (Weekday::Sunday, &self.sun),
        ]
    }

    /// Builds the calendar `name`, or returns every problem, each naming its key
    /// (`calendars.NAME.mon[1]: …`).
    pub fn build(&self, name: &str) -> Result<Calendar, Vec<String>> {
        let at = format!("calendars.{name}");
        let mut problems = Vec::new();
        let tz = if self.timezone.trim().is_empty() {
            problems.push(format!(
                "{at}.timezone is required (an IANA name such as \"Europe/Berlin\" or \"UTC\")"
            ));
            None
        } else {
            match TimeZone::get(&self.timezone) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    problems.push(format!(
                        "{at}.timezone: unknown time zone {:?}; expected an IANA name such as \"Europe/Berlin\"",
                        self.timezone
                    ));
                    None
                }
            }
        };
        let mut ranges = Vec::new();
        for (day, texts) in self.days() {
            for (i, text) in texts.iter().enumerate() {
                match parse_range(day, text) {
                    Ok(r) => ranges.push(r),
                    Err(why) => {
                        problems.push(format!("{at}.{}[{i}] = {text:?}: {why}", weekday_key(day)))
                    }
                }
            }
        }
        let mut holidays = Vec::new();
        for (i, text) in self.holidays.iter().enumerate() {
            match parse_holiday(text) {
                Ok(h) => holidays.push(h),
                Err(why) => problems.push(format!("{at}.holidays[{i}] = {text:?}: {why}")),
            }
        }
        // Range and holiday syntax errors would make the semantic checks misleading.
        if !problems.is_empty() {
            return Err(problems);
        }
        let tz = tz.unwrap_or(TimeZone::UTC);
        Calendar::new(name, tz, &ranges, &holidays)
            .map_err(|found| found.iter().map(|p| format!("{at}: {p}")).collect())
    }
}

/// Every calendar by name, the built-in `24x7` included. Calendars are shared (`Arc`) so
/// clocks and timers can hold on to one across a config reload.
#[derive(Debug, Clone)]
pub struct Calendars {
    /// Calendars by name.
    by_name: BTreeMap<String, Arc<Calendar>>,
}

impl Calendars {
    /// Builds every configured calendar plus `24x7`, or lists every problem in all of them.
    pub fn from_config(
        configs: &BTreeMap<String, CalendarConfig>,
    ) -> Result<Calendars, Vec<String>> {
        let mut problems = Vec::new();
        let mut by_name = BTreeMap::new();
        by_name.insert(ALWAYS_OPEN.to_string(), Arc::new(Calendar::always_open()));
        for (name, config) in configs {
            if name == ALWAYS_OPEN {
                problems.push(format!(
                    "calendars.{name}: the name is taken by the built-in always-open calendar; choose another"
                ));
                continue;
            }
            if !valid_name(name) {
                problems.push(format!(
                    "calendars.{name:?}: a calendar name uses letters, digits, '-' and '_' only"
                ));
                continue;
            }
            match config.build(name) {
                Ok(c) => {
                    by_name.insert(name.clone(), Arc::new(c));
                }
                Err(found) => problems.extend(found),
            }
        }
        if problems.is_empty() {
            Ok(Calendars { by_name })
        } else {
            Err(problems)
        }
    }

    /// The calendar called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Calendar>> {
        self.by_name.get(name)
    }

    /// Every calendar's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

impl Default for Calendars {
    /// Only the built-in `24x7`.
    fn default() -> Calendars {
        let mut by_name = BTreeMap::new();
        by_name.insert(ALWAYS_OPEN.to_string(), Arc::new(Calendar::always_open()));
        Calendars { by_name }
    }
}

/// Every problem in the `[calendars]` section, for config validation.
pub fn problems(configs: &BTreeMap<String, CalendarConfig>) -> Vec<String> {
    Calendars::from_config(configs).err().unwrap_or_default()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `"09:00-17:00"` on `day`; an end at or before the start closes the next day.
fn parse_range(day: Weekday, text: &str) -> Result<OpenRange, String> {
    let Some((start, end)) = text.split_once('-') else {
        return Err("expected a range \"HH:MM-HH:MM\"".into());
    };
    let start = parse_clock(start.trim()).map_err(|e| format!("start {e}"))?;
    let end = parse_clock(end.trim()).map_err(|e| format!("end {e}"))?;
    if start == DAY_SECONDS {
        return Err("a range cannot start at 24:00; use 00:00 of the next day".into());
    }
    if start == end {
        return Err("a range must not be empty; write 00:00-24:00 for a whole day".into());
    }
    Ok(OpenRange { day, start, end })
}

/// `"HH:MM"` (hours 0..=24, 24 only as 24:00) into seconds after midnight.
fn parse_clock(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a time \"HH:MM\"");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("{text:?} is not a time of day (00:00..24:00)"));
    }
    Ok(h * 3600 + m * 60)
}

/// `"2026-12-25"` (that date) or `"*-12-25"` (every year).
fn parse_holiday(text: &str) -> Result<Holiday, String> {
    if let Some(month_day) = text.strip_prefix("*-") {
        // Checked against a leap year so that "*-02-29" is accepted.
        let date: Date = format!("2000-{month_day}")
            .parse()
            .map_err(|_| "expected \"*-MM-DD\" with a real month and day".to_string())?;
        return Ok(Holiday::Yearly {
            month: date.month(),
            day: date.day(),
        });
    }
    let valid_shape = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !valid_shape {
        return Err("expected a date \"YYYY-MM-DD\" or \"*-MM-DD\" for every year".into());
    }
    text.parse::<Date>()
        .map(Holiday::Date)
        .map_err(|_| "not a real date".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> CalendarConfig {
        CalendarConfig {
            timezone: "Europe/Berlin".into(),
            mon: vec!["09:00-12:00".into(), "13:00-17:00".into()],
            fri: vec!["22:00-06:00".into()],
            holidays: vec!["2026-12-25".into(), "*-01-01".into(), "*-02-29".into()],
            ..CalendarConfig::default()
        }
    }

    #[test]
    fn a_valid_table_builds_a_calendar() {
        let c = office().build("office").expect("valid");
        assert_eq!(c.name(), "office");
        assert_eq!(c.time_zone().iana_name(), Some("Europe/Berlin"));
    }

    #[test]
    fn ranges_parse_including_midnight_and_crossing() {
        let r = parse_range(Weekday::Friday, "22:00-06:00").unwrap();
        assert_eq!((r.start, r.end), (22 * 3600, 6 * 3600));
        let r = parse_range(Weekday::Monday, "00:00-24:00").unwrap();
        assert_eq!((r.start, r.end), (0, DAY_SECONDS));
        let r = parse_range(Weekday::Monday, " 9:30 - 17:05 ").unwrap();
        assert_eq!((r.start, r.end), (9 * 3600 + 1800, 17 * 3600 + 300));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        for (text, needle) in [
            ("09:00", "expected a range"),
            ("9-17", "is not a time \"HH:MM\""),
            ("09:00-25:00", "not a time of day"),
            ("09:60-10:00", "not a time of day"),
            ("24:00-06:00", "cannot start at 24:00"),
            ("10:00-10:00", "must not be empty"),
            ("09:0-10:00", "is not a time"),
            ("+9:00-10:00", "is not a time"),
        ] {
            let err = parse_range(Weekday::Monday, text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn holidays_parse_fixed_and_yearly() {
        assert_eq!(
            parse_holiday("2026-12-25").unwrap(),
            Holiday::Date(jiff::civil::date(2026, 12, 25))
        );
        assert_eq!(
            parse_holiday("*-02-29").unwrap(),
            Holiday::Yearly { month: 2, day: 29 }
        );
        for bad in [
            "2026-02-30",
            "*-13-01",
            "*-02-30",
            "25.12.2026",
            "2026-1-1",
            "christmas",
        ] {
            assert!(parse_holiday(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn every_problem_in_every_calendar_is_reported_with_its_key() {
        let mut configs = BTreeMap::new();
        configs.insert(
            "broken".to_string(),
            CalendarConfig {
                timezone: "Mars/Olympus".into(),
                tue: vec!["9-17".into(), "10:00-09:00".into()],
                holidays: vec!["2026-13-01".into()],
                ..CalendarConfig::default()
            },
        );
        configs.insert(
            "overlapping".to_string(),
            CalendarConfig {
                timezone: "UTC".into(),
                mon: vec![
                    "09:00-12:00".into(),
                    "11:00-13:00".into(),
                    "22:00-06:00".into(),
                ],
                tue: vec!["05:00-07:00".into()],
                ..CalendarConfig::default()
            },
        );
        configs.insert(
            "empty".to_string(),
            CalendarConfig {
                timezone: "UTC".into(),
                ..CalendarConfig::default()
            },
        );
        configs.insert(
            "no-zone".to_string(),
            CalendarConfig {
                mon: vec!["09:00-17:00".into()],
                ..CalendarConfig::default()
            },
        );
        configs.insert(ALWAYS_OPEN.to_string(), office());
        configs.insert("bad name".to_string(), office());
        let all = problems(&configs).join("\n");
        for needle in [
            "calendars.broken.timezone: unknown time zone \"Mars/Olympus\"",
            "calendars.broken.tue[0] = \"9-17\"",
            "calendars.broken.holidays[0] = \"2026-13-01\"",
            "calendars.overlapping: mon 09:00-12:00 overlaps mon 11:00-13:00",
            "calendars.overlapping: mon 22:00-06:00 overlaps tue 05:00-07:00",
            "calendars.empty: no business hours",
            "calendars.no-zone.timezone is required",
            "calendars.24x7: the name is taken",
            "calendars.\"bad name\"",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert_eq!(all.lines().count(), 9, "{all}");
    }

    #[test]
    fn the_registry_always_has_24x7() {
        let calendars = Calendars::from_config(&BTreeMap::new()).unwrap();
        assert_eq!(calendars.names().collect::<Vec<_>>(), vec![ALWAYS_OPEN]);
        let mut configs = BTreeMap::new();
        configs.insert("office".to_string(), office());
        let calendars = Calendars::from_config(&configs).unwrap();
        assert_eq!(
            calendars.names().collect::<Vec<_>>(),
            vec![ALWAYS_OPEN, "office"]
        );
        assert!(calendars.get("office").is_some());
        assert!(calendars.get("nope").is_none());
        assert_eq!(Calendars::default().names().count(), 1);
    }

    #[test]
    fn the_example_in_the_shipped_config_is_valid() {
        let (_, example) = crate::config::DEFAULT_TOML
            .split_once("# Example:")
            .expect("the shipped config has a calendar example");
        let text: String = example
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l).trim())
            .collect::<Vec<_>>()
            .join("\n");
        let config = crate::config::parse(&text, "example").unwrap_or_else(|e| panic!("{e}"));
        let calendars = Calendars::from_config(&config.calendars).expect("valid");
        assert!(calendars.get("office").is_some());
    }

    #[test]
    fn a_config_file_with_calendars_parses_and_validates() {
        let text = r#"
            [calendars.office]
            timezone = "Europe/Berlin"
            mon = ["09:00-12:00", "13:00-17:00"]
            tue = ["09:00-17:00"]
            fri = ["09:00-17:00", "22:00-06:00"]
            holidays = ["2026-12-25", "*-01-01"]
        "#;
        let config = crate::config::parse(text, "test.toml").expect("valid");
        assert_eq!(config.calendars["office"].mon.len(), 2);

        // One range (or holiday) may be written without the brackets; a number may not.
        let text = r#"
            [calendars.office]
            timezone = "Europe/Berlin"
            tue = "09:00-17:00"
            holidays = "*-12-25"
        "#;
        let config = crate::config::parse(text, "test.toml").expect("valid");
        assert_eq!(config.calendars["office"].tue, ["09:00-17:00"]);
        assert_eq!(config.calendars["office"].holidays, ["*-12-25"]);
        let err = crate::config::parse(
            "[calendars.office]\ntimezone = \"UTC\"\nmon = 9\n",
            "test.toml",
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        assert!(all.contains("calendars.office.mon"), "{all}");
        assert!(
            all.contains("a range \"HH:MM-HH:MM\" or an array of them"),
            "{all}"
        );

        let text = r#"
            [calendars.office]
            timezone = "Europe/Berlin"
            mon = ["09:00-12:00", "11:00-17:00"]
            wednesday = ["09:00-17:00"]
        "#;
        let err = crate::config::parse(text, "test.toml").unwrap_err();
        let all = err.problems.join("\n");
        assert!(all.contains("unknown field `wednesday`"), "{all}");
    }
}
