//! Agents' commands through the real engine on an in-memory store: preconditions that are
//! checked where the write is applied, not where it was asked for.

use std::sync::Arc;

use crate::engine::{Refusal, SubmitError};
use crate::event::EventBody;
use crate::store::MemoryStore;
use crate::tickets::{Action, Actor, Command, NewTicket, TicketUpdate};

const CONFIG: &str = r#"
[groups.triage]
[groups.ops]
members = ["ann", "bob"]
"#;

fn take(ticket: crate::tickets::TicketId, who: &str) -> EventBody {
    EventBody::Command(Command {
        by: Actor::User { name: who.into() },
        action: Action::Update {
            ticket,
            fields: TicketUpdate {
                assignee: Some(Some(who.into())),
                ..TicketUpdate::default()
            },
            if_assignee: Some(String::new()),
        },
    })
}

/// Two agents press Take on the same unassigned ticket at once: the engine applies one, and
/// refuses the other as a conflict that names who has it, whichever order they arrive in.
#[tokio::test]
async fn of_two_takes_at_once_one_wins_and_the_other_is_told_who_has_it() {
    let config = crate::config::parse(CONFIG, "test").unwrap();
    let rules = crate::engine::test_support::rules(&config, &[]);
    let store = Arc::new(MemoryStore::default());
    let (engine, _clock) =
        crate::engine::test_support::engine(&config, store.clone(), rules, "2026-01-05T09:00:00Z");
    let new: NewTicket = serde_json::from_value(
        serde_json::json!({"kind": "incident", "title": "Disk full", "group": "ops"}),
    )
    .unwrap();
    let by = Actor::User { name: "ann".into() };
    let created = engine
        .submit(EventBody::Command(Command {
            by,
            action: Action::Create(new),
        }))
        .await
        .unwrap();
    let id = created.ticket.unwrap();

    let (a, b) = tokio::join!(
        engine.submit(take(id, "ann")),
        engine.submit(take(id, "bob"))
    );
    let (winner, refused) = match (a, b) {
        (Ok(_), Err(e)) => ("ann", e),
        (Err(e), Ok(_)) => ("bob", e),
        other => panic!("exactly one take must win: {other:?}"),
    };
    match refused {
        SubmitError::Rejected(Refusal::Conflict(m)) => {
            assert_eq!(
                m,
                format!("{id} was assigned to {winner} meanwhile; nothing changed")
            )
        }
        other => panic!("not a conflict: {other:?}"),
    }
    let ticket = crate::store::layout::get_ticket(&*store, id)
        .unwrap()
        .unwrap();
    assert_eq!(ticket.assignee.as_deref(), Some(winner));
}
