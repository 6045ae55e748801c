//! The webhook payload: `{type, timestamp, data}` where data is a summary of the ticket and
//! the change being reported (see docs/webhooks.md). Owns its shape and its size bound: a
//! payload is at most [`MAX_BYTES`], long texts are cut and, if that is not enough, the
//! change's old and new values are left out (the field names stay). Pure: the engine passes
//! the ticket, the change and the time.

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::event::EventId;
use crate::tickets::{Actor, Comment, FieldChange, HistoryEntry, Ticket};

/// The most bytes a payload may have.
pub const MAX_BYTES: usize = 20_000;

/// Longest text (title, description, comment, a changed value) kept whole, in characters.
const MAX_TEXT: usize = 2_000;

/// What a message reports, besides the ticket.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A history entry of the ticket (a public comment's text when it added one).
    Entry {
        entry: &'a HistoryEntry,
        comment: Option<&'a Comment>,
    },
    /// A rule's explicit `ticket.notify(...)`.
    Notified { by: &'a Actor },
}

/// The payload text of a message of type `kind` about `ticket`, made at `at` for `event`.
pub fn build(
    kind: &str,
    at: Timestamp,
    ticket: &Ticket,
    change: Change<'_>,
    event: EventId,
) -> String {
    let full = document(kind, at, ticket, change, event, true);
    let text = full.to_string();
    if text.len() <= MAX_BYTES {
        return text;
    }
    // Too big even with texts cut (many changed fields, a long tag list): names only.
    let brief = document(kind, at, ticket, change, event, false);
    let text = brief.to_string();
    if text.len() <= MAX_BYTES {
        return text;
    }
    json!({
        "type": kind,
        "timestamp": at,
        "data": {
            "ticket": { "id": ticket.id, "state": ticket.state, "title": cut(&ticket.title, 200) },
            "event": event,
            "truncated": true,
        }
    })
    .to_string()
}

fn document(
    kind: &str,
    at: Timestamp,
    t: &Ticket,
    change: Change<'_>,
    event: EventId,
    values: bool,
) -> Value {
    let mut ticket = json!({
        "id": t.id,
        "kind": t.kind(),
        "state": t.state,
        "title": cut(&t.title, MAX_TEXT),
        "priority": t.priority,
        "impact": t.impact,
        "urgency": t.urgency,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    });
    let optional = [
        (
            "description",
            (!t.description.is_empty() && values).then(|| json!(cut(&t.description, MAX_TEXT))),
        ),
        ("group", t.group.as_ref().map(|g| json!(g))),
        ("assignee", t.assignee.as_ref().map(|a| json!(a))),
        ("vendor", t.process.vendor.as_ref().map(|v| json!(v))),
        (
            "vendor_ref",
            t.process.vendor_ref.as_ref().map(|r| json!(cut(r, 200))),
        ),
        ("hold_reason", t.process.hold_reason.map(|h| json!(h))),
        ("resolution", t.process.resolution.map(|r| json!(r))),
        ("tags", (!t.tags.is_empty()).then(|| json!(t.tags))),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            ticket[key] = v;
        }
    }
    let mut data = json!({ "ticket": ticket, "event": event });
    match change {
        Change::Entry { entry, comment } => {
            let changes: Vec<Value> = entry
                .changes
                .iter()
                .map(|c| field_change(c, values))
                .collect();
            let mut c = json!({
                "seq": entry.seq,
                "at": entry.at,
                "actor": entry.actor,
                "changes": changes,
            });
            if let Some(reason) = &entry.reason {
                c["reason"] = json!(cut(reason, MAX_TEXT));
            }
            data["change"] = c;
            if let Some(comment) = comment {
                data["comment"] = json!({
                    "seq": comment.seq,
                    "author": comment.author,
                    "visibility": comment.visibility,
                    "body": cut(&comment.body, if values { MAX_TEXT * 4 } else { MAX_TEXT }),
                });
            }
        }
        Change::Notified { by } => data["notified_by"] = json!(by),
    }
    if !values {
        data["truncated"] = json!(true);
    }
    json!({ "type": kind, "timestamp": at, "data": data })
}

