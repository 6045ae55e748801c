//! `itsmd ticket list|show|create|update|transition|comment|link|sla|review`: the agent's command
//! line over the ticket API. Values of the closed vocabularies (kinds, states, levels, hold
//! reasons, resolution codes, change types, risks, review outcomes, link relations) are checked here
//! against the model's own lists, so a typo names its flag and the allowed values before
//! anything is sent; everything else is the server's to validate.

use clap::builder::PossibleValuesParser;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::tickets::{
    ChangeType, HoldReason, Kind, Level, LinkRel, Resolution, ReviewOutcome, Risk, State,
};

use crate::cli::client::text;
use crate::cli::{Client, ServerArgs};
use crate::tickets::history::value_text;

#[derive(clap::Args)]
pub struct TicketArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: TicketCommand,
}

/// The names of a closed vocabulary, as a flag's allowed values.
fn one_of(names: impl IntoIterator<Item = &'static str>) -> PossibleValuesParser {
    PossibleValuesParser::new(names)
}

fn kinds() -> PossibleValuesParser {
    one_of(Kind::ALL.map(Kind::as_str))
}
fn states() -> PossibleValuesParser {
    one_of(State::ALL.map(State::as_str))
}
fn levels() -> PossibleValuesParser {
    one_of(Level::ALL.map(Level::as_str))
}
fn change_types() -> PossibleValuesParser {
    one_of(ChangeType::ALL.iter().map(|v| v.as_str()))
}
fn risks() -> PossibleValuesParser {
    one_of(Risk::ALL.iter().map(|v| v.as_str()))
}

#[derive(clap::Subcommand)]
pub enum TicketCommand {
    /// List tickets (in id order unless --sort); every filter given must match.
    List(ListArgs),
    /// Show one ticket with its history and comments.
    Show { id: String },
    /// Open a ticket of any kind.
    Create(CreateArgs),
    /// Change fields of a ticket.
    Update(UpdateArgs),
    /// Move a ticket to another state.
    Transition {
        id: String,
        /// Target state, e.g. in_progress, on_hold, resolved.
        #[arg(value_parser = states())]
        to: String,
        /// Why; recorded in the history.
        #[arg(long)]
        reason: String,
        /// Resolution code when resolving (fixed, workaround, …).
        #[arg(long, value_parser = one_of(Resolution::ALL.iter().map(|v| v.as_str())))]
        resolution: Option<String>,
        /// Hold reason when going on hold (awaiting_caller, awaiting_vendor, …).
        #[arg(long, value_parser = one_of(HoldReason::ALL.iter().map(|v| v.as_str())))]
        hold_reason: Option<String>,
        /// Review outcome when closing a change.
        #[arg(long, value_parser = one_of(ReviewOutcome::ALL.iter().map(|v| v.as_str())))]
        outcome: Option<String>,
        /// Why a change is implemented outside its planned window (its approvers only).
        #[arg(long)]
        window_override: Option<String>,
    },
    /// Link this ticket to another (both ends get the link, the other with the inverse).
    Link {
        id: String,
        /// How this ticket relates to the other, e.g. caused_by, fixed_by, child_of.
        #[arg(value_parser = one_of(LinkRel::ALL.map(LinkRel::as_str)))]
        rel: String,
        /// The other ticket's id.
        other: String,
    },
    /// Show a ticket's SLA clocks: phase, target, time used and left, due time, breaches.
    Sla { id: String },
    /// Record a change's post-implementation review (while it is in review; an emergency
    /// change cannot close without one).
    Review {
        id: String,
        #[arg(long, value_parser = one_of(ReviewOutcome::ALL.iter().map(|v| v.as_str())))]
        outcome: String,
        /// What was found and learnt.
        #[arg(long)]
        notes: String,
    },
    /// Add a comment (internal unless --public).
    Comment {
        id: String,
        body: String,
        /// Visible to the caller too.
        #[arg(long)]
        public: bool,
    },
}

