//! The service owner's dashboard: the process reports (`reports::compute`, as the report API
//! computes them) for a period, each as a table and, where a comparison helps, a bar chart
//! drawn as SVG on the server; every section also as CSV.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{ApiError, AppState};
use crate::console::chart::{self, Series};
use crate::console::page;
use crate::console::session::Signed;
use crate::console::views::duration;
use crate::reports::{AGE_BUCKETS, Report};

/// The periods offered.
const PERIODS: [&str; 4] = ["1d", "7d", "30d", "90d"];

#[derive(Debug, Deserialize)]
pub struct DashboardParams {
    #[serde(default = "thirty_days")]
    last: String,
    #[serde(default)]
    section: String,
}

fn thirty_days() -> String {
    "30d".into()
}

async fn report(app: &AppState, last: &str) -> Result<Report, ApiError> {
    let (from, to) = crate::reports::period(None, None, Some(last), app.engine.now())
        .map_err(ApiError::invalid)?;
    let (sla, calendars) = app.engine.sla();
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        crate::reports::compute(&*store, &sla, &calendars, from, to)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the report failed: {e}"),
        )
    })?
    .map_err(ApiError::from)
}

/// A chart of one series of `(label, value, text)` rows.
fn bars(title: &str, rows: Vec<(String, f64, String)>) -> Markup {
    chart::bars(title, &[Series::of(title, rows)])
}

fn csv_link(section: &str, last: &str) -> Markup {
    html! { a.csv href=(format!("/ui/dashboard.csv?section={section}&last={last}")) download { "CSV" } }
}

/// `GET /ui/dashboard?last=30d`
pub async fn show(
    State(app): State<AppState>,
    who: Signed,
    Query(p): Query<DashboardParams>,
) -> Response {
    let r = match report(&app, &p.last).await {
        Ok(r) => r,
        Err(e) => {
            return (
                e.status,
                page::layout(
                    "Dashboard",
                    Some(who.who()),
                    html! { p.error role="alert" { (e.message) } },
                ),
            )
                .into_response();
        }
    };
    let last = p.last.as_str();
    let time_rows = |rows: &[crate::reports::TimeRow]| -> Vec<(String, f64, String)> {
        rows.iter()
            .map(|t| {
                (
                    format!("{} {}", t.by, t.value),
                    t.mean_secs as f64,
                    duration(t.mean_secs),
                )
            })
            .collect()
    };
    let body = html! {
        h1 { "Dashboard" }
        form method="get" action="/ui/dashboard" {
            label { "Period: last " select name="last" {
                @for d in PERIODS { option value=(d) selected[last == d] { (d) } }
            } }
            button type="submit" { "Show" }
        }
        p.muted { "From " (crate::console::views::time(r.from)) " to " (crate::console::views::time(r.to)) "." }

        section #volume {
            h2 { "Volume " (csv_link("volume", last)) }
            (bars("Tickets opened, by source and kind", r.volume.iter().map(|v| (format!("{} {}", v.source, v.kind), v.count as f64, v.count.to_string())).collect()))
            table { tr { th { "Source" } th { "Kind" } th { "Opened" } }
                @for v in &r.volume { tr { td { (v.source) } td { (v.kind) } td { (v.count) } } } }
        }
        section #backlog {
            h2 { "Backlog now " (csv_link("backlog", last)) }
            @if r.backlog.is_empty() { p.muted { "No open tickets." } }
            (bars("Open tickets by state", r.backlog.iter().map(|b| (b.state.clone(), b.total as f64, b.total.to_string())).collect()))
            table { tr { th { "State" } @for (name, _) in AGE_BUCKETS { th { (name) } } th { "Total" } }
                @for b in &r.backlog { tr { td { (b.state) } @for n in &b.ages { td { (n) } } td { (b.total) } } } }
        }
        section #sla {
            h2 { "SLA compliance " (csv_link("sla", last)) }
            (bars("Compliance in percent", r.sla.iter().map(|c| (format!("{} {}", c.policy, c.clock), c.compliance_pct, format!("{:.1}%", c.compliance_pct))).collect()))
            table { tr { th { "Policy" } th { "Clock" } th { "Ended" } th { "Met" } th { "Missed" } th { "Compliance" } }
                @for c in &r.sla { tr { td { (c.policy) } td { (c.clock) } td { (c.ended) } td { (c.met) } td { (c.missed) } td { (format!("{:.1}%", c.compliance_pct)) } } } }
        }
        @for (name, title, rows) in [("mtta", "Mean time to acknowledge", &r.mtta), ("mttr", "Mean time to resolve", &r.mttr)] {
            section id=(name) {
                h2 { (title) " " (csv_link(name, last)) }
                (bars(title, time_rows(rows)))
                table { tr { th { "By" } th { "Value" } th { "Tickets" } th { "Mean" } th { "Median" } }
                    @for t in rows { tr { td { (t.by) } td { (t.value) } td { (t.count) } td { (duration(t.mean_secs)) } td { (duration(t.median_secs)) } } } }
            }
        }
        section #breaches {
            h2 { "Breaches (" (r.breaches.len()) ") " (csv_link("breaches", last)) }
            table { tr { th { "Ticket" } th { "Policy" } th { "Clock" } th { "Recorded" } }
                @for b in &r.breaches { tr { td { a href=(format!("/ui/tickets/{}", b.ticket)) { (b.ticket) } } td { (b.policy) } td { (b.clock) } td { (crate::console::views::time(b.at)) } } } }
        }
        section #escalations {
            h2 { "Escalations (" (r.escalations.len()) ") " (csv_link("escalations", last)) }
            table { tr { th { "Ticket" } th { "Level" } th { "From" } th { "To" } th { "By" } th { "When" } }
                @for e in &r.escalations { tr { td { a href=(format!("/ui/tickets/{}", e.ticket)) { (e.ticket) } } td { (e.level) } td { (e.from_group.as_deref().unwrap_or("—")) } td { (e.to_group.as_deref().unwrap_or("—")) } td { (e.by) } td { (crate::console::views::time(e.at)) } } } }
        }
    };
    page::layout("Dashboard", Some(who.who()), body).into_response()
}

