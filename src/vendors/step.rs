//! The outbox in the engine: turning ticket changes and rules' notify decisions into outbox
//! rows (in the same batch as the change), and applying every change to rows (an attempt's
//! result, a replay, a vendor disabled by 410). Each vendor has a queue per ticket; only its
//! head is in the due index, so one ticket's messages reach a vendor in order. This module
//! must not send anything: the dispatcher does, and reports back through events.

use jiff::Timestamp;
use tracing::{debug, info, warn};

use crate::alerts::step::Handled;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::Event;
use crate::metrics::RuleLabels;
use crate::rules::{Decision, HookRun, RuleFailure};
use crate::store::layout::Outcome;
use crate::store::layout::outbox::{
    OUTBOX_SEQ, due_key, row_key, vendor_prefix, vendor_ticket_key,
};
use crate::store::{StoreError, Tree, Write, WriteBatch, decode, encode, layout};
use crate::tickets::commands::{Refusal, invalid};
use crate::tickets::{Actor, Comment, HistoryEntry, TicketId, Visibility};
use crate::vendors::outbox::{ASSIGNED, COMMENTED, NOTIFIED, TRANSITIONED, UNASSIGNED, UPDATED};
use crate::vendors::payload::Change;
use crate::vendors::{AttemptResult, Channel, Delivery, OutboxRow, VendorState, payload};

/// Whether a batch makes outbox rows due (then the dispatcher is woken).
pub(crate) fn makes_due(batch: &WriteBatch) -> bool {
    batch.writes.iter().any(|w| {
        matches!(
            w,
            Write::Put {
                tree: Tree::OutboxDue,
                ..
            }
        )
    })
}

fn recorded() -> Handled {
    Handled {
        ticket: None,
        outcome: Outcome::Recorded,
        rule_failures: Vec::new(),
    }
}

