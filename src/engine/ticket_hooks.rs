//! `on_ticket`: after an event changed tickets, the rules see each change and may decide
//! more. Their decisions change tickets again, so this runs in rounds, at most
//! `rules.max_ticket_hook_depth` per event; the loop guard cuts the rest and says so. Must not
//! run hooks for changes that wrote no history (nothing changed, nothing to react to).

use std::collections::BTreeMap;

use rhai::{Array, Dynamic, Map};
use serde_json::json;
use tracing::warn;

use crate::alerts::step::Handled;
use crate::engine::apply::Changes;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::rules::TicketView;
use crate::store::{StoreError, Tree, decode, layout};
use crate::tickets::{Actor, FieldChange, HistoryEntry, TicketId};

impl Engine {
    /// Runs `on_ticket` for every ticket the event changed, round after round, adding rule
    /// failures to `handled`.
    pub(crate) fn on_ticket_rounds(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
        handled: &mut Handled,
    ) -> Result<(), StoreError> {
        if !self.rules.has_hook("on_ticket") {
            txn.take_touched();
            return Ok(());
        }
        let ctx = Changes {
            event: event.id,
            at: self.now(),
            rules_version: self.rules.version(),
        };
        let max = self.settings.max_ticket_hook_depth;
        let mut depth = 0;
        loop {
            let touched = txn.take_touched();
            if touched.is_empty() {
                return Ok(());
            }
            if depth >= max {
                self.cut_loop(txn, &ctx, &touched, max)?;
                return Ok(());
            }
            depth += 1;
            for (id, before_len) in touched {
                let Some(ticket) = txn.ticket(id)? else {
                    continue;
                };
                let change = change_map(txn, id, before_len, ticket.history_len, depth)?;
                let mut run = self
                    .rules
                    .on_ticket(&self.metrics, TicketView::of(&ticket), change);
                self.vet_vendors(&mut run);
                let failures = self.report_failures(event, &run);
                self.settle(txn, &ctx, ticket, &run, &failures)?;
                handled.rule_failures.extend(failures);
            }
        }
    }

    /// The loop guard: notes on each ticket still changing that on_ticket stopped here.
    fn cut_loop(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Changes<'_>,
        touched: &BTreeMap<TicketId, u64>,
        max: u32,
    ) -> Result<(), StoreError> {
        for id in touched.keys() {
            warn!(ticket = %id, depth = max, "on_ticket loop guard: rules kept changing the ticket; stopped.");
            let Some(mut t) = txn.ticket(*id)? else {
                continue;
            };
            let note = FieldChange {
                field: "on_ticket_depth".into(),
                old: json!(null),
                new: json!(max),
            };
            let reason = format!(
                "on_ticket rules kept changing this ticket; stopped after {max} rounds (rules.max_ticket_hook_depth)"
            );
            ctx.record(
                txn,
                &mut t,
                Actor::system("rules"),
                vec![note],
                Some(reason),
            );
            txn.save_ticket(t);
        }
        // The notes themselves are not changes to react to.
        txn.take_touched();
        Ok(())
    }
}

/// What changed, for the hook: `kind` ("created" or "updated"), `fields` (names, in order),
/// `by` (who made the first change: user, rule, vendor, caller or system), `depth` (the
/// round, from 1).
fn change_map(
    txn: &Txn<'_>,
    id: TicketId,
    before_len: u64,
    now_len: u64,
    depth: u32,
) -> Result<Map, StoreError> {
    let mut fields: Vec<String> = Vec::new();
    let mut by = None;
    for seq in before_len + 1..=now_len {
        let Some(bytes) = txn.get(Tree::History, &layout::history_key(id, seq))? else {
            continue;
        };
        let entry: HistoryEntry = decode(Tree::History, &bytes)?;
        by.get_or_insert_with(|| actor_kind(&entry.actor));
        for c in entry.changes {
            if !fields.contains(&c.field) {
                fields.push(c.field);
            }
        }
    }
    let mut m = Map::new();
    m.insert(
        "kind".into(),
        if before_len == 0 {
            "created"
        } else {
            "updated"
        }
        .into(),
    );
    m.insert(
        "fields".into(),
        Dynamic::from_array(fields.into_iter().map(Dynamic::from).collect::<Array>()),
    );
    m.insert("by".into(), by.unwrap_or("system").into());
    m.insert("depth".into(), (depth as i64).into());
    Ok(m)
}

fn actor_kind(a: &Actor) -> &'static str {
    match a {
        Actor::User { .. } => "user",
        Actor::Rule { .. } => "rule",
        Actor::Vendor { .. } => "vendor",
        Actor::Caller { .. } => "caller",
        Actor::System { .. } => "system",
    }
}
