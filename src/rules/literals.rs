//! What `rules check` finds in the literal arguments of rule calls, before any rule runs: a
//! query map's misspelt key (`tickets(#{ servce: "db" })`), an `open_ticket` of an unknown
//! kind or with an unknown field, a calendar the configuration does not have. At run time
//! each of these fails the rule (the ticket goes to triage); here it is an error with
//! file:line:column and the nearest name. Arguments the rule computes are checked when it
//! runs.

use super::fields::{Unknown, code_only, is_ident, line_column};
use super::queries::{
    OPEN_TICKETS_KEYS, RECENT_ALERTS_KEYS, TICKET_QUERY_KEYS, unknown_key_message,
};
use crate::tickets::Kind;

/// The queries whose one argument is a map, with the keys each takes.
const QUERIES: &[(&str, &[&str])] = &[
    ("tickets", TICKET_QUERY_KEYS),
    ("count_tickets", TICKET_QUERY_KEYS),
    ("open_tickets", OPEN_TICKETS_KEYS),
    ("recent_alerts", RECENT_ALERTS_KEYS),
];

/// The functions whose first argument is a calendar's name.
const CALENDAR_CALLS: &[&str] = &["in_business_hours", "business_time_until"];

/// A call found in the code: its name, whether it is a method (`x.name(`), and where its
/// argument list starts (just after the `(`).
struct Call {
    name: String,
    method: bool,
    args: usize,
}

fn calls(code: &[char]) -> Vec<Call> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        if !is_ident(code[i]) || (i > 0 && is_ident(code[i - 1])) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < code.len() && is_ident(code[j]) {
            j += 1;
        }
        let mut k = j;
        while k < code.len() && code[k] == ' ' {
            k += 1;
        }
        if k < code.len() && code[k] == '(' {
            let before = code[..i].iter().rev().find(|c| **c != ' ');
            out.push(Call {
                name: code[i..j].iter().collect(),
                method: before == Some(&'.'),
                args: k + 1,
            });
        }
        i = j;
    }
    out
}

fn skip_spaces(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

/// The string literal starting at `i` (a `"` in `code`), read from `text`, and where it ends.
fn string_at(code: &[char], text: &[char], i: usize) -> Option<(String, usize)> {
    if code.get(i) != Some(&'"') {
        return None;
    }
    let end = (i + 1..code.len()).find(|&j| code[j] == '"')?;
    let literal: String = text[i + 1..end].iter().collect();
    (!literal.contains('\\')).then_some((literal, end + 1))
}

/// The keys written at the top level of the map literal `#{…}` starting at `i`, with where
/// each is. Quoted keys and the keys of nested maps are not read.
fn map_keys(code: &[char], i: usize) -> Vec<(String, usize)> {
    if code.get(i) != Some(&'#') || code.get(i + 1) != Some(&'{') {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut expect_key = true;
    let mut j = i + 2;
    while j < code.len() {
        let c = code[j];
        match c {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' if depth == 0 => break,
            '}' | ']' | ')' => depth -= 1,
            ',' if depth == 0 => expect_key = true,
            c if depth == 0 && expect_key && is_ident(c) => {
                let start = j;
                while j < code.len() && is_ident(code[j]) {
                    j += 1;
                }
                let after = skip_spaces(code, j);
                if code.get(after) == Some(&':') {
                    out.push((code[start..j].iter().collect(), start));
                }
                expect_key = false;
                continue;
            }
            c if !c.is_whitespace() => expect_key = false,
            _ => {}
        }
        j += 1;
    }
    out
}

/// The problems of the literal query maps and `open_ticket` calls in a rule file's `text`.
pub fn problems(text: &str) -> Vec<Unknown> {
    let code = code_only(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut push = |at: usize, message: String| {
        let (line, column) = line_column(&code, at);
        out.push(Unknown {
            line,
            column,
            message,
        });
    };
    for call in calls(&code) {
        if let Some((name, keys)) = QUERIES.iter().find(|(q, _)| *q == call.name)
            && !call.method
        {
            for (key, at) in map_keys(&code, skip_spaces(&code, call.args)) {
                if !keys.contains(&key.as_str()) {
                    push(at, format!("{name}: {}", unknown_key_message(&key, keys)));
                }
            }
        }
        if call.name == "open_ticket" && call.method {
            let first = skip_spaces(&code, call.args);
            let Some((kind, after)) = string_at(&code, &chars, first) else {
                continue;
            };
            if let Err(e) = kind.parse::<Kind>() {
                push(first, format!("open_ticket: {e}"));
            }
            let comma = skip_spaces(&code, after);
            if code.get(comma) != Some(&',') {
                continue;
            }
            let fields = super::actions::OPEN_FIELDS;
            for (key, at) in map_keys(&code, skip_spaces(&code, comma + 1)) {
                if !fields.contains(&key.as_str()) {
                    let hint = crate::suggest::nearest(&key, fields)
                        .map(|n| format!("did you mean {n}? "))
                        .unwrap_or_default();
                    push(
                        at,
                        format!(
                            "open_ticket: unknown field `{key}`; {hint}expected {}",
                            fields.join(", ")
                        ),
                    );
                }
            }
        }
    }
    out
}

/// The calendars named by literal first arguments of `in_business_hours` and
/// `business_time_until` in `text` that are not in `known`, as `line:column: message`.
pub fn unknown_calendars(text: &str, known: &[&str]) -> Vec<Unknown> {
    let code = code_only(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    for call in calls(&code) {
        if call.method || !CALENDAR_CALLS.contains(&call.name.as_str()) {
            continue;
        }
        let first = skip_spaces(&code, call.args);
        let Some((name, _)) = string_at(&code, &chars, first) else {
            continue;
        };
        if !known.contains(&name.as_str()) {
            let (line, column) = line_column(&code, first);
            let hint = crate::suggest::nearest(&name, known)
                .map(|n| format!("did you mean {n}? "))
                .unwrap_or_default();
            out.push(Unknown {
                line,
                column,
                message: format!(
                    "{}: calendar `{name}` is not configured; {hint}calendars: {}",
                    call.name,
                    known.join(", ")
                ),
            });
        }
    }
    out
}

/// The `.rhai` files of `dir` in name order with their text, for the checks that read rule
/// files as written; a file that cannot be read is left to the rule loader to report.
pub fn rule_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t)))
        .collect()
}

