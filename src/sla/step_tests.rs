//! SLA clocks through the real engine (queue, batches, rules, commit) on an in-memory store
//! with a manual clock: due times on a business calendar, pauses, warnings and breaches that
//! fire exactly once, escalation by the shipped rule, and recomputation on priority change.
//! Due timers are handed to the engine the way the clock task does (`sla_timers::due` → `Clock`).

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::engine::{EngineHandle, Receipt};
use crate::clock::{Clock, ManualClock};
use crate::config;
use crate::tickets::{Command, HistoryEntry, Ticket, TicketId};
use crate::event::EventBody;
use crate::store::{layout, MemoryStore};
use crate::store::layout::{Outcome, sla_timers};
use crate::sla::Stage;

/// Mon–Fri 09:00–17:00 in Berlin; one incident policy with a 1 h response and 4 h
/// resolution target on it; groups with a lead and an escalation target.
const OFFICE: &str = r#"
[calendars.office]
timezone = "Europe/Berlin"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
holidays = HOLIDAYS

[[sla.policies]]
name = "office"
kinds = ["incident"]
priorities = [2, 3, 4, 5]
calendar = "office"
response = "1h"
resolution = "4h"

[[sla.policies]]
name = "critical"
kinds = ["incident"]
priorities = [1]
response = "15m"
resolution = "1h"

[sla.underpinning]
default = "2h"

# The vendor's own underpinning target (30 min) reaches the SLA from [vendors].
[vendors.acme]
url = "http://127.0.0.1:9/hooks"
secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
underpinning_target = "30m"

[groups.triage]
members = []

[groups.operations]
members = ["olga", "lena"]
lead = "lena"
escalate_to = "experts"

[groups.experts]
members = ["erik"]
"#;

/// Friday 2026-01-09 16:30 in Berlin.
const FRIDAY_1630: &str = "2026-01-09T15:30:00Z";

struct Harness {
    engine: EngineHandle,
    store: Arc<MemoryStore>,
    clock: Arc<ManualClock>,
}

