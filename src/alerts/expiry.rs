//! Alert expiry, as Alertmanager does it: a firing alert whose end time passes without a
//! re-send resolves (history: "expired, not re-sent since …"). Which alerts expire:
//!
//! - Prometheus' API (`POST /api/v2/alerts`): at the `endsAt` it gives (Prometheus always
//!   gives one, four evaluation or re-send intervals ahead); an alert without one expires
//!   `alerts.resolve_timeout` after it was last sent, as Alertmanager's `resolve_timeout`;
//! - generic events: at their `ends_at`, when they give one; never otherwise;
//! - Alertmanager and Grafana webhooks, PagerDuty: never. They send a resolve of their own
//!   (a webhook's `endsAt` is only real once resolved; a PagerDuty incident stays until
//!   resolved).
//!
//! The rows (`store::layout::alert_expiry`) are written in the batch that handled the alert;
//! the task here (the shared timer task) hands due rows to the engine, which re-arms a row
//! whose alert was re-sent since and otherwise resolves the alert as its sender would have.

use std::sync::Arc;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::alerts::{Alert, AlertFormat, AlertStatus};
use crate::engine::batch::Engine;
use crate::engine::txn::Txn;
use crate::engine::{EngineHandle, Receipt, timer_task};
use crate::event::EventBody;
use crate::store::layout::alert_expiry::{Ends, Expiry};
use crate::store::layout::{Outcome, StoredEvent, alert_expiry};
use crate::store::{Store, StoreError, Tree, Write, WriteBatch, decode, encode, u64_key};

/// A re-send this soon after the recorded one, with an end this close to the recorded end,
/// writes nothing: Prometheus re-sends every active alert in each batch, so a storm of
/// re-sends costs a write per alert per second at most, not per batch. The expiry may so
/// come up to this much earlier than the last re-send's end.
const RESEND_STEP: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// When a firing alert ends unless it is sent again; `None`: it does not expire.
pub(crate) fn expiry_end(
    alert: &Alert,
    now: Timestamp,
    resolve_timeout: jiff::SignedDuration,
) -> Option<Timestamp> {
    if alert.status != AlertStatus::Firing {
        return None;
    }
    match alert.format {
        AlertFormat::Prometheus => alert
            .ends_at
            .or_else(|| now.checked_add(resolve_timeout).ok()),
        AlertFormat::Generic => alert.ends_at,
        AlertFormat::Alertmanager | AlertFormat::Grafana | AlertFormat::Pagerduty => None,
    }
}

/// Whether a batch stored new expiry rows (the task may have to wake earlier).
pub(crate) fn stores_rows(batch: &WriteBatch) -> bool {
    batch.writes.iter().any(|w| {
        matches!(
            w,
            Write::Put {
                tree: Tree::AlertExpiry,
                ..
            }
        )
    })
}

/// What a due expiry row comes to.
pub(crate) enum Due {
    /// Nothing to record: the row was stale, or re-armed at the alert's later end.
    Done(Receipt),
    /// The alert expired: handle this resolve as if its sender had sent it.
    Expired(Box<Alert>),
}

fn ends_of(txn: &Txn<'_>, key: &str) -> Result<Option<Ends>, StoreError> {
    txn.get(Tree::AlertEnds, key.as_bytes())?
        .map(|v| decode(Tree::AlertEnds, &v))
        .transpose()
}

fn put_row(txn: &mut Txn<'_>, key: &str, due: Timestamp) {
    let row = Expiry {
        key: key.to_string(),
        due,
    };
    txn.put(Tree::AlertExpiry, row.row_key(), encode(&row));
}

fn delete_row(txn: &mut Txn<'_>, key: &str, due: Timestamp) {
    let row = Expiry {
        key: key.to_string(),
        due,
    };
    txn.delete(Tree::AlertExpiry, row.row_key());
}

