//! Quiet hours per person (`[smtp.quiet.NAME]`): a daily window in the person's time zone
//! during which their non-urgent notifications are held, due when the window ends (the
//! outbox row waits in its own queue, `@smtp/NAME`, so nothing else waits behind it); a
//! priority 1 page still goes at once when `pages` is on. Pure: the engine passes the time.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuietHours {
    /// The person's IANA time zone (`Europe/Berlin`).
    pub time_zone: String,
    /// Start of the window, local `HH:MM`.
    pub from: String,
    /// End of the window, local `HH:MM` (before `from`: the window spans midnight).
    pub until: String,
    /// Priority 1 notifications go at once even inside the window.
    pub pages: bool,
}

impl Default for QuietHours {
    fn default() -> QuietHours {
        QuietHours {
            time_zone: "UTC".into(),
            from: "22:00".into(),
            until: "07:00".into(),
            pages: true,
        }
    }
}

impl QuietHours {
    fn parts(&self) -> Result<(TimeZone, Time, Time), String> {
        let tz = TimeZone::get(&self.time_zone)
            .map_err(|e| format!("time_zone {:?}: {e}", self.time_zone))?;
        let time = |s: &str, key: &str| {
            s.parse::<Time>()
                .map_err(|e| format!("{key} {s:?} is not a local time HH:MM: {e}"))
        };
        Ok((tz, time(&self.from, "from")?, time(&self.until, "until")?))
    }

    /// When the window `now` falls in ends; `None` outside the window.
    pub fn ends(&self, now: Timestamp) -> Option<Timestamp> {
        let (tz, from, until) = self.parts().ok()?;
        if from == until {
            return None;
        }
        let local = now.to_zoned(tz.clone());
        let t = local.time();
        let date = local.date();
        let end_date = if from < until {
            (from <= t && t < until).then_some(date)?
        } else if t >= from {
            date.checked_add(1.day()).ok()?
        } else if t < until {
            date
        } else {
            return None;
        };
        end_date
            .to_datetime(until)
            .to_zoned(tz)
            .ok()
            .map(|z| z.timestamp())
    }
}

