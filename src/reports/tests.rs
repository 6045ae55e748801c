//! Reports computed over a small hand-written store: every figure checked against what the
//! history says.

use serde_json::{Value, json};

use crate::alerts::AlertStatus;
use crate::reports::*;
use crate::sla::track::{ClockTrack, RESOLUTION, RESPONSE};
use crate::sla::{TicketSla, Transition};
use crate::store::{MemoryStore, WriteBatch, encode};
use crate::tickets::{AlertLink, FieldChange, Kind, Level, TicketId};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn user() -> Actor {
    Actor::User {
        name: "olga".into(),
    }
}

fn entry(at: &str, actor: Actor, changes: &[(&str, Value, Value)], reason: &str) -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        at: ts(at),
        actor,
        changes: changes
            .iter()
            .map(|(f, o, n)| FieldChange {
                field: f.to_string(),
                old: o.clone(),
                new: n.clone(),
            })
            .collect(),
        reason: Some(reason.into()),
        event: None,
        rules_version: None,
    }
}

fn state(at: &str, old: &str, new: &str) -> HistoryEntry {
    let old = if old.is_empty() {
        Value::Null
    } else {
        json!(old)
    };
    entry(at, user(), &[("state", old, json!(new))], "test")
}

fn mark(at: &str, m: Mark) -> Transition {
    Transition {
        at: ts(at),
        mark: m,
    }
}

fn resolved() -> Mark {
    Mark::Pause {
        reason: "resolved".into(),
    }
}

struct Fixture {
    batch: WriteBatch,
}

impl Fixture {
    #[allow(clippy::too_many_arguments)]
    fn ticket(
        &mut self,
        kind: Kind,
        number: u64,
        priority: u8,
        created: &str,
        now: State,
        sla: TicketSla,
        alert: Option<&str>,
        history: Vec<HistoryEntry>,
    ) {
        let id = TicketId { kind, number };
        let t = Ticket {
            id,
            state: now,
            title: "t".into(),
            description: String::new(),
            group: Some("ops".into()),
            assignee: None,
            impact: Level::Low,
            urgency: Level::Low,
            priority,
            tags: Default::default(),
            correlation_key: None,
            key_source: None,
            alert: alert.map(|source| AlertLink {
                source: source.into(),
                status: AlertStatus::Firing,
                count: 1,
                first_seen: ts(created),
                last_seen: ts(created),
                last_event: 1,
                alerts: Default::default(),
                changes: Vec::new(),
                flapping_until: None,
            }),
            custom: Default::default(),
            process: Default::default(),
            created_at: ts(created),
            updated_at: ts(created),
            history_len: history.len() as u64,
            sla,
        };
        self.batch.put(Tree::Tickets, id.key(), encode(&t));
        for (i, mut e) in history.into_iter().enumerate() {
            e.seq = i as u64 + 1;
            self.batch
                .put(Tree::History, layout::history_key(id, e.seq), encode(&e));
        }
    }
}

fn clocks(policy: &str, response: Vec<Transition>, resolution: Vec<Transition>) -> TicketSla {
    let track = |timeline| ClockTrack {
        timeline,
        ..ClockTrack::default()
    };
    TicketSla {
        policy: Some(policy.into()),
        clocks: [
            (RESPONSE.to_string(), track(response)),
            (RESOLUTION.to_string(), track(resolution)),
        ]
        .into(),
        ..TicketSla::default()
    }
}

