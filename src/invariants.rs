//! What must hold for every intake body and every mail, whatever its bytes: the checks the
//! fuzz targets (`fuzz/`) run on each generated input and the corpus regression test runs on
//! every kept input. Each check feeds raw bytes through the same functions the daemon serves
//! requests and mails with ([`super::http::body`], [`super::maildir::parse::event`]) and
//! panics, naming the broken invariant, when one does not hold. Built only for tests and
//! with the `fuzzing` feature.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::alerts::intake::body::DecodeError;
use crate::alerts::intake::pagerduty::Action;
use crate::alerts::intake::{body, pagerduty};
use crate::alerts::{Alert, AlertFormat, AlertStatus, fingerprint};
use crate::event::{Event, EventBody};
use crate::mail::Mail;
use crate::mail::maildir::parse;
use crate::mail::message::ticket_tag;
use crate::store::{Tree, decode, encode};

/// The "now" every body is decoded at, so that a body decodes the same on every run.
pub const NOW: Timestamp = Timestamp::constant(1_767_225_600, 0);

/// Attachments up to this size keep their content: small, so that both sides are reached.
pub const KEEP_UP_TO: u64 = 64;

/// `POST /api/v2/alerts`.
pub fn prometheus(bytes: &[u8]) {
    let decoded = body::prometheus(bytes, NOW);
    assert_eq!(
        decoded,
        body::prometheus(bytes, NOW),
        "decoding is deterministic"
    );
    let Some(alerts) = accepted(decoded) else {
        return;
    };
    for a in alerts {
        alert(&a, AlertFormat::Prometheus);
        assert!(!a.labels.is_empty(), "an accepted alert has labels");
        let again = format!("[{}]", wire_alert(&a));
        assert_eq!(
            body::prometheus(again.as_bytes(), NOW),
            Ok(vec![a]),
            "re-sent with its labels in reverse order, the alert is the same: {again}"
        );
    }
}

