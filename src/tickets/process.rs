//! The process side of a ticket: what its practice adds to the common fields (hold reason,
//! resolution, change window and review, request approval, links, comment count). Flattened
//! into [`super::Ticket`], so on the wire these are plain ticket fields. Plain data: the rules
//! about when each may change live in [`super::lifecycle`] and the engine.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::tickets::{Actor, ChangeType, HoldReason, Link, Resolution, ReviewOutcome, Risk};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcessFields {
    /// Fields a person or a vendor set (API, CLI, vendor callback): rules no longer change
    /// them on later events unless they `ticket.force(field, value)`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub set_by_hand: std::collections::BTreeSet<String>,
    /// Why the ticket waits; set exactly while it is on_hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reason: Option<HoldReason>,
    /// How it was resolved; set on resolving, cleared on reopen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// True while a person's manual priority stands instead of the matrix's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub priority_override: bool,
    /// When the ticket entered its current state (auto-close counts from here). Absent on
    /// tickets whose state was set by code that does not stamp it; `updated_at` stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since: Option<Timestamp>,
    /// Change specifics; present on every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeInfo>,
    /// Service-request approval, from the moment approval is requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Links to other tickets; each link is stored on both ends, with inverse relations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The partner vendor working the ticket: it is sent webhooks about it and may call back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// The vendor's own reference (case number), as its callbacks gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_ref: Option<String>,
    /// Number of comments; the next comment gets `comments + 1`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub comments: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChangeInfo {
    /// Decides the change's path through the lifecycle.
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    /// When the change will be carried out; required before `scheduled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// What the review found; required before `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ReviewOutcome>,
    /// The service it changes: the change calendar's conflicts and the incidents it may have
    /// caused are per service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// As assessed (fixed once the change is sent for authorization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// How to undo the change if it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backout_plan: Option<String>,
    /// The standard change template (`[changes.templates.ID]`) a standard change follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The post-implementation review, recorded while the change is in `review`; an
    /// emergency change cannot close without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
}

/// A post-implementation review: who reviewed, when, what it found and what was learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub by: Actor,
    pub at: Timestamp,
    pub outcome: ReviewOutcome,
    pub notes: String,
}

/// A planned implementation window; `start` is before `end`. (Agents write it as it is
/// stored: a misspelt `"ends"` is refused by name, not dropped.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// N-of-M approval of a service request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Approvals needed (N), as configured when approval was requested.
    pub required: u32,
    /// Who may approve (M names), as configured when approval was requested.
    pub approvers: Vec<String>,
    /// Who approved so far.
    #[serde(default)]
    pub approved_by: BTreeSet<String>,
    /// Who rejected it, if anyone (one rejection rejects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
}