fn store() -> MemoryStore {
    let mut f = Fixture {
        batch: WriteBatch::default(),
    };
    // Acknowledged after 10 min, resolved after 2 h: both targets met.
    f.ticket(
        Kind::Incident,
        1,
        1,
        "2026-01-05T10:00:00Z",
        State::Resolved,
        clocks(
            "incident-p1",
            vec![
                mark("2026-01-05T10:00:00Z", Mark::Start),
                mark("2026-01-05T10:10:00Z", Mark::Stop),
            ],
            vec![
                mark("2026-01-05T10:00:00Z", Mark::Start),
                mark("2026-01-05T12:00:00Z", resolved()),
            ],
        ),
        None,
        vec![
            state("2026-01-05T10:00:00Z", "", "new"),
            state("2026-01-05T10:10:00Z", "new", "in_progress"),
            state("2026-01-05T12:00:00Z", "in_progress", "resolved"),
        ],
    );
    // First response by a public comment after 30 min (target 15 min); resolved after 6 h:
    // breached at 4 h, escalated by the rule.
    f.ticket(
        Kind::Incident,
        2,
        1,
        "2026-01-06T10:00:00Z",
        State::Resolved,
        clocks(
            "incident-p1",
            vec![
                mark("2026-01-06T10:00:00Z", Mark::Start),
                mark("2026-01-06T10:30:00Z", Mark::Stop),
            ],
            vec![
                mark("2026-01-06T10:00:00Z", Mark::Start),
                mark("2026-01-06T16:00:00Z", resolved()),
            ],
        ),
        None,
        vec![
            state("2026-01-06T10:00:00Z", "", "new"),
            entry(
                "2026-01-06T10:30:00Z",
                user(),
                &[("comments", json!(0), json!(1))],
                "public comment #1",
            ),
            entry(
                "2026-01-06T14:00:01Z",
                Actor::system("sla"),
                &[(
                    "sla_stage",
                    Value::Null,
                    json!({ "clock": "resolution", "stage": "breach", "percent": 100,
                            "policy": "incident-p1", "due": "2026-01-06T14:00:00Z" }),
                )],
                "breached",
            ),
            entry(
                "2026-01-06T14:00:01Z",
                Actor::Rule {
                    file: "10-escalation.rhai".into(),
                    hook: "on_clock".into(),
                    line: Some(3),
                },
                &[
                    ("escalation", json!(0), json!(1)),
                    ("group", json!("ops"), json!("experts")),
                ],
                "escalated",
            ),
            state("2026-01-06T15:00:00Z", "new", "in_progress"),
            state("2026-01-06T16:00:00Z", "in_progress", "resolved"),
        ],
    );
    // Opened by an alert before the period, still in progress: backlog only.
    f.ticket(
        Kind::Incident,
        3,
        3,
        "2025-12-20T10:00:00Z",
        State::InProgress,
        TicketSla::default(),
        Some("prometheus"),
        vec![
            state("2025-12-20T10:00:00Z", "", "new"),
            state("2025-12-21T10:00:00Z", "new", "in_progress"),
        ],
    );
    // Opened the last hour of the period, resolved after it: new in the backlog at its end.
    f.ticket(
        Kind::Request,
        1,
        4,
        "2026-01-31T23:00:00Z",
        State::Fulfilled,
        TicketSla::default(),
        None,
        vec![
            state("2026-01-31T23:00:00Z", "", "new"),
            state("2026-02-01T09:00:00Z", "new", "fulfilled"),
        ],
    );
    let store = MemoryStore::default();
    store.apply(f.batch).unwrap();
    store
}

