//! The service owner's dashboard: the process reports (`reports::compute`, as the report API
//! computes them) for a period picked on the page: the MTTA/MTTR trend, volume by source and
//! kind, the backlog by state, age and group, SLA compliance by policy, group, priority,
//! agent and vendor, MTTA/MTTR per agent, group, priority and vendor, breaches and
//! escalations. Each chart (SVG drawn on the server, [`chart`]) sits beside its table, with
//! links to its report section as CSV (the report API's CSV, `reports::csv`).

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
use crate::reports::{AGE_BUCKETS, ComplianceByRow, Report, TimeRow, TrendRow};

/// The periods offered.
const PERIODS: [&str; 4] = ["1d", "7d", "30d", "90d"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// Links to the CSV of the report sections `sections` (the report API's CSV).
fn csv_links(sections: &[&str], last: &str) -> Markup {
    html! {
        @for s in sections {
            a.csv href=(format!("/ui/dashboard.csv?section={s}&last={last}")) download
                aria-label=(format!("Download {s} as CSV")) { (s) ".csv" }
        }
    }
}

/// A chart beside its table, under a caption with the CSV links; `id` names the figure
/// (the browser test reads its bars).
fn panel(id: &str, title: &str, csv: Markup, chart: Markup, table: Markup) -> Markup {
    html! {
        figure.panel id=(id) {
            figcaption { (title) " " (csv) }
            div.chart-box { (chart) }
            div.table-box { (table) }
        }
    }
}

/// MTTA and MTTR of one dimension (`agent`, `group`, `priority`, `vendor`, `kind`) as two
/// series of one chart, and a table.
fn times_panel(id: &str, title: &str, dim: &str, r: &Report, last: &str) -> Markup {
    let of = |rows: &[TimeRow]| -> Vec<TimeRow> {
        rows.iter().filter(|t| t.by == dim).cloned().collect()
    };
    let (mtta, mttr) = (of(&r.mtta), of(&r.mttr));
    let mut values: Vec<&str> = mtta.iter().chain(&mttr).map(|t| t.value.as_str()).collect();
    values.sort();
    values.dedup();
    let series = |name: &str, rows: &[TimeRow]| {
        Series::of(
            name,
            rows.iter()
                .map(|t| (t.value.clone(), t.mean_secs as f64, duration(t.mean_secs))),
        )
    };
    let find = |rows: &[TimeRow], v: &str| rows.iter().find(|t| t.value == v).cloned();
    let cell = |t: &Option<TimeRow>| match t {
        Some(t) => (
            t.count.to_string(),
            duration(t.mean_secs),
            duration(t.median_secs),
        ),
        None => ("0".into(), "—".into(), "—".into()),
    };
    let table = html! {
        @if values.is_empty() { p.muted { "Nothing acknowledged or resolved in the period." } }
        @else {
            table { tr { th { (dim) } th { "Acknowledged" } th { "MTTA mean" } th { "MTTA median" } th { "Resolved" } th { "MTTR mean" } th { "MTTR median" } }
                @for v in &values {
                    @let (an, am, amed) = cell(&find(&mtta, v));
                    @let (rn, rm, rmed) = cell(&find(&mttr, v));
                    tr { td { (v) } td { (an) } td { (am) } td { (amed) } td { (rn) } td { (rm) } td { (rmed) } }
                }
            }
        }
    };
    panel(
        id,
        title,
        csv_links(&["mtta", "mttr"], last),
        chart::bars(title, &[series("MTTA", &mtta), series("MTTR", &mttr)]),
        table,
    )
}

/// SLA compliance of one dimension, per policy and clock.
fn compliance_panel(id: &str, title: &str, dim: &str, r: &Report, last: &str) -> Markup {
    let rows: Vec<&ComplianceByRow> = r.sla_by.iter().filter(|c| c.by == dim).collect();
    let label = |c: &ComplianceByRow| format!("{} {}/{}", c.value, c.policy, c.clock);
    let table = html! {
        @if rows.is_empty() { p.muted { "No clock settled in the period." } }
        @else {
            table { tr { th { (dim) } th { "Policy" } th { "Clock" } th { "Met" } th { "Missed" } th { "Compliance" } }
                @for c in &rows { tr { td { (c.value) } td { (c.policy) } td { (c.clock) } td { (c.met) } td { (c.missed) } td { (format!("{:.1}%", c.compliance_pct)) } } } }
        }
    };
    panel(
        id,
        title,
        csv_links(&["sla"], last),
        bars(
            title,
            rows.iter()
                .map(|c| {
                    (
                        label(c),
                        c.compliance_pct,
                        format!("{:.1}%", c.compliance_pct),
                    )
                })
                .collect(),
        ),
        table,
    )
}

/// The trend: per week for a period longer than two weeks, else per day.
fn trend_rows(r: &Report) -> (&'static str, Vec<&TrendRow>) {
    let days = r.trends.iter().filter(|t| t.period == "day").count();
    let period = if days > 14 { "week" } else { "day" };
    (
        period,
        r.trends.iter().filter(|t| t.period == period).collect(),
    )
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
    let time = crate::console::views::time;
    let (per, trend) = trend_rows(&r);
    let day = |t: &TrendRow| t.start.strftime("%Y-%m-%d").to_string();
    let trend_times = chart::bars(
        &format!("MTTA and MTTR by {per}"),
        &[
            Series::of(
                "MTTA",
                trend
                    .iter()
                    .filter(|t| t.acknowledged > 0)
                    .map(|t| (day(t), t.mtta_mean_secs as f64, duration(t.mtta_mean_secs))),
            ),
            Series::of(
                "MTTR",
                trend
                    .iter()
                    .filter(|t| t.resolved > 0)
                    .map(|t| (day(t), t.mttr_mean_secs as f64, duration(t.mttr_mean_secs))),
            ),
        ],
    );
    let trend_counts = chart::bars(
        &format!("Opened and resolved by {per}"),
        &[
            Series::of(
                "opened",
                trend
                    .iter()
                    .map(|t| (day(t), t.opened as f64, t.opened.to_string())),
            ),
            Series::of(
                "resolved",
                trend
                    .iter()
                    .map(|t| (day(t), t.resolved as f64, t.resolved.to_string())),
            ),
        ],
    );
    let trend_table = html! {
        table { tr { th { (per) " from" } th { "Opened" } th { "Acknowledged" } th { "MTTA" } th { "Resolved" } th { "MTTR" } th { "Met" } th { "Missed" } th { "Compliance" } }
            @for t in &trend { tr { td { (day(t)) } td { (t.opened) } td { (t.acknowledged) } td { (duration(t.mtta_mean_secs)) } td { (t.resolved) } td { (duration(t.mttr_mean_secs)) } td { (t.met) } td { (t.missed) } td { (format!("{:.1}%", t.compliance_pct)) } } } }
    };
    let mut ages = vec![0u64; AGE_BUCKETS.len()];
    for b in &r.backlog {
        for (sum, n) in ages.iter_mut().zip(&b.ages) {
            *sum += n;
        }
    }
    let age_table = |first: &str, rows: Vec<(&str, &[u64], u64)>| {
        html! {
            table { tr { th { (first) } @for (name, _) in AGE_BUCKETS { th { (name) } } th { "Total" } }
                @for (name, ages, total) in rows { tr { td { (name) } @for n in ages { td { (n) } } td { (total) } } } }
        }
    };
    let body = html! {
        h1 { "Dashboard" }
        form #period method="get" action="/ui/dashboard" {
            label { "Period: last " select name="last" {
                @for d in PERIODS { option value=(d) selected[last == d] { (d) } }
                // A period given in the address (`last=14d`) is shown as chosen, not the first.
                @if !PERIODS.contains(&last) { option value=(last) selected { (last) } }
            } }
            button type="submit" { "Show" }
        }
        p.muted { "From " (time(r.from)) " to " (time(r.to)) ", as " code { "GET /api/v1/reports?last=" (last) } " answers; charts and tables hold the same figures." }

        section #trend {
            h2 { "Trend" }
            (panel("trend-times", &format!("MTTA and MTTR by {per}"), csv_links(&["trends"], last), trend_times, trend_table))
            (panel("trend-counts", &format!("Opened and resolved by {per}"), csv_links(&["trends"], last), trend_counts, html! {}))
        }
        section #volume {
            h2 { "Volume" }
            (panel("volume-chart", "Tickets opened, by source and kind", csv_links(&["volume"], last),
                bars("Tickets opened, by source and kind", r.volume.iter().map(|v| (format!("{} {}", v.source, v.kind), v.count as f64, v.count.to_string())).collect()),
                html! { table { tr { th { "Source" } th { "Kind" } th { "Opened" } }
                    @for v in &r.volume { tr { td { (v.source) } td { (v.kind) } td { (v.count) } } } } }))
        }
        section #backlog {
            h2 { "Backlog now" }
            @if r.backlog.is_empty() { p.muted { "No open tickets." } }
            (panel("backlog-states", "Open tickets by state", csv_links(&["backlog"], last),
                bars("Open tickets by state", r.backlog.iter().map(|b| (b.state.clone(), b.total as f64, b.total.to_string())).collect()),
                age_table("State", r.backlog.iter().map(|b| (b.state.as_str(), b.ages.as_slice(), b.total)).collect())))
            (panel("backlog-ages", "Open tickets by age", csv_links(&["backlog"], last),
                bars("Open tickets by age", AGE_BUCKETS.iter().zip(&ages).filter(|_| !r.backlog.is_empty()).map(|((name, _), n)| (name.to_string(), *n as f64, n.to_string())).collect()),
                age_table("Group", r.backlog_groups.iter().map(|b| (b.group.as_str(), b.ages.as_slice(), b.total)).collect())))
        }
        section #sla {
            h2 { "SLA compliance" }
            (panel("sla-policies", "Compliance by policy and clock, in percent", csv_links(&["sla"], last),
                bars("Compliance in percent", r.sla.iter().map(|c| (format!("{} {}", c.policy, c.clock), c.compliance_pct, format!("{:.1}%", c.compliance_pct))).collect()),
                html! { table { tr { th { "Policy" } th { "Clock" } th { "Ended" } th { "Met" } th { "Missed" } th { "Compliance" } }
                    @for c in &r.sla { tr { td { (c.policy) } td { (c.clock) } td { (c.ended) } td { (c.met) } td { (c.missed) } td { (format!("{:.1}%", c.compliance_pct)) } } } } }))
            (compliance_panel("sla-group", "Compliance by group, in percent", "group", &r, last))
            (compliance_panel("sla-priority", "Compliance by priority, in percent", "priority", &r, last))
        }
        section #agents {
            h2 { "Per agent" }
            (times_panel("agent-times", "MTTA and MTTR per agent", "agent", &r, last))
            (compliance_panel("sla-agent", "Compliance per agent, in percent", "agent", &r, last))
        }
        section #groups {
            h2 { "Per group and priority" }
            (times_panel("group-times", "MTTA and MTTR per group", "group", &r, last))
            (times_panel("priority-times", "MTTA and MTTR per priority", "priority", &r, last))
        }
        section #vendors {
            h2 { "Per vendor" }
            (times_panel("vendor-times", "MTTA and MTTR per vendor", "vendor", &r, last))
            (compliance_panel("sla-vendor", "Compliance per vendor, in percent", "vendor", &r, last))
        }
        section #breaches {
            h2 { "Breaches (" (r.breaches.len()) ") " (csv_links(&["breaches"], last)) }
            div.table-box { table { tr { th { "Ticket" } th { "Policy" } th { "Clock" } th { "Group" } th { "Agent" } th { "Recorded" } }
                @for b in &r.breaches { tr { td { a href=(format!("/ui/tickets/{}", b.ticket)) { (b.ticket) } } td { (b.policy) } td { (b.clock) } td { (b.group.as_deref().unwrap_or("—")) } td { (b.agent.as_deref().unwrap_or("—")) } td { (time(b.at)) } } } } }
        }
        section #escalations {
            h2 { "Escalations (" (r.escalations.len()) ") " (csv_links(&["escalations"], last)) }
            div.table-box { table { tr { th { "Ticket" } th { "Level" } th { "From" } th { "To" } th { "By" } th { "When" } }
                @for e in &r.escalations { tr { td { a href=(format!("/ui/tickets/{}", e.ticket)) { (e.ticket) } } td { (e.level) } td { (e.from_group.as_deref().unwrap_or("—")) } td { (e.to_group.as_deref().unwrap_or("—")) } td { (e.by) } td { (time(e.at)) } } } } }
        }
    };
    page::layout("Dashboard", Some(who.who()), body).into_response()
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
    let mut r = r;
    if p.section == "all" || !r.keep(&p.section) {
        return (
            StatusCode::NOT_FOUND,
            format!(
                "`section`: no report section `{}`; sections: {}",
                p.section.escape_default(),
                crate::reports::SECTIONS.join(", ")
            ),
        )
            .into_response();
    }
    let text = crate::reports::csv::render(&r);
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
