//! What a rule test case expects of a ticket it ends with, and the comparison: every
//! mismatch becomes one line `INC-000001.group: expected "dba", got "triage"`.

use serde::Deserialize;
use serde_json::Value;

use crate::store::{Store, StoreError, Tree, layout};
use crate::tickets::api::TicketJson;
use crate::tickets::{HistoryEntry, TicketId};

/// Every field a ticket may have as the API shows it (`TicketJson`): those that are absent
/// when empty included, so that `fields = { assignee = "alice" }` on an unassigned ticket is
/// a mismatch and `fields = { prio = 1 }` an error naming the field.
const TICKET_FIELDS: &[&str] = &[
    "id",
    "kind",
    "state",
    "title",
    "description",
    "group",
    "assignee",
    "impact",
    "urgency",
    "priority",
    "tags",
    "correlation_key",
    "key_source",
    "alert",
    "custom",
    "set_by_hand",
    "hold_reason",
    "resolution",
    "priority_override",
    "state_since",
    "change",
    "approval",
    "links",
    "vendor",
    "vendor_ref",
    "comments",
    "created_at",
    "updated_at",
    "history_len",
    "sla",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Expect {
    pub ticket: TicketId,
    /// Fields of the ticket as the API shows it; only these are compared.
    #[serde(default)]
    fields: toml::Table,
    /// Text that must appear in some history entry's reason.
    #[serde(default)]
    history_mentions: Vec<String>,
    /// Destinations that must have been sent a message about the ticket: a vendor's name
    /// (a webhook of any type) or `@smtp` (a mail).
    #[serde(default)]
    notified: Vec<String>,
    /// Leads that must have been told about the ticket (`ticket.notify_lead`).
    #[serde(default)]
    leads_notified: Vec<String>,
    /// The states the ticket moved to, in order, exactly (the state it opened in excluded).
    #[serde(default)]
    transitions: Option<Vec<String>>,
    /// The ticket's links, exactly, each as `"rel TICKET"` (`"caused_by PRB-000001"`).
    #[serde(default)]
    links: Option<Vec<String>>,
}

impl Expect {
    /// Every mismatch between the ticket in `store` and this expectation.
    pub(super) fn check(&self, store: &dyn Store) -> Result<Vec<String>, StoreError> {
        let id = self.ticket;
        let Some(ticket) = layout::get_ticket(store, id)? else {
            return Ok(vec![format!("{id}: expected it to exist; it does not")]);
        };
        let mut failures = Vec::new();
        let got = serde_json::to_value(TicketJson::from(ticket.clone())).unwrap_or_default();
        for (field, want) in &self.fields {
            if got.get(field).is_none() && !TICKET_FIELDS.contains(&field.as_str()) {
                let hint = crate::suggest::nearest(field, TICKET_FIELDS)
                    .map(|n| format!("did you mean {n}? "))
                    .unwrap_or_default();
                failures.push(format!(
                    "{id}: a ticket has no field `{field}`; {hint}fields are {}",
                    TICKET_FIELDS.join(", ")
                ));
                continue;
            }
            let want = serde_json::to_value(want).unwrap_or_default();
            let have = got.get(field).cloned().unwrap_or(Value::Null);
            if have != want {
                failures.push(format!("{id}.{field}: expected {want}, got {have}"));
            }
        }
        for to in &self.notified {
            let mut sent = false;
            for tree in [Tree::Outbox, Tree::OutboxDead] {
                let rows = layout::outbox::rows(store, tree, Some(to), None, usize::MAX)?;
                sent |= rows.iter().any(|r| r.ticket == id);
            }
            if !sent {
                failures.push(format!("{id}: expected a message to {to}; none was queued"));
            }
        }
        let history = layout::history(store, id)?;
        for text in &self.history_mentions {
            let mentioned = history.iter().any(|h| {
                h.reason
                    .as_deref()
                    .is_some_and(|r| r.contains(text.as_str()))
            });
            if !mentioned {
                failures.push(format!(
                    "{id}: expected a history entry mentioning {text:?}"
                ));
            }
        }
        let leads = changes(&history, "notified", |v| {
            v["lead"].as_str().map(String::from)
        });
        for lead in &self.leads_notified {
            if !leads.contains(lead) {
                failures.push(format!(
                    "{id}: expected lead {lead:?} to be notified; notified: {leads:?}"
                ));
            }
        }
        if let Some(want) = &self.transitions {
            // The state a ticket opens in (a change from nothing) is not a transition.
            let have: Vec<String> = history
                .iter()
                .flat_map(|e| &e.changes)
                .filter(|c| c.field == "state" && !c.old.is_null())
                .filter_map(|c| c.new.as_str().map(String::from))
                .collect();
            if *want != have {
                failures.push(format!("{id}.transitions: expected {want:?}, got {have:?}"));
            }
        }
        if let Some(want) = &self.links {
            let mut have: Vec<String> = ticket
                .process
                .links
                .iter()
                .map(|l| format!("{} {}", l.rel.as_str(), l.ticket))
                .collect();
            let mut want = want.clone();
            have.sort();
            want.sort();
            if want != have {
                failures.push(format!("{id}.links: expected {want:?}, got {have:?}"));
            }
        }
        Ok(failures)
    }
}

/// The new values of every change of `field` in `history`, in order, read by `read`.
fn changes(
    history: &[HistoryEntry],
    field: &str,
    read: impl Fn(&Value) -> Option<String>,
) -> Vec<String> {
    history
        .iter()
        .flat_map(|e| &e.changes)
        .filter(|c| c.field == field)
        .filter_map(|c| read(&c.new))
        .collect()
}
