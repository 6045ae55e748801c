//! A received mail as plain data: who wrote to whom about what, what it replies to, its text
//! and attachments, and what its headers say about it (a ticket tag, an automatic sender, a
//! bounce). Parsing raw messages is the Maildir source's job and threading mails onto tickets
//! the engine's; this module does no I/O and knows no store.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::tickets::TicketId;

/// One mail, as parsed from its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    /// The Message-ID without angle brackets: what makes a re-delivery recognisable and what
    /// replies refer to. A mail without one gets a stable id derived from its bytes.
    pub message_id: String,
    /// True when `message_id` was derived from the bytes because the mail had none.
    #[serde(default, skip_serializing_if = "is_false")]
    pub synthetic_id: bool,
    /// The author (From); `None` when the header is missing or unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Mailbox>,
    /// Recipients, so rules can route by the address the caller wrote to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Mailbox>,
    /// Copied recipients, for the same reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<Mailbox>,
    /// Decoded (RFC 2047) subject; empty when missing.
    #[serde(default)]
    pub subject: String,
    /// When the sender says it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Timestamp>,
    /// Message-IDs from In-Reply-To: the most direct way to find the thread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_reply_to: Vec<String>,
    /// Message-IDs from References, oldest first: the thread when In-Reply-To misses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Every header by lower-case name (the first occurrence, unfolded), for loop protection
    /// and for rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The text body in UTF-8; an HTML-only mail's HTML turned into text.
    #[serde(default)]
    pub body: String,
    /// True when `body` was made from HTML because the mail had no text part.
    #[serde(default, skip_serializing_if = "is_false")]
    pub html_only: bool,
    /// Attachments, with their content when small enough to keep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Size of the raw message in bytes.
    pub size: u64,
    /// For a delivery-status report (bounce): what the returned message said about itself,
    /// so the bounce can be put on the ticket the returned message belonged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Returned>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A mail address and the display name that came with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    /// The display name, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub address: String,
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) if !n.is_empty() => write!(f, "{n} <{}>", self.address),
            _ => f.write_str(&self.address),
        }
    }
}

/// One attachment of a mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file name the sender gave, or "unnamed".
    pub name: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
    /// The decoded content when it is within the configured limit; `None` when larger (the
    /// name, type and size are still recorded).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub content: Option<Vec<u8>>,
}

/// What a bounced message said about itself (from the report's returned message or headers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Returned {
    /// The returned message's own Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Its subject, which may carry a ticket tag.
    #[serde(default)]
    pub subject: String,
    /// Its In-Reply-To and References ids, in that order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// Why a mail is taken for automatic and opens no ticket (loop and noise protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Noise {
    /// RFC 3834 `Auto-Submitted` with a value other than `no`.
    AutoSubmitted(String),
    /// `Precedence: bulk`, `junk` or `list`.
    Precedence(String),
    /// `X-Autoreply` or `X-Autorespond` present (vacation responders that predate RFC 3834).
    AutoReply(String),
    /// From a mailer-daemon or postmaster address.
    MailerDaemon(String),
}

impl Noise {
    /// Short name for metrics and the journal.
    pub fn label(&self) -> &'static str {
        match self {
            Noise::AutoSubmitted(_) => "auto_submitted",
            Noise::Precedence(_) => "precedence",
            Noise::AutoReply(_) => "auto_reply",
            Noise::MailerDaemon(_) => "mailer_daemon",
        }
    }
}

impl fmt::Display for Noise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Noise::AutoSubmitted(v) => write!(f, "Auto-Submitted: {v}"),
            Noise::Precedence(v) => write!(f, "Precedence: {v}"),
            Noise::AutoReply(h) => write!(f, "{h} header present"),
            Noise::MailerDaemon(a) => write!(f, "sent by {a}"),
        }
    }
}