/// The filters of `ticket list`, sent as the query parameters of the same names.
#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long, value_parser = states())]
    state: Option<String>,
    #[arg(long, value_parser = kinds())]
    kind: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    assignee: Option<String>,
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    priority: Option<u8>,
    /// Tickets carrying this tag.
    #[arg(long)]
    tag: Option<String>,
    #[arg(long)]
    vendor: Option<String>,
    /// The caller's mail address (tickets opened by mail).
    #[arg(long)]
    caller: Option<String>,
    /// Where a clock stands.
    #[arg(long, value_parser = ["breached", "at_risk", "paused"])]
    sla: Option<String>,
    /// Created at or after this time (RFC 3339, e.g. 2026-03-01T00:00:00Z).
    #[arg(long)]
    created_after: Option<String>,
    /// Created before this time (RFC 3339).
    #[arg(long)]
    created_before: Option<String>,
    /// Last changed at or after this time (RFC 3339).
    #[arg(long)]
    updated_after: Option<String>,
    /// Last changed before this time (RFC 3339).
    #[arg(long)]
    updated_before: Option<String>,
    /// Text in the title, description or a comment (any case).
    #[arg(long)]
    q: Option<String>,
    /// Order by created, updated or priority (a leading - for descending); default id order.
    #[arg(long, allow_hyphen_values = true, value_parser = one_of(["created", "-created", "updated", "-updated", "priority", "-priority"]))]
    sort: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Start after this ticket id (the `next` of the previous page).
    #[arg(long)]
    after: Option<String>,
}

impl ListArgs {
    /// The listing's path and query.
    fn path(self) -> String {
        let mut query = vec![format!("limit={}", self.limit)];
        for (k, v) in [
            ("state", self.state),
            ("kind", self.kind),
            ("group", self.group),
            ("assignee", self.assignee),
            ("priority", self.priority.map(|p| p.to_string())),
            ("tag", self.tag),
            ("vendor", self.vendor),
            ("caller", self.caller),
            ("sla", self.sla),
            ("created_after", self.created_after),
            ("created_before", self.created_before),
            ("updated_after", self.updated_after),
            ("updated_before", self.updated_before),
            ("q", self.q),
            ("sort", self.sort),
            ("after", self.after),
        ] {
            if let Some(v) = v {
                query.push(format!("{k}={}", encode(&v)));
            }
        }
        format!("/api/v1/tickets?{}", query.join("&"))
    }
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// incident, request, problem or change.
    #[arg(long, value_parser = kinds())]
    kind: String,
    #[arg(long)]
    title: String,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    assignee: Option<String>,
    #[arg(long, value_parser = levels())]
    impact: Option<String>,
    #[arg(long, value_parser = levels())]
    urgency: Option<String>,
    /// A manual priority (1–5) instead of the matrix's.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    priority: Option<u8>,
    /// Changes: standard, normal or emergency.
    #[arg(long, value_parser = change_types())]
    change_type: Option<String>,
    /// Changes: planned window start and end (RFC 3339), both or neither.
    #[arg(long, requires = "window_end")]
    window_start: Option<String>,
    #[arg(long, requires = "window_start")]
    window_end: Option<String>,
    /// Changes: the service changed.
    #[arg(long)]
    service: Option<String>,
    /// Changes: the assessed risk.
    #[arg(long, value_parser = risks())]
    risk: Option<String>,
    /// Changes: how to undo it if it fails.
    #[arg(long)]
    backout_plan: Option<String>,
    /// Standard changes: the standard change template (see `itsmd change templates`).
    #[arg(long)]
    template: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
}

#[derive(clap::Args)]
pub struct UpdateArgs {
    id: String,
    #[arg(long)]
    title: Option<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long, conflicts_with = "unassign")]
    assignee: Option<String>,
    /// Remove the assignee.
    #[arg(long)]
    unassign: bool,
    #[arg(long, value_parser = levels())]
    impact: Option<String>,
    #[arg(long, value_parser = levels())]
    urgency: Option<String>,
    /// A manual priority override (1–5).
    #[arg(long, conflicts_with = "matrix_priority", value_parser = clap::value_parser!(u8).range(1..=5))]
    priority: Option<u8>,
    /// Drop a manual override; priority follows the matrix again.
    #[arg(long)]
    matrix_priority: bool,
    /// Replace the tags (repeat for several).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Assign the ticket to a partner vendor (it is sent webhooks about it).
    #[arg(long, conflicts_with = "no_vendor")]
    vendor: Option<String>,
    /// Take the ticket away from its vendor.
    #[arg(long)]
    no_vendor: bool,
    /// Changes: a new planned window start and end (RFC 3339), both together.
    #[arg(long, requires = "window_end", conflicts_with = "no_window")]
    window_start: Option<String>,
    #[arg(long, requires = "window_start")]
    window_end: Option<String>,
    /// Changes: remove the planned window.
    #[arg(long)]
    no_window: bool,
    /// Changes: the service changed.
    #[arg(long)]
    service: Option<String>,
    /// Changes: the assessed risk (while new or in assessment).
    #[arg(long, value_parser = risks())]
    risk: Option<String>,
    /// Changes: how to undo it if it fails.
    #[arg(long)]
    backout_plan: Option<String>,
    /// Why; recorded in the history.
    #[arg(long)]
    reason: Option<String>,
}

