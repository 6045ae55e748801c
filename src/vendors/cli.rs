//! `itsmd outbox list [--dead] | replay ID | replay --vendor NAME`: the operator's view of
//! webhook messages waiting for (or given up on by) the dispatcher, over the admin API.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::client::text;
use crate::cli::{Client, ServerArgs};

#[derive(clap::Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: OutboxCommand,
}

#[derive(clap::Subcommand)]
pub enum OutboxCommand {
    /// List pending webhook messages (or, with --dead, the dead letters) and vendor states.
    List {
        #[arg(long)]
        dead: bool,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this row id (the `next` of the previous page).
        #[arg(long)]
        after: Option<u64>,
    },
    /// Send a row again from attempt 1 (same webhook-id), or with --vendor every dead and
    /// pending row of a vendor, re-enabling it if a 410 disabled it.
    Replay {
        #[arg(required_unless_present = "vendor", conflicts_with = "vendor")]
        id: Option<u64>,
        #[arg(long)]
        vendor: Option<String>,
    },
}

pub fn run(args: OutboxArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let (value, render): (Value, fn(&Value) -> String) = match args.command {
        OutboxCommand::List {
            dead,
            vendor,
            limit,
            after,
        } => {
            let mut query = vec![format!("limit={limit}"), format!("dead={dead}")];
            if let Some(v) = vendor {
                query.push(format!("vendor={v}"));
            }
            if let Some(a) = after {
                query.push(format!("after={a}"));
            }
            let path = format!("/api/v1/admin/outbox?{}", query.join("&"));
            (client.call(Method::GET, &path, None)?, table)
        }
        OutboxCommand::Replay { id, vendor } => {
            let body = match (id, vendor) {
                (Some(id), _) => json!({ "id": id }),
                (None, vendor) => json!({ "vendor": vendor }),
            };
            let answer = client.call(Method::POST, "/api/v1/admin/outbox/replay", Some(&body))?;
            (answer, replayed)
        }
    };
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

/// The rows as an aligned table, then the vendors that are disabled.
fn table(page: &Value) -> String {
    let empty = Vec::new();
    let rows = page["rows"].as_array().unwrap_or(&empty);
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("No rows.\n");
    } else {
        let mut lines = vec![
            [
                "ID",
                "VENDOR",
                "TICKET",
                "TYPE",
                "ATTEMPTS",
                "NEXT",
                "LAST ERROR",
            ]
            .map(String::from),
        ];
        for r in rows {
            let next = if r["dead_at"].is_null() {
                &r["next_at"]
            } else {
                &r["dead_at"]
            };
            lines.push([
                text(&r["id"]),
                text(&r["vendor"]),
                text(&r["ticket"]),
                text(&r["type"]),
                text(&r["attempts"]),
                text(next),
                text(&r["last_error"]),
            ]);
        }
        out.push_str(&crate::cli::client::table(&lines));
    }
    if let Some(next) = page["next"].as_u64() {
        out.push_str(&format!("More: --after {next}\n"));
    }
    if let Some(vendors) = page["vendors"].as_object() {
        for (name, state) in vendors {
            if !state["disabled_at"].is_null() {
                out.push_str(&format!(
                    "Vendor {name} is disabled since {} ({}); `itsmd outbox replay --vendor {name}` re-enables it.\n",
                    text(&state["disabled_at"]),
                    text(&state["reason"])
                ));
            }
        }
    }
    out
}

fn replayed(v: &Value) -> String {
    match v["vendor"].as_str() {
        Some(name) => format!(
            "Vendor {name} enabled; {} dead and {} pending row(s) sent again.\n",
            text(&v["dead"]),
            text(&v["pending"])
        ),
        None => format!("Row {} ({}) sent again.\n", text(&v["id"]), text(&v["was"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_rows_pages_and_disabled_vendors() {
        let page = json!({
            "rows": [{"id": 3, "vendor": "acme", "ticket": "INC-000001", "type": "ticket.assigned",
                      "attempts": 2, "next_at": "2026-01-01T00:00:00Z", "last_error": "HTTP 503"}],
            "next": 3,
            "vendors": {"acme": {"disabled_at": "2026-01-01T00:00:00Z", "reason": "410 Gone"}, "ok": {}},
        });
        let out = table(&page);
        assert!(out.starts_with("ID  VENDOR  TICKET"), "{out}");
        assert!(
            out.contains("3   acme    INC-000001  ticket.assigned  2"),
            "{out}"
        );
        assert!(out.contains("More: --after 3"), "{out}");
        assert!(out.contains("Vendor acme is disabled"), "{out}");
        assert!(!out.contains("Vendor ok"), "{out}");
    }
}
