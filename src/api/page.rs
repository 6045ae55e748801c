//! Bounded list answers: a page stops at `server.max_list_bytes` of JSON, whatever its
//! `limit`, and says where to go on (its cursor), so a few concurrent `limit=300` listings of
//! large records cannot make the daemon build gigabytes of answer.

use serde::Serialize;

/// The leading `items` whose JSON fits in `budget` bytes (always at least one, so a listing
/// makes progress), and whether any were left off.
pub fn within_budget<T: Serialize>(mut items: Vec<T>, budget: usize) -> (Vec<T>, bool) {
    let mut used = 0usize;
    let mut keep = items.len();
    for (i, item) in items.iter().enumerate() {
        // A value that cannot be serialized fails the whole answer later; count it as nothing.
        used = used.saturating_add(serde_json::to_vec(item).map_or(0, |v| v.len() + 1));
        if used > budget && i > 0 {
            keep = i;
            break;
        }
    }
    let cut = keep < items.len();
    items.truncate(keep);
    (items, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_stops_at_the_budget_but_keeps_at_least_one() {
        let items: Vec<String> = (0..10).map(|_| "x".repeat(98)).collect();
        // Each is 100 bytes of JSON plus a separator.
        let (kept, cut) = within_budget(items.clone(), 350);
        assert_eq!((kept.len(), cut), (3, true));
        let (kept, cut) = within_budget(items.clone(), 10_000);
        assert_eq!((kept.len(), cut), (10, false));
        let (kept, cut) = within_budget(items, 5);
        assert_eq!((kept.len(), cut), (1, true));
    }
}
