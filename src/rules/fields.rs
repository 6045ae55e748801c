//! What `rules check` knows of the objects each hook receives: the properties of `alert`,
//! `mail`, `ticket`, `clock` and `change`, and a look through each hook's body for a property
//! of its parameters that does not exist (`alert.sevrity`). A map answers a missing key with
//! `()`, so such a typo would otherwise run silently and never match; here it is an error
//! with file:line, the nearest property suggested.

/// What `alert` has (`rules::run::alert_map`, with `action` and `expired`).
pub const ALERT: &[&str] = &[
    "source",
    "key",
    "fingerprint",
    "status",
    "severity",
    "summary",
    "description",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "format",
    "acknowledged",
    "generator_url",
    "action",
    "expired",
];

/// What `mail` has (`mail::rules_view::mail_map`).
pub const MAIL: &[&str] = &[
    "from",
    "from_name",
    "to",
    "cc",
    "subject",
    "body",
    "html_only",
    "message_id",
    "date",
    "headers",
    "attachments",
    "is_reply",
    "ticket_id",
];

/// What `ticket` reads or sets (`rules::handle`'s getters and setters).
pub const TICKET: &[&str] = &[
    "id",
    "is_new",
    "kind",
    "state",
    "title",
    "description",
    "group",
    "assignee",
    "impact",
    "urgency",
    "priority",
    "tags",
    "key",
    "vendor",
    "flapping",
    "escalation",
    "sla_policy",
    "custom",
];

/// What `clock` has (`sla::step`).
pub const CLOCK: &[&str] = &["name", "stage", "percent", "policy", "due", "vendor"];

/// What `change` has (`engine::ticket_hooks::change_map`).
pub const CHANGE: &[&str] = &["kind", "fields", "by", "depth"];

/// The objects a hook's parameters are, in order.
pub fn objects(hook: &str) -> &'static [(&'static str, &'static [&'static str])] {
    match hook {
        "on_alert" => &[("alert", ALERT), ("ticket", TICKET)],
        "on_mail" => &[("mail", MAIL), ("ticket", TICKET)],
        "on_ticket" => &[("ticket", TICKET), ("change", CHANGE)],
        "on_clock" => &[("ticket", TICKET), ("clock", CLOCK)],
        _ => &[],
    }
}

/// One read of a property that does not exist: line and column (from 1) and the message.
pub struct Unknown {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// `text` with comments and the literal parts of strings blanked out (code inside a
/// template's `${…}` is kept), so that only code is searched; lines and columns are kept.
pub(super) fn code_only(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let blank = |out: &mut Vec<char>, i: usize| {
        if out[i] != '\n' {
            out[i] = ' ';
        }
    };
    let mut i = 0;
    // Template strings being read, each with the depth of `{` inside its current `${`.
    let mut templates: Vec<usize> = Vec::new();
    let mut in_template_text = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if in_template_text {
            if c == '\\' {
                blank(&mut out, i);
                if i + 1 < chars.len() {
                    blank(&mut out, i + 1);
                }
                i += 2;
                continue;
            }
            if c == '`' {
                in_template_text = false;
                templates.pop();
            } else if c == '$' && next == Some('{') {
                in_template_text = false;
                if let Some(depth) = templates.last_mut() {
                    *depth = 0;
                }
                i += 2;
                continue;
            } else {
                blank(&mut out, i);
            }
            i += 1;
            continue;
        }
        match (c, next) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    blank(&mut out, i);
                    i += 1;
                }
                continue;
            }
            ('/', Some('*')) => {
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    blank(&mut out, i);
                    i += 1;
                }
                for j in i..(i + 2).min(chars.len()) {
                    blank(&mut out, j);
                }
                i += 2;
                continue;
            }
            ('"', _) | ('\'', _) => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' {
                        blank(&mut out, i);
                        i += 1;
                    }
                    if i < chars.len() {
                        blank(&mut out, i);
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            ('`', _) => {
                templates.push(0);
                in_template_text = true;
            }
            ('{', _) if !templates.is_empty() => {
                if let Some(depth) = templates.last_mut() {
                    *depth += 1;
                }
            }
            ('}', _) if !templates.is_empty() => match templates.last_mut() {
                Some(0) => in_template_text = true,
                Some(depth) => *depth -= 1,
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    out
}

pub(super) fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The reads of properties `hook`'s objects do not have, in the body of `fn hook(params)`
/// (the parameters by the names the rule gave them), found in `text`.
pub fn unknown_reads(text: &str, hook: &str, params: &[&str]) -> Vec<Unknown> {
    let objects = objects(hook);
    let code = code_only(text);
    let Some((start, end)) = body(&code, hook) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut i = start;
    while i < end {
        if !is_ident(code[i]) || (i > 0 && (is_ident(code[i - 1]) || code[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < end && is_ident(code[j]) {
            j += 1;
        }
        let word: String = code[i..j].iter().collect();
        let object = params
            .iter()
            .position(|p| *p == word)
            .and_then(|n| objects.get(n));
        let mut k = j;
        while k < end && code[k] == ' ' {
            k += 1;
        }
        if let Some((what, known)) = object
            && k < end
            && code[k] == '.'
        {
            let mut p = k + 1;
            while p < end && code[p] == ' ' {
                p += 1;
            }
            let q = (p..end).find(|&x| !is_ident(code[x])).unwrap_or(end);
            let prop: String = code[p..q].iter().collect();
            let mut r = q;
            while r < end && code[r] == ' ' {
                r += 1;
            }
            let is_call = r < end && code[r] == '(';
            // `t.x = …` or `t.x += …`: an assignment, not a read.
            let next = |n: usize| (r + n < end).then(|| code[r + n]);
            let writes = match (next(0), next(1)) {
                (Some('='), second) => second != Some('='),
                (Some('+' | '-' | '*' | '/' | '%'), Some('=')) => true,
                _ => false,
            };
            let verb = if writes { "writes" } else { "reads" };
            if !prop.is_empty() && !is_call && !known.contains(&prop.as_str()) {
                let (line, column) = line_column(&code, i);
                let nearest = crate::suggest::nearest(&prop, known);
                let hint = nearest.map_or(String::new(), |n| format!("did you mean {n}? "));
                out.push(Unknown {
                    line,
                    column,
                    message: format!(
                        "{hook} {verb} `{word}.{prop}`, which the {what} does not have; {hint}{what} has {}",
                        known.join(", ")
                    ),
                });
            }
            i = q;
            continue;
        }
        i = j;
    }
    out
}

/// Where the body of `fn name(…)` starts and ends in `code` (between its braces).
fn body(code: &[char], name: &str) -> Option<(usize, usize)> {
    let text: String = code.iter().collect();
    let needle = format!("fn {name}");
    let mut from = 0;
    let at = loop {
        let found = text[from..].find(&needle)? + from;
        let after = text[found + needle.len()..].chars().next();
        if !after.is_some_and(is_ident) && (found == 0 || !text[..found].ends_with(is_ident)) {
            break found;
        }
        from = found + needle.len();
    };
    // Byte offsets to char offsets: the text is code with blanks, so count chars.
    let at = text[..at].chars().count();
    let open = (at..code.len()).find(|&i| code[i] == '{')?;
    let mut depth = 0usize;
    for (i, c) in code.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((open + 1, i));
                }
            }
            _ => {}
        }
    }
    None
}