impl Engine {
    /// Rule decisions naming a vendor that is not configured fail their rule (its decisions
    /// are dropped, like any rule error, and the ticket goes to triage); so do people
    /// notifications naming an unknown person, group or template (`Engine::vet_people`).
    pub(crate) fn vet_vendors(&self, run: &mut HookRun) {
        let unknown = |d: &Decision| match d {
            Decision::Notify { vendor } | Decision::SetVendor { value: vendor }
                if !self.settings.vendors.contains_key(vendor) =>
            {
                Some(vendor.clone())
            }
            _ => None,
        };
        let mut failed = Vec::new();
        for d in &run.decisions {
            if let Some(vendor) = unknown(&d.decision)
                && !failed
                    .iter()
                    .any(|f: &RuleFailure| f.file == d.by.file && f.hook == d.by.hook)
            {
                let known: Vec<&str> = self.settings.vendors.keys().map(String::as_str).collect();
                failed.push(RuleFailure {
                    file: d.by.file.clone(),
                    hook: d.by.hook,
                    line: d.by.line,
                    message: format!(
                        "vendor `{vendor}` is not configured; configured vendors: {}",
                        if known.is_empty() {
                            "(none)".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                });
            }
        }
        for f in &failed {
            self.metrics
                .rule_errors
                .get_or_create(&RuleLabels {
                    rule: f.file.to_string(),
                    hook: f.hook.to_string(),
                })
                .inc();
            run.decisions
                .retain(|d| !(d.by.file == f.file && d.by.hook == f.hook));
        }
        run.failures.extend(failed);
        self.vet_people(run);
    }

    /// Writes an outbox row for every message this event's changes owe a vendor: changes to
    /// a ticket assigned to it (of the types it receives, not its own callbacks' changes),
    /// its assignment and unassignment, and rules' notify decisions.
    pub(crate) fn enqueue_messages(
        &self,
        txn: &mut Txn<'_>,
        event: &Event,
    ) -> Result<(), StoreError> {
        let (entries, notices) = txn.take_outbox_work();
        self.enqueue_mail(txn, event, &entries)?;
        if self.settings.vendors.is_empty() {
            return Ok(());
        }
        let at = self.now();
        let vendors_then = vendors_at_each(txn, &entries)?;
        for ((id, entry), vendor_then) in entries.iter().zip(vendors_then) {
            let (id, entry) = (*id, entry);
            let Some(ticket) = txn.ticket(id)? else {
                continue;
            };
            for (vendor, kind) in recipients(entry, vendor_then.as_deref()) {
                let Some(config) = self.settings.vendors.get(&vendor) else {
                    continue;
                };
                let own = matches!(&entry.actor, Actor::Vendor { name } if *name == vendor);
                if own || !config.receives(kind) {
                    continue;
                }
                let comment = if kind == COMMENTED {
                    match comment_of(txn, id, entry)? {
                        Some(c) if c.visibility == Visibility::Public => Some(c),
                        _ => continue,
                    }
                } else {
                    None
                };
                let change = Change::Entry {
                    entry,
                    comment: comment.as_ref(),
                };
                let body = payload::build(kind, at, &ticket, change, event.id);
                let to = Destination::webhook(&vendor, id, kind, event.id, at);
                enqueue(txn, to, |_| body)?;
            }
        }
        for (id, vendor, by) in notices {
            let Some(ticket) = txn.ticket(id)? else {
                continue;
            };
            let Some(config) = self.settings.vendors.get(&vendor) else {
                warn!(ticket = %id, vendor = %vendor, "Notify for a vendor no longer configured; skipped.");
                continue;
            };
            if !config.receives(NOTIFIED) {
                continue;
            }
            let body = payload::build(
                NOTIFIED,
                at,
                &ticket,
                Change::Notified { by: &by },
                event.id,
            );
            let to = Destination::webhook(&vendor, id, NOTIFIED, event.id, at);
            enqueue(txn, to, |_| body)?;
        }
        Ok(())
    }

    /// Applies a change to outbox rows. A result for a row that moved on (replayed, or
    /// already done) is stale and ignored.
    pub(crate) fn delivery(
        &self,
        txn: &mut Txn<'_>,
        _event: &Event,
        d: &Delivery,
    ) -> Result<Result<Handled, Refusal>, StoreError> {
        let now = self.now();
        match d {
            Delivery::Attempted {
                row,
                attempt,
                at,
                result,
            } => {
                let Some(mut r) = pending_row(txn, *row)? else {
                    debug!(row, "Result for a row no longer pending; ignored.");
                    return Ok(Ok(recorded()));
                };
                if r.attempts + 1 != *attempt || r.next_at.is_none() {
                    debug!(row, attempt, "Stale delivery result; ignored.");
                    return Ok(Ok(recorded()));
                }
                r.attempts = *attempt;
                r.last_attempt_at = Some(*at);
                match result {
                    AttemptResult::Delivered { status } => {
                        info!(row, vendor = %r.vendor, ticket = %r.ticket, status, attempt, "Outbox message delivered.");
                        r.last_error = None;
                        finish(txn, r, None, now)?;
                    }
                    AttemptResult::Retry {
                        error,
                        next_at,
                        delay_ms,
                    } => {
                        r.last_error = Some(error.clone());
                        r.last_delay_ms = Some(*delay_ms);
                        make_due(txn, &mut r, *next_at);
                        txn.put(Tree::Outbox, row_key(r.id), encode(&r));
                    }
                    AttemptResult::Dead { error } => {
                        warn!(row, vendor = %r.vendor, ticket = %r.ticket, attempt, error = %error, "Outbox message parked as dead.");
                        r.last_error = Some(error.clone());
                        finish(txn, r, Some(now), now)?;
                    }
                    AttemptResult::Gone { error } => {
                        warn!(vendor = %r.vendor, row, error = %error, "Vendor disabled: its endpoint is gone; `itsmd outbox replay --vendor` re-enables it.");
                        let state = VendorState {
                            disabled_at: Some(now),
                            reason: Some(error.clone()),
                        };
                        txn.put(
                            Tree::VendorState,
                            r.vendor.as_bytes().to_vec(),
                            encode(&state),
                        );
                        r.last_error = Some(error.clone());
                        txn.put(Tree::Outbox, row_key(r.id), encode(&r));
                    }
                }
                Ok(Ok(recorded()))
            }
            Delivery::ReplayRow { row } => {
                if replay_row(txn, *row, now)? {
                    Ok(Ok(recorded()))
                } else {
                    Ok(Err(invalid("row", format!("there is no outbox row {row}"))))
                }
            }
            Delivery::ReplayVendor { vendor } => {
                let mail = (crate::mail::outbound::config::is_mail_queue(vendor)
                    && self.settings.smtp.is_some())
                    || crate::mail::chat::is_channel(vendor, &self.settings.chat);
                if !mail && !self.settings.vendors.contains_key(vendor) {
                    return Ok(Err(invalid(
                        "vendor",
                        format!("vendor `{vendor}` is not configured"),
                    )));
                }
                txn.delete(Tree::VendorState, vendor.as_bytes().to_vec());
                let mut dead = Vec::new();
                for item in self.store.range(
                    Tree::OutboxDead,
                    std::ops::Bound::Unbounded,
                    std::ops::Bound::Unbounded,
                ) {
                    let (_, value) = item?;
                    let r: OutboxRow = decode(Tree::OutboxDead, &value)?;
                    if r.vendor == *vendor {
                        dead.push(r.id);
                    }
                }
                let mut heads = Vec::new();
                for item in self
                    .store
                    .scan_prefix(Tree::OutboxQueues, &vendor_prefix(vendor))
                {
                    let (key, _) = item?;
                    if let Some(&head) = queue_at(txn, &key)?.first() {
                        heads.push(head);
                    }
                }
                for id in dead.into_iter().chain(heads) {
                    replay_row(txn, id, now)?;
                }
                info!(vendor = %vendor, "Vendor re-enabled and its rows replayed.");
                Ok(Ok(recorded()))
            }
        }
    }
}

/// The vendor each entry's ticket had when the entry was made: the ticket's vendor now,
/// walked back through the vendor changes of this event's later entries.
fn vendors_at_each(
    txn: &mut Txn<'_>,
    entries: &[(TicketId, HistoryEntry)],
) -> Result<Vec<Option<String>>, StoreError> {
    let mut current: std::collections::HashMap<TicketId, Option<String>> = Default::default();
    let mut out = vec![None; entries.len()];
    for (i, (id, entry)) in entries.iter().enumerate().rev() {
        if !current.contains_key(id) {
            let vendor = txn.ticket(*id)?.and_then(|t| t.process.vendor);
            current.insert(*id, vendor);
        }
        let slot = current.entry(*id).or_default();
        out[i] = slot.clone();
        if let Some(c) = entry.changes.iter().find(|c| c.field == "vendor") {
            *slot = c.old.as_str().map(str::to_string);
        }
    }
    Ok(out)
}

/// Who a history entry is news for, and as what: the vendor it assigns and the one it takes
/// the ticket from, else the ticket's vendor by what changed. Alert bookkeeping alone
/// (occurrence counts) is nobody's news.
fn recipients(entry: &HistoryEntry, vendor: Option<&str>) -> Vec<(String, &'static str)> {
    if let Some(c) = entry.changes.iter().find(|c| c.field == "vendor") {
        let mut out = Vec::new();
        if let Some(old) = c.old.as_str() {
            out.push((old.to_string(), UNASSIGNED));
        }
        if let Some(new) = c.new.as_str() {
            out.push((new.to_string(), ASSIGNED));
        }
        return out;
    }
    let Some(vendor) = vendor else {
        return Vec::new();
    };
    let has = |f: &str| entry.changes.iter().any(|c| c.field == f);
    let kind = if has("state") {
        TRANSITIONED
    } else if has("comments") {
        COMMENTED
    } else if entry.changes.iter().all(|c| c.field == "alert.count") {
        return Vec::new();
    } else {
        UPDATED
    };
    vec![(vendor.to_string(), kind)]
}

/// The comment a history entry added (its `comments` count moved to the new comment's seq).
pub(crate) fn comment_of(
    txn: &Txn<'_>,
    id: TicketId,
    entry: &HistoryEntry,
) -> Result<Option<Comment>, StoreError> {
    let Some(seq) = entry
        .changes
        .iter()
        .find(|c| c.field == "comments")
        .and_then(|c| c.new.as_u64())
    else {
        return Ok(None);
    };
    txn.get(Tree::Comments, &layout::comment_key(id, seq))?
        .map(|b| decode(Tree::Comments, &b))
        .transpose()
}

/// Where a new outbox row goes and what it is about.
pub(crate) struct Destination<'a> {
    /// The vendor, or [`crate::vendors::MAIL_DESTINATION`].
    pub name: &'a str,
    pub channel: Channel,
    pub ticket: TicketId,
    pub kind: &'static str,
    pub event: u64,
    pub at: Timestamp,
    /// Held until then (quiet hours), instead of due at once.
    pub due: Option<Timestamp>,
}

impl<'a> Destination<'a> {
    fn webhook(
        vendor: &'a str,
        ticket: TicketId,
        kind: &'static str,
        event: u64,
        at: Timestamp,
    ) -> Destination<'a> {
        Destination {
            name: vendor,
            channel: Channel::Webhook,
            ticket,
            kind,
            event,
            at,
            due: None,
        }
    }
}