fn field_change(c: &FieldChange, values: bool) -> Value {
    if !values {
        return json!({ "field": c.field });
    }
    json!({ "field": c.field, "old": bounded(&c.old), "new": bounded(&c.new) })
}

/// A changed value, or a cut string standing in for it when its JSON is long.
fn bounded(v: &Value) -> Value {
    match v {
        Value::String(s) => json!(cut(s, MAX_TEXT)),
        other => {
            let text = other.to_string();
            if text.chars().count() > MAX_TEXT {
                json!(cut(&text, MAX_TEXT))
            } else {
                other.clone()
            }
        }
    }
}

/// At most `max` characters of `s`, with `…` when it was cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::Kind;
    use crate::tickets::Level;
    use crate::tickets::State;
    use crate::tickets::TicketId;

    fn ticket(description: String, tags: usize) -> Ticket {
        let at = Timestamp::UNIX_EPOCH;
        Ticket {
            id: TicketId {
                kind: Kind::Incident,
                number: 7,
            },
            state: State::InProgress,
            title: "Disk array degraded".into(),
            description,
            group: Some("storage".into()),
            assignee: None,
            impact: Level::High,
            urgency: Level::Medium,
            priority: 2,
            tags: (0..tags)
                .map(|i| format!("tag-{i:04}-{}", "x".repeat(40)))
                .collect(),
            correlation_key: None,
            key_source: None,
            alert: None,
            custom: Default::default(),
            sla: Default::default(),
            process: crate::tickets::ProcessFields {
                vendor: Some("acme".into()),
                ..Default::default()
            },
            created_at: at,
            updated_at: at,
            history_len: 3,
        }
    }

    fn entry(old: &str, new: &str) -> HistoryEntry {
        HistoryEntry {
            seq: 3,
            at: Timestamp::UNIX_EPOCH,
            actor: Actor::User {
                name: "alice".into(),
            },
            changes: vec![FieldChange {
                field: "description".into(),
                old: json!(old),
                new: json!(new),
            }],
            reason: Some("fields edited".into()),
            event: Some(12),
            rules_version: None,
        }
    }

    #[test]
    fn a_payload_carries_type_timestamp_ticket_and_change() {
        let t = ticket("short".into(), 0);
        let e = entry("a", "b");
        let text = build(
            "ticket.updated",
            Timestamp::UNIX_EPOCH,
            &t,
            Change::Entry {
                entry: &e,
                comment: None,
            },
            12,
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "ticket.updated");
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(v["data"]["ticket"]["id"], "INC-000007");
        assert_eq!(v["data"]["ticket"]["vendor"], "acme");
        assert_eq!(v["data"]["change"]["changes"][0]["new"], "b");
        assert_eq!(v["data"]["change"]["actor"]["name"], "alice");
        assert!(v["data"].get("truncated").is_none());
    }

    #[test]
    fn huge_tickets_and_changes_stay_under_the_limit() {
        let huge = "é".repeat(100_000);
        let t = ticket(huge.clone(), 0);
        let e = entry(&huge, &huge);
        let text = build(
            "ticket.updated",
            Timestamp::UNIX_EPOCH,
            &t,
            Change::Entry {
                entry: &e,
                comment: None,
            },
            1,
        );
        assert!(text.len() <= MAX_BYTES, "{} bytes", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(
            v["data"]["ticket"]["description"]
                .as_str()
                .unwrap()
                .ends_with('…')
        );

        // So many tags that even names-only does not fit: the minimal form.
        let t = ticket(String::new(), 2_000);
        let text = build(
            "ticket.notified",
            Timestamp::UNIX_EPOCH,
            &t,
            Change::Notified {
                by: &Actor::system("test"),
            },
            1,
        );
        assert!(text.len() <= MAX_BYTES, "{} bytes", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["data"]["truncated"], true);
        assert_eq!(v["data"]["ticket"]["id"], "INC-000007");
    }
}
