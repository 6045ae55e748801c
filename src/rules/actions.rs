//! The `ticket` methods that go beyond setting a field: a manual priority, custom fields, a
//! transition, a comment, a link. Each records a decision at its line; a value that cannot be
//! right (an unknown state, a malformed ticket id) is a runtime error there, so the rule
//! fails visibly instead of being half-applied. Whether a transition or link is allowed is the
//! engine's call, made with the same checks as for an agent.

use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Map, NativeCallContext, Position};

use crate::rules::handle::{RhaiResult, TicketHandle, non_empty};
use crate::rules::{Decision, OpenTicket};
use crate::tickets::{HoldReason, Kind, LinkRel, NewTicket, Resolution, State, TicketId};

fn bad(at: Position, message: String) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(message.into(), at))
}

fn parsed<T>(at: Position, what: &str, r: Result<T, String>) -> RhaiResult<T> {
    r.map_err(|e| bad(at, format!("{what}: {e}")))
}

/// The optional `#{resolution, hold_reason}` of `ticket.transition(to, reason, options)`.
fn options(at: Position, map: &Map) -> RhaiResult<(Option<Resolution>, Option<HoldReason>)> {
    let mut resolution = None;
    let mut hold_reason = None;
    for (k, v) in map {
        let text = v.clone().into_string().map_err(|t| {
            bad(
                at,
                format!("transition option `{k}` must be a string, not {t}"),
            )
        })?;
        match k.as_str() {
            "resolution" => resolution = Some(parsed(at, "resolution", text.parse())?),
            "hold_reason" => hold_reason = Some(parsed(at, "hold_reason", text.parse())?),
            other => {
                return Err(bad(
                    at,
                    format!(
                        "unknown transition option `{other}`; expected resolution or hold_reason"
                    ),
                ));
            }
        }
    }
    Ok((resolution, hold_reason))
}

fn transition(
    ctx: &NativeCallContext,
    h: &mut TicketHandle,
    to: &str,
    reason: &str,
    opts: &Map,
) -> RhaiResult<()> {
    let at = ctx.call_position();
    let to: State = parsed(at, "ticket.transition", to.parse())?;
    let reason = non_empty(reason, "transition reason", at)?;
    let (resolution, hold_reason) = options(at, opts)?;
    h.decide(
        Decision::Transition {
            to,
            reason,
            resolution,
            hold_reason,
        },
        at,
    );
    Ok(())
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_fn(
        "set$priority",
        |ctx: NativeCallContext, h: &mut TicketHandle, p: i64| -> RhaiResult<()> {
            let at = ctx.call_position();
            let value = u8::try_from(p).ok().filter(|p| (1..=5).contains(p));
            let value = value.ok_or_else(|| {
                bad(
                    at,
                    format!("ticket.priority = {p}: must be 1 (critical) to 5 (planning)"),
                )
            })?;
            h.decide(Decision::SetPriority { value: Some(value) }, at);
            Ok(())
        },
    );
    engine.register_fn(
        "clear_priority",
        |ctx: NativeCallContext, h: &mut TicketHandle| {
            h.decide(Decision::SetPriority { value: None }, ctx.call_position());
        },
    );
    engine.register_fn(
        "set",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         key: ImmutableString,
         value: Dynamic|
         -> RhaiResult<()> {
            let at = ctx.call_position();
            let key = non_empty(&key, "custom field name", at)?;
            let value: serde_json::Value = rhai::serde::from_dynamic(&value)
                .map_err(|e| bad(at, format!("ticket.set({key:?}, …): {e}")))?;
            h.decide(Decision::SetCustom { key, value }, at);
            Ok(())
        },
    );
    engine.register_get("custom", |h: &mut TicketHandle| {
        rhai::serde::to_dynamic(&h.lock().view.custom).unwrap_or(Dynamic::UNIT)
    });
    engine.register_fn(
        "transition",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         to: ImmutableString,
         reason: ImmutableString| { transition(&ctx, h, &to, &reason, &Map::new()) },
    );
    engine.register_fn(
        "transition",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         to: ImmutableString,
         reason: ImmutableString,
         opts: Map| { transition(&ctx, h, &to, &reason, &opts) },
    );
    engine.register_fn(
        "comment",
        |ctx: NativeCallContext, h: &mut TicketHandle, body: ImmutableString| -> RhaiResult<()> {
            let at = ctx.call_position();
            let body = non_empty(&body, "comment", at)?;
            h.decide(
                Decision::Comment {
                    body,
                    public: false,
                },
                at,
            );
            Ok(())
        },
    );
    engine.register_fn(
        "comment_public",
        |ctx: NativeCallContext, h: &mut TicketHandle, body: ImmutableString| -> RhaiResult<()> {
            let at = ctx.call_position();
            let body = non_empty(&body, "comment", at)?;
            h.decide(Decision::Comment { body, public: true }, at);
            Ok(())
        },
    );
    engine.register_fn(
        "link",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         rel: ImmutableString,
         other: ImmutableString|
         -> RhaiResult<()> {
            let at = ctx.call_position();
            let rel = parsed(at, "ticket.link", LinkRel::parse(&rel))?;
            let ticket: TicketId = parsed(at, "ticket.link", other.parse())?;
            h.decide(Decision::Link { rel, ticket }, at);
            Ok(())
        },
    );
    engine.register_fn(
        "open_ticket",
        |ctx: NativeCallContext,
         h: &mut TicketHandle,
         kind: ImmutableString,
         fields: Map|
         -> RhaiResult<()> {
            let at = ctx.call_position();
            let open = open_ticket(at, &kind, &fields)?;
            h.decide(Decision::OpenTicket(Box::new(open)), at);
            Ok(())
        },
    );
}

