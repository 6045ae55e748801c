//! The diff against the obvious one (both tickets as JSON values, compared field by field),
//! over many random pairs of tickets.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{diff, link_added, links_change};
use crate::alerts::AlertStatus;
use crate::test_rng::Rng;
use crate::tickets::{AlertLink, FieldChange, Kind, Link, LinkRel, State, Ticket, TicketId};

/// What the diff must answer: every top-level field but links compared as a JSON value, then
/// the links change.
fn expected(before: Option<&Ticket>, after: &Ticket) -> Vec<FieldChange> {
    let without_links = |t: &Ticket| {
        let mut t = t.clone();
        t.process.links = Vec::new();
        match serde_json::to_value(&t).unwrap() {
            Value::Object(m) => m,
            other => panic!("a ticket is an object, not {other}"),
        }
    };
    let old = before.map(without_links).unwrap_or_default();
    let new = without_links(after);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut changes: Vec<FieldChange> = keys
        .into_iter()
        .filter(|k| !["updated_at", "history_len", "state_since"].contains(&k.as_str()))
        // A new ticket's entry leaves out its identity and its empty fields.
        .filter(|k| {
            before.is_some()
                || !(["id", "created_at"].contains(&k.as_str())
                    || new.get(*k).is_none_or(|v| {
                        v.is_null()
                            || v.as_str() == Some("")
                            || v.as_array().is_some_and(|a| a.is_empty())
                            || v.as_object().is_some_and(|o| o.is_empty())
                    }))
        })
        .filter_map(|k| {
            let (o, n) = (old.get(k), new.get(k));
            (o != n).then(|| FieldChange {
                field: k.clone(),
                old: o.cloned().unwrap_or(Value::Null),
                new: n.cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    let before_links = before.map(|b| b.process.links.clone()).unwrap_or_default();
    if before_links != after.process.links {
        let at = changes.partition_point(|c| c.field.as_str() < "links");
        changes.insert(at, links_change(&before_links, &after.process.links));
    }
    changes
}

/// One of a few words, some needing escapes in JSON.
fn word(rng: &mut Rng) -> String {
    ["a", "b", "db", "é \"quoted\"", ""][rng.below(5) as usize].to_string()
}

fn id(number: u64) -> TicketId {
    TicketId {
        kind: Kind::Incident,
        number,
    }
}

/// Changes a few random fields of `t`.
fn mutate(rng: &mut Rng, t: &mut Ticket) {
    for _ in 0..=rng.below(4) {
        match rng.below(16) {
            0 => t.title = word(rng),
            1 => t.description = word(rng),
            2 => {
                t.group =
                    [None, Some("dba".into()), Some("ops".into())][rng.below(3) as usize].clone()
            }
            3 => t.assignee = rng.below(2).eq(&0).then(|| word(rng)),
            4 => t.priority = rng.below(5) as u8 + 1,
            5 => {
                let tag = word(rng);
                if !t.tags.remove(&tag) {
                    t.tags.insert(tag);
                }
            }
            6 => {
                let value = [
                    json!(null),
                    json!(1),
                    json!({"b": [1, 2], "a": "x"}),
                    json!("s"),
                ][rng.below(4) as usize]
                    .clone();
                let key = word(rng);
                if value.is_null() {
                    t.custom.remove(&key);
                } else {
                    t.custom.insert(key, value);
                }
            }
            7 => t.correlation_key = rng.below(2).eq(&0).then(|| word(rng)),
            8 => {
                let at = Timestamp::from_second(1_700_000_000 + rng.below(100) as i64).unwrap();
                t.alert = rng.below(3).ne(&0).then(|| AlertLink {
                    source: word(rng),
                    status: [AlertStatus::Firing, AlertStatus::Resolved][rng.below(2) as usize],
                    count: rng.below(3),
                    first_seen: at,
                    last_seen: at,
                    last_event: rng.below(9),
                    service: rng.below(2).eq(&0).then(|| word(rng)),
                    alerts: Default::default(),
                    changes: Vec::new(),
                    flapping_until: None,
                });
            }
            9 => {
                let rel = [LinkRel::CausedBy, LinkRel::Causes, LinkRel::DuplicateOf]
                    [rng.below(3) as usize];
                let link = Link {
                    rel,
                    ticket: id(rng.below(5)),
                };
                match rng.below(3) {
                    0 if !t.process.links.is_empty() => {
                        let at = rng.below(t.process.links.len() as u64) as usize;
                        t.process.links.remove(at);
                    }
                    1 => t.process.links.reverse(),
                    _ => t.process.links.push(link),
                }
            }
            10 => t.process.vendor = rng.below(2).eq(&0).then(|| word(rng)),
            11 => t.process.comments += 1,
            12 => {
                t.process.state_since = Some(Timestamp::from_second(rng.below(9) as i64).unwrap())
            }
            13 => t.sla.policy = rng.below(2).eq(&0).then(|| word(rng)),
            14 => t.state = [State::New, State::InProgress, State::Resolved][rng.below(3) as usize],
            _ => {
                t.updated_at = Timestamp::from_second(rng.below(9) as i64).unwrap();
                t.history_len += 1;
            }
        }
    }
}

#[test]
fn the_diff_is_the_fields_that_differ_as_json_values() {
    for seed in 1..=3_000u64 {
        let mut rng = Rng::seeded(seed);
        let mut before = Ticket::blank(id(seed), Timestamp::from_second(1).unwrap());
        mutate(&mut rng, &mut before);
        let mut after = before.clone();
        mutate(&mut rng, &mut after);
        assert_eq!(
            diff(Some(&before), &after),
            expected(Some(&before), &after),
            "seed {seed}"
        );
        assert_eq!(
            diff(None, &after),
            expected(None, &after),
            "seed {seed}, new ticket"
        );
        assert!(
            diff(Some(&after), &after).is_empty(),
            "seed {seed}, no change"
        );
    }
}

#[test]
fn a_new_ticket_records_its_fields_in_name_order_without_the_unrecorded_ones() {
    let mut t = Ticket::blank(id(1), Timestamp::from_second(1).unwrap());
    t.title = "Disk full".into();
    t.process.links.push(Link {
        rel: LinkRel::CausedBy,
        ticket: id(2),
    });
    let fields: Vec<String> = diff(None, &t).into_iter().map(|c| c.field).collect();
    let mut sorted = fields.clone();
    sorted.sort();
    assert_eq!(fields, sorted);
    for present in ["links", "priority", "state", "title"] {
        assert!(
            fields.iter().any(|f| f == present),
            "{present} in {fields:?}"
        );
    }
    // Its id and creation time are the ticket itself; its empty description is no change.
    for absent in [
        "updated_at",
        "history_len",
        "id",
        "created_at",
        "description",
    ] {
        assert!(
            !fields.iter().any(|f| f == absent),
            "{absent} in {fields:?}"
        );
    }
}

#[test]
fn a_links_change_holds_the_links_removed_and_added_not_the_lists() {
    let link = |rel, number| Link {
        rel,
        ticket: id(number),
    };
    let (a, b, c) = (
        link(LinkRel::Causes, 1),
        link(LinkRel::Causes, 2),
        link(LinkRel::Fixes, 3),
    );
    let as_json = |l: &[Link]| serde_json::to_value(l).unwrap();
    let grew = links_change(&[a, b], &[a, b, c]);
    assert_eq!((grew.old, grew.new), (json!([]), as_json(&[c])));
    let first = links_change(&[], &[a]);
    assert_eq!((first.old, first.new), (json!([]), as_json(&[a])));
    let reordered = links_change(&[a, b], &[c, a]);
    assert_eq!(
        (reordered.old, reordered.new),
        (as_json(&[b]), as_json(&[c]))
    );
}

#[test]
fn a_link_added_is_what_the_diff_says_of_it() {
    let mut rng = Rng::seeded(7);
    let mut before = Ticket::blank(id(1), Timestamp::from_second(1).unwrap());
    for _ in 0..20 {
        mutate(&mut rng, &mut before);
        let link = Link {
            rel: LinkRel::CausedBy,
            ticket: id(rng.below(9) + 10),
        };
        let mut after = before.clone();
        after.process.links.push(link);
        assert_eq!(diff(Some(&before), &after), vec![link_added(link)]);
    }
}
