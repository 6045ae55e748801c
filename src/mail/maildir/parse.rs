//! Raw message bytes → [`Mail`], with mail-parser 0.11: addresses, RFC 2047 headers,
//! charsets, the text body (an HTML-only mail's HTML turned into text), attachments, and for
//! a bounce what the returned message said about itself. Pure: bytes in, data out; deciding
//! what the mail means is the engine's business.

use std::borrow::Cow;

use mail_parser::{Address, Header, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use crate::event::EventBody;
use crate::mail::message::Returned;
use crate::mail::{Attachment, Mail, Mailbox};

/// Why a message cannot be taken as a mail (it goes to quarantine).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("not a mail message: no header could be read")]
    NoMessage,
    #[error("no mail headers: none of From, Date, Subject or Message-ID is present")]
    NoMailHeaders,
    #[error("the mail parser failed on this message")]
    ParserFailed,
}

/// Parses one message. `keep_up_to`: attachments up to this many bytes keep their content.
///
/// A panic inside mail-parser on a malformed message (fuzzing found one: a `debug_assert!`
/// on a broken multipart/report) makes the message unreadable instead of failing the whole
/// Maildir chunk it was read with, again on every rescan.
pub fn parse(raw: &[u8], keep_up_to: u64) -> Result<Mail, Unreadable> {
    std::panic::catch_unwind(|| read(raw, keep_up_to)).unwrap_or(Err(Unreadable::ParserFailed))
}

fn read(raw: &[u8], keep_up_to: u64) -> Result<Mail, Unreadable> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(Unreadable::NoMessage)?;
    let has = |name: &str| message.header(name).is_some();
    if !["From", "Date", "Subject", "Message-ID"]
        .into_iter()
        .any(has)
    {
        return Err(Unreadable::NoMailHeaders);
    }
    let (message_id, synthetic_id) = match message.message_id().map(str::trim) {
        Some(id) if !id.is_empty() => (id.to_string(), false),
        _ => (synthetic_id(raw), true),
    };
    let (body, html_only) = body(&message);
    Ok(Mail {
        message_id,
        synthetic_id,
        from: message.from().and_then(|a| mailboxes(a).into_iter().next()),
        to: message.to().map(mailboxes).unwrap_or_default(),
        cc: message.cc().map(mailboxes).unwrap_or_default(),
        subject: message.subject().unwrap_or_default().trim().to_string(),
        date: message
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| jiff::Timestamp::from_second(d.to_timestamp()).ok()),
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        headers: headers(&message),
        body,
        html_only,
        attachments: attachments(&message, keep_up_to),
        size: raw.len() as u64,
        returned: returned(&message),
    })
}

/// Parses one message into the engine event the Maildir reader submits for it.
pub fn event(raw: &[u8], keep_up_to: u64) -> Result<EventBody, Unreadable> {
    parse(raw, keep_up_to).map(|mail| EventBody::Mail(Box::new(mail)))
}

/// A stable id for a mail without Message-ID: the same bytes delivered again get the same id.
fn synthetic_id(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256-{hex}@itsmd.invalid")
}

fn mailboxes(a: &Address<'_>) -> Vec<Mailbox> {
    a.iter()
        .filter_map(|addr| {
            let address = addr.address()?.trim();
            (!address.is_empty()).then(|| Mailbox {
                name: addr
                    .name()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty()),
                address: address.to_string(),
            })
        })
        .collect()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    let list: Vec<&str> = match v {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    list.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Every header by lower-case name, first occurrence: decoded text where mail-parser decoded
/// it, otherwise the raw value unfolded.
fn headers(message: &Message<'_>) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for h in &message.root_part().headers {
        let name = h.name().to_ascii_lowercase();
        if out.contains_key(&name) {
            continue;
        }
        out.insert(name, header_text(message, h));
    }
    out
}

fn header_text(message: &Message<'_>, h: &Header<'_>) -> String {
    match h.value() {
        HeaderValue::Text(t) => t.trim().to_string(),
        HeaderValue::TextList(l) => l.join(", "),
        _ => {
            let raw = message
                .raw_message
                .get(h.offset_start() as usize..h.offset_end() as usize)
                .unwrap_or_default();
            String::from_utf8_lossy(raw)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        }
    }
}

