//! The read-only `mail` map an `on_mail` hook receives. Built from the parsed mail and the
//! ticket the engine threaded it onto; nothing in it can change either.

use rhai::{Array, Dynamic, Map};

use crate::mail::{Mail, Mailbox};
use crate::tickets::TicketId;

fn addresses(list: &[Mailbox]) -> Array {
    list.iter()
        .map(|m| Dynamic::from(m.address.to_ascii_lowercase()))
        .collect()
}

/// The mail as rules see it. `thread`: the ticket it answers, if the engine found one.
pub(crate) fn mail_map(m: &Mail, thread: Option<TicketId>) -> Map {
    let mut map = Map::new();
    map.insert("message_id".into(), m.message_id.clone().into());
    map.insert(
        "from".into(),
        m.from
            .as_ref()
            .map(|f| f.address.to_ascii_lowercase())
            .unwrap_or_default()
            .into(),
    );
    map.insert(
        "from_name".into(),
        m.from
            .as_ref()
            .and_then(|f| f.name.clone())
            .unwrap_or_default()
            .into(),
    );
    map.insert("to".into(), addresses(&m.to).into());
    map.insert("cc".into(), addresses(&m.cc).into());
    map.insert("subject".into(), m.subject.clone().into());
    map.insert("body".into(), m.body.clone().into());
    map.insert("html_only".into(), m.html_only.into());
    map.insert(
        "date".into(),
        m.date
            .map(|d| Dynamic::from(d.to_string()))
            .unwrap_or(Dynamic::UNIT),
    );
    let headers: Map = m
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
        .collect();
    map.insert("headers".into(), headers.into());
    let attachments: Array = m
        .attachments
        .iter()
        .map(|a| {
            let mut one = Map::new();
            one.insert("name".into(), a.name.clone().into());
            one.insert("content_type".into(), a.content_type.clone().into());
            one.insert("size".into(), (a.size as i64).into());
            Dynamic::from_map(one)
        })
        .collect();
    map.insert("attachments".into(), attachments.into());
    map.insert("is_reply".into(), m.is_reply().into());
    map.insert(
        "ticket_id".into(),
        thread
            .map(|t| Dynamic::from(t.to_string()))
            .unwrap_or(Dynamic::UNIT),
    );
    map
}