/// `itsmd check` / `rules check`: the literal calendar names in the rule files of `dir` that
/// `known` (the configured calendars and `24x7`) lacks, as `file:line:column: message`.
pub fn calendar_problems(dir: &std::path::Path, known: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in rule_files(dir) {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        for u in unknown_calendars(&text, known) {
            out.push(format!("{name}:{}:{}: {}", u.line, u.column, u.message));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(u: Vec<Unknown>) -> Vec<String> {
        u.into_iter()
            .map(|u| format!("{}:{}: {}", u.line, u.column, u.message))
            .collect()
    }

    #[test]
    fn misspelt_query_keys_and_open_ticket_fields_are_named_with_their_place() {
        let text = r#"fn on_alert(alert, ticket) {
    let n = count_tickets(#{ kind: "incident", servce: "db", labels: #{ anything: "x" } });
    let o = open_tickets(#{ grup: "dba" });
    let r = recent_alerts(#{ labels: #{}, minutes: 5 });
    ticket.open_ticket("problm", #{ titel: "x", also: [] });
    ticket.open_ticket(alert.labels.kind, #{ title: "x" });
    let s = "tickets(#{ nope: 1 })"; // tickets(#{ nope: 1 })
}
"#;
        let got = found(problems(text));
        assert!(
            got[0].starts_with(
                "2:48: count_tickets: unknown query key `servce`; did you mean service?"
            ),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("3:29: open_tickets: unknown query key `grup`; did you mean group?"),
            "{got:#?}"
        );
        assert!(got[2].starts_with("5:24: open_ticket: "), "{got:#?}");
        assert!(got[2].contains("problm"), "{got:#?}");
        assert!(
            got[3].starts_with("5:37: open_ticket: unknown field `titel`; did you mean title?"),
            "{got:#?}"
        );
        assert_eq!(got.len(), 4, "{got:#?}");
    }

    #[test]
    fn a_literal_calendar_must_be_configured() {
        let text = "fn on_alert(a, t) {\n    if in_business_hours(\"ofice\") { t.add_tag(\"bh\"); }\n    let m = business_time_until(\"office\", \"2026-12-08T17:00:00Z\");\n}\n";
        let got = found(unknown_calendars(text, &["24x7", "office"]));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].starts_with("2:26: in_business_hours: calendar `ofice` is not configured; did you mean office? calendars: 24x7, office"),
            "{got:#?}"
        );
    }
}