/// The text body: every text part joined, HTML parts turned into text. `true` when there was
/// no plain-text part at all.
fn body(message: &Message<'_>) -> (String, bool) {
    let texts: Vec<Cow<'_, str>> = message
        .text_bodies()
        .filter_map(|part| {
            let (text, html) = match &part.body {
                PartType::Text(t) => (t, false),
                PartType::Html(h) => (h, true),
                _ => return None,
            };
            let text = undeclared_8bit(message, part, text).map_or(text.clone(), Cow::Owned);
            Some(match html {
                true => Cow::Owned(super::html::to_text(&text)),
                false => text,
            })
        })
        .collect();
    let plain = message
        .text_bodies()
        .any(|p| matches!(p.body, PartType::Text(_)));
    let text = texts
        .iter()
        .map(|t| t.trim_end())
        .collect::<Vec<_>>()
        .join("\n\n");
    let text = text.trim().to_string();
    let html_only = !plain && !text.is_empty();
    (text, html_only)
}

/// A text part that declares no charset but is not UTF-8 (old mailers send Latin-1 as plain
/// 8-bit): mail-parser replaced every such byte with U+FFFD; decoded as Windows-1252 instead
/// (a superset of Latin-1 in which every byte is a character), so nothing is lost.
fn undeclared_8bit(
    message: &Message<'_>,
    part: &mail_parser::MessagePart<'_>,
    text: &str,
) -> Option<String> {
    if !text.contains('\u{FFFD}')
        || part
            .content_type()
            .is_some_and(|ct| ct.attribute("charset").is_some())
    {
        return None;
    }
    let raw = message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)?;
    let bytes = match part.encoding {
        mail_parser::Encoding::None => raw.to_vec(),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)?
        }
        mail_parser::Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw)?,
    };
    if std::str::from_utf8(&bytes).is_ok() {
        return None;
    }
    let decode = mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252")?;
    Some(decode(&bytes).trim_end().to_string())
}

fn attachments(message: &Message<'_>, keep_up_to: u64) -> Vec<Attachment> {
    message
        .attachments()
        .map(|part| {
            let contents = part.contents();
            let size = contents.len() as u64;
            let content_type = part
                .content_type()
                .map(|ct| match &ct.c_subtype {
                    Some(sub) => format!("{}/{sub}", ct.c_type),
                    None => ct.c_type.to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into())
                .to_ascii_lowercase();
            // Its file name, else an attached message's subject; either may be blank.
            let name = [
                part.attachment_name(),
                part.message().and_then(|m| m.subject()),
            ]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|n| !n.is_empty())
            .unwrap_or("unnamed")
            .to_string();
            Attachment {
                name,
                content_type,
                size,
                content: (size <= keep_up_to).then(|| contents.to_vec()),
            }
        })
        .collect()
}

/// For a delivery-status report: the returned message (`message/rfc822`) or its headers
/// (`text/rfc822-headers`).
fn returned(message: &Message<'_>) -> Option<Returned> {
    let is_report = message.root_part().content_type().is_some_and(|ct| {
        ct.c_type.eq_ignore_ascii_case("multipart")
            && ct
                .c_subtype
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if !is_report {
        return None;
    }
    let parser = MessageParser::default();
    message.parts.iter().find_map(|part| {
        if let PartType::Message(inner) = &part.body {
            return Some(returned_from(inner));
        }
        if part.is_content_type("text", "rfc822-headers") {
            let text = part.text_contents()?;
            return parser
                .parse_headers(text.as_bytes())
                .map(|m| returned_from(&m));
        }
        None
    })
}

fn returned_from(m: &Message<'_>) -> Returned {
    Returned {
        message_id: m.message_id().map(|s| s.trim().to_string()),
        subject: m.subject().unwrap_or_default().trim().to_string(),
        references: ids(m.in_reply_to())
            .into_iter()
            .chain(ids(m.references()))
            .collect(),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
