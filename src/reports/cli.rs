//! `itsmd report [NAME]`: a process report from a running daemon for a period, as readable
//! tables, CSV or the API's JSON (`--format table|csv|json`; `--json` is `--format json`).
//! The daemon computes and formats; this only asks and prints.

use reqwest::Method;

use crate::cli::{Client, ServerArgs};

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Which report: all, mtta, mttr, sla, breaches, backlog, volume, escalations, trends.
    #[arg(default_value = "all")]
    pub name: String,
    /// Start of the period: an instant (2026-01-01T00:00:00Z) or a date (2026-01-01, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period (exclusive); default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Length of the period, counted back from its end, e.g. 7d (default 30d). A report covers
    /// every UTC day the period overlaps, whole: its first line says which.
    #[arg(long, conflicts_with = "from")]
    pub last: Option<String>,
    /// How to print it: table (readable text), csv or json.
    #[arg(long, value_parser = ["table", "csv", "json"])]
    pub format: Option<String>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let format = match (&args.format, args.server.json) {
        (Some(f), _) => f.clone(),
        (None, true) => "json".into(),
        (None, false) => "table".into(),
    };
    let asked = Some(format.clone());
    let query: Vec<String> = [
        ("from", &args.from),
        ("to", &args.to),
        ("last", &args.last),
        ("format", &asked),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
    .collect();
    let mut path = format!("/api/v1/reports/{}", encode(&args.name));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let value = client.call(Method::GET, &path, None)?;
    match value {
        serde_json::Value::String(text) => print!("{text}"),
        json => println!("{}", serde_json::to_string_pretty(&json)?),
    }
    Ok(())
}

/// Percent-encodes everything but unreserved characters, for a query value or path segment.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
