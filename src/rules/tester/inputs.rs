//! The inputs a rule test case can send, each turned into engine events by the code the
//! daemon runs on that input: the intake parsers of `alerts::intake` for the monitoring wire
//! formats, the Maildir reader's parser for a raw mail, the callback handler's event for a
//! vendor, the timer tasks' reads for clock events.

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::alerts::intake::body;
use crate::alerts::intake::generic::GenericEvent;
use crate::alerts::intake::pagerduty;
use crate::config::Config;
use crate::event::EventBody;
use crate::tickets::{Action, Actor, Command, NewTicket, TicketId, TransitionRequest};
use crate::vendors::VendorCallback;

/// One input of a case: exactly one of its inputs, optionally after moving the clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Input {
    /// A generic alert written as a TOML table, as `POST /api/v1/events` takes it.
    #[serde(default)]
    alert: Option<GenericEvent>,
    /// The raw JSON body of `POST /api/v1/events`.
    generic: Option<String>,
    /// The raw JSON body of `POST /api/v2/alerts` (what Prometheus sends).
    prometheus: Option<String>,
    /// The raw JSON body of `POST /webhook/alertmanager` (Alertmanager's or Grafana's).
    alertmanager: Option<String>,
    /// The raw JSON body of `POST /v2/enqueue` (PagerDuty Events v2).
    pagerduty: Option<String>,
    /// A raw RFC 5322 message, as the Maildir reader finds it in `new/`.
    mail: Option<String>,
    /// A vendor's callback, as `POST /api/v1/vendors/{name}/callback` passes it on once its
    /// signature is verified.
    callback: Option<CallbackInput>,
    /// Runs the clock forward, firing every SLA timer and alert expiry due on the way.
    clock: Option<ClockInput>,
    /// A ticket an agent creates, as `POST /api/v1/tickets` takes it.
    ticket: Option<NewTicket>,
    /// An agent's transition: `{ ticket = "CHG-000001", to = "implement", reason = "…" }`.
    transition: Option<TransitionInput>,
    /// Moves the case's clock to this time (RFC 3339) before the input.
    #[serde(default)]
    pub at: Option<Timestamp>,
    /// Moves the case's clock on by this much (`"30m"`, `"2h"`) before the input.
    #[serde(default)]
    pub after: Option<SignedDuration>,
}

/// (No `deny_unknown_fields`: serde does not support it with `flatten`; the transition's own
/// fields are still checked.)
#[derive(Debug, Deserialize)]
struct TransitionInput {
    ticket: TicketId,
    #[serde(flatten)]
    step: TransitionRequest,
}

/// The callback body's fields, and the vendor it is from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallbackInput {
    vendor: String,
    ticket: TicketId,
    #[serde(default)]
    reference: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// The `webhook-id` header; a callback sent twice with one id is applied once.
    /// Default: `test-N`, N the input's place in the case.
    #[serde(default)]
    webhook_id: Option<String>,
}

/// Where a clock event runs the clock to: exactly one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockInput {
    to: Option<Timestamp>,
    by: Option<SignedDuration>,
}

/// What to do for one input.
pub(super) enum Step {
    /// Submit these events together, as the daemon does for one request.
    Submit(Vec<EventBody>),
    /// Fire the timers due up to this time, each at its due time, then stop the clock there.
    Clock(Timestamp),
}

impl Input {
    /// The input's step; `n` is its 1-based place in the case, `now` the case's clock.
    pub(super) fn step(&self, config: &Config, n: usize, now: Timestamp) -> Result<Step, String> {
        let given: Vec<&str> = [
            ("alert", self.alert.is_some()),
            ("generic", self.generic.is_some()),
            ("prometheus", self.prometheus.is_some()),
            ("alertmanager", self.alertmanager.is_some()),
            ("pagerduty", self.pagerduty.is_some()),
            ("mail", self.mail.is_some()),
            ("callback", self.callback.is_some()),
            ("clock", self.clock.is_some()),
            ("ticket", self.ticket.is_some()),
            ("transition", self.transition.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if given.len() != 1 {
            return Err(format!(
                "give exactly one of `alert`, `generic`, `prometheus`, `alertmanager`, \
                 `pagerduty`, `mail`, `callback`, `clock`, `ticket` or `transition`; got {}",
                if given.is_empty() {
                    "none".to_string()
                } else {
                    given.join(", ")
                }
            ));
        }
        let agent = |action| {
            EventBody::Command(Command {
                by: Actor::User {
                    name: "rules-test".into(),
                },
                action,
            })
        };
        let alerts = |alerts: Vec<crate::alerts::Alert>| -> Result<Step, String> {
            crate::api::fields::alerts(&config.limits, &alerts).map_err(|e| e.message)?;
            Ok(Step::Submit(
                alerts.into_iter().map(EventBody::Alert).collect(),
            ))
        };
        if let Some(a) = &self.alert {
            return alerts(vec![a.clone().into_alert().map_err(|p| p.join("; "))?]);
        }
        if let Some(text) = &self.generic {
            return alerts(vec![
                body::generic(text.as_bytes()).map_err(|e| e.to_string())?,
            ]);
        }
        if let Some(text) = &self.prometheus {
            return alerts(body::prometheus(text.as_bytes(), now).map_err(|e| e.to_string())?);
        }
        if let Some(text) = &self.alertmanager {
            return alerts(body::webhook(text.as_bytes(), now).map_err(|e| e.to_string())?);
        }
        if let Some(text) = &self.pagerduty {
            let event = body::pagerduty(text.as_bytes()).map_err(|e| e.join("; "))?;
            // As the receiver: the configured integration key's name, else (a receiver open
            // to any key) the routing key itself; a trigger without a dedup key gets one.
            let keys = &config.pagerduty.integration_keys;
            let source = keys
                .get(&event.routing_key)
                .cloned()
                .unwrap_or_else(|| event.routing_key.clone());
            let dedup = event
                .dedup_key
                .clone()
                .unwrap_or_else(|| pagerduty::mint_dedup_key(now, n as u64));
            return alerts(vec![event.into_alert(dedup, source)]);
        }
        if let Some(raw) = &self.mail {
            let keep = config.mail.max_attachment_bytes;
            let event = crate::mail::maildir::parse::event(raw.as_bytes(), keep)
                .map_err(|e| format!("the mail would be quarantined: {e}"))?;
            return Ok(Step::Submit(vec![event]));
        }
        if let Some(c) = &self.callback {
            return Ok(Step::Submit(vec![EventBody::VendorCallback(
                VendorCallback {
                    vendor: c.vendor.clone(),
                    webhook_id: c.webhook_id.clone().unwrap_or_else(|| format!("test-{n}")),
                    ticket: c.ticket,
                    reference: c.reference.clone(),
                    comment: c.comment.clone(),
                    status: c.status.clone(),
                },
            )]));
        }
        if let Some(c) = &self.clock {
            return match (c.to, c.by) {
                (Some(to), None) => Ok(Step::Clock(to)),
                (None, Some(by)) => now
                    .checked_add(by)
                    .map(Step::Clock)
                    .map_err(|e| format!("`clock.by`: {e}")),
                _ => Err("`clock` takes exactly one of `to` (a time) or `by` (a duration)".into()),
            };
        }
        if let Some(t) = &self.ticket {
            return Ok(Step::Submit(vec![agent(Action::Create(t.clone()))]));
        }
        match &self.transition {
            Some(t) => Ok(Step::Submit(vec![agent(Action::Transition {
                ticket: t.ticket,
                step: t.step.clone(),
            })])),
            None => Err("no input".into()),
        }
    }
}
