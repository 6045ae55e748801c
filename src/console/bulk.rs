//! Bulk actions on the tickets selected in the queue: assign or transition each, every one as
//! its own engine `Command` (the same as the ticket page's forms and the JSON API), so the
//! engine checks each ticket on its own: a refused ticket is reported by id with the engine's
//! reason, and the others proceed.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::api::{ApiError, AppState};
use crate::console::page;
use crate::console::session::Signed;
use crate::console::tickets::{TransitionForm, assign_action, transition_action};
use crate::event::EventBody;
use crate::tickets::{Action, Actor, Command, TicketId};

/// Most tickets one bulk action takes.
pub const MAX_TICKETS: usize = 500;

/// What one ticket of a bulk action came to.
struct Outcome {
    ticket: String,
    refused: Option<String>,
}

/// The form: `csrf`, `action` (`assign` or `transition`), `ticket` once per selected
/// ticket, and the fields of the action (`assignee`; `to`, `reason`, `hold_reason`,
/// `resolution`).
#[derive(Default)]
struct BulkForm {
    csrf: String,
    action: String,
    tickets: Vec<String>,
    assignee: String,
    to: String,
    reason: String,
    hold_reason: String,
    resolution: String,
}

impl BulkForm {
    fn of(pairs: Vec<(String, String)>) -> Result<BulkForm, String> {
        let mut f = BulkForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "action" => f.action = v,
                "ticket" => f.tickets.push(v),
                "assignee" => f.assignee = v,
                "to" => f.to = v,
                "reason" => f.reason = v,
                "hold_reason" => f.hold_reason = v,
                "resolution" => f.resolution = v,
                other => return Err(format!("unknown field `{}`", other.escape_default())),
            }
        }
        Ok(f)
    }

    /// The action for one ticket, checked as the API checks its body.
    fn build(&self, ticket: TicketId, app: &AppState) -> Result<Action, ApiError> {
        let limits = &app.config.limits;
        match self.action.as_str() {
            "assign" => assign_action(ticket, limits, &self.assignee, None),
            "transition" => transition_action(
                ticket,
                limits,
                TransitionForm {
                    to: self.to.clone(),
                    reason: self.reason.clone(),
                    hold_reason: self.hold_reason.clone(),
                    resolution: self.resolution.clone(),
                    ..TransitionForm::default()
                },
            ),
            other => Err(ApiError::bad_request(format!(
                "`action`: `{}` is not one of assign, transition",
                other.escape_default()
            ))),
        }
    }
}

/// `POST /ui/bulk`: applies the action to every selected ticket and lists what each came to.
pub async fn submit(
    State(app): State<AppState>,
    who: Signed,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let f = match BulkForm::of(pairs) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if let Err(r) = who.check_csrf(&f.csrf) {
        return r.into_response();
    }
    if f.tickets.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "`ticket`: select at least one ticket",
        )
            .into_response();
    }
    if f.tickets.len() > MAX_TICKETS {
        return (
            StatusCode::BAD_REQUEST,
            format!("`ticket`: at most {MAX_TICKETS} tickets at once"),
        )
            .into_response();
    }
    // Every command is queued at once (the engine takes them in one or a few batches); each
    // answer is its own ticket's.
    let mut waiting = Vec::new();
    for raw in &f.tickets {
        let built = raw
            .parse::<TicketId>()
            .map_err(ApiError::bad_request)
            .and_then(|id| f.build(id, &app));
        let pending = built.map(|action| {
            let command = Command {
                by: Actor::User {
                    name: who.name.clone(),
                },
                action,
            };
            let engine = app.engine.clone();
            tokio::spawn(async move { engine.submit(EventBody::Command(command)).await })
        });
        waiting.push((raw.clone(), pending));
    }
    let mut outcomes = Vec::new();
    for (ticket, pending) in waiting {
        let refused = match pending {
            Err(e) => Some(e.message),
            Ok(task) => match task.await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(ApiError::submit(e, app.config.engine.retry_after_secs).message),
                Err(e) => Some(format!("the submission failed: {e}")),
            },
        };
        outcomes.push(Outcome { ticket, refused });
    }
    let refused = outcomes.iter().filter(|o| o.refused.is_some()).count();
    tracing::info!(user = %who.name, action = %f.action, tickets = outcomes.len(), refused, "Console bulk action.");
    let body = html! {
        h1 { "Bulk " (f.action) }
        p role="status" { (outcomes.len() - refused) " done, " (refused) " refused." }
        ul #bulk-result {
            @for o in &outcomes {
                li data-ticket=(o.ticket) {
                    a href=(format!("/ui/tickets/{}", o.ticket)) { (o.ticket) } ": "
                    @match &o.refused {
                        None => span.done { "done" },
                        Some(why) => span.breached { "refused: " (why) },
                    }
                }
            }
        }
        p { a href="/ui/" { "Back to the queue" } }
    };
    page::layout("Bulk action", Some(who.who()), body).into_response()
}