pub(crate) fn problems(quiet: &std::collections::BTreeMap<String, QuietHours>) -> Vec<String> {
    quiet
        .iter()
        .filter_map(|(name, q)| q.parts().err().map(|e| format!("smtp.quiet.{name}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: &str, until: &str) -> QuietHours {
        QuietHours {
            time_zone: "Europe/Berlin".into(),
            from: from.into(),
            until: until.into(),
            pages: true,
        }
    }

    #[test]
    fn a_window_over_midnight_ends_the_next_morning_in_the_persons_zone() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        // 23:30 in Berlin (UTC+1 in January) → 07:00 the next day, 06:00Z.
        assert_eq!(
            q("22:00", "07:00").ends(at("2026-01-10T22:30:00Z")),
            Some(at("2026-01-11T06:00:00Z"))
        );
        // 05:00 Berlin → 07:00 the same day.
        assert_eq!(
            q("22:00", "07:00").ends(at("2026-01-11T04:00:00Z")),
            Some(at("2026-01-11T06:00:00Z"))
        );
        assert_eq!(q("22:00", "07:00").ends(at("2026-01-11T11:00:00Z")), None);
        assert_eq!(
            q("12:00", "13:00").ends(at("2026-07-01T10:30:00Z")),
            Some(at("2026-07-01T11:00:00Z"))
        );
        let bad = QuietHours {
            time_zone: "Mars/Olympus".into(),
            ..q("25:00", "07:00")
        };
        let p = problems(&[("alice".to_string(), bad)].into()).join("\n");
        assert!(p.contains("smtp.quiet.alice: time_zone"), "{p}");
    }
}

#[cfg(test)]
mod engine_tests {
    //! Quiet hours in the engine, on a pinned clock: the held row's due time, and a page.

    use std::sync::Arc;

    use crate::event::EventBody;
    use crate::store::layout::outbox;
    use crate::store::{MemoryStore, Store, Tree};
    use crate::tickets::command::{Action, Command};
    use crate::tickets::{Actor, NewTicket};

    const CONFIG: &str = r#"
[groups.triage]
[groups.network]
members = ["alice", "bob"]
[smtp]
host = "127.0.0.1"
from = "desk@example.com"
[smtp.notify]
assigned = ["group"]
p1_opened = ["group"]
[smtp.people]
alice = "alice@example.com"
bob = "bob@example.com"
[smtp.quiet.alice]
time_zone = "Europe/Berlin"
from = "22:00"
until = "07:00"
"#;

    #[tokio::test]
    async fn a_non_urgent_mail_waits_for_the_morning_and_a_p1_page_goes_at_once() {
        let config = crate::config::parse(CONFIG, "t").unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rules = crate::engine::test_support::rules(&config, &[]);
        // 23:30 in Berlin.
        let (engine, _clock) = crate::engine::test_support::engine(
            &config,
            store.clone(),
            rules,
            "2026-01-10T22:30:00Z",
        );
        let create = |priority: u8| {
            let new: NewTicket = serde_json::from_value(serde_json::json!({
                "kind": "incident", "title": "Switch", "group": "network", "priority": priority
            }))
            .unwrap();
            EventBody::Command(Command {
                by: Actor::User {
                    name: "carol".into(),
                },
                action: Action::Create(new),
            })
        };
        engine.submit(create(3)).await.unwrap();
        let rows = outbox::rows(&*store, Tree::Outbox, None, None, 100).unwrap();
        let of = |v: &str| rows.iter().find(|r| r.vendor == v).cloned().unwrap();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            of("@smtp/alice").next_at,
            Some("2026-01-11T06:00:00Z".parse().unwrap())
        );
        assert_eq!(
            of("@smtp").next_at,
            Some("2026-01-10T22:30:00Z".parse().unwrap())
        );

        engine.submit(create(1)).await.unwrap();
        let rows = outbox::rows(&*store, Tree::Outbox, None, None, 100).unwrap();
        let digests: Vec<_> = rows.iter().filter(|r| r.kind == "mail.digest").collect();
        assert_eq!(digests.len(), 2, "{rows:?}");
        assert!(
            digests.iter().all(|r| r.vendor == "@smtp"),
            "alice is paged at once, as bob is: {rows:?}"
        );
        assert!(digests.iter().any(|r| r.body.contains("alice@example.com")));
        assert_eq!(rows.iter().filter(|r| r.vendor == "@smtp/alice").count(), 1);
    }

    #[tokio::test]
    async fn a_personal_chat_channel_waits_too_and_a_page_brings_what_it_held() {
        let chat = r#"
[chat.alice-dm]
format = "slack"
url = "https://hooks.example/alice"
people = ["alice"]
[chat.ops]
format = "slack"
url = "https://hooks.example/ops"
groups = ["network"]
"#;
        let config = crate::config::parse(&format!("{CONFIG}{chat}"), "t").unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rules = crate::engine::test_support::rules(&config, &[]);
        // 23:30 in Berlin.
        let (engine, _clock) = crate::engine::test_support::engine(
            &config,
            store.clone(),
            rules,
            "2026-01-10T22:30:00Z",
        );
        let carol = Actor::User {
            name: "carol".into(),
        };
        let new: NewTicket = serde_json::from_value(serde_json::json!({
            "kind": "incident", "title": "Switch", "group": "network", "priority": 3
        }))
        .unwrap();
        let r = engine
            .submit(EventBody::Command(Command {
                by: carol.clone(),
                action: Action::Create(new),
            }))
            .await
            .unwrap();
        let id = r.ticket.unwrap();
        let rows = outbox::rows(&*store, Tree::Outbox, None, None, 100).unwrap();
        let of = |rows: &[crate::vendors::OutboxRow], v: &str| {
            rows.iter()
                .filter(|r| r.vendor == v)
                .cloned()
                .collect::<Vec<_>>()
        };
        let now: jiff::Timestamp = "2026-01-10T22:30:00Z".parse().unwrap();
        let dm = of(&rows, "@chat/alice-dm");
        assert_eq!(dm.len(), 1, "{rows:?}");
        assert_eq!(dm[0].next_at, Some("2026-01-11T06:00:00Z".parse().unwrap()));
        assert_eq!(
            of(&rows, "@chat/ops")[0].next_at,
            Some(now),
            "a group channel is not held"
        );

        // Raised to priority 1: alice is paged in her channel at once, and what was held
        // for her on the ticket goes first rather than waiting for the morning.
        let fields = serde_json::from_value(serde_json::json!({"priority": 1})).unwrap();
        engine
            .submit(EventBody::Command(Command {
                by: carol,
                action: Action::Update {
                    ticket: id,
                    fields,
                    if_assignee: None,
                },
            }))
            .await
            .unwrap();
        let rows = outbox::rows(&*store, Tree::Outbox, None, None, 100).unwrap();
        let dm = of(&rows, "@chat/alice-dm");
        assert_eq!(dm.len(), 2, "{rows:?}");
        assert_eq!(dm[0].next_at, Some(now), "{dm:?}");
        assert_eq!(dm[1].kind, "chat.p1_opened", "{dm:?}");
    }
}