/// The fields `open_ticket` takes; anything else is an error naming it.
pub(super) const OPEN_FIELDS: &[&str] = &[
    "title",
    "description",
    "group",
    "impact",
    "urgency",
    "priority",
    "tags",
    "custom",
    "link",
    "also",
];

/// `ticket.open_ticket(kind, #{title, …})` → the decision, every value checked here.
fn open_ticket(at: Position, kind: &str, fields: &Map) -> RhaiResult<OpenTicket> {
    let kind: Kind = parsed(at, "open_ticket", kind.parse())?;
    let text = |k: &str, v: &Dynamic| {
        v.clone()
            .into_string()
            .map_err(|t| bad(at, format!("open_ticket: `{k}` must be a string, not {t}")))
    };
    let strings = |k: &str, v: &Dynamic| -> RhaiResult<Vec<String>> {
        let items = v.clone().try_cast::<rhai::Array>().ok_or_else(|| {
            bad(
                at,
                format!("open_ticket: `{k}` must be an array of strings"),
            )
        })?;
        items.iter().map(|i| text(k, i)).collect()
    };
    let mut new = NewTicket::new(kind, String::new());
    let mut rel = if kind == Kind::Problem {
        LinkRel::CausedBy
    } else {
        LinkRel::ChildOf
    };
    let mut also = Vec::new();
    for (k, v) in fields {
        match k.as_str() {
            "title" => new.title = non_empty(&text(k, v)?, "open_ticket title", at)?,
            "description" => new.description = text(k, v)?,
            "group" => new.group = Some(non_empty(&text(k, v)?, "open_ticket group", at)?),
            "impact" => new.impact = Some(parsed(at, "open_ticket impact", text(k, v)?.parse())?),
            "urgency" => {
                new.urgency = Some(parsed(at, "open_ticket urgency", text(k, v)?.parse())?)
            }
            "priority" => {
                let p = v
                    .as_int()
                    .ok()
                    .and_then(|p| u8::try_from(p).ok())
                    .filter(|p| (1..=5).contains(p))
                    .ok_or_else(|| bad(at, "open_ticket: `priority` must be 1..=5".into()))?;
                new.priority = Some(p);
            }
            "tags" => new.tags = strings(k, v)?.into_iter().collect(),
            "custom" => {
                let map = v
                    .clone()
                    .try_cast::<Map>()
                    .ok_or_else(|| bad(at, "open_ticket: `custom` must be a map".into()))?;
                for (name, value) in map {
                    let json = serde_json::to_value(&value)
                        .map_err(|e| bad(at, format!("open_ticket: custom `{name}`: {e}")))?;
                    new.custom.insert(name.to_string(), json);
                }
            }
            "link" => rel = parsed(at, "open_ticket link", LinkRel::parse(&text(k, v)?))?,
            "also" => {
                for id in strings(k, v)? {
                    also.push(parsed(at, "open_ticket also", id.parse::<TicketId>())?);
                }
            }
            other => {
                return Err(bad(
                    at,
                    format!(
                        "open_ticket: unknown field `{other}`; expected {}",
                        OPEN_FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    if new.title.is_empty() {
        return Err(bad(at, "open_ticket: `title` is required".into()));
    }
    Ok(OpenTicket { new, rel, also })
}
