//! What the crash test checks once everything settled, read back through real interfaces:
//! tickets and their alert occurrences over the HTTP API, the Maildir's folders, the outbox
//! admin listing, and the requests the vendor's receiver got.
//!
//! - An acknowledged alert is stored exactly once: its receipt names its key's ticket and an
//!   occurrence of it; a generic alert's occurrence carries its nonce, and no nonce is stored
//!   twice (acknowledged or not). A Prometheus re-send with the same start is stored once
//!   and answered `seen` with that first occurrence.
//! - One ticket per alert key; its count is its occurrences.
//! - Every mail written is in cur/ with exactly one ticket; none left in new/ or quarantined.
//! - Every ticket got exactly one `ticket.assigned` and every generic occurrence exactly one
//!   `ticket.notified` message: one webhook-id each, the same body on every retry, signed,
//!   and never about a ticket or event that is not in the store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;

use itsmd::vendors::signing::DEFAULT_TOLERANCE;
use itsmd::vendors::{ReceivedHeaders, Secret, verify};
use jiff::Timestamp;
use serde_json::Value;

use super::load::{Format, Ledger, Sent, mail_subject};
use super::{SECRET, names};
use crate::receiver::Received;
use crate::support::Daemon;

/// The figures the test prints.
#[derive(Debug)]
pub struct Counts {
    /// Alerts the senders sent, acknowledged or not.
    alerts_sent: usize,
    /// Alerts whose request got a 2xx read whole.
    alerts_acked: usize,
    /// Acknowledged unchanged Prometheus re-sends (stored once, answered `seen`).
    acked_seen: usize,
    /// Alerts whose request was cut off (or refused) yet are stored.
    unknown_stored: usize,
    /// Alert keys with a ticket.
    keys: usize,
    /// Alert occurrences stored over all tickets.
    occurrences: usize,
    /// Mails delivered into new/.
    mails_written: u64,
    /// Mails found in cur/ at the end.
    mails_in_cur: usize,
    /// Tickets in the store (alert keys plus mails).
    tickets: usize,
    /// Distinct webhook-ids the receiver got.
    webhook_messages: usize,
    /// Requests the receiver got.
    deliveries: usize,
    /// Requests beyond the first per webhook-id (retries and re-sends after a crash).
    duplicate_deliveries: usize,
    /// Deliveries of a message the receiver had already answered 2xx: a crash cut off the
    /// result before the engine committed it.
    resent_after_2xx: usize,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "alerts: {} sent, {} acknowledged ({} of them unchanged re-sends answered `seen`), \
             {} unacknowledged of which {} stored; {} stored occurrences over {} keys",
            self.alerts_sent,
            self.alerts_acked,
            self.acked_seen,
            self.alerts_sent - self.alerts_acked,
            self.unknown_stored,
            self.occurrences,
            self.keys
        )?;
        writeln!(
            f,
            "mails: {} written, {} in cur/, 0 in new/; tickets: {}",
            self.mails_written, self.mails_in_cur, self.tickets
        )?;
        write!(
            f,
            "webhooks: {} outbox messages, {} deliveries, {} duplicate deliveries (same \
             webhook-id), {} of them after the receiver had answered 2xx",
            self.webhook_messages,
            self.deliveries,
            self.duplicate_deliveries,
            self.resent_after_2xx
        )
    }
}

/// Neither pending nor dead rows are left.
pub fn outbox_empty(d: &Daemon) -> bool {
    ["false", "true"].iter().all(|dead| {
        let v = d.get_ok(&format!("/api/v1/admin/outbox?dead={dead}"));
        v["rows"].as_array().expect("rows").is_empty()
    })
}

/// Every page of a listing: `path` ends in `?` or `&`; `field` holds the items.
fn all_pages(d: &Daemon, path: &str, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = d.get_ok(&format!("{path}limit=1000{after}"));
        out.extend(page[field].as_array().expect(field).iter().cloned());
        match &page["next"] {
            Value::Null => return out,
            next => {
                after = format!(
                    "&after={}",
                    next.as_str().map_or(next.to_string(), String::from)
                )
            }
        }
    }
}

/// A stored alert occurrence.
struct Occurrence {
    /// The ticket it was correlated into.
    ticket: String,
    /// The event that recorded it: what the sender's receipt names.
    event_id: u64,
    /// Its `crash_key` label.
    key: String,
    /// The wire format it came in (its `crash_format` label).
    format: Format,
}