pub fn run(args: TicketArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let json_out = args.server.json;
    let (value, render): (Value, fn(&Value) -> String) = match args.command {
        TicketCommand::List(list) => (client.call(Method::GET, &list.path(), None)?, table),
        TicketCommand::Show { id } => {
            let path = format!("/api/v1/tickets/{}", encode(&id));
            let mut t = client.call(Method::GET, &path, None)?;
            t["comment_list"] = client.call(Method::GET, &format!("{path}/comments"), None)?;
            (t, detail)
        }
        TicketCommand::Create(c) => {
            let body = create_body(c);
            (
                client.call(Method::POST, "/api/v1/tickets", Some(&body))?,
                summary,
            )
        }
        TicketCommand::Update(u) => {
            let path = format!("/api/v1/tickets/{}", encode(&u.id));
            let body = update_body(u);
            if body
                .as_object()
                .is_some_and(|m| m.keys().all(|k| k == "reason"))
            {
                anyhow::bail!(
                    "nothing to update: give at least one field, e.g. --title, --assignee or \
                     --priority (see `itsmd ticket update --help`)"
                );
            }
            (client.call(Method::PATCH, &path, Some(&body))?, summary)
        }
        TicketCommand::Transition {
            id,
            to,
            reason,
            resolution,
            hold_reason,
            outcome,
            window_override,
        } => {
            let mut body = json!({ "to": to, "reason": reason });
            put(&mut body, "resolution", resolution);
            put(&mut body, "hold_reason", hold_reason);
            put(&mut body, "outcome", outcome);
            put(&mut body, "window_override", window_override);
            let path = format!("/api/v1/tickets/{}/transitions", encode(&id));
            (client.call(Method::POST, &path, Some(&body))?, summary)
        }
        TicketCommand::Link { id, rel, other } => {
            let body = json!({ "rel": rel, "ticket": other });
            let path = format!("/api/v1/tickets/{}/links", encode(&id));
            (client.call(Method::POST, &path, Some(&body))?, summary)
        }
        TicketCommand::Review { id, outcome, notes } => {
            let body = json!({ "outcome": outcome, "notes": notes });
            let path = format!("/api/v1/tickets/{}/review", encode(&id));
            (client.call(Method::POST, &path, Some(&body))?, summary)
        }
        TicketCommand::Sla { id } => {
            let path = format!("/api/v1/tickets/{}/sla", encode(&id));
            (client.call(Method::GET, &path, None)?, sla)
        }
        TicketCommand::Comment { id, body, public } => {
            let visibility = if public { "public" } else { "internal" };
            let body = json!({ "body": body, "visibility": visibility });
            let path = format!("/api/v1/tickets/{}/comments", encode(&id));
            (client.call(Method::POST, &path, Some(&body))?, summary)
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&value));
    }
    Ok(())
}

/// Percent-encodes a path or query value (ids and filters are plain, but typos need not be).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn put(body: &mut Value, key: &str, value: Option<impl Into<Value>>) {
    if let (Some(v), Some(map)) = (value, body.as_object_mut()) {
        map.insert(key.to_string(), v.into());
    }
}

fn create_body(c: CreateArgs) -> Value {
    let mut body = json!({ "kind": c.kind, "title": c.title });
    put(&mut body, "description", c.description);
    put(&mut body, "group", c.group);
    put(&mut body, "assignee", c.assignee);
    put(&mut body, "impact", c.impact);
    put(&mut body, "urgency", c.urgency);
    put(&mut body, "priority", c.priority);
    put(&mut body, "change_type", c.change_type);
    if let (Some(start), Some(end)) = (c.window_start, c.window_end) {
        body["window"] = json!({ "start": start, "end": end });
    }
    put(&mut body, "service", c.service);
    put(&mut body, "risk", c.risk);
    put(&mut body, "backout_plan", c.backout_plan);
    put(&mut body, "template", c.template);
    if !c.tags.is_empty() {
        body["tags"] = json!(c.tags);
    }
    body
}