/// Appends a new row to the destination's queue for the ticket, due now if it heads the
/// queue; `body` is built from the row's id (a mail's Message-ID is derived from it).
/// Returns the row id.
pub(crate) fn enqueue(
    txn: &mut Txn<'_>,
    to: Destination<'_>,
    body: impl FnOnce(u64) -> String,
) -> Result<u64, StoreError> {
    let id = txn.next_seq(OUTBOX_SEQ)?;
    let at = to.at;
    let mut row = OutboxRow {
        id,
        msg_id: format!("msg_{}_{id}", at.as_millisecond()),
        vendor: to.name.to_string(),
        channel: to.channel,
        ticket: to.ticket,
        kind: to.kind.to_string(),
        body: body(id),
        event: to.event,
        created_at: at,
        attempts: 0,
        next_at: None,
        last_delay_ms: None,
        last_attempt_at: None,
        last_error: None,
        dead_at: None,
    };
    if to.channel == Channel::Webhook {
        let claim = vendor_ticket_key(to.name, to.ticket);
        if txn.get(Tree::VendorTickets, &claim)?.is_none() {
            txn.put(Tree::VendorTickets, claim, encode(&()));
        }
    }
    push_to_queue(txn, &mut row, to.due.unwrap_or(at))?;
    debug!(row = id, to = to.name, ticket = %to.ticket, kind = to.kind, "Outbox row queued.");
    Ok(id)
}

