//! Semantic checks that types alone cannot express. Pure: returns every problem found.

use crate::config::Config;

pub fn problems(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut positive = |name: &str, v: u64| {
        if v == 0 {
            out.push(format!("{name} must be greater than 0"));
        }
    };
    positive("server.max_body_bytes", c.server.max_body_bytes as u64);
    positive("server.request_timeout_secs", c.server.request_timeout_secs);
    positive("server.header_timeout_secs", c.server.header_timeout_secs);
    positive(
        "server.body_read_timeout_secs",
        c.server.body_read_timeout_secs,
    );
    positive(
        "server.max_unauthenticated_requests",
        c.server.max_unauthenticated_requests as u64,
    );
    positive(
        "server.max_concurrent_requests",
        c.server.max_concurrent_requests as u64,
    );
    positive("store.cache_mb", c.store.cache_mb);
    positive("limits.label_bytes", c.limits.label_bytes as u64);
    positive("limits.annotation_bytes", c.limits.annotation_bytes as u64);
    positive("limits.title_bytes", c.limits.title_bytes as u64);
    positive(
        "limits.description_bytes",
        c.limits.description_bytes as u64,
    );
    positive("limits.comment_bytes", c.limits.comment_bytes as u64);
    positive("engine.queue_capacity", c.engine.queue_capacity as u64);
    positive("engine.max_batch", c.engine.max_batch as u64);
    positive("engine.stall_after_secs", c.engine.stall_after_secs);
    positive("rules.max_operations", c.rules.max_operations);
    positive("rules.time_budget_ms", c.rules.time_budget_ms);
    positive("rules.max_call_depth", c.rules.max_call_depth as u64);
    positive("rules.max_string_size", c.rules.max_string_size as u64);
    positive("rules.max_array_size", c.rules.max_array_size as u64);
    positive("rules.max_map_size", c.rules.max_map_size as u64);
    if c.rules.triage_group.trim().is_empty() {
        out.push("rules.triage_group must not be empty".into());
    }
    if c.store.data_dir.as_os_str().is_empty() {
        out.push("store.data_dir must not be empty".into());
    }
    out.extend(c.priority.matrix.problems());
    out.extend(crate::auth::config::problems(&c.auth));
    out.extend(crate::tickets::config::problems(
        &c.groups,
        &c.approval,
        &c.lifecycle,
        &c.rules.triage_group,
    ));
    if c.server.ingest_rate_per_sec > 0 && c.server.ingest_burst == 0 {
        out.push(
            "server.ingest_burst must be greater than 0 when ingest_rate_per_sec is set".into(),
        );
    }
    if !c.server.listen.ip().is_loopback() && c.auth.tokens.is_empty() {
        out.push(format!(
            "server.listen = {} is not a loopback address and [auth] has no tokens: \
             itsmd refuses to serve an open API on the network; add [[auth.tokens]]",
            c.server.listen
        ));
    }
    match (c.store.backend, &c.store.url) {
        (crate::config::StoreBackend::Postgres, None) => {
            out.push("store.url is required with store.backend = \"postgres\"".into())
        }
        (crate::config::StoreBackend::Embedded, Some(_)) => out.push(
            "store.url is only read with store.backend = \"postgres\"; remove it or set the backend"
                .into(),
        ),
        (crate::config::StoreBackend::Postgres, Some(url)) => {
            if let Some(p) = crate::store::url_problem(url) {
                out.push(format!("store.url: {p}"));
            }
        }
        _ => {}
    }
    out.extend(c.changes.problems());
    out.extend(c.cluster.problems(c.store.backend));
    out.extend(crate::api::browser::problems(&c.server));
    out.extend(crate::egress::problems(&c.egress));
    out.extend(crate::sla::calendar_config::problems(&c.calendars));
    out.extend(crate::sla::policy::problems(&c.sla, c.calendars.keys()));
    out.extend(crate::alerts::config::problems(&c.alerts, &c.pagerduty));
    out.extend(crate::vendors::config::problems(&c.vendors));
    out.extend(crate::mail::config::problems(&c.mail));
    out.extend(crate::mail::outbound::config::problems(c.smtp.as_ref()));
    out.extend(crate::retention::config::problems(&c.retention));
    out.extend(crate::mail::chat::config::problems(&c.chat, &c.groups));
    out
}
