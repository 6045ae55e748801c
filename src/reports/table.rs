//! A [`Report`] as readable text: one titled, column-aligned table per section present.
//! Pure formatting; it must not compute anything the JSON does not already say.

use std::fmt::Write;

use jiff::SignedDuration;

use crate::reports::{AGE_BUCKETS, Report};

/// The whole report as text.
pub fn render(r: &Report) -> String {
    let mut out = format!("Report for {} .. {}\n", r.from, r.to);
    let dur = |secs: i64| format!("{:#}", SignedDuration::from_secs(secs));
    let times = |rows: &[crate::reports::TimeRow]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|t| {
                vec![
                    t.by.clone(),
                    t.value.clone(),
                    t.count.to_string(),
                    dur(t.mean_secs),
                    dur(t.median_secs),
                ]
            })
            .collect()
    };
    let time_head = ["BY", "VALUE", "TICKETS", "MEAN", "MEDIAN"];
    section(
        r,
        "mtta",
        &mut out,
        "MTTA (first responses in the period, from opening)",
        &time_head,
        times(&r.mtta),
    );
    section(
        r,
        "mttr",
        &mut out,
        "MTTR (first resolved in the period, from opening)",
        &time_head,
        times(&r.mttr),
    );
    section(
        r,
        "sla",
        &mut out,
        "SLA compliance (clocks met or breached in the period)",
        &["POLICY", "CLOCK", "ENDED", "MET", "MISSED", "COMPLIANCE"],
        r.sla
            .iter()
            .map(|c| {
                vec![
                    c.policy.clone(),
                    c.clock.clone(),
                    c.ended.to_string(),
                    c.met.to_string(),
                    c.missed.to_string(),
                    format!("{:.1}%", c.compliance_pct),
                ]
            })
            .collect(),
    );
    section(
        r,
        "breaches",
        &mut out,
        "Breaches",
        &["TICKET", "POLICY", "CLOCK", "DUE", "RECORDED"],
        r.breaches
            .iter()
            .map(|b| {
                vec![
                    b.ticket.clone(),
                    b.policy.clone(),
                    b.clock.clone(),
                    b.due.as_str().unwrap_or("-").to_string(),
                    b.at.to_string(),
                ]
            })
            .collect(),
    );
    section(
        r,
        "sla",
        &mut out,
        "SLA compliance per group, agent, priority, kind and vendor",
        &[
            "BY",
            "VALUE",
            "POLICY",
            "CLOCK",
            "MET",
            "MISSED",
            "COMPLIANCE",
        ],
        r.sla_by
            .iter()
            .map(|c| {
                vec![
                    c.by.clone(),
                    c.value.clone(),
                    c.policy.clone(),
                    c.clock.clone(),
                    c.met.to_string(),
                    c.missed.to_string(),
                    format!("{:.1}%", c.compliance_pct),
                ]
            })
            .collect(),
    );
    let mut head = vec!["STATE"];
    head.extend(AGE_BUCKETS.iter().map(|(name, _)| *name));
    head.push("TOTAL");
    section(
        r,
        "backlog",
        &mut out,
        "Backlog by state (open now, aged at the period's end)",
        &head,
        r.backlog
            .iter()
            .map(|b| {
                let mut row = vec![b.state.clone()];
                row.extend(b.ages.iter().map(u64::to_string));
                row.push(b.total.to_string());
                row
            })
            .collect(),
    );
    let mut head = vec!["GROUP"];
    head.extend(AGE_BUCKETS.iter().map(|(name, _)| *name));
    head.push("TOTAL");
    section(
        r,
        "backlog",
        &mut out,
        "Backlog by group",
        &head,
        r.backlog_groups
            .iter()
            .map(|b| {
                let mut row = vec![b.group.clone()];
                row.extend(b.ages.iter().map(u64::to_string));
                row.push(b.total.to_string());
                row
            })
            .collect(),
    );
    section(
        r,
        "volume",
        &mut out,
        "Volume (opened in the period)",
        &["SOURCE", "KIND", "TICKETS"],
        r.volume
            .iter()
            .map(|v| vec![v.source.clone(), v.kind.clone(), v.count.to_string()])
            .collect(),
    );
    section(
        r,
        "escalations",
        &mut out,
        "Escalations",
        &["TICKET", "LEVEL", "FROM", "TO", "BY", "AT"],
        r.escalations
            .iter()
            .map(|e| {
                vec![
                    e.ticket.clone(),
                    e.level.to_string(),
                    e.from_group.clone().unwrap_or_else(|| "-".into()),
                    e.to_group.clone().unwrap_or_else(|| "-".into()),
                    e.by.clone(),
                    e.at.to_string(),
                ]
            })
            .collect(),
    );
    section(
        r,
        "trends",
        &mut out,
        "Trends (per day, then per week from Monday)",
        &[
            "PERIOD",
            "START",
            "OPENED",
            "ACKED",
            "MTTA",
            "RESOLVED",
            "MTTR",
            "MET",
            "MISSED",
            "COMPLIANCE",
        ],
        r.trends
            .iter()
            .map(|t| {
                vec![
                    t.period.clone(),
                    t.start.strftime("%Y-%m-%d").to_string(),
                    t.opened.to_string(),
                    t.acknowledged.to_string(),
                    dur(t.mtta_mean_secs),
                    t.resolved.to_string(),
                    dur(t.mttr_mean_secs),
                    t.met.to_string(),
                    t.missed.to_string(),
                    format!("{:.1}%", t.compliance_pct),
                ]
            })
            .collect(),
    );
    out
}

/// One section: a title, then the header and rows padded to each column's width; "(none)"
/// when there are no rows.
fn section(
    r: &Report,
    key: &str,
    out: &mut String,
    title: &str,
    head: &[&str],
    rows: Vec<Vec<String>>,
) {
    if !r.sections.iter().any(|s| s == key) {
        return;
    }
    let _ = writeln!(out, "\n{title}");
    if rows.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("  {}\n", padded.join("  ").trim_end())
    };
    out.push_str(&line(head.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
}