fn start(holidays: &str, rules: &[(&str, &str)]) -> Harness {
    let text = OFFICE.replace("HOLIDAYS", holidays);
    let config = config::parse(&text, "test").unwrap();
    let rules = crate::engine::test_support::rules(&config, rules);
    let store = Arc::new(MemoryStore::default());
    let (engine, clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, FRIDAY_1630);
    Harness {
        engine,
        store,
        clock,
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

impl Harness {
    async fn command(&self, by: &str, action: Value) -> Receipt {
        let c: Command = serde_json::from_value(
            json!({ "by": { "type": "user", "name": by }, "action": action }),
        )
        .unwrap();
        self.engine.submit(EventBody::Command(c)).await.unwrap()
    }

    async fn create(&self, priority: u8) -> TicketId {
        let r = self
            .command(
                "olga",
                json!({ "type": "create", "kind": "incident", "title": "db slow",
                        "group": "operations", "assignee": "olga", "priority": priority }),
            )
            .await;
        r.ticket.unwrap()
    }

    async fn transition(&self, id: TicketId, to: &str, extra: Value) {
        let mut step = json!({ "to": to, "reason": "test" });
        step.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.command(
            "olga",
            json!({ "type": "transition", "ticket": id, "step": step }),
        )
        .await;
    }

    fn ticket(&self, id: TicketId) -> Ticket {
        layout::get_ticket(&*self.store, id).unwrap().unwrap()
    }

    fn history(&self, id: TicketId) -> Vec<HistoryEntry> {
        layout::history(&*self.store, id).unwrap()
    }

    /// (clock, stage, due) of every scheduled timer of the ticket, earliest first. Checks the
    /// store holds exactly one row for it, the earliest (none when nothing is scheduled).
    fn timers(&self, id: TicketId) -> Vec<(String, Stage, Timestamp)> {
        let rows: Vec<_> = sla_timers::due(&*self.store, ts("2100-01-01T00:00:00Z"), 1000)
            .unwrap()
            .into_iter()
            .filter(|t| t.ticket == id)
            .map(|t| (t.clock, t.stage, t.due))
            .collect();
        let schedule: Vec<_> = self
            .ticket(id)
            .sla
            .timers
            .into_iter()
            .map(|s| (s.clock, s.stage, s.due))
            .collect();
        assert_eq!(
            rows,
            schedule.first().cloned().into_iter().collect::<Vec<_>>(),
            "one row per ticket: its earliest scheduled timer"
        );
        schedule
    }

    fn due_of(&self, id: TicketId, clock: &str, stage: Stage) -> Option<Timestamp> {
        self.timers(id)
            .into_iter()
            .find(|(c, s, _)| c == clock && *s == stage)
            .map(|(_, _, d)| d)
    }

    /// Reloads the configuration (no holidays) with the resolution target `target` instead
    /// of 4 h, the way SIGHUP does.
    fn reload_resolution_target(&self, target: &str) {
        let text = OFFICE.replace("HOLIDAYS", "[]").replace(
            r#"resolution = "4h""#,
            &format!(r#"resolution = "{target}""#),
        );
        let config = config::parse(&text, "reload").unwrap();
        self.engine
            .replace(crate::engine::test_support::rules(&config, &[]), &config);
    }

    fn set_now(&self, at: &str) {
        let by = ts(at).duration_since(self.clock.now());
        assert!(!by.is_negative(), "time only moves forward");
        self.clock.advance(by);
    }

    /// What the clock task does: hand every due timer to the engine, and look again until
    /// none is due (a fired timer's successor may be due at once).
    async fn fire_due(&self) -> Vec<Receipt> {
        let mut receipts = Vec::new();
        loop {
            let due = sla_timers::due(&*self.store, self.clock.now(), 1000).unwrap();
            if due.is_empty() {
                return receipts;
            }
            let events = due.into_iter().map(EventBody::Clock).collect();
            receipts.extend(self.engine.submit_many(events).await.unwrap());
        }
    }

    /// (clock, stage, percent) of each SLA stage recorded in the history, in order.
    fn fired(&self, id: TicketId) -> Vec<(String, String, u64)> {
        self.history(id)
            .iter()
            .flat_map(|e| e.changes.iter())
            .filter(|c| c.field == "sla_stage")
            .map(|c| {
                (
                    c.new["clock"].as_str().unwrap().to_string(),
                    c.new["stage"].as_str().unwrap().to_string(),
                    c.new["percent"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn a_friday_afternoon_ticket_is_due_monday_or_tuesday_after_a_holiday() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    assert_eq!(h.ticket(id).sla.policy.as_deref(), Some("office"));
    // 30 minutes on Friday, then 3 h 30 on Monday from 09:00 (Berlin, UTC+1).
    assert_eq!(
        h.due_of(id, "resolution", Stage::Breach),
        Some(ts("2026-01-12T11:30:00Z"))
    );
    assert_eq!(
        h.due_of(id, "response", Stage::Breach),
        Some(ts("2026-01-12T08:30:00Z"))
    );
    // 50% of 4 h: 30 min Friday + 1 h 30 Monday.
    assert_eq!(
        h.due_of(id, "resolution", Stage::Warning(50)),
        Some(ts("2026-01-12T09:30:00Z"))
    );

    let h = start(r#"["2026-01-12"]"#, &[]);
    let id = h.create(3).await;
    assert_eq!(
        h.due_of(id, "resolution", Stage::Breach),
        Some(ts("2026-01-13T11:30:00Z")),
        "Monday is a holiday: due Tuesday 12:30"
    );
}

#[tokio::test]
async fn a_hold_pauses_the_clocks_and_awaiting_vendor_runs_the_vendor_clock() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    h.command(
        "olga",
        json!({ "type": "update", "ticket": id, "fields": { "vendor": "acme" } }),
    )
    .await;
    h.transition(id, "in_progress", json!({})).await;
    assert!(
        h.due_of(id, "response", Stage::Breach).is_none(),
        "work started: response met, its timers gone"
    );
    // Monday 10:00 local: 1 h 30 of the 4 h used; on hold for the vendor until 14:00.
    h.set_now("2026-01-12T09:00:00Z");
    h.transition(id, "on_hold", json!({ "hold_reason": "awaiting_vendor" }))
        .await;
    assert!(
        h.due_of(id, "resolution", Stage::Breach).is_none(),
        "paused"
    );
    assert_eq!(
        h.due_of(id, "vendor", Stage::Breach),
        Some(ts("2026-01-12T09:30:00Z")),
        "acme's own 30 min underpinning target, on 24x7"
    );
    h.set_now("2026-01-12T13:00:00Z");
    h.transition(id, "in_progress", json!({})).await;
    assert_eq!(
        h.due_of(id, "vendor", Stage::Breach),
        Some(ts("2026-01-12T09:30:00Z")),
        "breached while the ticket waited: fires though the vendor clock is paused now"
    );
    // 2 h 30 left from 14:00 local: due 16:30 local.
    assert_eq!(
        h.due_of(id, "resolution", Stage::Breach),
        Some(ts("2026-01-12T15:30:00Z"))
    );
    let t = h.ticket(id);
    let marks: Vec<&str> = t.sla.clocks["resolution"]
        .timeline
        .iter()
        .map(|m| match &m.mark {
            crate::sla::Mark::Start => "start",
            crate::sla::Mark::Pause { .. } => "pause",
            crate::sla::Mark::Resume => "resume",
            crate::sla::Mark::Stop => "stop",
        })
        .collect();
    assert_eq!(marks, ["start", "pause", "resume"]);
    assert_eq!(t.sla.clocks["vendor"].vendor.as_deref(), Some("acme"));
    // The clock marks are part of the entry of the change that caused them.
    let hold = h
        .history(id)
        .into_iter()
        .find(|e| e.changes.iter().any(|c| c.new == json!("on_hold")))
        .unwrap();
    let sla: Vec<(&str, &Value)> = hold
        .changes
        .iter()
        .filter(|c| c.field.starts_with("sla."))
        .map(|c| (c.field.as_str(), &c.new))
        .collect();
    assert_eq!(
        sla,
        [
            (
                "sla.resolution",
                &json!("paused (on_hold: awaiting_vendor)")
            ),
            ("sla.vendor", &json!("started")),
        ]
    );
}

#[tokio::test]
async fn each_warning_and_the_breach_fire_exactly_once() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    h.transition(id, "in_progress", json!({})).await;
    assert_eq!(h.fire_due().await.len(), 0, "nothing due yet");

    // Monday 12:00 local: 50 % and 75 % of the resolution target are due.
    h.set_now("2026-01-12T11:00:00Z");
    let receipts = h.fire_due().await;
    assert_eq!(receipts.len(), 2);
    assert!(receipts.iter().all(|r| r.outcome == Outcome::Updated));
    // The same timers again (a task resending after a lost answer): nothing more happens.
    let again = sla_timers::Timer {
        ticket: id,
        clock: "resolution".into(),
        stage: Stage::Warning(50),
        due: ts("2026-01-12T09:30:00Z"),
    };
    let r = h.engine.submit(EventBody::Clock(again)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Recorded);
    assert_eq!(h.fire_due().await.len(), 0);

    h.set_now("2026-01-12T12:00:00Z");
    h.fire_due().await;
    h.fire_due().await;
    assert_eq!(
        h.fired(id),
        [
            ("resolution".into(), "warning".into(), 50),
            ("resolution".into(), "warning".into(), 75),
            ("resolution".into(), "warning".into(), 90),
            ("resolution".into(), "breach".into(), 100),
        ]
    );
    assert!(h.timers(id).is_empty(), "every timer fired and is gone");
}

#[tokio::test]
async fn a_timer_whose_clock_paused_meanwhile_does_nothing() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    h.transition(id, "in_progress", json!({})).await;
    let breach = h.due_of(id, "resolution", Stage::Breach).unwrap();
    h.set_now("2026-01-12T08:00:00Z");
    h.transition(id, "on_hold", json!({ "hold_reason": "awaiting_caller" }))
        .await;
    h.set_now("2026-01-12T12:00:00Z");
    let stale = sla_timers::Timer {
        ticket: id,
        clock: "resolution".into(),
        stage: Stage::Breach,
        due: breach,
    };
    let r = h.engine.submit(EventBody::Clock(stale)).await.unwrap();
    assert_eq!(r.outcome, Outcome::Recorded);
    assert!(h.fired(id).is_empty());
}

#[tokio::test]
async fn the_shipped_rule_escalates_a_breach_to_the_escalation_group_and_tells_the_lead() {
    let rule = include_str!("../../rules/10-escalation.rhai");
    let h = start("[]", &[("10-escalation.rhai", rule)]);
    let id = h.create(3).await;
    h.set_now("2026-01-12T08:30:00Z");
    h.fire_due().await;
    let t = h.ticket(id);
    assert_eq!(t.sla.escalation, 1, "the response breach escalated once");
    assert_eq!(t.group.as_deref(), Some("experts"));
    assert_eq!(t.assignee, None, "olga is not an expert");
    let entries = h.history(id);
    let escalated = entries
        .iter()
        .find(|e| e.changes.iter().any(|c| c.field == "escalation"))
        .unwrap();
    assert!(
        matches!(&escalated.actor, crate::tickets::Actor::Rule { file, hook, .. }
            if file == "10-escalation.rhai" && hook == "on_clock")
    );
    let notified: Vec<&Value> = entries
        .iter()
        .flat_map(|e| e.changes.iter())
        .filter(|c| c.field == "notified")
        .map(|c| &c.new)
        .collect();
    // 90 % of the response target, then its breach.
    assert_eq!(notified.len(), 2, "{notified:#?}");
    assert_eq!(notified[1]["lead"], "lena");
    assert!(
        notified[1]["message"]
            .as_str()
            .unwrap()
            .contains("response target")
    );
}

#[tokio::test]
async fn a_priority_change_chooses_another_policy_and_recomputes_the_timers() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    let before = h.timers(id);
    h.command(
        "olga",
        json!({ "type": "update", "ticket": id, "fields": { "priority": 1 } }),
    )
    .await;
    let t = h.ticket(id);
    assert_eq!(t.sla.policy.as_deref(), Some("critical"));
    assert_ne!(h.timers(id), before);
    // 24x7, 1 h from Friday 16:30 local, counting from the start.
    assert_eq!(
        h.due_of(id, "resolution", Stage::Breach),
        Some(ts("2026-01-09T16:30:00Z"))
    );
    assert_eq!(h.timers(id).len(), 8, "4 stages × 2 clocks, old rows gone");
}

#[tokio::test]
async fn a_public_comment_meets_the_response_target() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    h.command(
        "olga",
        json!({ "type": "comment", "ticket": id, "comment": { "body": "on it", "visibility": "internal" } }),
    )
    .await;
    assert!(h.due_of(id, "response", Stage::Breach).is_some());
    h.command(
        "olga",
        json!({ "type": "comment", "ticket": id, "comment": { "body": "looking", "visibility": "public" } }),
    )
    .await;
    assert!(h.due_of(id, "response", Stage::Breach).is_none());
}

#[tokio::test]
async fn a_rule_can_raise_the_priority_and_pin_another_policy_whose_timers_then_fire() {
    let rule = r#"
        fn on_clock(ticket, clock) {
            if clock.name == "response" && clock.stage == "breach" {
                ticket.raise_priority();
                ticket.sla_policy = "critical";
                ticket.escalate();
            }
        }"#;
    let h = start("[]", &[("10-clock.rhai", rule)]);
    let id = h.create(3).await;
    h.command(
        "olga",
        json!({ "type": "update", "ticket": id, "fields": { "group": "experts", "assignee": "erik" } }),
    )
    .await;
    h.set_now("2026-01-12T08:30:00Z");
    h.fire_due().await;
    let t = h.ticket(id);
    assert_eq!(t.priority, 2);
    assert!(t.process.priority_override, "a raise is a manual override");
    assert_eq!(
        (t.sla.policy.as_deref(), t.sla.pinned),
        (Some("critical"), true)
    );
    assert_eq!(t.sla.escalation, 1);
    assert_eq!(t.group.as_deref(), Some("experts"), "no escalate_to: stays");
    // Under "critical" (1 h, 24x7, counted since Friday) the resolution target is long
    // gone: its stages are due at once and fire under the new policy.
    h.fire_due().await;
    let resolution: Vec<(String, u64)> = h
        .fired(id)
        .into_iter()
        .filter(|(c, _, _)| c == "resolution")
        .map(|(_, s, p)| (s, p))
        .collect();
    assert_eq!(
        resolution,
        [
            ("warning".into(), 50),
            ("warning".into(), 75),
            ("warning".into(), 90),
            ("breach".into(), 100)
        ]
    );
    let last = h.history(id).pop().unwrap();
    assert!(
        last.changes
            .iter()
            .any(|c| c.new["policy"] == "critical" && c.new["stage"] == "breach"),
        "{last:?}"
    );
}

#[tokio::test]
async fn a_reloaded_shorter_target_takes_effect_at_the_tickets_next_timer() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    h.transition(id, "in_progress", json!({})).await;
    h.reload_resolution_target("2h");
    // The rows written for 4 h still stand; the first (50 % at 09:30Z) fires, is judged
    // against 2 h (reached long before), and the ticket's timers are recomputed from there.
    h.set_now("2026-01-12T09:30:00Z");
    h.fire_due().await;
    h.fire_due().await;
    let stages: Vec<u64> = h
        .fired(id)
        .into_iter()
        .filter(|(c, _, _)| c == "resolution")
        .map(|(_, _, p)| p)
        .collect();
    assert_eq!(stages, [50, 75, 90, 100]);
    assert!(h.timers(id).is_empty());
}

#[tokio::test]
async fn a_reloaded_longer_target_replaces_the_stale_timers_when_the_first_one_fires() {
    let h = start("[]", &[]);
    let id = h.create(3).await;
    h.transition(id, "in_progress", json!({})).await;
    h.reload_resolution_target("8h");
    h.set_now("2026-01-12T09:30:00Z");
    let receipts = h.fire_due().await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        receipts[0].outcome,
        Outcome::Recorded,
        "50 % of 8 h is not reached"
    );
    assert!(h.fired(id).is_empty());
    // Recomputed for 8 h: 30 min on Friday, 7 h 30 on Monday from 09:00 local.
    assert_eq!(
        h.due_of(id, "resolution", Stage::Warning(50)),
        Some(ts("2026-01-12T11:30:00Z"))
    );
    assert_eq!(
        h.due_of(id, "resolution", Stage::Breach),
        Some(ts("2026-01-12T15:30:00Z"))
    );
    assert_eq!(h.timers(id).len(), 4, "the 4 h rows are gone");
}

#[tokio::test]
async fn a_vendor_missing_its_underpinning_target_is_reminded_by_webhook() {
    let rule = include_str!("../../rules/10-escalation.rhai");
    let h = start("[]", &[("10-escalation.rhai", rule)]);
    let id = h.create(3).await;
    h.command(
        "olga",
        json!({ "type": "update", "ticket": id, "fields": { "vendor": "acme" } }),
    )
    .await;
    h.transition(id, "in_progress", json!({})).await;
    h.set_now("2026-01-12T09:00:00Z");
    h.transition(id, "on_hold", json!({ "hold_reason": "awaiting_vendor" }))
        .await;
    // acme's 30 min pass without an answer.
    h.set_now("2026-01-12T09:31:00Z");
    h.fire_due().await;
    let notified: Vec<_> = crate::store::layout::outbox::rows(
        &*h.store,
        crate::store::Tree::Outbox,
        Some("acme"),
        None,
        100,
    )
    .unwrap()
    .into_iter()
    .filter(|r| r.kind == crate::vendors::outbox::NOTIFIED && r.ticket == id)
    .collect();
    assert_eq!(notified.len(), 1, "one reminder for the breach");
    let told: Vec<_> = h
        .history(id)
        .into_iter()
        .flat_map(|e| e.changes)
        .filter(|c| c.field == "notified")
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(
        told[0].new["message"]
            .as_str()
            .unwrap()
            .contains("vendor acme missed its underpinning target"),
        "the lead is told too: {told:#?}"
    );
}
