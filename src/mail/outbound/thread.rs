//! A ticket's mail thread, kept in [`Tree::MailThreads`] under the ticket's key: the
//! caller it answers, the reply token, and the Message-IDs exchanged (the caller's mails
//! and itsmd's own, oldest first), so each mail itsmd sends replies to the last one and
//! references the chain. Written by the engine only (the mail step and the outbound step).

use serde::{Deserialize, Serialize};

use crate::engine::txn::Txn;
use crate::store::StoreError;
use crate::store::Tree;
use crate::store::decode;
use crate::store::encode;
use crate::tickets::TicketId;

/// Message-IDs kept per thread: the first (the caller's opening mail) and the latest ones.
const KEEP: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Thread {
    /// The caller's bare address: who caller mail goes to.
    #[serde(default)]
    pub caller: String,
    /// The reply token: a reply that carries it (or comes from the caller) may comment.
    #[serde(default)]
    pub token: String,
    /// Message-IDs without angle brackets, oldest first.
    #[serde(default)]
    pub ids: Vec<String>,
}

impl Thread {
    /// Appends a Message-ID, keeping the first and the latest ones.
    pub fn push(&mut self, id: &str) {
        if id.is_empty() || self.ids.iter().any(|i| i == id) {
            return;
        }
        self.ids.push(id.to_string());
        if self.ids.len() > KEEP {
            self.ids.remove(1);
        }
    }
}

pub(crate) fn get(txn: &Txn<'_>, ticket: TicketId) -> Result<Option<Thread>, StoreError> {
    txn.get(Tree::MailThreads, &ticket.key())?
        .map(|b| decode(Tree::MailThreads, &b))
        .transpose()
}

pub(crate) fn put(txn: &mut Txn<'_>, ticket: TicketId, thread: &Thread) {
    txn.put(Tree::MailThreads, ticket.key(), encode(thread));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_keeps_its_first_and_latest_ids() {
        let mut t = Thread::default();
        for i in 0..30 {
            t.push(&format!("m{i}"));
        }
        t.push("m29");
        t.push("");
        assert_eq!(t.ids.len(), KEEP);
        assert_eq!(t.ids[0], "m0");
        assert_eq!(t.ids[1], "m11");
        assert_eq!(t.ids.last().map(String::as_str), Some("m29"));
    }
}
