//! The change calendar: every change whose planned window overlaps a time range, in window
//! order, each with the changes to the same service whose windows overlap its own
//! (`conflicts`). Canceled and rejected changes will not happen, so they are neither listed
//! nor conflict. Conflicts are judged against every change, not only those in the range: a
//! window that starts inside the range can clash with one that starts after it.

use jiff::Timestamp;
use serde::Serialize;

use crate::store::{Store, StoreError, Tree, decode};
use crate::tickets::{ChangeType, Kind, Risk, State, Ticket, TicketId, Window};

/// One change on the calendar.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: TicketId,
    pub title: String,
    pub state: State,
    #[serde(rename = "type")]
    pub change_type: ChangeType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    pub window: Window,
    /// Changes to the same service with overlapping windows, in id order; empty: none.
    pub conflicts: Vec<TicketId>,
}

/// Half-open intervals `[start, end)` overlap.
fn overlaps(a: &Window, start: Timestamp, end: Timestamp) -> bool {
    a.start < end && start < a.end
}

/// The calendar of `changes` (any tickets; only changes with a window count) for
/// `[from, to)`.
pub fn build(changes: &[Ticket], from: Timestamp, to: Timestamp) -> Vec<Entry> {
    let planned: Vec<(&Ticket, Window, Option<&str>)> = changes
        .iter()
        .filter(|t| t.kind() == Kind::Change && planned(t))
        .filter_map(|t| {
            let c = t.process.change.as_ref()?;
            Some((t, c.window?, c.service.as_deref()))
        })
        .collect();
    let mut out: Vec<Entry> = planned
        .iter()
        .filter(|(_, w, _)| overlaps(w, from, to))
        .map(|(t, w, service)| {
            let mut conflicts: Vec<TicketId> = planned
                .iter()
                .filter(|(o, ow, os)| {
                    o.id != t.id
                        && service.is_some()
                        && os == service
                        && overlaps(ow, w.start, w.end)
                })
                .map(|(o, _, _)| o.id)
                .collect();
            conflicts.sort();
            let c = t.process.change.as_ref();
            Entry {
                id: t.id,
                title: t.title.clone(),
                state: t.state,
                change_type: c.map(|c| c.change_type).unwrap_or_default(),
                service: service.map(str::to_string),
                risk: c.and_then(|c| c.risk),
                window: *w,
                conflicts,
            }
        })
        .collect();
    out.sort_by_key(|e| (e.window.start, e.id));
    out
}

/// Whether `t` is on the calendar at all: a change with a window that will or did happen.
fn planned(t: &Ticket) -> bool {
    t.process
        .change
        .as_ref()
        .is_some_and(|c| c.window.is_some())
        && !matches!(t.state, State::Canceled | State::Rejected)
}

/// Every change in the store that has a window and was neither canceled nor rejected (a
/// scan of the change tickets: there is no index by window; only these are kept).
pub fn planned_changes(store: &dyn Store) -> Result<Vec<Ticket>, StoreError> {
    let mut out = Vec::new();
    for item in store.scan_prefix(Tree::Tickets, Kind::Change.prefix().as_bytes()) {
        let (_, v) = item?;
        let mut t: Ticket = decode(Tree::Tickets, &v)?;
        if planned(&t) {
            crate::store::layout::links::fill(store, &mut t)?;
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::{ChangeInfo, Level, ProcessFields};

    fn change(n: u64, service: &str, start: &str, end: &str, state: State) -> Ticket {
        let at: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        Ticket {
            id: TicketId {
                kind: Kind::Change,
                number: n,
            },
            state,
            title: format!("change {n}"),
            description: String::new(),
            group: None,
            assignee: None,
            impact: Level::Medium,
            urgency: Level::Medium,
            priority: 3,
            tags: Default::default(),
            correlation_key: None,
            key_source: None,
            alert: None,
            custom: Default::default(),
            process: ProcessFields {
                change: Some(ChangeInfo {
                    window: Some(Window {
                        start: start.parse().unwrap(),
                        end: end.parse().unwrap(),
                    }),
                    service: Some(service.into()),
                    ..ChangeInfo::default()
                }),
                ..ProcessFields::default()
            },
            created_at: at,
            updated_at: at,
            history_len: 0,
            sla: Default::default(),
        }
    }

    #[test]
    fn overlapping_windows_on_one_service_conflict_and_others_do_not() {
        let all = [
            change(
                1,
                "db",
                "2026-03-02T10:00:00Z",
                "2026-03-02T12:00:00Z",
                State::Scheduled,
            ),
            // Starts after the range, but overlaps change 1.
            change(
                2,
                "db",
                "2026-03-02T11:00:00Z",
                "2026-03-02T13:00:00Z",
                State::Authorize,
            ),
            // Same time, other service.
            change(
                3,
                "web",
                "2026-03-02T10:00:00Z",
                "2026-03-02T12:00:00Z",
                State::Scheduled,
            ),
            // Touching end to start is no overlap.
            change(
                4,
                "db",
                "2026-03-02T09:00:00Z",
                "2026-03-02T10:00:00Z",
                State::Closed,
            ),
            // Canceled: neither listed nor a conflict.
            change(
                5,
                "db",
                "2026-03-02T10:00:00Z",
                "2026-03-02T12:00:00Z",
                State::Canceled,
            ),
        ];
        let from = "2026-03-02T09:30:00Z".parse().unwrap();
        let to = "2026-03-02T11:00:00Z".parse().unwrap();
        let cal = build(&all, from, to);
        let shown: Vec<(u64, Vec<u64>)> = cal
            .iter()
            .map(|e| (e.id.number, e.conflicts.iter().map(|c| c.number).collect()))
            .collect();
        assert_eq!(shown, [(4, vec![]), (1, vec![2]), (3, vec![])]);
    }
}