/// Checks everything; panics on the first violation with what was found.
pub fn everything(d: &Daemon, ledger: &Ledger, received: &[Received], maildir: &Path) -> Counts {
    let tickets = all_pages(d, "/api/v1/tickets?", "tickets");
    let sent = ledger.sent.lock().unwrap().clone();
    let by_nonce = alert_occurrences(d, &tickets);
    let ticket_of_key = keys_have_one_ticket(&tickets, &by_nonce);
    let acked_seen = acknowledged_are_stored(&sent, &by_nonce, &ticket_of_key);
    let mails_written = ledger.mails.load(Ordering::Relaxed);
    let mails_in_cur = mails_committed_once(&tickets, maildir, mails_written);
    let (webhook_messages, duplicate_deliveries) =
        webhooks_delivered(&tickets, &by_nonce, received);
    let mut delivered: HashSet<&str> = HashSet::new();
    let resent_after_2xx = received
        .iter()
        .filter(|r| {
            let again = delivered.contains(r.id.as_str());
            if (200..300).contains(&r.answered) {
                delivered.insert(&r.id);
            }
            again
        })
        .count();
    Counts {
        alerts_sent: sent.len(),
        alerts_acked: sent.iter().filter(|s| s.receipt.is_some()).count(),
        acked_seen,
        unknown_stored: sent
            .iter()
            .filter(|s| s.receipt.is_none() && by_nonce.contains_key(&s.nonce))
            .count(),
        keys: ticket_of_key.len(),
        occurrences: by_nonce.len(),
        mails_written,
        mails_in_cur,
        tickets: tickets.len(),
        webhook_messages,
        deliveries: received.len(),
        duplicate_deliveries,
        resent_after_2xx,
    }
}

/// Every alert occurrence of every alert ticket, by nonce; no nonce stored twice, and each
/// ticket's count is its occurrences.
fn alert_occurrences(d: &Daemon, tickets: &[Value]) -> HashMap<String, Occurrence> {
    let mut by_nonce = HashMap::new();
    for t in tickets.iter().filter(|t| !t["alert"].is_null()) {
        let id = t["id"].as_str().expect("id");
        let alerts = all_pages(d, &format!("/api/v1/tickets/{id}/alerts?"), "alerts");
        assert_eq!(
            t["alert"]["count"].as_u64(),
            Some(alerts.len() as u64),
            "{id}: its count is its occurrences"
        );
        for a in alerts {
            let nonce = a["annotations"]["nonce"]
                .as_str()
                .expect("nonce")
                .to_string();
            let format = match a["labels"]["crash_format"].as_str() {
                Some("generic") => Format::Generic,
                Some("prometheus") => Format::Prometheus,
                other => panic!("{id}: an alert of unknown format {other:?}: {a}"),
            };
            let occurrence = Occurrence {
                ticket: id.to_string(),
                event_id: a["event_id"].as_u64().expect("event_id"),
                key: a["labels"]["crash_key"].as_str().expect("key").to_string(),
                format,
            };
            if let Some(before) = by_nonce.insert(nonce.clone(), occurrence) {
                panic!(
                    "alert {nonce} stored twice: event {} on {} and again on {id}",
                    before.event_id, before.ticket
                );
            }
        }
    }
    by_nonce
}

/// Each key's occurrences are all on one ticket, and no ticket mixes keys; an unchanged
/// Prometheus re-send is never stored again. Returns the ticket of each key.
fn keys_have_one_ticket(
    tickets: &[Value],
    by_nonce: &HashMap<String, Occurrence>,
) -> BTreeMap<String, String> {
    let mut ticket_of_key = BTreeMap::new();
    let mut key_of_ticket = HashMap::new();
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for o in by_nonce.values() {
        let t = ticket_of_key
            .entry(o.key.clone())
            .or_insert(o.ticket.clone());
        assert_eq!(*t, o.ticket, "key {} has two tickets", o.key);
        let k = key_of_ticket.entry(&o.ticket).or_insert(&o.key);
        assert_eq!(*k, &o.key, "ticket {} mixes keys", o.ticket);
        *per_key.entry(&o.key).or_default() += 1;
        if o.format == Format::Prometheus {
            assert_eq!(
                per_key[o.key.as_str()],
                1,
                "{}: a re-send stored again",
                o.key
            );
        }
    }
    let alert_tickets = tickets.iter().filter(|t| !t["alert"].is_null()).count();
    assert_eq!(alert_tickets, ticket_of_key.len(), "one ticket per key");
    for t in tickets.iter().filter(|t| !t["alert"].is_null()) {
        assert_eq!(t["state"], "new", "alert tickets stay open: {t}");
    }
    ticket_of_key
}

/// Every acknowledged alert's receipt names its key's ticket and a stored occurrence: its
/// own (by nonce), or for a `seen` re-send the first one of its key. Returns how many were
/// answered `seen`.
fn acknowledged_are_stored(
    sent: &[Sent],
    by_nonce: &HashMap<String, Occurrence>,
    ticket_of_key: &BTreeMap<String, String>,
) -> usize {
    let mut seen = 0;
    for s in sent {
        if let Some(o) = by_nonce.get(&s.nonce) {
            assert_eq!(
                (&o.key, o.format),
                (&s.key, s.format),
                "{} stored as sent",
                s.nonce
            );
        }
        let Some(r) = &s.receipt else { continue };
        assert_eq!(
            ticket_of_key.get(&s.key),
            Some(&r.ticket),
            "acknowledged {s:?}: its key's ticket"
        );
        if r.outcome == "seen" {
            seen += 1;
            assert_eq!(
                s.format,
                Format::Prometheus,
                "only re-sends with a start are seen"
            );
            let first = by_nonce
                .values()
                .find(|o| o.key == s.key)
                .expect("a seen key has an occurrence");
            assert_eq!(
                first.event_id, r.event_id,
                "acknowledged {s:?}: seen names the first"
            );
        } else {
            let o = by_nonce
                .get(&s.nonce)
                .unwrap_or_else(|| panic!("acknowledged alert lost: {s:?}"));
            assert_eq!(
                (o.ticket.as_str(), o.event_id),
                (r.ticket.as_str(), r.event_id),
                "acknowledged {s:?}: stored as answered"
            );
        }
    }
    seen
}

