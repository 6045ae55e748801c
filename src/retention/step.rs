//! The retention sweep in the engine: deletes what a [`Sweep`] names, after checking each
//! record again against the engine's own view and the settings in force.

use std::ops::Bound;

use jiff::Timestamp;
use tracing::info;

use crate::engine::Receipt;
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::event::EventBody;
use crate::mail::step::SenderWindow;
use crate::metrics::PrunedLabels;
use crate::retention::{JOURNAL_START, JournalStart, Sweep};
use crate::store::layout::{Outcome, StoredEvent, ticket_alert_key};
use crate::store::{StoreError, Tree, decode, encode, u64_key};

impl Engine {
    /// Applies one chunk of the sweep at `now` (the event's receive time). Answers with no
    /// event id: a sweep is not journaled.
    pub(crate) fn prune(
        &self,
        txn: &mut Txn<'_>,
        sweep: &Sweep,
        now: Timestamp,
    ) -> Result<Receipt, StoreError> {
        let receipt = Receipt {
            event_id: 0,
            ticket: None,
            outcome: Outcome::Recorded,
        };
        let r = &self.settings.retention;
        if !r.enabled {
            return Ok(receipt);
        }
        let before = now.saturating_sub(r.journal.0).unwrap_or(Timestamp::MIN);
        let mut start: Option<JournalStart> = txn
            .get(Tree::Meta, JOURNAL_START)?
            .map(|b| decode(Tree::Meta, &b))
            .transpose()?;
        let (mut events, mut occurrences) = (0u64, 0u64);
        if let Some(through) = sweep.journal_through {
            let range = self.store.range(
                Tree::Events,
                Bound::Unbounded,
                Bound::Included(u64_key(through).to_vec()),
            );
            for item in range.take(r.chunk) {
                let (key, bytes) = item?;
                let stored: StoredEvent = decode(Tree::Events, &bytes)?;
                if stored.event.received_at >= before {
                    break;
                }
                if let (Some(ticket), EventBody::Alert(_)) = (stored.ticket, &stored.event.body) {
                    txn.delete(
                        Tree::TicketAlerts,
                        ticket_alert_key(ticket, stored.event.id),
                    );
                    occurrences += 1;
                }
                txn.delete(Tree::Events, key);
                events += 1;
                start = Some(JournalStart {
                    pruned_through: stored.event.id,
                    before,
                });
            }
            if events > 0
                && let Some(start) = &start
            {
                txn.put(Tree::Meta, JOURNAL_START.to_vec(), encode(start));
            }
        }
        let mut callbacks = 0u64;
        let pruned_through = start.map_or(0, |s| s.pruned_through);
        for key in sweep.callbacks.iter().take(r.chunk) {
            let Some(bytes) = txn.get(Tree::VendorCallbacks, key)? else {
                continue;
            };
            let event: u64 = decode(Tree::VendorCallbacks, &bytes)?;
            if event <= pruned_through {
                txn.delete(Tree::VendorCallbacks, key.clone());
                callbacks += 1;
            }
        }
        let mut senders = 0u64;
        let window = self.settings.mail.rate_window.0;
        for sender in sweep.senders.iter().take(r.chunk) {
            let Some(bytes) = txn.get(Tree::MailSenders, sender.as_bytes())? else {
                continue;
            };
            let w: SenderWindow = decode(Tree::MailSenders, &bytes)?;
            if w.ended(now, window) {
                txn.delete(Tree::MailSenders, sender.as_bytes().to_vec());
                senders += 1;
            }
        }
        let m = &self.metrics.retention_pruned;
        for (kind, n) in [
            ("journal", events),
            ("ticket_alerts", occurrences),
            ("vendor_callbacks", callbacks),
            ("mail_senders", senders),
        ] {
            if n > 0 {
                m.get_or_create(&PrunedLabels { kind }).inc_by(n);
            }
        }
        if events + callbacks + senders > 0 {
            info!(
                events,
                occurrences,
                callbacks,
                senders,
                before = %before,
                "Retention sweep pruned records."
            );
        }
        Ok(receipt)
    }
}
