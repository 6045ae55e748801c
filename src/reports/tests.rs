//! Reports from a known history: the real engine (queue, batches, SLA clocks, commit) on an
//! in-memory store with a manual clock, then every figure checked against the values
//! computed by hand in the comments.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::{Clock, ManualClock};
use crate::engine::{EngineHandle, Receipt};
use crate::event::EventBody;
use crate::reports::*;
use crate::store::MemoryStore;
use crate::store::layout::sla_timers;
use crate::tickets::{Command, TicketId};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// One always-open policy for P1 incidents: respond in 15 min, resolve in 1 h.
const CONFIG: &str = r#"
[[sla.policies]]
name = "p1"
kinds = ["incident"]
priorities = [1]
response = "15m"
resolution = "1h"

[groups.triage]
[groups.ops]
members = ["ann", "bob"]
[groups.experts]
members = ["erik"]
"#;

struct Harness {
    engine: EngineHandle,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
    config: crate::config::Config,
}

impl Harness {
    fn start(at: &str) -> Harness {
        let config = crate::config::parse(CONFIG, "test").unwrap();
        let rules = crate::engine::test_support::rules(&config, &[]);
        let store = Arc::new(MemoryStore::default());
        let (engine, clock) =
            crate::engine::test_support::engine(&config, store.clone(), rules, at);
        Harness {
            engine,
            store,
            clock,
            config,
        }
    }

    fn at(&self, at: &str) {
        self.clock.set(ts(at));
    }

    async fn command(&self, by: &str, action: Value) -> Receipt {
        let c: Command = serde_json::from_value(
            json!({ "by": { "type": "user", "name": by }, "action": action }),
        )
        .unwrap();
        self.engine.submit(EventBody::Command(c)).await.unwrap()
    }

    async fn create(&self, priority: u8, assignee: &str) -> TicketId {
        let r = self
            .command(
                assignee,
                json!({ "type": "create", "kind": "incident", "title": "db slow",
                        "group": "ops", "assignee": assignee, "priority": priority }),
            )
            .await;
        r.ticket.unwrap()
    }

    async fn transition(&self, by: &str, id: TicketId, to: &str) {
        let mut step = json!({ "to": to, "reason": "test" });
        if to == "resolved" {
            step["resolution"] = json!("fixed");
        }
        let r = self
            .command(
                by,
                json!({ "type": "transition", "ticket": id, "step": step }),
            )
            .await;
        assert_eq!(r.ticket, Some(id));
    }

    /// Hands every due SLA timer to the engine, as the clock task does.
    async fn fire_due(&self) {
        loop {
            let due = sla_timers::due(&*self.store, self.clock.now(), 1000).unwrap();
            if due.is_empty() {
                return;
            }
            let events = due.into_iter().map(EventBody::Clock).collect();
            self.engine.submit_many(events).await.unwrap();
        }
    }

    fn report(&self, from: &str, to: &str) -> Report {
        let s = &self.config.sla;
        compute(&*self.store, s, &Default::default(), ts(from), ts(to)).unwrap()
    }
}

fn time(rows: &[TimeRow], by: &str, value: &str) -> Option<(u64, i64, i64)> {
    rows.iter()
        .find(|t| t.by == by && t.value == value)
        .map(|t| (t.count, t.mean_secs, t.median_secs))
}

fn compliance(r: &Report, by: &str, value: &str, clock: &str) -> Option<(u64, u64, f64)> {
    if by == "all" {
        return r
            .sla
            .iter()
            .find(|c| c.clock == clock)
            .map(|c| (c.met, c.missed, c.compliance_pct));
    }
    r.sla_by
        .iter()
        .find(|c| c.by == by && c.value == value && c.clock == clock)
        .map(|c| (c.met, c.missed, c.compliance_pct))
}