/// Puts `row` at the end of its queue (due at `now` if it is the head) and stores it.
fn push_to_queue(txn: &mut Txn<'_>, row: &mut OutboxRow, now: Timestamp) -> Result<(), StoreError> {
    let key = vendor_ticket_key(&row.vendor, row.ticket);
    let mut queue = queue_at(txn, &key)?;
    queue.push(row.id);
    if queue.len() == 1 {
        make_due(txn, row, now);
    }
    txn.put(Tree::OutboxQueues, key, encode(&queue));
    txn.put(Tree::Outbox, row_key(row.id), encode(row));
    Ok(())
}

fn queue_at(txn: &Txn<'_>, key: &[u8]) -> Result<Vec<u64>, StoreError> {
    Ok(txn
        .get(Tree::OutboxQueues, key)?
        .map(|b| decode(Tree::OutboxQueues, &b))
        .transpose()?
        .unwrap_or_default())
}

pub(crate) fn pending_row(txn: &Txn<'_>, id: u64) -> Result<Option<OutboxRow>, StoreError> {
    txn.get(Tree::Outbox, &row_key(id))?
        .map(|b| decode(Tree::Outbox, &b))
        .transpose()
}

/// Moves the row's due entry to `at` (the caller stores the row).
fn make_due(txn: &mut Txn<'_>, row: &mut OutboxRow, at: Timestamp) {
    if let Some(old) = row.next_at.take() {
        txn.delete(Tree::OutboxDue, due_key(old, row.id));
    }
    row.next_at = Some(at);
    txn.put(Tree::OutboxDue, due_key(at, row.id), encode(&()));
}