/// `POST /webhook/alertmanager` (Alertmanager and Grafana).
pub fn webhook(bytes: &[u8]) {
    let decoded = body::webhook(bytes, NOW);
    assert_eq!(
        decoded,
        body::webhook(bytes, NOW),
        "decoding is deterministic"
    );
    let Some(alerts) = accepted(decoded) else {
        return;
    };
    for a in alerts {
        assert!(
            matches!(a.format, AlertFormat::Alertmanager | AlertFormat::Grafana),
            "webhook alerts are Alertmanager's or Grafana's"
        );
        alert(&a, a.format);
        assert!(!a.labels.is_empty(), "an accepted alert has labels");
        let version = match a.format {
            AlertFormat::Grafana => r#""version":"1","orgId":1"#,
            _ => r#""version":"4""#,
        };
        let again = format!(r#"{{{version},"alerts":[{}]}}"#, wire_alert(&a));
        assert_eq!(
            body::webhook(again.as_bytes(), NOW),
            Ok(vec![a]),
            "re-sent with its labels in reverse order, the alert is the same: {again}"
        );
    }
}

/// `POST /api/v1/events`.
pub fn generic(bytes: &[u8]) {
    let decoded = body::generic(bytes);
    assert_eq!(decoded, body::generic(bytes), "decoding is deterministic");
    let Some(a) = accepted(decoded) else {
        return;
    };
    alert(&a, AlertFormat::Generic);
    for (name, v) in [("source", &a.source), ("severity", &a.severity)] {
        assert!(!v.trim().is_empty(), "an accepted event has a {name}");
    }
    let again = format!(
        r#"{{"source":{},"key":{},"status":{},"severity":{},"summary":{},"description":{},"labels":{},"annotations":{}}}"#,
        text(&a.source),
        text(&a.key),
        text(a.status.as_str()),
        text(&a.severity),
        text(&a.summary),
        a.description.as_deref().map_or("null".into(), text),
        reversed(&a.labels),
        reversed(&a.annotations),
    );
    assert_eq!(
        body::generic(again.as_bytes()),
        Ok(a),
        "re-sent with its labels in reverse order, the event is the same: {again}"
    );
}

/// `POST /v2/enqueue` (PagerDuty Events v2).
pub fn pagerduty(bytes: &[u8]) {
    let decoded = body::pagerduty(bytes);
    assert_eq!(decoded, body::pagerduty(bytes), "decoding is deterministic");
    let event = match decoded {
        Ok(e) => e,
        Err(problems) => {
            assert!(!problems.is_empty(), "a refused event says why");
            return;
        }
    };
    assert!(!event.routing_key.trim().is_empty(), "a routing key");
    if let Some(k) = &event.dedup_key {
        assert!(!k.is_empty() && k.chars().count() <= 255, "dedup key {k:?}");
    }
    let a = &event.alert;
    match event.action {
        Action::Trigger => {
            for (name, v) in [("summary", &a.summary), ("severity", &a.severity)] {
                assert!(!v.trim().is_empty(), "a trigger has a {name}");
            }
            assert!(a.summary.chars().count() <= 1024, "summary within 1024");
            assert!(
                ["critical", "error", "warning", "info"].contains(&a.severity.as_str()),
                "a known severity"
            );
            assert!(a.labels.contains_key("source"), "a trigger's source label");
        }
        Action::Acknowledge | Action::Resolve => {
            assert!(
                event.dedup_key.is_some(),
                "ack and resolve name their alert"
            )
        }
    }
    assert_eq!(
        a.status == AlertStatus::Resolved,
        event.action == Action::Resolve,
        "resolved exactly when resolving"
    );
    assert_eq!(
        a.acknowledged,
        event.action == Action::Acknowledge,
        "acknowledged exactly when acknowledging"
    );
    let minted = pagerduty::mint_dedup_key(NOW, u64::MAX);
    assert!(minted.len() == 32 && minted.bytes().all(|b| b.is_ascii_hexdigit()));
    let key = event.dedup_key.clone().unwrap_or(minted);
    let submitted = event.into_alert(key, "fuzz".into());
    alert(&submitted, AlertFormat::Pagerduty);
}

/// A raw message from the Maildir.
pub fn mail(raw: &[u8]) {
    let decoded = parse::event(raw, KEEP_UP_TO);
    assert_eq!(
        decoded,
        parse::event(raw, KEEP_UP_TO),
        "parsing is deterministic"
    );
    let Ok(body) = decoded else {
        return;
    };
    let EventBody::Mail(m) = &body else {
        panic!("a mail becomes a mail event, not {}", body.kind());
    };
    mail_holds(m, raw);
    stored(body);
}

fn mail_holds(m: &Mail, raw: &[u8]) {
    assert!(!m.message_id.is_empty(), "a Message-ID");
    assert_eq!(m.message_id.trim(), m.message_id, "Message-ID trimmed");
    if m.synthetic_id {
        assert!(
            m.message_id.starts_with("sha256-") && m.message_id.ends_with("@itsmd.invalid"),
            "synthetic id {}",
            m.message_id
        );
    }
    assert_eq!(m.size, raw.len() as u64, "size is the raw size");
    for b in m.from.iter().chain(&m.to).chain(&m.cc) {
        assert!(!b.address.is_empty() && b.address.trim() == b.address);
        assert!(b.name.as_ref().is_none_or(|n| !n.is_empty()));
    }
    for id in m.in_reply_to.iter().chain(&m.references) {
        assert!(!id.is_empty() && id.trim() == id, "thread id {id:?}");
    }
    for name in m.headers.keys() {
        assert_eq!(
            &name.to_ascii_lowercase(),
            name,
            "header names in lower case"
        );
    }
    assert_eq!(m.subject.trim(), m.subject, "subject trimmed");
    assert!(!m.html_only || !m.body.is_empty(), "html_only has a body");
    for a in &m.attachments {
        assert_eq!(a.content.is_some(), a.size <= KEEP_UP_TO, "kept iff small");
        if let Some(c) = &a.content {
            assert_eq!(
                c.len() as u64,
                a.size,
                "kept content is the whole attachment"
            );
        }
        assert!(!a.name.is_empty() && !a.content_type.is_empty());
    }
    // What the engine asks of a mail must answer for any mail.
    let _ = (m.noise(), m.is_reply(), m.sender());
    if m.is_bounce() && m.returned.is_none() {
        let local = m.sender();
        let local = local.split('@').next().unwrap_or_default();
        assert!(
            ["mailer-daemon", "postmaster"].contains(&local),
            "bounce from {local}"
        );
    }
    if let Some(id) = ticket_tag(&m.subject) {
        assert_eq!(id.to_string().parse(), Ok(id), "a ticket id reads back");
        assert_eq!(ticket_tag(&format!("[{id}]")), Some(id), "its tag finds it");
    }
}

/// The alerts of an accepted body; `None` after checking a refusal says why.
fn accepted<T>(decoded: Result<T, DecodeError>) -> Option<T> {
    match decoded {
        Ok(v) => Some(v),
        Err(DecodeError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "an invalid body says why");
            None
        }
        Err(DecodeError::Json(e)) => {
            assert!(!e.message.is_empty() && !e.path.is_empty(), "{e:?}");
            None
        }
    }
}

