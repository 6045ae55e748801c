//! "Did you mean": the nearest of the names a place accepts to a misspelt one, for the
//! errors of rule checks (hooks, fields) and of the configuration (sections).

/// The shortest candidate `word` (three letters or more) abbreviates, as `prio` for
/// `priority`; else the candidate nearest by edit distance, within three edits and within
/// half the word's length (so that `prio` is not "did you mean id").
pub(crate) fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let len = word.chars().count();
    let abbreviated = candidates
        .iter()
        .filter(|c| len >= 3 && c.len() > word.len() && c.starts_with(word))
        .min_by_key(|c| c.len())
        .copied();
    abbreviated.or_else(|| {
        candidates
            .iter()
            .map(|c| (edit_distance(c, word), *c))
            .min_by_key(|(d, _)| *d)
            .filter(|(d, _)| *d <= 3.min((len / 2).max(1)))
            .map(|(_, c)| c)
    })
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn the_nearest_within_three_edits_or_none() {
        let names = ["server", "store", "smtp"];
        assert_eq!(nearest("serverr", &names), Some("server"));
        assert_eq!(nearest("stor", &names), Some("store"));
        assert_eq!(nearest("retention", &names), None);
        let fields = ["priority", "group", "description"];
        assert_eq!(nearest("prio", &fields), Some("priority"));
        assert_eq!(nearest("descr", &fields), Some("description"));
        assert_eq!(nearest("pr", &fields), None);
    }
}