/// Takes a delivered (`dead_at` None) or dead row out of its queue, makes the next row of
/// the queue due, and deletes the row or parks it with the dead letters.
fn finish(
    txn: &mut Txn<'_>,
    mut row: OutboxRow,
    dead_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), StoreError> {
    if let Some(at) = row.next_at.take() {
        txn.delete(Tree::OutboxDue, due_key(at, row.id));
    }
    let key = vendor_ticket_key(&row.vendor, row.ticket);
    let mut queue = queue_at(txn, &key)?;
    queue.retain(|id| *id != row.id);
    if let Some(&next) = queue.first()
        && let Some(mut n) = pending_row(txn, next)?
        && n.next_at.is_none()
    {
        make_due(txn, &mut n, now);
        txn.put(Tree::Outbox, row_key(n.id), encode(&n));
    }
    if queue.is_empty() {
        txn.delete(Tree::OutboxQueues, key);
    } else {
        txn.put(Tree::OutboxQueues, key, encode(&queue));
    }
    txn.delete(Tree::Outbox, row_key(row.id));
    if let Some(at) = dead_at {
        row.dead_at = Some(at);
        txn.put(Tree::OutboxDead, row_key(row.id), encode(&row));
    }
    Ok(())
}

/// Makes the head of `destination`'s queue for `ticket` due at `now` if it waits for later
/// (held by quiet hours) and has not been tried.
pub(crate) fn hurry(
    txn: &mut Txn<'_>,
    destination: &str,
    ticket: TicketId,
    now: Timestamp,
) -> Result<(), StoreError> {
    let queue = queue_at(txn, &vendor_ticket_key(destination, ticket))?;
    if let Some(&head) = queue.first()
        && let Some(mut row) = pending_row(txn, head)?
        && row.attempts == 0
        && row.next_at.is_some_and(|at| at > now)
    {
        make_due(txn, &mut row, now);
        txn.put(Tree::Outbox, row_key(row.id), encode(&row));
    }
    Ok(())
}

/// Takes pending row `row` out of its queue and the outbox unsent (a mail batch replaced by a
/// fuller one in the same commit); the next row of its queue becomes due.
pub(crate) fn withdraw(
    txn: &mut Txn<'_>,
    row: OutboxRow,
    now: Timestamp,
) -> Result<(), StoreError> {
    finish(txn, row, None, now)
}

/// Sends a row again from attempt 1: a dead one goes to the end of its ticket's queue, a
/// pending one at the head of its queue is due now. False when there is no such row.
fn replay_row(txn: &mut Txn<'_>, id: u64, now: Timestamp) -> Result<bool, StoreError> {
    if let Some(bytes) = txn.get(Tree::OutboxDead, &row_key(id))? {
        let mut row: OutboxRow = decode(Tree::OutboxDead, &bytes)?;
        txn.delete(Tree::OutboxDead, row_key(id));
        row.dead_at = None;
        row.attempts = 0;
        row.last_delay_ms = None;
        row.next_at = None;
        push_to_queue(txn, &mut row, now)?;
        info!(row = id, vendor = %row.vendor, "Dead outbox message replayed.");
        return Ok(true);
    }
    let Some(mut row) = pending_row(txn, id)? else {
        return Ok(false);
    };
    row.attempts = 0;
    row.last_delay_ms = None;
    if row.next_at.is_some() {
        make_due(txn, &mut row, now);
    }
    txn.put(Tree::Outbox, row_key(id), encode(&row));
    Ok(true)
}
