//! The operations views (role `admin`): the rule set in force with each file's runs, errors,
//! decisions and time (read from the daemon's own metrics registry), a replay of a candidate
//! rule directory (the same `rules::replay::replay` as `itsmd replay`) with its per-ticket
//! differences, the outbox with its dead letters and a replay button (the same engine event
//! as `itsmd outbox replay`), and health and readiness as `/healthz` and `/readyz` answer.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::api::{ApiError, AppState};
use crate::console::page;
use crate::console::session::{Admin, Signed};
use crate::console::views;
use crate::event::EventBody;
use crate::metrics::RuleLabels;
use crate::rules::replay::{self, ReplayError};
use crate::store::Tree;
use crate::store::layout::outbox;
use crate::vendors::{Delivery, OutboxRow};

/// Most outbox rows a page lists, per tree.
const OUTBOX_ROWS: usize = 200;

/// A JSON value as compact text, strings bare.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// The rule files in force, one row per file and hook, with their counters.
fn rule_table(app: &AppState) -> Markup {
    let rules = app.engine.rules();
    let set = rules.set();
    let m = app.engine.metrics();
    let disabled = app.engine.status().disabled_rules;
    html! {
        p { "Version " code #rules-version { (set.version) } " from " (set.origin) "." }
        table #rules {
            thead { tr { th { "File" } th { "Hook" } th { "Runs" } th { "Errors" } th { "Decisions" } th { "Time" } th { "Status" } } }
            tbody {
                @for f in &set.files {
                    @for hook in &f.hooks {
                        @let labels = RuleLabels { rule: f.name.to_string(), hook: hook.to_string() };
                        @let runs = m.rule_evaluations.get(&labels).map_or(0, |c| c.get());
                        @let errors = m.rule_errors.get(&labels).map_or(0, |c| c.get());
                        @let decisions = m.rule_decisions.get(&labels).map_or(0, |c| c.get());
                        @let secs = m.rule_seconds.get(&labels).map_or(0.0, |c| c.get());
                        tr data-rule=(f.name) data-hook=(hook) {
                            td { (f.name) } td { (hook) }
                            td.runs { (runs) } td.errors { (errors) } td { (decisions) }
                            td { (format!("{:.3} ms", secs * 1000.0)) }
                            td { @if disabled.iter().any(|d| **d == *f.name) { span.breached { "disabled (budget)" } } @else { "enabled" } }
                        }
                    }
                    @if f.hooks.is_empty() {
                        tr { td { (f.name) } td.muted colspan="6" { "no hooks" } }
                    }
                }
            }
        }
    }
}

/// Health and readiness as the probes see them.
async fn probes(app: &AppState) -> Markup {
    let health = crate::api::health::healthz(State(app.clone())).await.0;
    let ready = crate::api::health::readyz(State(app.clone())).await;
    html! {
        dl.fields #health {
            dt { "Health" } dd { (text(&health["status"])) }
            dt { "Readiness" } dd #readiness { @match &ready {
                Ok(r) => (text(&r.0["status"])),
                Err(e) => span.breached { "not ready: " (e.message) },
            } }
            dt { "Role" } dd { (text(&health["role"])) }
            dt { "Version" } dd { (text(&health["version"])) }
            dt { "Queue depth" } dd { (text(&health["queue_depth"])) }
            dt { "Events processed" } dd { (text(&health["events_processed"])) }
            dt { "Last reload" } dd #last-reload { (last_reload(&app.reloader.last_reload())) }
        }
    }
}

/// The last reload in words: put in force, or refused with every problem (the files on disk
/// are then not what runs).
fn last_reload(last: &crate::reload::LastReload) -> Markup {
    let at = crate::console::views::time(last.at);
    html! {
        @if last.ok {
            "succeeded at " (at)
        } @else {
            span.breached { "refused at " (at) " (" (last.what) "); what was running keeps running:" }
            ul { @for p in &last.problems { li { code { (p) } } } }
        }
    }
}

/// The replay form (a directory on the daemon's host, an optional `since`).
fn replay_form(who: &Signed, dir: &str, since: &str) -> Markup {
    html! {
        form #replay method="post" action="/ui/ops/replay" {
            input type="hidden" name="csrf" value=(who.csrf);
            label { "Candidate rule directory " input name="dir" value=(dir) required placeholder="/etc/itsmd/rules.next"; }
            label { "Since " input name="since" value=(since) placeholder="2026-01-01T00:00:00Z"; }
            button type="submit" { "Replay" }
        }
    }
}