/// The history (Monday 2026-03-02, UTC):
/// - INC-1 (P1, ops/ann) opened 08:00, taken 08:10 by ann (acknowledged: 600 s, response met
///   at 10 min of 15), resolved 08:40 (2,400 s, resolution met at 40 min of 60).
/// - INC-2 (P1, ops/bob) opened 09:00; its response target passes at 09:15 and the breach is
///   recorded at 09:30 while bob's group ops holds it; at 09:40 it goes to experts/erik, who
///   takes it at 09:50 (acknowledged: 3,000 s, credited to experts/erik, not ops); the
///   resolution target passes at 10:00, the breach is recorded at 10:30 (experts/erik), and
///   the ticket stays open (in progress).
/// - INC-3 (P3, no policy, ops/ann) opened Tuesday 08:00, still new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_history_gives_hand_computed_figures() {
    let h = Harness::start("2026-03-02T08:00:00Z");
    let one = h.create(1, "ann").await;
    h.at("2026-03-02T08:10:00Z");
    h.transition("ann", one, "in_progress").await;
    h.at("2026-03-02T08:40:00Z");
    h.transition("ann", one, "resolved").await;

    h.at("2026-03-02T09:00:00Z");
    let two = h.create(1, "bob").await;
    h.at("2026-03-02T09:30:00Z");
    h.fire_due().await;
    h.at("2026-03-02T09:40:00Z");
    h.command(
        "bob",
        json!({ "type": "update", "ticket": two,
                "fields": { "group": "experts", "assignee": "erik" } }),
    )
    .await;
    h.at("2026-03-02T09:50:00Z");
    h.transition("erik", two, "in_progress").await;
    h.at("2026-03-02T10:30:00Z");
    h.fire_due().await;

    h.at("2026-03-03T08:00:00Z");
    let three = h.create(3, "ann").await;

    let r = h.report("2026-03-02T00:00:00Z", "2026-03-04T00:00:00Z");
    assert_eq!(
        (r.from, r.to),
        (ts("2026-03-02T00:00:00Z"), ts("2026-03-04T00:00:00Z"))
    );

    // MTTA: 600 s (INC-1) and 3,000 s (INC-2): mean 1,800, median the upper middle, 3,000.
    assert_eq!(time(&r.mtta, "all", ""), Some((2, 1_800, 3_000)));
    assert_eq!(time(&r.mtta, "group", "ops"), Some((1, 600, 600)));
    assert_eq!(time(&r.mtta, "group", "experts"), Some((1, 3_000, 3_000)));
    assert_eq!(time(&r.mtta, "agent", "ann"), Some((1, 600, 600)));
    assert_eq!(time(&r.mtta, "agent", "erik"), Some((1, 3_000, 3_000)));
    assert_eq!(
        time(&r.mtta, "agent", "bob"),
        None,
        "bob never acknowledged"
    );
    assert_eq!(time(&r.mtta, "priority", "1"), Some((2, 1_800, 3_000)));
    assert_eq!(time(&r.mtta, "kind", "incident"), Some((2, 1_800, 3_000)));
    // MTTR: INC-1 only, 2,400 s; INC-2 is still open.
    assert_eq!(time(&r.mttr, "all", ""), Some((1, 2_400, 2_400)));
    assert_eq!(time(&r.mttr, "group", "ops"), Some((1, 2_400, 2_400)));
    assert_eq!(time(&r.mttr, "agent", "ann"), Some((1, 2_400, 2_400)));
    assert_eq!(
        r.mtta.len(),
        7,
        "1 all + 2 groups + 2 agents + 1 priority + 1 kind: {:?}",
        r.mtta
    );

    // SLA: response met by INC-1, missed by INC-2 → 1 of 2 = 50 %; resolution met by INC-1,
    // missed by INC-2 although it is still open → 50 %.
    assert_eq!(compliance(&r, "all", "", "response"), Some((1, 1, 50.0)));
    assert_eq!(compliance(&r, "all", "", "resolution"), Some((1, 1, 50.0)));
    assert_eq!(r.sla.iter().map(|c| c.ended).sum::<u64>(), 4);
    // Per group: ops met both of INC-1 and missed INC-2's response (it held it at 09:30);
    // experts held INC-2 when its resolution breached at 10:30.
    assert_eq!(
        compliance(&r, "group", "ops", "response"),
        Some((1, 1, 50.0))
    );
    assert_eq!(
        compliance(&r, "group", "ops", "resolution"),
        Some((1, 0, 100.0))
    );
    assert_eq!(
        compliance(&r, "group", "experts", "resolution"),
        Some((0, 1, 0.0))
    );
    assert_eq!(compliance(&r, "group", "experts", "response"), None);
    assert_eq!(
        compliance(&r, "agent", "bob", "response"),
        Some((0, 1, 0.0))
    );
    assert_eq!(
        compliance(&r, "agent", "erik", "resolution"),
        Some((0, 1, 0.0))
    );
    assert_eq!(
        compliance(&r, "agent", "ann", "resolution"),
        Some((1, 0, 100.0))
    );

    let breaches: Vec<_> = r
        .breaches
        .iter()
        .map(|b| {
            (
                b.ticket.as_str(),
                b.clock.as_str(),
                b.at,
                b.group.as_deref(),
                b.agent.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        breaches,
        [
            (
                "INC-000002",
                "response",
                ts("2026-03-02T09:30:00Z"),
                Some("ops"),
                Some("bob")
            ),
            (
                "INC-000002",
                "resolution",
                ts("2026-03-02T10:30:00Z"),
                Some("experts"),
                Some("erik")
            ),
        ]
    );

    // Backlog now, aged at the period's end (03-04 00:00): INC-2 in progress, opened 39 h
    // before (1-3d); INC-3 new, opened 16 h before (<1d).
    let backlog: Vec<_> = r
        .backlog
        .iter()
        .map(|b| (b.state.as_str(), b.ages.clone()))
        .collect();
    assert_eq!(
        backlog,
        [
            ("in_progress", vec![0, 1, 0, 0, 0]),
            ("new", vec![1, 0, 0, 0, 0])
        ]
    );
    let groups: Vec<_> = r
        .backlog_groups
        .iter()
        .map(|b| (b.group.as_str(), b.total))
        .collect();
    assert_eq!(groups, [("experts", 1), ("ops", 1)]);
    let volume: Vec<_> = r
        .volume
        .iter()
        .map(|v| (v.source.as_str(), v.count))
        .collect();
    assert_eq!(volume, [("api", 3)]);

    // Trends: Monday opened 2, acknowledged 2 (mean 1,800 s), resolved 1 (2,400 s), met 2,
    // missed 2 (50 %); Tuesday opened 1, nothing settled (100 %); the week of Monday 03-02
    // adds both days up.
    let trend = |period: &str, start: &str| {
        r.trends
            .iter()
            .find(|t| t.period == period && t.start == ts(start))
            .map(|t| {
                (
                    t.opened,
                    t.acknowledged,
                    t.mtta_mean_secs,
                    t.resolved,
                    t.mttr_mean_secs,
                    t.met,
                    t.missed,
                    t.compliance_pct,
                )
            })
    };
    assert_eq!(
        trend("day", "2026-03-02T00:00:00Z"),
        Some((2, 2, 1_800, 1, 2_400, 2, 2, 50.0))
    );
    assert_eq!(
        trend("day", "2026-03-03T00:00:00Z"),
        Some((1, 0, 0, 0, 0, 0, 0, 100.0))
    );
    assert_eq!(
        trend("week", "2026-03-02T00:00:00Z"),
        Some((3, 2, 1_800, 1, 2_400, 2, 2, 50.0))
    );
    assert_eq!(r.trends.len(), 3);

    // Only Tuesday: INC-3's opening and nothing measured.
    let tuesday = h.report("2026-03-03T00:00:00Z", "2026-03-04T00:00:00Z");
    assert!(tuesday.mtta.is_empty() && tuesday.sla.is_empty() && tuesday.breaches.is_empty());
    assert_eq!(tuesday.volume.iter().map(|v| v.count).sum::<u64>(), 1);

    // An old store (no indexes) gets the same aggregates when the engine opens it.
    let rebuilt = MemoryStore::default();
    let mut batch = crate::store::WriteBatch::default();
    for tree in [
        crate::store::Tree::Tickets,
        crate::store::Tree::History,
        crate::store::Tree::Comments,
    ] {
        for item in h
            .store
            .range(tree, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)
        {
            let (k, v) = item.unwrap();
            batch.put(tree, k, v);
        }
    }
    rebuilt.apply(batch).unwrap();
    let sla = crate::reports::aggregate::SlaSetup {
        config: &h.config.sla,
        calendars: &Default::default(),
    };
    assert_eq!(
        crate::store::layout::search::ensure(&rebuilt, sla).unwrap(),
        3
    );
    let again = compute(
        &rebuilt,
        &h.config.sla,
        &Default::default(),
        ts("2026-03-02T00:00:00Z"),
        ts("2026-03-04T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(again, r, "the rebuild counts what the commits counted");

    let csv = csv::render(&r);
    assert!(
        csv.starts_with("section,by,value,count,mean_secs,median_secs\r\n"),
        "{csv}"
    );
    assert!(csv.contains("\r\nmtta,all,,2,1800,3000\r\n"), "{csv}");
    assert!(
        csv.contains("sla,group,experts,p1,resolution,0,1,0.0\r\n"),
        "{csv}"
    );
    let text = table::render(&r);
    assert!(text.contains("Trends") && text.contains("erik"), "{text}");
    let _ = three;
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
    let early = period(Some("1900-01-01"), None, None, now).unwrap_err();
    assert_eq!(
        early,
        ["`from`: \"1900-01-01\" is before 1970-01-01, where reports begin"]
    );
    let empty = period(Some("2026-03-02"), None, None, now).unwrap_err();
    assert!(empty[0].contains("the period is empty"), "{empty:?}");
}

#[test]
fn json_has_every_section_asked_for_even_empty_and_no_other() {
    let keys = |sections: &[&str]| -> Vec<String> {
        let report = Report {
            sections: sections.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        let mut keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        keys.retain(|k| !["from", "to", "sections"].contains(&k.as_str()));
        keys.sort();
        keys
    };
    for section in SECTIONS {
        let got = keys(&[section]);
        assert!(got.contains(&section.to_string()), "{section}: {got:?}");
        assert!(
            got.iter().all(|k| k.starts_with(section)),
            "{section} alone: {got:?}"
        );
    }
    assert_eq!(keys(&["breaches"]), ["breaches"]);
    assert_eq!(
        keys(&["sla", "backlog"]),
        ["backlog", "backlog_groups", "sla", "sla_by"]
    );
    assert!(keys(&[]).is_empty());
    // And it reads back.
    let report = Report {
        sections: vec!["breaches".into()],
        ..Default::default()
    };
    let back: Report = serde_json::from_value(serde_json::to_value(&report).unwrap()).unwrap();
    assert_eq!(back, report);
}
