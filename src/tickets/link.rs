//! Links between tickets: the relations, their inverses, and which kinds each may join.
//! Pure rules; the engine writes both ends in one event.

use serde::{Deserialize, Serialize};

use crate::tickets::vocab::names;
use crate::tickets::{Kind, TicketId};

/// One end of a link, as stored on the ticket it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// How this ticket relates to the other.
    pub rel: LinkRel,
    /// The other ticket.
    pub ticket: TicketId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkRel {
    /// An incident caused by a problem or a change.
    CausedBy,
    /// The inverse of caused_by.
    Causes,
    /// An incident or problem fixed by a change.
    FixedBy,
    /// The inverse of fixed_by.
    Fixes,
    /// A parent ticket of the same kind: resolving it resolves its open children.
    ParentOf,
    /// The inverse of parent_of.
    ChildOf,
    /// The same issue as another ticket of its kind; lets it be closed as duplicate.
    DuplicateOf,
    /// The inverse of duplicate_of.
    DuplicatedBy,
    /// An incident opened for an alert that fired again after an earlier incident of it
    /// closed (or stayed resolved past the reopen window).
    RecurrenceOf,
    /// The inverse of recurrence_of.
    RecurredAs,
    /// A ticket opened for a caller's mail that replied to a closed ticket: the new ticket
    /// is a follow-up of the closed one (any kinds).
    FollowUpOf,
    /// The inverse of follow_up_of.
    FollowedUpBy,
    /// An incident opened on a service while a change to it was being implemented or in its
    /// window (set by itsmd, or by hand).
    PossiblyCausedBy,
    /// The inverse of possibly_caused_by.
    PossiblyCauses,
}