#[test]
fn a_month_of_history_gives_exact_figures() {
    let store = store();
    let r = compute(
        &store,
        &SlaConfig::default(),
        &Calendars::default(),
        ts("2026-01-01T00:00:00Z"),
        ts("2026-02-01T00:00:00Z"),
    )
    .unwrap();
    let row = |rows: &[TimeRow], by: &str, value: &str| {
        rows.iter()
            .find(|t| t.by == by && t.value == value)
            .map(|t| (t.count, t.mean_secs, t.median_secs))
    };
    assert_eq!(row(&r.mtta, "priority", "1"), Some((2, 1_200, 1_800)));
    assert_eq!(
        row(&r.mtta, "priority", "4"),
        Some((1, 10 * 3_600, 10 * 3_600)),
        "opened in the period, answered after it: counted with its real wait"
    );
    assert_eq!(
        row(&r.mttr, "kind", "incident"),
        Some((2, 4 * 3_600, 6 * 3_600))
    );
    assert_eq!(
        row(&r.mttr, "group", "ops"),
        Some((2, 4 * 3_600, 6 * 3_600))
    );
    assert_eq!(
        r.sla,
        [
            ComplianceRow {
                policy: "incident-p1".into(),
                clock: "resolution".into(),
                ended: 2,
                met: 1,
                missed: 1,
                compliance_pct: 50.0,
            },
            ComplianceRow {
                policy: "incident-p1".into(),
                clock: "response".into(),
                ended: 2,
                met: 1,
                missed: 1,
                compliance_pct: 50.0,
            },
        ]
    );
    assert_eq!(r.breaches.len(), 1);
    assert_eq!(r.breaches[0].ticket, "INC-000002");
    assert_eq!(r.breaches[0].due, json!("2026-01-06T14:00:00Z"));
    let backlog: Vec<(&str, &[u64])> = r
        .backlog
        .iter()
        .map(|b| (b.state.as_str(), b.ages.as_slice()))
        .collect();
    assert_eq!(
        backlog,
        [
            ("in_progress", &[0, 0, 0, 0, 1][..]),
            ("new", &[1, 0, 0, 0, 0][..])
        ]
    );
    let volume: Vec<(&str, &str, u64)> = r
        .volume
        .iter()
        .map(|v| (v.source.as_str(), v.kind.as_str(), v.count))
        .collect();
    assert_eq!(volume, [("api", "incident", 2), ("api", "request", 1)]);
    assert_eq!(r.escalations.len(), 1);
    let e = &r.escalations[0];
    assert_eq!(
        (
            e.level,
            e.from_group.as_deref(),
            e.to_group.as_deref(),
            e.by.as_str()
        ),
        (
            1,
            Some("ops"),
            Some("experts"),
            "10-escalation.rhai on_clock"
        )
    );

    let text = table::render(&r);
    assert!(
        text.contains("incident-p1  resolution  2      1    1       50.0%"),
        "{text}"
    );
    assert!(text.contains("INC-000002"), "{text}");

    let mut only = r.clone();
    assert!(only.keep("breaches"));
    assert!(only.mtta.is_empty() && only.backlog.is_empty());
    assert_eq!(only.breaches, r.breaches);
    let text = table::render(&only);
    assert!(
        text.contains("Breaches") && !text.contains("MTTA"),
        "{text}"
    );
    assert!(!only.clone().keep("nonsense"));
}

#[test]
fn a_later_period_sees_only_the_backlog_and_what_happened_in_it() {
    let store = store();
    let r = compute(
        &store,
        &SlaConfig::default(),
        &Calendars::default(),
        ts("2026-02-01T00:00:00Z"),
        ts("2026-03-01T00:00:00Z"),
    )
    .unwrap();
    assert!(r.mtta.is_empty() && r.sla.is_empty() && r.breaches.is_empty());
    assert_eq!(
        r.mttr.iter().find(|t| t.by == "kind").map(|t| t.count),
        Some(1)
    );
    assert_eq!(r.backlog.len(), 1, "REQ-1 was fulfilled: {:?}", r.backlog);
}

#[test]
fn periods_default_to_the_last_30_days_and_bad_input_is_listed() {
    let now = ts("2026-03-01T12:00:00Z");
    assert_eq!(
        period(None, None, None, now),
        Ok((ts("2026-01-30T12:00:00Z"), now))
    );
    assert_eq!(
        period(Some("2026-01-01"), Some("2026-02-01T00:00:00Z"), None, now),
        Ok((ts("2026-01-01T00:00:00Z"), ts("2026-02-01T00:00:00Z")))
    );
    assert_eq!(
        period(None, None, Some("7d"), now),
        Ok((ts("2026-02-22T12:00:00Z"), now))
    );
    let problems = period(Some("yesterday"), None, Some("soon"), now).unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    let both = period(Some("2026-01-01"), None, Some("7d"), now).unwrap_err();
    assert_eq!(both, ["give `from` or `last`, not both"]);
    let empty = period(Some("2026-03-02"), None, None, now).unwrap_err();
    assert!(empty[0].contains("the period is empty"), "{empty:?}");
}