fn update_body(u: UpdateArgs) -> Value {
    let mut body = Value::Object(Map::new());
    put(&mut body, "title", u.title);
    put(&mut body, "description", u.description);
    put(&mut body, "group", u.group);
    put(&mut body, "assignee", u.assignee);
    if u.unassign {
        body["assignee"] = Value::Null;
    }
    put(&mut body, "impact", u.impact);
    put(&mut body, "urgency", u.urgency);
    put(&mut body, "priority", u.priority);
    if u.matrix_priority {
        body["priority"] = Value::Null;
    }
    if !u.tags.is_empty() {
        body["tags"] = json!(u.tags);
    }
    put(&mut body, "vendor", u.vendor);
    if u.no_vendor {
        body["vendor"] = Value::Null;
    }
    if let (Some(start), Some(end)) = (u.window_start, u.window_end) {
        body["window"] = json!({ "start": start, "end": end });
    }
    if u.no_window {
        body["window"] = Value::Null;
    }
    put(&mut body, "service", u.service);
    put(&mut body, "risk", u.risk);
    put(&mut body, "backout_plan", u.backout_plan);
    put(&mut body, "reason", u.reason);
    body
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The ticket listing as an aligned table.
fn table(page: &Value) -> String {
    let empty = Vec::new();
    let tickets = page["tickets"].as_array().unwrap_or(&empty);
    if tickets.is_empty() {
        return "No tickets.\n".into();
    }
    let mut rows = vec![["ID", "STATE", "PRIO", "GROUP", "ASSIGNEE", "TITLE"].map(String::from)];
    for t in tickets {
        rows.push([
            text(&t["id"]),
            text(&t["state"]),
            format!("P{}", text(&t["priority"])),
            text(&t["group"]),
            text(&t["assignee"]),
            clip(&text(&t["title"]), 60),
        ]);
    }
    let mut out = crate::cli::client::table(&rows);
    if let Some(next) = page["next"].as_str() {
        out.push_str(&format!("More: --after {next}\n"));
    }
    out
}

/// One ticket in a few lines.
fn summary(t: &Value) -> String {
    let mut out = format!(
        "{}  {}  P{}  group {}  assignee {}\n{}\n",
        text(&t["id"]),
        text(&t["state"]),
        text(&t["priority"]),
        text(&t["group"]),
        text(&t["assignee"]),
        text(&t["title"]),
    );
    for key in ["hold_reason", "resolution", "change", "approval", "links"] {
        if let Some(v) = t.get(key) {
            out.push_str(&format!("{key}: {}\n", plain(v)));
        }
    }
    out
}

/// A JSON value as a person reads it on one line: `key=value` pairs (nested keys dotted),
/// list items separated by commas, strings bare unless they hold a space or are empty.
fn plain(v: &Value) -> String {
    fn pairs(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    pairs(&key, v, out);
                }
            }
            _ if prefix.is_empty() => out.push(plain(v)),
            _ => out.push(format!("{prefix}={}", plain(v))),
        }
    }
    match v {
        Value::String(s) if s.is_empty() || s.contains(char::is_whitespace) => format!("{s:?}"),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        Value::Object(_) => {
            let mut out = Vec::new();
            pairs("", v, &mut out);
            out.join(" ")
        }
        other => other.to_string(),
    }
}

/// Who did something (a history entry's actor, a comment's author), by name or address.
fn actor(a: &Value) -> String {
    match a["type"].as_str() {
        Some("user") => text(&a["name"]),
        Some("rule") => format!("rule {}", text(&a["file"])),
        Some("system") => text(&a["component"]),
        Some("caller") => text(&a["address"]),
        Some("vendor") => format!("vendor {}", text(&a["name"])),
        _ => text(a),
    }
}

/// Seconds as a duration ("1h 30m"), negative ones with a minus sign.
fn secs(v: &Value) -> String {
    let Some(n) = v.as_i64() else {
        return "-".into();
    };
    let friendly =
        |n: i64| crate::config::duration::Friendly(jiff::SignedDuration::from_secs(n)).to_string();
    if n < 0 {
        format!("-{}", friendly(-n))
    } else {
        friendly(n)
    }
}

/// A ticket's SLA clocks as a table.
fn sla(v: &Value) -> String {
    let mut out = format!(
        "{}  policy {}  escalation {}\n",
        text(&v["ticket"]),
        text(&v["policy"]),
        text(&v["escalation"])
    );
    let clocks = v["clocks"].as_array().cloned().unwrap_or_default();
    if clocks.is_empty() {
        out.push_str("No clocks.\n");
        return out;
    }
    let mut rows = vec![
        [
            "CLOCK",
            "PHASE",
            "TARGET",
            "ELAPSED",
            "REMAINING",
            "DUE",
            "BREACHED",
        ]
        .map(String::from),
    ];
    for c in &clocks {
        let phase = match c["pause_reason"].as_str() {
            Some(why) => format!("paused ({why})"),
            None => text(&c["phase"]),
        };
        rows.push([
            text(&c["name"]),
            phase,
            text(&c["target"]),
            secs(&c["elapsed_secs"]),
            secs(&c["remaining_secs"]),
            text(&c["due"]),
            match c["breached_at"].as_str() {
                Some(at) => at.to_string(),
                None => "no".into(),
            },
        ]);
    }
    out.push_str(&crate::cli::client::table(&rows));
    for c in &clocks {
        if let Some(p) = c["problem"].as_str() {
            out.push_str(&format!("{}: {p}\n", text(&c["name"])));
        }
    }
    out
}