impl Engine {
    /// After `alert` went to a ticket: arm, push out or disarm its expiry. A re-send writes
    /// only the small `Ends` record (and moves the row only when the end came earlier).
    pub(crate) fn arm_expiry(&self, txn: &mut Txn<'_>, alert: &Alert) -> Result<(), StoreError> {
        if alert.acknowledged {
            return Ok(());
        }
        let now = self.now();
        let old = ends_of(txn, &alert.key)?;
        let Some(end) = expiry_end(alert, now, self.settings.alerts.resolve_timeout) else {
            if let Some(old) = old {
                txn.delete(Tree::AlertEnds, alert.key.as_bytes().to_vec());
                delete_row(txn, &alert.key, old.armed);
            }
            return Ok(());
        };
        if let Some(old) = &old
            && old.armed <= end
            && old.ends_at <= end
            && end.duration_since(old.ends_at) < RESEND_STEP
            && now.duration_since(old.last_sent) < RESEND_STEP
        {
            // Re-sent within a second of the recorded send: nothing worth a write.
            return Ok(());
        }
        let armed = match old {
            Some(old) if old.armed <= end => old.armed,
            Some(old) => {
                delete_row(txn, &alert.key, old.armed);
                put_row(txn, &alert.key, end);
                end
            }
            None => {
                put_row(txn, &alert.key, end);
                end
            }
        };
        let ends = Ends {
            ends_at: end,
            last_sent: now,
            armed,
        };
        txn.put(
            Tree::AlertEnds,
            alert.key.as_bytes().to_vec(),
            encode(&ends),
        );
        Ok(())
    }

    /// A due expiry row: stale (drop it), re-sent since (re-arm it at the new end), or
    /// expired (the resolve to handle, built from the alert's last recorded occurrence).
    pub(crate) fn expiry_due(&self, txn: &mut Txn<'_>, row: &Expiry) -> Result<Due, StoreError> {
        let done = Due::Done(Receipt {
            event_id: 0,
            ticket: None,
            outcome: Outcome::Seen,
        });
        let now = self.now();
        let Some(ends) = ends_of(txn, &row.key)?.filter(|e| e.armed == row.due) else {
            delete_row(txn, &row.key, row.due);
            return Ok(done);
        };
        if ends.ends_at > now {
            delete_row(txn, &row.key, row.due);
            put_row(txn, &row.key, ends.ends_at);
            let ends = Ends {
                armed: ends.ends_at,
                ..ends
            };
            txn.put(Tree::AlertEnds, row.key.as_bytes().to_vec(), encode(&ends));
            return Ok(done);
        }
        let last = self.last_occurrence(txn, &row.key)?;
        let Some(mut alert) = last.filter(|a| a.status == AlertStatus::Firing) else {
            delete_row(txn, &row.key, row.due);
            txn.delete(Tree::AlertEnds, row.key.as_bytes().to_vec());
            return Ok(done);
        };
        alert.status = AlertStatus::Resolved;
        alert.ends_at = Some(ends.ends_at);
        alert.expired = Some(ends.last_sent);
        alert.acknowledged = false;
        Ok(Due::Expired(Box::new(alert)))
    }

    /// The last recorded occurrence of the alert with its own key `key`, if it still fires
    /// on its ticket.
    fn last_occurrence(&self, txn: &mut Txn<'_>, key: &str) -> Result<Option<Alert>, StoreError> {
        let Some(bytes) = txn.get(Tree::TicketByAlert, key.as_bytes())? else {
            return Ok(None);
        };
        let id = decode(Tree::TicketByAlert, &bytes)?;
        let Some(ticket) = txn.ticket(id)? else {
            return Ok(None);
        };
        let Some(member) = ticket.alert.as_ref().and_then(|l| l.alerts.get(key)) else {
            return Ok(None);
        };
        if member.status != AlertStatus::Firing {
            return Ok(None);
        }
        let Some(bytes) = txn.get(Tree::Events, &u64_key(member.last_event))? else {
            return Ok(None);
        };
        let stored: StoredEvent = decode(Tree::Events, &bytes)?;
        Ok(match stored.event.body {
            EventBody::Alert(a) if a.key == key => Some(a),
            _ => None,
        })
    }
}

struct ExpiryRows;

impl timer_task::TimerRows for ExpiryRows {
    const NAME: &'static str = "alert_expiry";

    fn due(store: &dyn Store, now: Timestamp, limit: usize) -> Result<Vec<EventBody>, StoreError> {
        Ok(alert_expiry::due(store, now, limit)?
            .into_iter()
            .map(EventBody::AlertExpiry)
            .collect())
    }

    fn earliest(store: &dyn Store) -> Result<Option<Timestamp>, StoreError> {
        alert_expiry::earliest(store)
    }
}

/// The expiry task: runs until `shutdown` is cancelled or the engine stops.
pub async fn run(engine: EngineHandle, store: Arc<dyn Store>, shutdown: CancellationToken) {
    let wake = engine.alert_timers_changed();
    timer_task::run::<ExpiryRows>(engine, store, wake, shutdown).await;
}
