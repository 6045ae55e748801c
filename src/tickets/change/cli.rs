//! `itsmd change calendar|templates`: the change calendar for a range and the standard change
//! catalogue, from a running daemon.

use reqwest::Method;
use serde_json::Value;

use crate::cli::client::text;
use crate::cli::{Client, ServerArgs};

#[derive(clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: ChangeCommand,
}

#[derive(clap::Subcommand)]
pub enum ChangeCommand {
    /// The changes whose windows overlap a range, with conflicting windows on one service.
    Calendar {
        /// Start of the range (RFC 3339, e.g. 2026-03-02T00:00:00Z).
        #[arg(long)]
        from: String,
        /// End of the range (RFC 3339), after --from.
        #[arg(long)]
        to: String,
    },
    /// The standard change templates a standard change is made from.
    Templates,
}

pub fn run(args: ChangeArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let (value, render): (Value, fn(&Value) -> String) = match args.command {
        ChangeCommand::Calendar { from, to } => {
            for (flag, v) in [("--from", &from), ("--to", &to)] {
                crate::clock::parse_instant(flag, v).map_err(anyhow::Error::msg)?;
            }
            let path = format!(
                "/api/v1/changes/calendar?from={}&to={}",
                encode(&from),
                encode(&to)
            );
            (client.call(Method::GET, &path, None)?, calendar)
        }
        ChangeCommand::Templates => (
            client.call(Method::GET, "/api/v1/changes/templates", None)?,
            templates,
        ),
    };
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

/// Percent-encodes a query value (`+` in a time offset must not become a space).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The calendar as a table, a conflict column naming the clashing changes.
fn calendar(c: &Value) -> String {
    let entries = c["changes"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return format!(
            "No changes from {} to {}.\n",
            text(&c["from"]),
            text(&c["to"])
        );
    }
    let mut rows = vec![
        [
            "ID",
            "START",
            "END",
            "STATE",
            "TYPE",
            "RISK",
            "SERVICE",
            "CONFLICTS",
            "TITLE",
        ]
        .map(String::from),
    ];
    for e in &entries {
        let conflicts: Vec<String> = e["conflicts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        rows.push([
            text(&e["id"]),
            text(&e["window"]["start"]),
            text(&e["window"]["end"]),
            text(&e["state"]),
            text(&e["type"]),
            text(&e["risk"]),
            text(&e["service"]),
            if conflicts.is_empty() {
                "-".into()
            } else {
                conflicts.join(",")
            },
            text(&e["title"]),
        ]);
    }
    crate::cli::client::table(&rows)
}

fn templates(t: &Value) -> String {
    let list = t["templates"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "No standard change templates.\n".into();
    }
    let mut rows = vec![["ID", "RISK", "SERVICE", "AUTHORIZED BY", "TITLE"].map(String::from)];
    for t in &list {
        rows.push([
            text(&t["id"]),
            text(&t["risk"]),
            text(&t["service"]),
            text(&t["authorized_by"]),
            text(&t["title"]),
        ]);
    }
    crate::cli::client::table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_calendar_table_names_conflicts() {
        let c = json!({"from": "a", "to": "b", "changes": [
            {"id": "CHG-000001", "title": "disks", "state": "scheduled", "type": "normal",
             "risk": "high", "service": "db", "conflicts": ["CHG-000002"],
             "window": {"start": "s1", "end": "e1"}},
            {"id": "CHG-000002", "title": "kernel", "state": "authorize", "type": "normal",
             "service": "db", "conflicts": [], "window": {"start": "s2", "end": "e2"}}
        ]});
        assert_eq!(
            calendar(&c),
            "ID          START  END  STATE      TYPE    RISK  SERVICE  CONFLICTS   TITLE\n\
             CHG-000001  s1     e1   scheduled  normal  high  db       CHG-000002  disks\n\
             CHG-000002  s2     e2   authorize  normal  -     db       -           kernel\n"
        );
        assert_eq!(
            calendar(&json!({"from": "a", "to": "b", "changes": []})),
            "No changes from a to b.\n"
        );
    }
}
