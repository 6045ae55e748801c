//! A rule set: every `*.rhai` file of a folder, compiled, in file-name order, with a content
//! hash as its version. A set is built whole or not at all.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rhai::{AST, Engine};

use crate::alerts::alert::Fnv1a;

/// The hooks a rule file may define, with the parameters each must take.
pub const HOOKS: [(&str, usize); 4] = [
    ("on_alert", 2),
    ("on_mail", 2),
    ("on_ticket", 2),
    ("on_clock", 2),
];

/// Rules built into the binary, used when the rules folder does not exist.
const BUILT_IN: [(&str, &str); 4] = [
    (
        "00-defaults.rhai",
        include_str!("../../rules/00-defaults.rhai"),
    ),
    ("05-mail.rhai", include_str!("../../rules/05-mail.rhai")),
    (
        "10-escalation.rhai",
        include_str!("../../rules/10-escalation.rhai"),
    ),
    ("10-noise.rhai", include_str!("../../rules/10-noise.rhai")),
];

pub struct RuleFile {
    /// File name, e.g. `20-database.rhai`: what logs, history and errors call the rule.
    pub name: Arc<str>,
    pub ast: AST,
    /// Names of the hooks this file defines.
    pub hooks: Vec<&'static str>,
}

pub struct RuleSet {
    pub files: Vec<RuleFile>,
    /// Content hash of all file names and texts: changes whenever any rule changes.
    pub version: String,
    /// Where the set came from: a folder, or "built-in".
    pub origin: String,
}

/// A problem that prevents a rule set from compiling, located where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl RuleSet {
    /// Compiles every `*.rhai` file in `dir`; the built-in rules if `dir` does not exist.
    pub fn load(engine: &Engine, dir: &Path) -> Result<RuleSet, Vec<CompileError>> {
        if !dir.exists() {
            let sources = BUILT_IN
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect();
            return RuleSet::compile(engine, "built-in", sources);
        }
        let origin = dir.display().to_string();
        let io_error = |e: std::io::Error| {
            vec![CompileError {
                file: origin.clone(),
                line: None,
                column: None,
                message: e.to_string(),
            }]
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            if path.extension().is_some_and(|e| e == "rhai") && path.is_file() {
                names.push(path);
            }
        }
        names.sort();
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for path in names {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((name, text)),
                Err(e) => errors.push(CompileError {
                    file: name,
                    line: None,
                    column: None,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
        match RuleSet::compile(engine, &origin, sources) {
            Ok(set) if errors.is_empty() => Ok(set),
            Ok(_) => Err(errors),
            Err(mut more) => {
                errors.append(&mut more);
                Err(errors)
            }
        }
    }

    /// Compiles named sources in the given order, reporting every error of every file.
    pub fn compile(
        engine: &Engine,
        origin: &str,
        sources: Vec<(String, String)>,
    ) -> Result<RuleSet, Vec<CompileError>> {
        let mut hash = Fnv1a::new();
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for (name, text) in sources {
            hash.write(name.as_bytes());
            hash.write(&[0]);
            hash.write(text.as_bytes());
            hash.write(&[0]);
            match compile_one(engine, &name, &text) {
                Ok(file) => files.push(file),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleSet {
            files,
            version: format!("{:016x}", hash.finish()),
            origin: origin.into(),
        })
    }
}

pub(super) fn compile_one(
    engine: &Engine,
    name: &str,
    text: &str,
) -> Result<RuleFile, Vec<CompileError>> {
    let mut ast = engine.compile(text).map_err(|e| {
        let pos = e.position();
        vec![CompileError {
            file: name.to_string(),
            line: pos.line(),
            column: pos.position(),
            message: e.err_type().to_string(),
        }]
    })?;
    ast.set_source(name);
    let mut hooks = Vec::new();
    let mut errors = Vec::new();
    for f in ast.iter_functions() {
        let (line, column) = fn_position(text, f.name);
        let error = |message: String| CompileError {
            file: name.to_string(),
            line,
            column,
            message,
        };
        match HOOKS.iter().find(|(h, _)| *h == f.name) {
            Some((hook, arity)) if f.params.len() == *arity => {
                hooks.push(*hook);
                for u in super::fields::unknown_reads(text, hook, &f.params) {
                    errors.push(CompileError {
                        file: name.to_string(),
                        line: Some(u.line),
                        column: Some(u.column),
                        message: u.message,
                    });
                }
            }
            Some((hook, arity)) => errors.push(error(format!(
                "{hook} must take {arity} parameters ({}), this one takes {}",
                hook_params(hook),
                f.params.len()
            ))),
            // Functions named like a hook but not one are a typo, not a helper: they would
            // never run. Other functions are helpers.
            None if f.name.starts_with("on_") => {
                let names: Vec<&str> = HOOKS.iter().map(|(h, _)| *h).collect();
                let nearest = crate::suggest::nearest(f.name, &names);
                let hint = nearest.map_or(String::new(), |h| format!("did you mean {h}? "));
                errors.push(error(format!(
                    "unknown hook `{}`; {hint}hooks are {}",
                    f.name,
                    names.join(", ")
                )));
            }
            None => {}
        }
    }
    for u in super::literals::problems(text) {
        errors.push(CompileError {
            file: name.to_string(),
            line: Some(u.line),
            column: Some(u.column),
            message: u.message,
        });
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.column));
        return Err(errors);
    }
    Ok(RuleFile {
        name: Arc::from(name),
        ast,
        hooks,
    })
}

/// The parameters each hook takes, for error messages.
fn hook_params(hook: &str) -> &'static str {
    match hook {
        "on_alert" => "alert, ticket",
        "on_mail" => "mail, ticket",
        "on_ticket" => "ticket, change",
        "on_clock" => "ticket, clock",
        _ => "",
    }
}

/// Line and column (from 1) of `fn NAME` in `text`, if found.
fn fn_position(text: &str, name: &str) -> (Option<usize>, Option<usize>) {
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(at) = rest.find("fn ") {
            let after = rest[at + 3..].trim_start();
            let boundary = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
            if boundary
                && after.starts_with(name)
                && after[name.len()..].trim_start().starts_with('(')
            {
                return (Some(i + 1), Some(offset + at + 1));
            }
            offset += at + 3;
            rest = &rest[at + 3..];
        }
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    use super::BUILT_IN;

    #[test]
    fn unknown_hooks_and_wrong_arities_are_errors_with_file_line_and_a_suggestion() {
        let engine = rhai::Engine::new();
        let text = "fn helper(x) { x }\n\nfn on_alrt(alert, ticket) { }\n  fn on_ticket(ticket) { }\nfn on_whatever_else() { }\n";
        let Err(errors) = super::compile_one(&engine, "20-x.rhai", text) else {
            panic!("compiled");
        };
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "20-x.rhai:3:1: unknown hook `on_alrt`; did you mean on_alert? hooks are on_alert, on_mail, on_ticket, on_clock",
                "20-x.rhai:4:3: on_ticket must take 2 parameters (ticket, change), this one takes 1",
                "20-x.rhai:5:1: unknown hook `on_whatever_else`; hooks are on_alert, on_mail, on_ticket, on_clock",
            ]
        );
    }

    #[test]
    fn the_built_in_rules_are_exactly_the_shipped_rules_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let mut shipped: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rhai"))
            .collect();
        shipped.sort();
        let built_in: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(built_in, shipped);
    }
}