/// One ticket with its history and comments.
fn detail(t: &Value) -> String {
    let mut out = summary(t);
    if let Some(d) = t["description"].as_str().filter(|d| !d.is_empty()) {
        out.push_str(&format!("\n{d}\n"));
    }
    out.push_str("\nHistory:\n");
    for h in t["history"].as_array().into_iter().flatten() {
        let who = actor(&h["actor"]);
        let changes: Vec<String> = h["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} {} → {}",
                    text(&c["field"]),
                    value_text(&c["old"], "-"),
                    value_text(&c["new"], "-")
                )
            })
            .collect();
        out.push_str(&format!(
            "  #{} {} {}: {}\n",
            text(&h["seq"]),
            text(&h["at"]),
            who,
            changes.join("; ")
        ));
        if let Some(r) = h["reason"].as_str() {
            out.push_str(&format!("      why: {r}\n"));
        }
    }
    let comments = t["comment_list"].as_array().cloned().unwrap_or_default();
    if !comments.is_empty() {
        out.push_str("\nComments:\n");
        for c in comments {
            out.push_str(&format!(
                "  #{} {} {} ({}): {}\n",
                text(&c["seq"]),
                text(&c["at"]),
                actor(&c["author"]),
                text(&c["visibility"]),
                text(&c["body"])
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_as_key_value_pairs_on_one_line() {
        let change = json!({"backout_plan": "restore snapshot", "risk": "low", "type": "normal",
            "window": {"end": "2026-12-04T11:00:00Z", "start": "2026-12-04T10:00:00Z"}});
        assert_eq!(
            plain(&change),
            "backout_plan=\"restore snapshot\" risk=low type=normal \
             window.end=2026-12-04T11:00:00Z window.start=2026-12-04T10:00:00Z"
        );
        let links = json!([{"rel": "caused_by", "ticket": "PRB-000001"}, {"rel": "relates_to", "ticket": "INC-000002"}]);
        assert_eq!(
            plain(&links),
            "rel=caused_by ticket=PRB-000001, rel=relates_to ticket=INC-000002"
        );
        assert_eq!(plain(&json!("")), "\"\"");
    }

    #[test]
    fn the_table_aligns_columns_and_points_to_the_next_page() {
        let page = json!({"tickets": [
            {"id": "INC-000001", "state": "new", "priority": 3, "group": "triage", "title": "a"},
            {"id": "INC-000002", "state": "in_progress", "priority": 1, "group": "dba", "assignee": "ann", "title": "b"}
        ], "next": "INC-000002"});
        assert_eq!(
            table(&page),
            "ID          STATE        PRIO  GROUP   ASSIGNEE  TITLE\n\
             INC-000001  new          P3    triage  -         a\n\
             INC-000002  in_progress  P1    dba     ann       b\n\
             More: --after INC-000002\n"
        );
        assert_eq!(table(&json!({"tickets": []})), "No tickets.\n");
    }

    #[test]
    fn authors_are_shown_by_name_or_address() {
        for (a, shown) in [
            (json!({"type": "user", "name": "ann"}), "ann"),
            (
                json!({"type": "caller", "address": "carol@example.org"}),
                "carol@example.org",
            ),
            (json!({"type": "vendor", "name": "acme"}), "vendor acme"),
            (
                json!({"type": "rule", "file": "00-defaults.rhai", "hook": "on_alert"}),
                "rule 00-defaults.rhai",
            ),
            (json!({"type": "system", "component": "mail"}), "mail"),
        ] {
            assert_eq!(actor(&a), shown);
        }
        assert_eq!(secs(&json!(-5400)), "-1h 30m");
    }

    #[test]
    fn update_sends_null_to_clear_and_only_what_was_given() {
        let u = UpdateArgs {
            id: "INC-000001".into(),
            title: None,
            description: None,
            group: Some("dba".into()),
            assignee: None,
            unassign: true,
            impact: None,
            urgency: None,
            priority: None,
            matrix_priority: true,
            tags: vec![],
            vendor: None,
            no_vendor: true,
            window_start: None,
            window_end: None,
            no_window: true,
            service: None,
            risk: Some("high".into()),
            backout_plan: None,
            reason: None,
        };
        assert_eq!(
            update_body(u),
            json!({"group": "dba", "assignee": null, "priority": null, "vendor": null, "window": null, "risk": "high"})
        );
    }
}
