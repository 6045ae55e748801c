//! The batch's reads fetched together: before a batch is processed, the keys its events are
//! known to read (their alerts' indexes and expiry, their mails' Message-IDs, the counters a
//! new ticket advances) are read in one [`crate::store::Store::get_many`], then the tickets
//! those indexes name in a second; on PostgreSQL that is two round trips for the batch
//! instead of several per event. Owns only the choice of keys; a key it misses is read on
//! demand as before, a key it reads needlessly costs a row.

use crate::engine::txn::Txn;
use crate::event::EventBody;
use crate::store::layout::{self, EVENT_SEQ, outbox::OUTBOX_SEQ};
use crate::store::{StoreError, Tree, decode};
use crate::tickets::{Kind, State, TicketId};

/// Reads ahead what `batch` is about to read.
pub(crate) fn batch(
    txn: &mut Txn<'_>,
    batch: &[(EventBody, jiff::Timestamp)],
) -> Result<(), StoreError> {
    let mut keys: Vec<(Tree, Vec<u8>)> = vec![
        (Tree::Meta, EVENT_SEQ.to_vec()),
        (Tree::Meta, OUTBOX_SEQ.to_vec()),
    ];
    let mut indexes = Vec::new();
    for (body, _) in batch {
        match body {
            EventBody::Alert(alert) => {
                let key = alert.key.as_bytes().to_vec();
                indexes.push((Tree::TicketByAlert, key.clone()));
                indexes.push((Tree::TicketByKey, key.clone()));
                keys.push((Tree::AlertEnds, key));
            }
            EventBody::Mail(mail) => {
                for id in std::iter::once(&mail.message_id)
                    .chain(&mail.in_reply_to)
                    .chain(&mail.references)
                {
                    keys.push((Tree::MailByMessageId, id.as_bytes().to_vec()));
                }
            }
            _ => {}
        }
    }
    if !indexes.is_empty() {
        // A new incident advances these.
        keys.push((Tree::Meta, layout::ticket_seq_key(Kind::Incident)));
        keys.push((
            Tree::Meta,
            layout::ticket_count_key(Kind::Incident, State::New),
        ));
    }
    keys.extend(indexes.iter().cloned());
    txn.prefetch(keys)?;
    let mut tickets = Vec::new();
    for (tree, key) in &indexes {
        if let Some(bytes) = txn.get(*tree, key)? {
            let id: TicketId = decode(*tree, &bytes)?;
            if !txn.has_ticket(id) {
                tickets.push((Tree::Tickets, id.key()));
            }
        }
    }
    txn.prefetch(tickets)
}
