//! Time in rules: `now()`, `in_business_hours(calendar)` and
//! `business_time_until(calendar, until)`, from the configured `[calendars]` (and the built-in
//! `24x7`). "Now" is the engine's clock — the time of the event being processed — so a rule
//! decides the same in replay and in `rules test` (which pins a manual clock) as it did live.
//! Read only; never writes.

use std::cell::RefCell;
use std::sync::Arc;

use rhai::{Engine, EvalAltResult, NativeCallContext, Position};

use crate::sla::{Calendar, Calendars};

thread_local! {
    /// The calendars in force, bound by the thread that runs hooks (per batch: a reload may
    /// replace them). Unbound: only `24x7`.
    static CALENDARS: RefCell<Option<Arc<Calendars>>> = const { RefCell::new(None) };
}

/// Lets hooks run on this thread use `calendars`.
pub fn bind(calendars: Arc<Calendars>) {
    CALENDARS.with(|c| *c.borrow_mut() = Some(calendars));
}

fn fail(at: Position, message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), at))
}

/// The calendar called `name`, or an error naming the configured ones.
fn calendar(name: &str, at: Position) -> Result<Arc<Calendar>, Box<EvalAltResult>> {
    let calendars = CALENDARS.with(|c| c.borrow().clone()).unwrap_or_default();
    calendars.get(name).cloned().ok_or_else(|| {
        let known: Vec<&str> = calendars.names().collect();
        fail(
            at,
            format!(
                "unknown calendar `{name}`; configured calendars: {}",
                known.join(", ")
            ),
        )
    })
}

/// `now()`: the time of the event being processed, RFC 3339 (UTC).
fn now() -> String {
    crate::rules::queries::now().to_string()
}

/// `in_business_hours("office")`: whether the calendar is open now.
fn in_business_hours(ctx: NativeCallContext, name: &str) -> Result<bool, Box<EvalAltResult>> {
    let at = ctx.call_position();
    calendar(name, at)?
        .is_open(crate::rules::queries::now())
        .map_err(|e| fail(at, format!("in_business_hours: {e}")))
}

/// `business_time_until("office", "2026-12-08T17:00:00Z")`: business minutes from now until
/// then in the calendar (whole minutes, rounded down); negative when it has passed.
fn business_time_until(
    ctx: NativeCallContext,
    name: &str,
    until: &str,
) -> Result<i64, Box<EvalAltResult>> {
    let at = ctx.call_position();
    let cal = calendar(name, at)?;
    let until =
        crate::clock::parse_instant("business_time_until", until).map_err(|e| fail(at, e))?;
    let now = crate::rules::queries::now();
    let (from, to, sign) = if until >= now {
        (now, until, 1)
    } else {
        (until, now, -1)
    };
    let business = cal
        .between(from, to)
        .map_err(|e| fail(at, format!("business_time_until: {e}")))?;
    Ok(sign * business.as_secs() / 60)
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("now", now);
    engine.register_fn("in_business_hours", in_business_hours);
    engine.register_fn("business_time_until", business_time_until);
}
