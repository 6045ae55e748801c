//! Composing one outgoing mail: the RFC 5322 message with its threading headers
//! (`Message-ID` derived from the outbox row, `In-Reply-To` and `References` from the
//! ticket's thread), `Auto-Submitted` so other robots stay quiet, and the SMTP envelope.
//! Pure: the instant and every text are parameters; nothing here sends or reads the store.

use jiff::Timestamp;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::{Mailbox, Message, MultiPart};
use serde::{Deserialize, Serialize};

/// A mail row's body in the outbox: the envelope and the message exactly as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The whole message, headers and body (7-bit: lettre encodes the rest).
    pub message: String,
    /// A coalesced batch's notices (`[smtp] coalesce`), so a later one can join them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch: Vec<crate::mail::outbound::coalesce::BatchItem>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{what} {value:?} is not a mail address: {reason}")]
    Address {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("cannot encode the envelope: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One mail to write.
pub struct Draft<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: String,
    pub text: String,
    /// An HTML alternative of `text`, sent as multipart/alternative.
    pub html: Option<String>,
    /// Without angle brackets.
    pub message_id: String,
    /// The thread so far, oldest first, without angle brackets: the last one is replied to.
    pub thread: &'a [String],
    /// `auto-replied` for an answer to the caller's own mail, else `auto-generated`.
    pub auto: &'static str,
    pub at: Timestamp,
    /// The notices of a coalesced batch, kept in the row.
    pub batch: Vec<crate::mail::outbound::coalesce::BatchItem>,
}

/// `Auto-Submitted` (RFC 3834).
#[derive(Clone)]
struct AutoSubmitted(String);

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The Message-ID of outbox row `row`, created at `at`, from the desk's address `from`:
/// the same on every attempt and replay, unique across stores (the creation instant).
pub fn message_id(row: u64, at: Timestamp, from: &str) -> String {
    let domain = from.rsplit_once('@').map_or("itsmd.invalid", |(_, d)| d);
    format!("itsmd.{row}.{}@{domain}", at.as_millisecond())
}

fn mailbox(what: &'static str, value: &str) -> Result<Mailbox, ComposeError> {
    value
        .parse()
        .map_err(|e: lettre::address::AddressError| ComposeError::Address {
            what,
            value: value.to_string(),
            reason: e.to_string(),
        })
}

/// The message and its envelope, as the outbox row's body.
pub fn compose(d: &Draft<'_>) -> Result<String, ComposeError> {
    let from = mailbox("from", d.from)?;
    let to = mailbox("recipient", d.to)?;
    let mut b = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(d.subject.clone())
        .message_id(Some(format!("<{}>", d.message_id)))
        .date(std::time::SystemTime::from(d.at))
        .header(AutoSubmitted(d.auto.to_string()))
        .header(MIME_VERSION_1_0);
    if let Some(last) = d.thread.last() {
        b = b.in_reply_to(format!("<{last}>"));
        let refs: Vec<String> = d.thread.iter().map(|id| format!("<{id}>")).collect();
        b = b.references(refs.join(" "));
    }
    let message = match &d.html {
        Some(html) => b.multipart(MultiPart::alternative_plain_html(
            d.text.clone(),
            html.clone(),
        )),
        None => b.header(ContentType::TEXT_PLAIN).body(d.text.clone()),
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    let envelope = Envelope {
        from: from.email.to_string(),
        to: vec![to.email.to_string()],
        message: String::from_utf8_lossy(&message.formatted()).into_owned(),
        batch: d.batch.clone(),
    };
    Ok(serde_json::to_string(&envelope)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_carries_its_thread_and_stays_quiet_for_robots() {
        let at: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let id = message_id(7, at, "desk@example.com");
        assert_eq!(id, format!("itsmd.7.{}@example.com", at.as_millisecond()));
        let thread = vec![
            "first@caller".to_string(),
            "itsmd.3.1@example.com".to_string(),
        ];
        let body = compose(&Draft {
            from: "Service Desk <desk@example.com>",
            to: "Alice <alice@example.org>",
            subject: "[INC-000001] Printer on fire — ünïcode".into(),
            text: "Hello\nWorld ünïcode\n".into(),
            html: None,
            message_id: id.clone(),
            thread: &thread,
            auto: "auto-replied",
            at,
            batch: Vec::new(),
        })
        .unwrap();
        let e: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(e.from, "desk@example.com");
        assert_eq!(e.to, vec!["alice@example.org".to_string()]);
        let m = &e.message;
        assert!(m.contains(&format!("Message-ID: <{id}>")), "{m}");
        assert!(m.contains("In-Reply-To: <itsmd.3.1@example.com>"), "{m}");
        assert!(
            m.contains("References: <first@caller> <itsmd.3.1@example.com>"),
            "{m}"
        );
        assert!(m.contains("Auto-Submitted: auto-replied"), "{m}");
        assert!(m.contains("MIME-Version: 1.0"), "{m}");
        let parsed = mail_parser::MessageParser::default()
            .parse(m.as_bytes())
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some("[INC-000001] Printer on fire — ünïcode")
        );
        assert!(parsed.body_text(0).unwrap().contains("World ünïcode"));
        assert!(
            compose(&Draft {
                to: "not an address",
                thread: &[],
                ..Draft {
                    from: "desk@example.com",
                    to: "",
                    subject: String::new(),
                    text: String::new(),
                    html: Some("<p>x</p>".into()),
                    message_id: id,
                    thread: &[],
                    auto: "auto-generated",
                    at,
                    batch: Vec::new(),
                }
            })
            .is_err()
        );
    }
}
