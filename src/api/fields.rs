//! Size limits on text fields (`[limits]`): checked on the request, before anything reaches
//! the engine, so an oversized label or comment is refused whole with the field named.

use axum::http::StatusCode;
use serde_json::json;

use crate::alerts::Alert;
use crate::api::ApiError;
use crate::config::FieldLimits;
use crate::tickets::{CommentRequest, NewTicket, ReviewRequest, TicketUpdate, TransitionRequest};

/// One field over its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    /// Where it is, e.g. `alerts[2].labels.host`.
    pub field: String,
    pub bytes: usize,
    /// The `[limits]` key that bounds it.
    pub setting: &'static str,
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is {} bytes; at most limits.{} = {}",
            self.field, self.bytes, self.setting, self.limit
        )
    }
}

/// Collects the fields over their limits.
struct Check<'a> {
    limits: &'a FieldLimits,
    found: Vec<TooLarge>,
}

impl Check<'_> {
    /// Notes `text` when it is longer than `limit`, the value of `limits.<setting>`.
    fn field(
        &mut self,
        field: impl FnOnce() -> String,
        text: &str,
        (setting, limit): (&'static str, usize),
    ) {
        if text.len() > limit {
            self.found.push(TooLarge {
                field: field(),
                bytes: text.len(),
                setting,
                limit,
            });
        }
    }

    fn alert(&mut self, path: &str, a: &Alert) {
        let l = self.limits;
        for (name, value) in &a.labels {
            self.field(
                || format!("{path}labels.{name:.64}"),
                name,
                ("label_bytes", l.label_bytes),
            );
            self.field(
                || format!("{path}labels.{name:.64}"),
                value,
                ("label_bytes", l.label_bytes),
            );
        }
        for (name, value) in &a.annotations {
            self.field(
                || format!("{path}annotations.{name:.64}"),
                value,
                ("annotation_bytes", l.annotation_bytes),
            );
        }
        self.field(
            || format!("{path}summary"),
            &a.summary,
            ("title_bytes", l.title_bytes),
        );
        if let Some(d) = &a.description {
            self.field(
                || format!("{path}description"),
                d,
                ("description_bytes", l.description_bytes),
            );
        }
    }

    fn done(self) -> Result<(), ApiError> {
        if self.found.is_empty() {
            return Ok(());
        }
        let message = self
            .found
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let problems: Vec<_> = self
            .found
            .iter()
            .map(|t| json!({"field": t.field, "bytes": t.bytes, "limit": t.limit, "setting": format!("limits.{}", t.setting)}))
            .collect();
        Err(
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "field_too_large", message)
                .with_details(json!({"field": self.found[0].field, "problems": problems})),
        )
    }
}

fn check(limits: &FieldLimits) -> Check<'_> {
    Check {
        limits,
        found: Vec::new(),
    }
}

/// The alerts of one request (paths `alerts[i].…` when there are several).
pub fn alerts(limits: &FieldLimits, alerts: &[Alert]) -> Result<(), ApiError> {
    let mut c = check(limits);
    for (i, a) in alerts.iter().enumerate() {
        let path = if alerts.len() == 1 {
            String::new()
        } else {
            format!("alerts[{i}].")
        };
        c.alert(&path, a);
    }
    c.done()
}

pub fn new_ticket(limits: &FieldLimits, t: &NewTicket) -> Result<(), ApiError> {
    let (l, mut c) = (limits, check(limits));
    c.field(|| "title".into(), &t.title, ("title_bytes", l.title_bytes));
    c.field(
        || "description".into(),
        &t.description,
        ("description_bytes", l.description_bytes),
    );
    if let Some(b) = &t.backout_plan {
        c.field(
            || "backout_plan".into(),
            b,
            ("description_bytes", l.description_bytes),
        );
    }
    c.done()
}

pub fn ticket_update(limits: &FieldLimits, u: &TicketUpdate) -> Result<(), ApiError> {
    let (l, mut c) = (limits, check(limits));
    if let Some(title) = &u.title {
        c.field(|| "title".into(), title, ("title_bytes", l.title_bytes));
    }
    if let Some(d) = &u.description {
        c.field(
            || "description".into(),
            d,
            ("description_bytes", l.description_bytes),
        );
    }
    if let Some(Some(b)) = &u.backout_plan {
        c.field(
            || "backout_plan".into(),
            b,
            ("description_bytes", l.description_bytes),
        );
    }
    if let Some(r) = &u.reason {
        c.field(
            || "reason".into(),
            r,
            ("description_bytes", l.description_bytes),
        );
    }
    c.done()
}

/// One text field against one limit.
fn single(
    limits: &FieldLimits,
    field: &'static str,
    text: &str,
    limit: (&'static str, usize),
) -> Result<(), ApiError> {
    let mut c = check(limits);
    c.field(|| field.into(), text, limit);
    c.done()
}

/// A transition's reason, kept in the history: bounded like a description.
pub fn transition(limits: &FieldLimits, t: &TransitionRequest) -> Result<(), ApiError> {
    let limit = ("description_bytes", limits.description_bytes);
    single(limits, "reason", &t.reason, limit)
}

pub fn comment(limits: &FieldLimits, r: &CommentRequest) -> Result<(), ApiError> {
    single(
        limits,
        "body",
        &r.body,
        ("comment_bytes", limits.comment_bytes),
    )
}

/// A post-implementation review's notes, kept on the change: bounded like a description.
pub fn review(limits: &FieldLimits, r: &ReviewRequest) -> Result<(), ApiError> {
    let limit = ("description_bytes", limits.description_bytes);
    single(limits, "notes", &r.notes, limit)
}
