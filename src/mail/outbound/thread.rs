//! A ticket's mail thread, kept in [`Tree::MailThreads`] under the ticket's key: the
//! caller it answers, the reply token, and the Message-IDs exchanged (the caller's mails
//! and itsmd's own, oldest first), so each mail itsmd sends replies to the last one and
//! references the chain. Written by the engine only (the mail step and the outbound step).

use serde::{Deserialize, Serialize};

use crate::engine::txn::Txn;
use crate::store::{StoreError, Tree, decode, encode};
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

/// Letters of a reply token: no 0/o, 1/l, so it survives being read aloud or retyped.
const TOKEN_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A fresh reply token: 80 random bits from the operating system, 16 letters.
pub(crate) fn new_token() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 10];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Practically unreachable (the OS has no randomness); a weaker token beats none.
        tracing::warn!("Reply token from a weak random source: the system's is unavailable.");
        let mut rng = fastrand::Rng::new();
        rng.fill(&mut bytes);
    }
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    (0..16)
        .map(|i| TOKEN_ALPHABET[((bits >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// Whether a mail carrying `token` (from its subject tag) may speak for the thread.
pub(crate) fn token_matches(thread: &Thread, token: Option<&str>) -> bool {
    use subtle::ConstantTimeEq;
    match token {
        Some(t) if !thread.token.is_empty() => {
            bool::from(t.as_bytes().ct_eq(thread.token.as_bytes()))
        }
        _ => false,
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
    fn tokens_are_fresh_and_only_the_right_one_matches() {
        let a = new_token();
        assert_eq!(a.len(), 16);
        assert_ne!(a, new_token());
        let t = Thread {
            token: a.clone(),
            ..Thread::default()
        };
        assert!(token_matches(&t, Some(&a)));
        assert!(!token_matches(&t, Some("aaaaaaaaaaaaaaaa")));
        assert!(!token_matches(&t, None));
        assert!(!token_matches(&Thread::default(), Some("")));
    }

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