impl LinkRel {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRel::CausedBy => "caused_by",
            LinkRel::Causes => "causes",
            LinkRel::FixedBy => "fixed_by",
            LinkRel::Fixes => "fixes",
            LinkRel::ParentOf => "parent_of",
            LinkRel::ChildOf => "child_of",
            LinkRel::DuplicateOf => "duplicate_of",
            LinkRel::DuplicatedBy => "duplicated_by",
            LinkRel::RecurrenceOf => "recurrence_of",
            LinkRel::RecurredAs => "recurred_as",
            LinkRel::FollowUpOf => "follow_up_of",
            LinkRel::FollowedUpBy => "followed_up_by",
            LinkRel::PossiblyCausedBy => "possibly_caused_by",
            LinkRel::PossiblyCauses => "possibly_causes",
        }
    }

    /// Every relation (the client's and the console's choices, the parser's names).
    pub const ALL: [LinkRel; 14] = [
        LinkRel::CausedBy,
        LinkRel::Causes,
        LinkRel::FixedBy,
        LinkRel::Fixes,
        LinkRel::ParentOf,
        LinkRel::ChildOf,
        LinkRel::DuplicateOf,
        LinkRel::DuplicatedBy,
        LinkRel::RecurrenceOf,
        LinkRel::RecurredAs,
        LinkRel::FollowUpOf,
        LinkRel::FollowedUpBy,
        LinkRel::PossiblyCausedBy,
        LinkRel::PossiblyCauses,
    ];

    /// Parses a relation by its name, listing the names when it is unknown.
    pub fn parse(s: &str) -> Result<LinkRel, String> {
        LinkRel::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = LinkRel::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "unknown link relation {s:?}; expected one of {}",
                    names(&all)
                )
            })
    }

    /// The relation as seen from the other end.
    pub fn inverse(self) -> LinkRel {
        match self {
            LinkRel::CausedBy => LinkRel::Causes,
            LinkRel::Causes => LinkRel::CausedBy,
            LinkRel::FixedBy => LinkRel::Fixes,
            LinkRel::Fixes => LinkRel::FixedBy,
            LinkRel::ParentOf => LinkRel::ChildOf,
            LinkRel::ChildOf => LinkRel::ParentOf,
            LinkRel::DuplicateOf => LinkRel::DuplicatedBy,
            LinkRel::DuplicatedBy => LinkRel::DuplicateOf,
            LinkRel::RecurrenceOf => LinkRel::RecurredAs,
            LinkRel::RecurredAs => LinkRel::RecurrenceOf,
            LinkRel::FollowUpOf => LinkRel::FollowedUpBy,
            LinkRel::FollowedUpBy => LinkRel::FollowUpOf,
            LinkRel::PossiblyCausedBy => LinkRel::PossiblyCauses,
            LinkRel::PossiblyCauses => LinkRel::PossiblyCausedBy,
        }
    }

    /// A relation a ticket may have only once (one parent, one original).
    pub fn is_single(self) -> bool {
        matches!(self, LinkRel::ChildOf | LinkRel::DuplicateOf)
    }

    /// The kinds (source, target) the forward relations join; inverses swap them.
    fn ends(self) -> Option<(&'static [Kind], &'static [Kind])> {
        match self {
            LinkRel::CausedBy => Some((&[Kind::Incident], &[Kind::Problem, Kind::Change])),
            LinkRel::FixedBy => Some((&[Kind::Incident, Kind::Problem], &[Kind::Change])),
            LinkRel::PossiblyCausedBy => Some((&[Kind::Incident], &[Kind::Change])),
            LinkRel::FollowUpOf => Some((&Kind::ALL, &Kind::ALL)),
            _ => None,
        }
    }

    /// Whether a ticket of kind `from` may have this relation to one of kind `to`.
    pub fn check(self, from: Kind, to: Kind) -> Result<(), String> {
        let (sources, targets, forward) = match (self.ends(), self.inverse().ends()) {
            (Some((s, t)), _) => (s, t, self),
            (None, Some((s, t))) => (t, s, self.inverse()),
            // parent/child and duplicates join tickets of one kind.
            (None, None) if from == to => return Ok(()),
            (None, None) => {
                return Err(format!(
                    "{} links tickets of the same kind, not {} to {}",
                    self.as_str(),
                    from.as_str(),
                    to.as_str()
                ));
            }
        };
        if sources.contains(&from) && targets.contains(&to) {
            return Ok(());
        }
        let kinds = |ks: &[Kind]| names(&ks.iter().map(|k| k.as_str()).collect::<Vec<_>>());
        Err(format!(
            "{} cannot link {} to {}: {} goes from {} to {}",
            self.as_str(),
            from.as_str(),
            to.as_str(),
            forward.as_str(),
            kinds(sources),
            kinds(targets)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Kind::*;

    /// The names the client and the console offer are every name the API takes: each
    /// relation's inverse is listed too, and each name parses back to its relation.
    #[test]
    fn every_relation_the_api_takes_is_listed() {
        for r in LinkRel::ALL {
            assert!(LinkRel::ALL.contains(&r.inverse()), "{r:?}'s inverse");
            assert_eq!(LinkRel::parse(r.as_str()), Ok(r));
            let via_serde: LinkRel = serde_json::from_value(serde_json::json!(r.as_str())).unwrap();
            assert_eq!(via_serde, r);
        }
        assert_eq!(LinkRel::parse("follow_up_of"), Ok(LinkRel::FollowUpOf));
    }

    #[test]
    fn relations_join_the_kinds_of_the_design() {
        let ok = [
            (LinkRel::CausedBy, Incident, Problem),
            (LinkRel::CausedBy, Incident, Change),
            (LinkRel::Causes, Problem, Incident),
            (LinkRel::FixedBy, Incident, Change),
            (LinkRel::FixedBy, Problem, Change),
            (LinkRel::Fixes, Change, Problem),
            (LinkRel::ParentOf, Incident, Incident),
            (LinkRel::ChildOf, Request, Request),
            (LinkRel::DuplicateOf, Problem, Problem),
            (LinkRel::FollowUpOf, Incident, Request),
            (LinkRel::FollowedUpBy, Request, Change),
        ];
        for (rel, from, to) in ok {
            assert_eq!(rel.check(from, to), Ok(()), "{rel:?} {from:?} → {to:?}");
        }
        let bad = [
            (LinkRel::CausedBy, Problem, Incident),
            (LinkRel::CausedBy, Incident, Request),
            (LinkRel::FixedBy, Change, Change),
            (LinkRel::Causes, Incident, Problem),
            (LinkRel::ParentOf, Incident, Problem),
            (LinkRel::DuplicateOf, Incident, Request),
        ];
        for (rel, from, to) in bad {
            assert!(rel.check(from, to).is_err(), "{rel:?} {from:?} → {to:?}");
        }
        assert_eq!(
            LinkRel::CausedBy.check(Problem, Incident).unwrap_err(),
            "caused_by cannot link problem to incident: caused_by goes from incident to problem, change"
        );
    }

    #[test]
    fn inverse_is_an_involution() {
        for rel in [
            LinkRel::CausedBy,
            LinkRel::FixedBy,
            LinkRel::ParentOf,
            LinkRel::DuplicateOf,
        ] {
            assert_ne!(rel.inverse(), rel);
            assert_eq!(rel.inverse().inverse(), rel);
        }
    }
}