/// Every mail written is in cur/, and has exactly one ticket; new/, tmp/ and quarantine/
/// are empty. Returns how many are in cur/.
fn mails_committed_once(tickets: &[Value], maildir: &Path, written: u64) -> usize {
    assert_eq!(names(&maildir.join("new")), Vec::<String>::new());
    assert_eq!(names(&maildir.join("tmp")), Vec::<String>::new());
    assert_eq!(names(&maildir.join("quarantine")), Vec::<String>::new());
    let cur: HashSet<String> = names(&maildir.join("cur")).into_iter().collect();
    let expected: HashSet<String> = (0..written).map(|n| format!("{n}.crash:2,S")).collect();
    assert_eq!(cur, expected, "every mail written is in cur/, once");
    let mut ticket_of_mail: HashMap<&str, &str> = HashMap::new();
    for t in tickets.iter().filter(|t| t["alert"].is_null()) {
        let title = t["title"].as_str().expect("title");
        let id = t["id"].as_str().expect("id");
        if let Some(other) = ticket_of_mail.insert(title, id) {
            panic!("mail {title:?} processed twice: {other} and {id}");
        }
    }
    let subjects: HashSet<String> = (0..written).map(mail_subject).collect();
    let titles: HashSet<String> = ticket_of_mail.keys().map(|s| s.to_string()).collect();
    assert_eq!(titles, subjects, "one ticket per mail, no other");
    cur.len()
}

/// Groups the receiver's requests by webhook-id and checks them against the store. Returns
/// the number of distinct messages and of duplicate deliveries.
fn webhooks_delivered(
    tickets: &[Value],
    by_nonce: &HashMap<String, Occurrence>,
    received: &[Received],
) -> (usize, usize) {
    let secret = Secret::parse(SECRET, "test").expect("secret");
    let mut by_id: BTreeMap<&str, &Received> = BTreeMap::new();
    for r in received {
        let at = Timestamp::from_second(r.timestamp.parse().expect("timestamp")).expect("time");
        let headers = ReceivedHeaders {
            id: Some(&r.id),
            timestamp: Some(&r.timestamp),
            signature: Some(&r.signature),
        };
        verify(
            std::slice::from_ref(&secret),
            &headers,
            r.body.as_bytes(),
            at,
            DEFAULT_TOLERANCE,
        )
        .unwrap_or_else(|e| panic!("not signed: {e}: {r:?}"));
        let first = by_id.entry(&r.id).or_insert(r);
        assert_eq!(
            first.body, r.body,
            "{}: every retry sends the same body",
            r.id
        );
    }
    let title: HashMap<&str, &str> = tickets
        .iter()
        .map(|t| {
            (
                t["id"].as_str().expect("id"),
                t["title"].as_str().expect("title"),
            )
        })
        .collect();
    // (type, ticket, event) → webhook-id: a message made twice would have two ids.
    let mut messages: HashMap<(String, String, u64), &str> = HashMap::new();
    for (id, r) in &by_id {
        let body: Value = serde_json::from_str(&r.body).expect("JSON payload");
        let kind = body["type"].as_str().expect("type").to_string();
        let ticket = body["data"]["ticket"]["id"].as_str().expect("ticket");
        let event = body["data"]["event"].as_u64().expect("event");
        assert_eq!(
            title.get(ticket).copied(),
            body["data"]["ticket"]["title"].as_str(),
            "{id} is about a ticket as stored (never an uncommitted one): {body}"
        );
        if let Some(other) = messages.insert((kind.clone(), ticket.to_string(), event), id) {
            panic!("{kind} about {ticket} for event {event} made twice: {other} and {id}");
        }
    }
    let mut expected: HashSet<(String, String, u64)> = HashSet::new();
    for ((kind, ticket, event), id) in &messages {
        assert!(
            ["ticket.assigned", "ticket.notified"].contains(&kind.as_str()),
            "only assignments and notifications are made: {}",
            by_id[id].body
        );
        if kind == "ticket.assigned" {
            expected.insert((kind.clone(), ticket.clone(), *event));
        }
    }
    let assigned: HashSet<&str> = expected.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(
        (assigned.len(), assigned),
        (expected.len(), title.keys().copied().collect()),
        "every ticket was assigned to the vendor, and told so once"
    );
    for o in by_nonce.values().filter(|o| o.format == Format::Generic) {
        expected.insert(("ticket.notified".into(), o.ticket.clone(), o.event_id));
    }
    let made: HashSet<(String, String, u64)> = messages.keys().cloned().collect();
    assert_eq!(
        made, expected,
        "one notification per stored generic alert, none for anything else"
    );
    (by_id.len(), received.len() - by_id.len())
}
