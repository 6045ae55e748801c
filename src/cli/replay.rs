//! `itsmd replay --rules DIR [--since TIME]`: send a candidate rule set to a running daemon,
//! which replays its event journal in memory, and print what would change.

use std::path::Path;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::client::{Client, ServerArgs};

pub fn run(rules: &Path, since: Option<&str>, server: &ServerArgs) -> anyhow::Result<()> {
    let mut files = serde_json::Map::new();
    let entries =
        std::fs::read_dir(rules).with_context(|| format!("cannot read {}", rules.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", rules.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "rhai") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.insert(name, Value::String(text));
        }
    }
    let mut body = json!({ "rules": files });
    if let Some(since) = since {
        let at = crate::clock::parse_instant("--since", since).map_err(anyhow::Error::msg)?;
        body["since"] = json!(at);
    }
    let report = Client::new(server)?.call(Method::POST, "/api/v1/admin/replay", Some(&body))?;
    if server.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let list = |k: &str| report[k].as_array().cloned().unwrap_or_default();
    let (events, tickets) = (list("event_differences"), list("ticket_differences"));
    println!(
        "Replayed {} events, compared {}.",
        report["events"], report["compared"]
    );
    if let Some(start) = report.get("journal_starts") {
        println!(
            "The journal starts at {}: events up to {} were pruned ([retention] journal); the tickets they opened are not compared.",
            start["before"].as_str().unwrap_or_default(),
            start["pruned_through"]
        );
    }
    if events.is_empty() && tickets.is_empty() {
        println!("No differences: the candidate rules do what the running ones did.");
        return Ok(());
    }
    if !events.is_empty() {
        println!(
            "\nEvents handled differently:\n{:<8} {:<32} {:<24} would",
            "event", "received", "happened"
        );
        for e in &events {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            println!(
                "{:<8} {:<32} {:<24} {}",
                e["event"].as_u64().map_or("—".into(), |n| n.to_string()),
                s("received_at"),
                s("happened"),
                s("would")
            );
        }
    }
    if !tickets.is_empty() {
        println!("\nTickets that would differ (field: happened → would, events that differ):");
        let mut last = String::new();
        for t in &tickets {
            let id = |k: &str| t[k].as_str().map(str::to_string);
            let header = match (id("ticket"), id("replay_ticket")) {
                (Some(real), _) => format!("{real} (opened by event {})", t["opened_by"]),
                (None, Some(new)) => format!(
                    "new ticket, {new} in the replay (opened by event {})",
                    t["opened_by"]
                ),
                (None, None) => format!("ticket opened by event {}", t["opened_by"]),
            };
            if header != last {
                println!("{header}");
                last = header;
            }
            let events: Vec<String> = t["events"]
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            println!(
                "  {:<24} {} → {}{}",
                t["field"].as_str().unwrap_or_default(),
                shown(&t["happened"]),
                shown(&t["would"]),
                if events.is_empty() {
                    String::new()
                } else {
                    format!("   (events {})", events.join(", "))
                }
            );
        }
    }
    Ok(())
}

/// A value as an operator reads it: strings bare, absent as "—", the rest as JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