/// One CSV field: quoted when needed, and a leading `= + - @` defused so a spreadsheet does
/// not run it as a formula.
fn field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

/// A report section as CSV text, or `None` for an unknown section.
pub fn csv(r: &Report, section: &str) -> Option<String> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    match section {
        "volume" => {
            rows.push(vec!["source".into(), "kind".into(), "count".into()]);
            rows.extend(
                r.volume
                    .iter()
                    .map(|v| vec![v.source.clone(), v.kind.clone(), v.count.to_string()]),
            );
        }
        "backlog" => {
            let mut head = vec!["state".to_string()];
            head.extend(AGE_BUCKETS.iter().map(|(n, _)| n.to_string()));
            head.push("total".into());
            rows.push(head);
            rows.extend(r.backlog.iter().map(|b| {
                let mut row = vec![b.state.clone()];
                row.extend(b.ages.iter().map(u64::to_string));
                row.push(b.total.to_string());
                row
            }));
        }
        "sla" => {
            rows.push(
                [
                    "policy",
                    "clock",
                    "ended",
                    "met",
                    "missed",
                    "compliance_pct",
                ]
                .map(String::from)
                .to_vec(),
            );
            rows.extend(r.sla.iter().map(|c| {
                vec![
                    c.policy.clone(),
                    c.clock.clone(),
                    c.ended.to_string(),
                    c.met.to_string(),
                    c.missed.to_string(),
                    format!("{:.2}", c.compliance_pct),
                ]
            }));
        }
        "mtta" | "mttr" => {
            rows.push(
                ["by", "value", "count", "mean_secs", "median_secs"]
                    .map(String::from)
                    .to_vec(),
            );
            let list = if section == "mtta" { &r.mtta } else { &r.mttr };
            rows.extend(list.iter().map(|t| {
                vec![
                    t.by.clone(),
                    t.value.clone(),
                    t.count.to_string(),
                    t.mean_secs.to_string(),
                    t.median_secs.to_string(),
                ]
            }));
        }
        "breaches" => {
            rows.push(
                ["ticket", "policy", "clock", "due", "at"]
                    .map(String::from)
                    .to_vec(),
            );
            rows.extend(r.breaches.iter().map(|b| {
                vec![
                    b.ticket.clone(),
                    b.policy.clone(),
                    b.clock.clone(),
                    match &b.due {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    },
                    b.at.to_string(),
                ]
            }));
        }
        "escalations" => {
            rows.push(
                ["ticket", "level", "from_group", "to_group", "by", "at"]
                    .map(String::from)
                    .to_vec(),
            );
            rows.extend(r.escalations.iter().map(|e| {
                vec![
                    e.ticket.clone(),
                    e.level.to_string(),
                    e.from_group.clone().unwrap_or_default(),
                    e.to_group.clone().unwrap_or_default(),
                    e.by.clone(),
                    e.at.to_string(),
                ]
            }));
        }
        _ => return None,
    }
    Some(
        rows.iter()
            .map(|r| r.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\r\n")
            .collect(),
    )
}

/// `GET /ui/dashboard.csv?section=NAME&last=30d`: one section as a CSV download.
pub async fn download(
    State(app): State<AppState>,
    _who: Signed,
    Query(p): Query<DashboardParams>,
) -> Response {
    let r = match report(&app, &p.last).await {
        Ok(r) => r,
        Err(e) => return (e.status, e.message).into_response(),
    };
    let Some(text) = csv(&r, &p.section) else {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "no report section `{}`; sections: {}",
                p.section.escape_default(),
                crate::reports::SECTIONS.join(", ")
            ),
        )
            .into_response();
    };
    let name = format!("itsmd-{}-{}.csv", p.section, r.to.strftime("%Y%m%d"));
    let mut resp = text.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        let r = Report {
            volume: vec![crate::reports::VolumeRow {
                source: "prom,1".into(),
                kind: "incident".into(),
                count: 3,
            }],
            ..Report::default()
        };
        assert_eq!(
            csv(&r, "volume").unwrap(),
            "source,kind,count\r\n\"prom,1\",incident,3\r\n"
        );
        assert!(csv(&r, "nope").is_none());
    }
}
