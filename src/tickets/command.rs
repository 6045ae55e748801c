//! Agents' writes as data: what a person (or itsmd's own housekeeping) asked the engine to do
//! to tickets. Commands travel as events, so they are ordered with alerts and rules and land
//! in the event journal like every other input. Plain data; the engine validates and applies.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

use crate::tickets::{
    Actor, ChangeType, HoldReason, Kind, Level, LinkRel, Resolution, ReviewOutcome, State,
    TicketId, Visibility, Window,
};

/// One write, and who asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// Recorded as the actor of every history entry the command causes.
    pub by: Actor,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    Create(NewTicket),
    Update {
        ticket: TicketId,
        fields: TicketUpdate,
        /// The assignee the writer saw (empty: nobody), checked when the engine applies the
        /// update: the console's Take must not take a ticket from someone who took it since
        /// the queue was drawn. `None`: no check (the API's writes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_assignee: Option<String>,
    },
    Transition {
        ticket: TicketId,
        step: TransitionRequest,
    },
    Comment {
        ticket: TicketId,
        comment: CommentRequest,
    },
    Link {
        ticket: TicketId,
        link: LinkRequest,
    },
    /// A change's post-implementation review.
    Review {
        ticket: TicketId,
        review: ReviewRequest,
    },
    /// Housekeeping: close resolved incidents and fulfilled requests that are due.
    AutoClose,
}

/// `POST /api/v1/tickets`. Unknown fields are refused: a misspelt field would otherwise be
/// silently dropped from a write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    pub kind: Kind,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Defaults to medium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Level>,
    /// Defaults to medium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Level>,
    /// A manual priority instead of the matrix's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
    /// Changes only; defaults to normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    /// Changes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Changes only: the service changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Changes only: `low`, `medium` or `high`. Text, so that the engine's check names the
    /// field and the allowed values (422) like every other field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
    /// Changes only: how to undo it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backout_plan: Option<String>,
    /// Standard changes only (and required for them): the `[changes.templates.ID]` followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, serde_json::Value>,
}

impl NewTicket {
    /// A ticket of `kind` with `title` and every other field left to the defaults.
    pub fn new(kind: Kind, title: String) -> NewTicket {
        NewTicket {
            kind,
            title,
            description: String::new(),
            group: None,
            assignee: None,
            impact: None,
            urgency: None,
            priority: None,
            tags: BTreeSet::new(),
            change_type: None,
            window: None,
            service: None,
            risk: None,
            backout_plan: None,
            template: None,
            custom: BTreeMap::new(),
        }
    }
}

/// `PATCH /api/v1/tickets/{id}`: absent fields stay; `null` clears the optional ones
/// (assignee, priority override, window).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub assignee: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Level>,
    /// A number sets a manual override; `null` returns to the matrix.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub priority: Option<Option<u8>>,
    /// Replaces the tag set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeSet<String>>,
    /// Changes only, while new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_type: Option<ChangeType>,
    /// Changes only.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub window: Option<Option<Window>>,
    /// Changes only; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub service: Option<Option<String>>,
    /// Changes only, while new or in assessment: `low`, `medium` or `high`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<String>,
    /// Changes only; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub backout_plan: Option<Option<String>>,
    /// Merged into the custom fields; a `null` value removes that field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, serde_json::Value>,
    /// Assigns the ticket to a configured partner vendor (which is then sent webhooks about
    /// it); `null` takes it away.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub vendor: Option<Option<String>>,
    /// Why, recorded in the history (optional for edits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TicketUpdate {
    /// True when no field is given (a reason alone changes nothing).
    pub fn is_empty(&self) -> bool {
        TicketUpdate {
            reason: None,
            ..self.clone()
        } == TicketUpdate::default()
    }
}

/// Present-and-null becomes `Some(None)`, absent stays `None` (with `default`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `POST /api/v1/tickets/{id}/transitions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    pub to: State,
    /// Why, in words; required, and recorded in the history.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<HoldReason>,
    /// A change's review outcome, when closing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReviewOutcome>,
    /// Why a change is implemented outside its planned window: allowed only to one of its
    /// approvers, and recorded in the history (emergency changes need none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_override: Option<String>,
}

/// `POST /api/v1/tickets/{id}/review`: a change's post-implementation review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub outcome: ReviewOutcome,
    /// What was found and learnt; required.
    pub notes: String,
}

/// `POST /api/v1/tickets/{id}/comments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    pub body: String,
    /// Defaults to internal, so nothing reaches a caller by accident.
    #[serde(default = "internal")]
    pub visibility: Visibility,
}

fn internal() -> Visibility {
    Visibility::Internal
}

/// `POST /api/v1/tickets/{id}/links`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// How this ticket relates to `ticket`.
    pub rel: LinkRel,
    pub ticket: TicketId,
}

/// A stored comment. Comments are their own records (listed per ticket) and each also has a
/// history entry on the ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Position among the ticket's comments, from 1.
    pub seq: u64,
    pub at: Timestamp,
    pub author: Actor,
    pub visibility: Visibility,
    pub body: String,
    /// The event that added it.
    pub event: crate::event::EventId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_absent_from_null() {
        let u: TicketUpdate = serde_json::from_str(r#"{"assignee": null}"#).unwrap();
        assert_eq!(u.assignee, Some(None));
        assert_eq!(u.priority, None);
        let u: TicketUpdate = serde_json::from_str(r#"{"priority": 2}"#).unwrap();
        assert_eq!(u.priority, Some(Some(2)));
        assert!(serde_json::from_str::<TicketUpdate>(r#"{"asignee": "x"}"#).is_err());
    }

    #[test]
    fn commands_round_trip_through_the_journal_format() {
        let c = Command {
            by: Actor::User {
                name: "alice".into(),
            },
            action: Action::Update {
                ticket: "INC-000001".parse().unwrap(),
                fields: TicketUpdate {
                    assignee: Some(None),
                    ..TicketUpdate::default()
                },
                if_assignee: Some(String::new()),
            },
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), c);
    }
}
