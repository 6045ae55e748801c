//! `itsmd report [NAME]`: a process report from a running daemon for a period, as readable
//! tables or, with `--json`, the API's JSON. The daemon computes; this only asks and prints.

use reqwest::Method;

use crate::cli::{Client, ServerArgs};
use crate::reports::{Report, table};

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Which report: all, mtta, mttr, sla, breaches, backlog, volume, escalations.
    #[arg(default_value = "all")]
    pub name: String,
    /// Start of the period: an instant (2026-01-01T00:00:00Z) or a date (2026-01-01, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the period (exclusive); default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Length of the period, counted back from its end, e.g. 7d (default 30d).
    #[arg(long, conflicts_with = "from")]
    pub last: Option<String>,
}

pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let query: Vec<String> = [("from", &args.from), ("to", &args.to), ("last", &args.last)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    let mut path = format!("/api/v1/reports/{}", encode(&args.name));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let value = client.call(Method::GET, &path, None)?;
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let report: Report = serde_json::from_value(value)
        .map_err(|e| anyhow::anyhow!("the daemon's report is not readable: {e}"))?;
    print!("{}", table::render(&report));
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
