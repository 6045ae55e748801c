//! Bounded list answers: a page stops at `server.max_list_bytes` of JSON, whatever its
//! `limit`, and says where to go on (its cursor), so a few concurrent `limit=300` listings of
//! large records cannot make the daemon build gigabytes of answer.

use serde::Serialize;

/// A listing's `limit` query parameter: `default` when absent, else a whole number from 1 to
/// `max`. The problem names the parameter, the range and what was sent, the same for every
/// listing.
pub fn limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, String> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("`limit` must be a whole number from 1 to {max}, got {raw:?}"))
}

/// The leading `items` whose JSON fits in `budget` bytes (always at least one, so a listing
/// makes progress), and whether any were left off.
pub fn within_budget<T: Serialize>(items: Vec<T>, budget: usize) -> (Vec<T>, bool) {
    let items = items.into_iter().map(Ok::<T, std::convert::Infallible>);
    match take_within(items, budget) {
        Ok(page) => page,
        Err(never) => match never {},
    }
}

/// Like [`within_budget`], reading `items` only as far as the budget goes: at most one item
/// past it is read (and left off), so memory stays near the budget however long the list.
pub fn take_within<T: Serialize, E>(
    items: impl Iterator<Item = Result<T, E>>,
    budget: usize,
) -> Result<(Vec<T>, bool), E> {
    let mut used = 0usize;
    let mut kept = Vec::new();
    for item in items {
        let item = item?;
        // A value that cannot be serialized fails the whole answer later; count it as nothing.
        used = used.saturating_add(serde_json::to_vec(&item).map_or(0, |v| v.len() + 1));
        if used > budget && !kept.is_empty() {
            return Ok((kept, true));
        }
        kept.push(item);
    }
    Ok((kept, false))
}

/// The `Link` header of a cut array answer: where its next page starts (RFC 8288).
pub fn next_link(path: &str, after: impl std::fmt::Display) -> (axum::http::HeaderName, String) {
    (
        axum::http::header::LINK,
        format!("<{path}?after={after}>; rel=\"next\""),
    )
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

    #[test]
    fn a_lazy_page_reads_one_item_past_the_budget_at_most() {
        let mut read = 0;
        let items = (0..1000).map(|_| {
            read += 1;
            Ok::<String, ()>("x".repeat(98))
        });
        let (kept, cut) = take_within(items, 350).unwrap();
        assert_eq!((kept.len(), cut, read), (3, true, 4));
        let failing = [Ok("a".to_string()), Err("broken")].into_iter();
        assert_eq!(take_within(failing, 100), Err("broken"));
    }
}