async fn ops_page(
    app: &AppState,
    who: &Signed,
    replay: Option<Markup>,
    status: StatusCode,
) -> Response {
    let body = html! {
        h1 { "Operations" }
        nav.sub { a href="/ui/ops/outbox" { "Outbox and dead letters" } }
        h2 { "Health" }
        (probes(app).await)
        h2 { "Rules in force" }
        (rule_table(app))
        h2 { "Replay a candidate rule set" }
        p.muted { "Every recorded event runs through the candidate rules on an in-memory copy; nothing is written." }
        @if let Some(r) = replay { (r) } @else { (replay_form(who, "", "")) }
    };
    (status, page::layout("Operations", Some(who.who()), body)).into_response()
}

/// `GET /ui/ops`
pub async fn show(State(app): State<AppState>, Admin(who): Admin) -> Response {
    ops_page(&app, &who, None, StatusCode::OK).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    since: String,
}

/// The `*.rhai` files of `dir`, by name.
fn candidate(dir: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "rhai") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, text));
        }
    }
    if files.is_empty() {
        return Err(format!("{} holds no *.rhai file", dir.display()));
    }
    files.sort();
    Ok(files)
}

fn replay_report(r: &replay::Report) -> Markup {
    html! {
        div #replay-report {
            p { "Replayed " (r.events) " events, compared " (r.compared) "." }
            @if r.event_differences.is_empty() && r.ticket_differences.is_empty() {
                p.notice { "No differences: the candidate rules do what the running ones did." }
            }
            @if !r.event_differences.is_empty() {
                h3 { "Events handled differently" }
                table { thead { tr { th { "Event" } th { "Received" } th { "Happened" } th { "Would" } } }
                    tbody { @for e in &r.event_differences { tr {
                        td { (e.event.map_or("—".to_string(), |n| n.to_string())) }
                        td { (views::time(e.received_at)) } td { (e.happened) } td { (e.would) }
                    } } } }
            }
            @if !r.ticket_differences.is_empty() {
                h3 { "Tickets that would differ" }
                table #ticket-differences { thead { tr { th { "Ticket" } th { "Field" } th { "Happened" } th { "Would" } th { "Events" } } }
                    tbody { @for t in &r.ticket_differences { tr {
                        td { @match (&t.ticket, &t.replay_ticket) {
                            (Some(real), _) => a href=(format!("/ui/tickets/{real}")) { (real) },
                            (None, Some(new)) => { (new) " (new)" },
                            (None, None) => { "opened by event " (t.opened_by) },
                        } }
                        td { (t.field) } td { (text(&t.happened)) } td { (text(&t.would)) }
                        td { (t.events.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) }
                    } } } }
            }
        }
    }
}

/// `POST /ui/ops/replay`: replays the journal with the directory's rules and shows the
/// differences (or why it could not).
pub async fn replay(
    State(app): State<AppState>,
    Admin(who): Admin,
    Form(f): Form<ReplayForm>,
) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into_response();
    }
    let form = replay_form(&who, &f.dir, &f.since);
    let refused = |status: StatusCode, msg: String, details: Vec<String>| {
        let shown = html! {
            p.error role="alert" #replay-error { (msg) }
            @if !details.is_empty() { ul.error { @for d in &details { li { (d) } } } }
            (form)
        };
        (status, shown)
    };
    let since = match f.since.trim() {
        "" => None,
        s => match crate::clock::parse_instant("`since`", s) {
            Ok(t) => Some(t),
            Err(e) => {
                let (st, m) = refused(StatusCode::BAD_REQUEST, e, vec![]);
                return ops_page(&app, &who, Some(m), st).await;
            }
        },
    };
    let dir = std::path::PathBuf::from(f.dir.trim());
    let (config, store) = (app.config.clone(), app.store.clone());
    // Shutdown stops the replay between two events, as the API's replay.
    let stop = app.shutdown.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let sources = candidate(&dir).map_err(|e| (StatusCode::BAD_REQUEST, e, vec![]))?;
        replay::replay(&config, &*store, sources, since, &stop).map_err(|e| match e {
            ReplayError::Rules(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the candidate rules do not compile: {} error(s)",
                    errors.len()
                ),
                errors.iter().map(ToString::to_string).collect(),
            ),
            other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string(), vec![]),
        })
    })
    .await
    .unwrap_or_else(|e| Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), vec![])));
    let (status, shown) = match outcome {
        Ok(report) => {
            tracing::info!(user = %who.name, dir = %f.dir, events = report.events, "Console replay run.");
            (StatusCode::OK, html! { (replay_report(&report)) (form) })
        }
        Err((status, msg, details)) => refused(status, msg, details),
    };
    ops_page(&app, &who, Some(shown), status).await
}