impl Mail {
    /// The sender's address in lower case: who the rate limit counts. Empty without From.
    pub fn sender(&self) -> String {
        self.from
            .as_ref()
            .map(|m| m.address.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// A header's value by (any-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// True when the headers say it answers another mail.
    pub fn is_reply(&self) -> bool {
        !self.in_reply_to.is_empty() || !self.references.is_empty()
    }

    /// Why this mail was sent by a machine rather than a person, if it was.
    pub fn noise(&self) -> Option<Noise> {
        if let Some(v) = self.header("auto-submitted") {
            let v = v.trim();
            // The value may carry parameters: "auto-replied; owner-email=…".
            let kind = v.split(';').next().unwrap_or_default().trim();
            if !kind.eq_ignore_ascii_case("no") {
                return Some(Noise::AutoSubmitted(v.to_string()));
            }
        }
        if let Some(v) = self.header("precedence") {
            let v = v.trim().to_ascii_lowercase();
            if matches!(v.as_str(), "bulk" | "junk" | "list") {
                return Some(Noise::Precedence(v));
            }
        }
        for h in ["X-Autoreply", "X-Autorespond"] {
            if self.header(h).is_some() {
                return Some(Noise::AutoReply(h.to_string()));
            }
        }
        if is_daemon(&self.sender()) {
            return Some(Noise::MailerDaemon(self.sender()));
        }
        None
    }

    /// True for a delivery failure report: from a mailer daemon, or a report that returned a
    /// message.
    pub fn is_bounce(&self) -> bool {
        self.returned.is_some() || is_daemon(&self.sender())
    }
}

/// mailer-daemon@…, postmaster@… (any case).
pub(crate) fn is_daemon(address: &str) -> bool {
    let local = address.split('@').next().unwrap_or_default();
    local.eq_ignore_ascii_case("mailer-daemon") || local.eq_ignore_ascii_case("postmaster")
}

/// The first ticket id tagged in a subject as `[INC-000042]` or `[INC-000042 #TOKEN]` (any
/// kind's prefix).
pub fn ticket_tag(subject: &str) -> Option<TicketId> {
    reply_tag(subject).map(|(id, _)| id)
}

/// The first ticket tag in a subject and the reply token it carries, if any:
/// `[INC-000042 #k3x9…]` (what itsmd's own mails carry) or `[INC-000042]`.
pub fn reply_tag(subject: &str) -> Option<(TicketId, Option<String>)> {
    subject.match_indices('[').find_map(|(start, _)| {
        let rest = &subject[start + 1..];
        let end = rest.find(']')?;
        let inner = rest[..end].trim();
        let (id, token) = match inner.split_once('#') {
            Some((id, token)) => (id.trim(), Some(token.trim().to_string())),
            None => (inner, None),
        };
        Some((id.parse().ok()?, token.filter(|t| !t.is_empty())))
    })
}

/// Attachment content as base64 in the journal (JSON has no bytes).
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| STANDARD.decode(t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(headers: &[(&str, &str)], from: &str) -> Mail {
        Mail {
            message_id: "m@x".into(),
            synthetic_id: false,
            from: Some(Mailbox {
                name: None,
                address: from.into(),
            }),
            to: vec![],
            cc: vec![],
            subject: String::new(),
            date: None,
            in_reply_to: vec![],
            references: vec![],
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: String::new(),
            html_only: false,
            attachments: vec![],
            size: 0,
            returned: None,
        }
    }

    #[test]
    fn ticket_tags_are_found_anywhere_in_the_subject() {
        let id = |s: &str| ticket_tag(s).map(|t| t.to_string());
        assert_eq!(id("Re: [INC-000042] disk full"), Some("INC-000042".into()));
        assert_eq!(id("AW: WG: [REQ-000007]"), Some("REQ-000007".into()));
        assert_eq!(
            id("[list] [ CHG-000003 ] window"),
            Some("CHG-000003".into())
        );
        assert_eq!(id("[INC-42a] [PRB-000001]"), Some("PRB-000001".into()));
        assert_eq!(id("Re: [INC-000042 #k3x9ab] x"), Some("INC-000042".into()));
        let (t, token) = reply_tag("Re: [ INC-000042 #k3x9ab ] x").unwrap();
        assert_eq!(
            (t.to_string(), token.as_deref()),
            ("INC-000042".into(), Some("k3x9ab"))
        );
        assert_eq!(reply_tag("[INC-000042 #]").unwrap().1, None);
        for none in [
            "INC-000042 without brackets",
            "[XYZ-000001]",
            "[INC-]",
            "[",
            "",
        ] {
            assert_eq!(id(none), None, "{none}");
        }
    }

    #[test]
    fn automatic_senders_are_recognised_and_people_are_not() {
        let noise = |h: &[(&str, &str)], from: &str| mail(h, from).noise().map(|n| n.label());
        assert_eq!(noise(&[], "alice@example.com"), None);
        assert_eq!(noise(&[("Auto-Submitted", "no")], "a@x"), None);
        assert_eq!(noise(&[("Auto-Submitted", " No ; x=y")], "a@x"), None);
        assert_eq!(
            noise(&[("Auto-Submitted", "auto-replied")], "a@x"),
            Some("auto_submitted")
        );
        assert_eq!(
            noise(&[("Auto-Submitted", "auto-generated; owner=a")], "a@x"),
            Some("auto_submitted")
        );
        for p in ["bulk", "Junk", "list"] {
            assert_eq!(
                noise(&[("Precedence", p)], "a@x"),
                Some("precedence"),
                "{p}"
            );
        }
        assert_eq!(noise(&[("Precedence", "first-class")], "a@x"), None);
        assert_eq!(noise(&[("X-Autoreply", "yes")], "a@x"), Some("auto_reply"));
        assert_eq!(noise(&[("X-Autorespond", "")], "a@x"), Some("auto_reply"));
        assert_eq!(
            noise(&[], "MAILER-DAEMON@mx.example"),
            Some("mailer_daemon")
        );
        assert_eq!(noise(&[], "postmaster@example.com"), Some("mailer_daemon"));
        assert_eq!(noise(&[], "postmasters@example.com"), None);
        assert!(mail(&[], "Mailer-Daemon@x").is_bounce());
        assert!(!mail(&[("Auto-Submitted", "auto-replied")], "a@x").is_bounce());
    }

    #[test]
    fn attachment_content_round_trips_as_base64() {
        let a = Attachment {
            name: "a.bin".into(),
            content_type: "application/octet-stream".into(),
            size: 3,
            content: Some(vec![0, 255, 10]),
        };
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains(r#""content":"AP8K""#), "{text}");
        assert_eq!(serde_json::from_str::<Attachment>(&text).unwrap(), a);
        let none = Attachment { content: None, ..a };
        let text = serde_json::to_string(&none).unwrap();
        assert!(!text.contains("content\""), "{text}");
        assert_eq!(serde_json::from_str::<Attachment>(&text).unwrap(), none);
    }
}