/// What holds for every accepted alert of any format, and that it is stored unchanged.
fn alert(a: &Alert, format: AlertFormat) {
    assert_eq!(a.format, format, "the format it came in");
    assert!(!a.key.is_empty(), "a correlation key");
    assert!(!a.source.is_empty(), "a source");
    assert_eq!(
        a.fingerprint,
        fingerprint(&a.labels),
        "the labels' fingerprint"
    );
    assert!(a.fingerprint.len() == 16 && a.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(a.description.as_ref().is_none_or(|d| !d.is_empty()));
    assert!(a.generator_url.as_ref().is_none_or(|u| !u.is_empty()));
    stored(EventBody::Alert(a.clone()));
}

/// The journal record of `body` reads back equal to what was written.
fn stored(body: EventBody) {
    let event = Event {
        id: 1,
        received_at: NOW,
        body,
    };
    let bytes = encode(&event);
    match decode::<Event>(Tree::Events, &bytes) {
        Ok(back) => assert_eq!(back, event, "the stored record reads back equal"),
        Err(e) => panic!("a stored record does not read back: {e}"),
    }
}

/// One alert in the shape Prometheus and Alertmanager share, labels and annotations in
/// reverse order, its status explicit and its key as the sender's fingerprint.
fn wire_alert(a: &Alert) -> String {
    let mut fields = vec![
        format!(r#""labels":{}"#, reversed(&a.labels)),
        format!(r#""annotations":{}"#, reversed(&a.annotations)),
    ];
    for (name, t) in [("startsAt", a.starts_at), ("endsAt", a.ends_at)] {
        if let Some(t) = t {
            fields.push(format!(r#""{name}":{}"#, text(&t.to_string())));
        }
    }
    if let Some(u) = &a.generator_url {
        fields.push(format!(r#""generatorURL":{}"#, text(u)));
    }
    fields.push(format!(r#""status":{}"#, text(a.status.as_str())));
    fields.push(format!(r#""fingerprint":{}"#, text(&a.key)));
    format!("{{{}}}", fields.join(","))
}

/// A JSON object of the map's pairs, last name first.
fn reversed(map: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = map
        .iter()
        .rev()
        .map(|(k, v)| format!("{}:{}", text(k), text(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// A JSON string.
fn text(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// One target's check.
    type Check = fn(&[u8]);

    /// Every kept input of every fuzz target (`fuzz/corpus/<target>/`, and the inputs that
    /// once broke something, `fuzz/regressions/<target>/`) still holds every invariant.
    #[test]
    fn every_kept_fuzz_input_holds() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let targets: [(&str, Check); 5] = [
            ("prometheus", super::prometheus),
            ("webhook", super::webhook),
            ("generic", super::generic),
            ("pagerduty", super::pagerduty),
            ("mail", super::mail),
        ];
        for (target, check) in targets {
            let mut checked = 0;
            for dir in ["corpus", "regressions"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let bytes = std::fs::read(&path).unwrap();
                    let run = std::panic::catch_unwind(|| check(&bytes));
                    assert!(run.is_ok(), "{} breaks an invariant", path.display());
                    checked += 1;
                }
            }
            assert!(checked >= 5, "{target}: only {checked} kept inputs");
        }
    }
}