fn outbox_rows(who: &Signed, rows: &[OutboxRow], dead: bool) -> Markup {
    html! {
        @if rows.is_empty() { p.muted { "None." } } @else {
            table id=(if dead { "dead" } else { "pending" }) {
                thead { tr { th { "Row" } th { "Destination" } th { "Ticket" } th { "Type" } th { "Attempts" } th { "Last error" } th { "When" } th {} } }
                tbody { @for r in rows { tr data-row=(r.id) {
                    td { (r.id) } td { (r.vendor) }
                    td { a href=(format!("/ui/tickets/{}", r.ticket)) { (r.ticket) } }
                    td { (r.kind) } td { (r.attempts) }
                    td { (r.last_error.as_deref().unwrap_or("—")) }
                    td { @if let Some(t) = r.dead_at.or(r.next_at) { (views::time(t)) } @else { "—" } }
                    td { form.replay method="post" action="/ui/ops/outbox/replay" {
                        input type="hidden" name="csrf" value=(who.csrf);
                        input type="hidden" name="id" value=(r.id);
                        button type="submit" { "Replay" }
                    } }
                } } }
            }
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    #[serde(default)]
    replayed: Option<u64>,
}

/// `GET /ui/ops/outbox`: pending rows and dead letters, each with a replay button.
pub async fn outbox(
    State(app): State<AppState>,
    Admin(who): Admin,
    Query(p): Query<OutboxParams>,
) -> Response {
    let read = app
        .read(|s| {
            Ok((
                outbox::rows(s, Tree::OutboxDead, None, None, OUTBOX_ROWS)?,
                outbox::rows(s, Tree::Outbox, None, None, OUTBOX_ROWS)?,
            ))
        })
        .await;
    let (dead, pending) = match read {
        Ok(r) => r,
        Err(e) => return (e.status, e.message).into_response(),
    };
    let body = html! {
        h1 { "Outbox" }
        nav.sub { a href="/ui/ops" { "Operations" } }
        @if let Some(id) = p.replayed { p.notice role="status" #replayed { "Row " (id) " will be sent again from attempt 1." } }
        h2 { "Dead letters (" (dead.len()) ")" }
        (outbox_rows(&who, &dead, true))
        h2 { "Pending (" (pending.len()) ")" }
        (outbox_rows(&who, &pending, false))
    };
    page::layout("Outbox", Some(who.who()), body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
}

/// `POST /ui/ops/outbox/replay`: the same engine event as `POST /api/v1/admin/outbox/replay`
/// with `{"id": N}`.
pub async fn replay_row(
    State(app): State<AppState>,
    Admin(who): Admin,
    Form(f): Form<ReplayRowForm>,
) -> Response {
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into_response();
    }
    let Ok(id) = f.id.trim().parse::<u64>() else {
        return (StatusCode::BAD_REQUEST, "`id`: not an outbox row number").into_response();
    };
    let known = app
        .read(move |s| Ok(outbox::dead(s, id)?.is_some() || outbox::pending(s, id)?.is_some()))
        .await;
    match known {
        Ok(true) => {}
        Ok(false) => {
            return (
                StatusCode::NOT_FOUND,
                format!("there is no outbox row {id}"),
            )
                .into_response();
        }
        Err(e) => return (e.status, e.message).into_response(),
    }
    match app
        .engine
        .submit(EventBody::Delivery(Delivery::ReplayRow { row: id }))
        .await
    {
        Ok(_) => {
            tracing::info!(row = id, user = %who.name, "Outbox row replayed from the console.");
            Redirect::to(&format!("/ui/ops/outbox?replayed={id}")).into_response()
        }
        Err(e) => {
            let e = ApiError::submit(e, app.config.engine.retry_after_secs);
            (e.status, e.message).into_response()
        }
    }
}
