//! A [`Report`] as CSV: one block per section present, each with its header row; every row
//! starts with the section's name, so the blocks of `all` can be told apart (and filtered)
//! in a spreadsheet. Blocks are separated by an empty line. Pure formatting.

use crate::reports::{AGE_BUCKETS, Report};

/// One CSV field: quoted when needed, and a leading `= + - @` defused so a spreadsheet does
/// not run it as a formula.
pub fn field(v: &str) -> String {
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

/// One section's name, header and rows.
type Block<'a> = (&'a str, Vec<String>, Vec<Vec<String>>);

/// The whole report (the sections it has) as CSV text.
pub fn render(r: &Report) -> String {
    let mut blocks: Vec<Block<'_>> = Vec::new();
    let head = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let times = |rows: &[crate::reports::TimeRow]| {
        rows.iter()
            .map(|t| {
                vec![
                    t.by.clone(),
                    t.value.clone(),
                    t.count.to_string(),
                    t.mean_secs.to_string(),
                    t.median_secs.to_string(),
                ]
            })
            .collect()
    };
    let time_head = head(&["by", "value", "count", "mean_secs", "median_secs"]);
    blocks.push(("mtta", time_head.clone(), times(&r.mtta)));
    blocks.push(("mttr", time_head, times(&r.mttr)));
    let mut sla: Vec<Vec<String>> = r
        .sla
        .iter()
        .map(|c| {
            vec![
                "all".into(),
                String::new(),
                c.policy.clone(),
                c.clock.clone(),
                c.met.to_string(),
                c.missed.to_string(),
                format!("{:.1}", c.compliance_pct),
            ]
        })
        .collect();
    sla.extend(r.sla_by.iter().map(|c| {
        vec![
            c.by.clone(),
            c.value.clone(),
            c.policy.clone(),
            c.clock.clone(),
            c.met.to_string(),
            c.missed.to_string(),
            format!("{:.1}", c.compliance_pct),
        ]
    }));
    blocks.push((
        "sla",
        head(&[
            "by",
            "value",
            "policy",
            "clock",
            "met",
            "missed",
            "compliance_pct",
        ]),
        sla,
    ));
    blocks.push((
        "breaches",
        head(&["ticket", "policy", "clock", "due", "at", "group", "agent"]),
        r.breaches
            .iter()
            .map(|b| {
                vec![
                    b.ticket.clone(),
                    b.policy.clone(),
                    b.clock.clone(),
                    match &b.due {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    },
                    b.at.to_string(),
                    b.group.clone().unwrap_or_default(),
                    b.agent.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    ));
    let mut backlog_head = vec!["by".to_string(), "value".to_string()];
    backlog_head.extend(AGE_BUCKETS.iter().map(|(n, _)| n.to_string()));
    backlog_head.push("total".into());
    let aged = |by: &str, value: &str, ages: &[u64], total: u64| {
        let mut row = vec![by.to_string(), value.to_string()];
        row.extend(ages.iter().map(u64::to_string));
        row.push(total.to_string());
        row
    };
    let mut backlog: Vec<Vec<String>> = r
        .backlog
        .iter()
        .map(|b| aged("state", &b.state, &b.ages, b.total))
        .collect();
    backlog.extend(
        r.backlog_groups
            .iter()
            .map(|b| aged("group", &b.group, &b.ages, b.total)),
    );
    blocks.push(("backlog", backlog_head, backlog));
    blocks.push((
        "volume",
        head(&["source", "kind", "count"]),
        r.volume
            .iter()
            .map(|v| vec![v.source.clone(), v.kind.clone(), v.count.to_string()])
            .collect(),
    ));
    blocks.push((
        "escalations",
        head(&["ticket", "level", "from_group", "to_group", "by", "at"]),
        r.escalations
            .iter()
            .map(|e| {
                vec![
                    e.ticket.clone(),
                    e.level.to_string(),
                    e.from_group.clone().unwrap_or_default(),
                    e.to_group.clone().unwrap_or_default(),
                    e.by.clone(),
                    e.at.to_string(),
                ]
            })
            .collect(),
    ));
    blocks.push((
        "trends",
        head(&[
            "period",
            "start",
            "opened",
            "acknowledged",
            "mtta_mean_secs",
            "resolved",
            "mttr_mean_secs",
            "met",
            "missed",
            "compliance_pct",
        ]),
        r.trends
            .iter()
            .map(|t| {
                vec![
                    t.period.clone(),
                    t.start.to_string(),
                    t.opened.to_string(),
                    t.acknowledged.to_string(),
                    t.mtta_mean_secs.to_string(),
                    t.resolved.to_string(),
                    t.mttr_mean_secs.to_string(),
                    t.met.to_string(),
                    t.missed.to_string(),
                    format!("{:.1}", t.compliance_pct),
                ]
            })
            .collect(),
    ));
    let line = |section: &str, fields: &[String]| {
        let mut out = field(section);
        for f in fields {
            out.push(',');
            out.push_str(&field(f));
        }
        out + "\r\n"
    };
    blocks
        .iter()
        .filter(|(name, _, _)| r.sections.iter().any(|s| s == name))
        .map(|(name, head, rows)| {
            let mut block = line("section", head);
            for row in rows {
                block.push_str(&line(name, row));
            }
            block
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}