pub(super) fn line_column(code: &[char], at: usize) -> (usize, usize) {
    let before = &code[..at];
    let line = before.iter().filter(|c| **c == '\n').count() + 1;
    let column = before.iter().rev().take_while(|c| **c != '\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(text: &str, hook: &str, params: &[&str]) -> Vec<String> {
        unknown_reads(text, hook, params)
            .into_iter()
            .map(|u| format!("{}:{}: {}", u.line, u.column, u.message))
            .collect()
    }

    #[test]
    fn a_misspelt_property_is_found_with_its_line_and_the_nearest_name() {
        let text = "fn on_alert(a, t) {\n    if a.sevrity == \"critical\" { t.group = \"dba\"; }\n    let p = t.priorty;\n    t.add_tag(a.labels.team ?? \"x\");\n    t.prio = 1;\n}\n";
        let found = reads(text, "on_alert", &["a", "t"]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[2].starts_with(
                "5:5: on_alert writes `t.prio`, which the ticket does not have; did you mean priority?"
            ),
            "{found:?}"
        );
        assert!(
            found[0].starts_with(
                "2:8: on_alert reads `a.sevrity`, which the alert does not have; did you mean severity?"
            ),
            "{found:?}"
        );
        assert!(
            found[1].starts_with(
                "3:13: on_alert reads `t.priorty`, which the ticket does not have; did you mean priority?"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn strings_comments_calls_and_other_functions_are_not_reads() {
        let text = r#"fn helper(alert) { alert.whatever }
fn on_mail(mail, ticket) {
    // mail.subjct in a comment
    /* ticket.nope */
    let s = "mail.subjct in a string";
    let t = `mail.nope ${mail.subject} ${ #{a: 1}.a }`;
    ticket.comment(mail.body);
    ticket.set("x", mail.headers["x-priority"] ?? "");
    if mail.cc.len() > 0 { ticket.add_tag(`cc ${mail.from}`); }
}
"#;
        assert!(
            reads(text, "on_mail", &["mail", "ticket"]).is_empty(),
            "{:?}",
            reads(text, "on_mail", &["mail", "ticket"])
        );
        let bad = "fn on_clock(ticket, clock) {\n    if clock.stag == \"breach\" { ticket.escalate(); }\n}\n";
        assert_eq!(
            reads(bad, "on_clock", &["ticket", "clock"]).len(),
            1,
            "{:?}",
            reads(bad, "on_clock", &["ticket", "clock"])
        );
    }

    #[test]
    fn the_lists_are_the_properties_hooks_receive() {
        let alert = crate::alerts::Alert {
            source: "s".into(),
            key: "k".into(),
            fingerprint: "f".into(),
            status: crate::alerts::AlertStatus::Firing,
            severity: "critical".into(),
            summary: String::new(),
            description: None,
            labels: Default::default(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            generator_url: None,
            format: Default::default(),
            acknowledged: false,
            expired: None,
        };
        let mut have: Vec<String> = crate::rules::run::alert_map(&alert)
            .keys()
            .map(|k| k.to_string())
            .collect();
        have.extend(["action".to_string(), "expired".to_string()]);
        have.sort();
        let mut want: Vec<String> = ALERT.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(have, want);
        // Every rule shipped, and every example, reads only properties that exist.
        let mut engine = rhai::Engine::new();
        engine.set_max_expr_depths(0, 0);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        for dir in [root.clone(), root.join("examples")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|x| x == "rhai") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let name = path.display().to_string();
                    if let Err(e) = crate::rules::ruleset::compile_one(&engine, &name, &text) {
                        panic!(
                            "{name}: {:?}",
                            e.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                        );
                    }
                }
            }
        }
    }
}
