//! The dispatcher: a task that reads due outbox rows from the store, sends each through its
//! channel's sender (webhooks: a POST to the vendor signed with Standard Webhooks; mail: the
//! SMTP sender of `mail::outbound`), and hands the result back to the engine as a
//! [`Delivery`] event: the engine alone writes rows. Rows scan in due order; each
//! destination (vendor, or the SMTP server) has at most `max_in_flight` deliveries at once,
//! and only the head of a ticket's queue is ever due, so one ticket's messages arrive in
//! order. Redirects are not followed. Every destination passes the egress policy first
//! (`egress`): a refused one is dead-lettered with the reason.
//!
//! A delivery cut off by shutdown or a crash leaves its row due: it is sent again after the
//! restart with the same webhook-id. The dispatcher sleeps until the next row is due or the
//! engine says it committed new ones; it must not write the store or log secrets.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::egress::{EgressError, Policy};
use crate::engine::{EngineHandle, SubmitError};
use crate::event::EventBody;
use crate::mail::chat::ChatSenders;
use crate::mail::chat::sender::ChatSender;
use crate::mail::outbound::{Sent, SmtpSender};
use crate::metrics;
use crate::metrics::Metrics;
use crate::store::layout::outbox;
use crate::store::layout::outbox::parse_due_key;
use crate::store::{Store, StoreError, Tree};
use crate::vendors::registry::{Vendor, Vendors};
use crate::vendors::{
    AttemptResult, Channel, Delivery, Next, OutboxRow, RetrySchedule, parse_retry_after, sign,
};

/// Longest the dispatcher sleeps when nothing is due (new rows wake it anyway).
/// What one look at the outbox found.
#[derive(Default)]
struct Due {
    /// Rows to send now, with their sender.
    start: Vec<(OutboxRow, Sender)>,
    /// When the first row not yet due falls due.
    next: Option<Timestamp>,
    /// Vendors seen for the first time that are not configured (their rows are held).
    unknown: Vec<String>,
}

const IDLE: Duration = Duration::from_secs(60);
/// Wait before scanning again after a store read failed.
const READ_RETRY: Duration = Duration::from_secs(5);

/// Who delivers a row: its channel's sender.
#[derive(Clone)]
enum Sender {
    Webhook(Arc<Vendor>),
    Mail(Arc<SmtpSender>),
    Chat(Arc<ChatSender>),
}

impl Sender {
    fn max_in_flight(&self) -> usize {
        match self {
            Sender::Webhook(v) => v.max_in_flight,
            Sender::Mail(m) => m.max_in_flight,
            Sender::Chat(c) => c.max_in_flight,
        }
    }

    fn retry(&self) -> &RetrySchedule {
        match self {
            Sender::Webhook(v) => &v.retry,
            Sender::Mail(m) => &m.retry,
            Sender::Chat(c) => &c.retry,
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    /// Where results go, and the clock every timestamp comes from.
    engine: EngineHandle,
    vendors: Vendors,
    /// Mail out, when `[smtp]` is configured.
    mail: Option<Arc<SmtpSender>>,
    /// Chat channels, by destination.
    chat: ChatSenders,
    /// No redirects; per-request timeouts come from each vendor.
    http: reqwest::Client,
    /// The clients of vendors with a `proxy`, by vendor name.
    proxied: HashMap<String, reqwest::Client>,
    shutdown: CancellationToken,
    /// The engine's registry: deliveries count where the engine's own counters do.
    metrics: Arc<Metrics>,
    /// Where deliveries may go.
    egress: Policy,
    /// Destinations whose last attempt failed: an outage is logged once as a warning when it
    /// starts and once when it ends, not per attempt (those stay at debug) nor only when a
    /// row finally goes dead hours later.
    failing: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// How one attempt went, before the schedule is consulted.
enum Answer {
    Delivered(u16),
    /// Worth retrying: timeout, connection failure, 408, 429 or 5xx.
    Failed {
        error: String,
        reason: &'static str,
        retry_after: Option<Duration>,
    },
    /// Not worth retrying (another 4xx, a redirect): dead at once.
    Refused {
        error: String,
        reason: &'static str,
    },
    Gone(String),
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        engine: EngineHandle,
        vendors: Vendors,
        mail: Option<SmtpSender>,
        chat: ChatSenders,
        egress: Policy,
        shutdown: CancellationToken,
    ) -> Result<Dispatcher, reqwest::Error> {
        // Never the environment's HTTP_PROXY & co.: a vendor's webhooks go through a proxy
        // only when its `proxy` says so.
        let client = |proxy: Option<&reqwest::Url>| {
            let builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .dns_resolver(egress.resolver())
                .no_proxy();
            match proxy {
                Some(url) => builder.proxy(reqwest::Proxy::all(url.clone())?).build(),
                None => builder.build(),
            }
        };
        let http = client(None)?;
        let mut proxied = HashMap::new();
        for vendor in vendors.iter() {
            if let Some(url) = &vendor.proxy {
                proxied.insert(vendor.name.clone(), client(Some(url))?);
            }
        }
        Ok(Dispatcher {
            proxied,
            store,
            metrics: engine.metrics().clone(),
            engine,
            vendors,
            mail: mail.map(Arc::new),
            chat,
            http,
            shutdown,
            egress,
            failing: Default::default(),
        })
    }

    /// Runs until shutdown; deliveries under way are cut off (their rows stay due).
    pub async fn run(self) {
        if self.vendors.is_empty() && self.mail.is_none() && self.chat.is_empty() {
            return;
        }
        let this = Arc::new(self);
        let ready = this.engine.outbox_ready();
        let mut in_flight: HashMap<u64, String> = HashMap::new();
        let mut rows_of: HashMap<tokio::task::Id, u64> = HashMap::new();
        let mut tasks = JoinSet::new();
        let mut unknown = HashSet::new();
        info!("Outbox dispatcher started.");
        loop {
            let wait = match this.clone().due(&in_flight, &unknown).await {
                Ok(due) => {
                    for vendor in due.unknown {
                        warn!(vendor = %vendor, "Outbox rows for a destination that is not configured are held.");
                        unknown.insert(vendor);
                    }
                    for (row, vendor) in due.start {
                        in_flight.insert(row.id, row.vendor.clone());
                        let id = row.id;
                        let handle = tasks.spawn(this.clone().deliver(row, vendor));
                        rows_of.insert(handle.id(), id);
                    }
                    match due.next {
                        Some(next) => Duration::try_from(next.duration_since(this.engine.now()))
                            .unwrap_or(Duration::ZERO),
                        None => IDLE,
                    }
                }
                Err(e) => {
                    error!(error = %e, "Cannot read the outbox; trying again shortly.");
                    READ_RETRY
                }
            };
            tokio::select! {
                _ = this.shutdown.cancelled() => break,
                _ = ready.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            error!(error = %e, "A webhook delivery task failed.");
                            e.id()
                        }
                    };
                    if let Some(row) = rows_of.remove(&id) {
                        in_flight.remove(&row);
                    }
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        info!("Outbox dispatcher stopped.");
    }

    /// Looks at the outbox on a blocking thread (store reads never run on the runtime's
    /// workers): the due rows whose vendor has room, and when the next row falls due.
    async fn due(
        self: Arc<Self>,
        in_flight: &HashMap<u64, String>,
        unknown: &HashSet<String>,
    ) -> Result<Due, StoreError> {
        let (in_flight, unknown) = (in_flight.clone(), unknown.clone());
        let store = self.store.clone();
        crate::store::read(&store, move |store| {
            self.find_due(store, in_flight, &unknown)
        })
        .await
    }

    fn find_due(
        &self,
        store: &dyn Store,
        mut in_flight: HashMap<u64, String>,
        unknown: &HashSet<String>,
    ) -> Result<Due, StoreError> {
        let now = self.engine.now();
        let mut found = Due::default();
        let mut disabled: HashMap<String, bool> = HashMap::new();
        let bounds = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        for item in store.range(Tree::OutboxDue, bounds.0, bounds.1) {
            let (key, _) = item?;
            let Some((due, id)) = parse_due_key(&key) else {
                continue;
            };
            if due > now {
                found.next = Some(due);
                return Ok(found);
            }
            // Not flushed yet (the engine wakes us once it is), or already being sent.
            if id > self.engine.durable_outbox_row() || in_flight.contains_key(&id) {
                continue;
            }
            let Some(row) = outbox::pending(store, id)? else {
                continue;
            };
            let sender = match row.channel {
                Channel::Webhook => self.vendors.get(&row.vendor).cloned().map(Sender::Webhook),
                Channel::Mail => self.mail.clone().map(Sender::Mail),
                Channel::Chat => self.chat.get(&row.vendor).map(Sender::Chat),
            };
            let Some(vendor) = sender else {
                if !unknown.contains(&row.vendor) && !found.unknown.contains(&row.vendor) {
                    found.unknown.push(row.vendor.clone());
                }
                continue;
            };
            let off = match disabled.get(&row.vendor) {
                Some(off) => *off,
                None => {
                    let off = outbox::vendor_state(store, &row.vendor)?
                        .disabled_at
                        .is_some();
                    disabled.insert(row.vendor.clone(), off);
                    off
                }
            };
            let busy = in_flight.values().filter(|v| **v == row.vendor).count();
            if off || busy >= vendor.max_in_flight() {
                continue;
            }
            in_flight.insert(id, row.vendor.clone());
            found.start.push((row, vendor));
        }
        Ok(found)
    }

    /// Makes one attempt and reports it; gives up quietly on shutdown (the row stays due).
    async fn deliver(self: Arc<Self>, row: OutboxRow, sender: Sender) {
        let attempt = row.attempts + 1;
        let at = self.engine.now();
        let sending = async {
            if let Err(refused) = self.allowed(&sender).await {
                return refused;
            }
            match &sender {
                Sender::Webhook(vendor) => self.send(&row, vendor, at).await,
                Sender::Mail(smtp) => mail_answer(smtp.send(&row.body).await),
                Sender::Chat(chat) => {
                    let request = chat.request(&self.http, &row);
                    self.answer(request, chat.timeout).await
                }
            }
        };
        let answer = tokio::select! {
            answer = sending => answer,
            _ = self.shutdown.cancelled() => {
                debug!(row = row.id, "Delivery cut off by shutdown; the row stays due.");
                return;
            }
        };
        let result = self.judge(&row, sender.retry(), attempt, answer);
        let delivery = Delivery::Attempted {
            row: row.id,
            attempt,
            at,
            result,
        };
        self.report(EventBody::Delivery(delivery)).await;
    }

    /// Whether the egress policy lets this delivery connect where it would: the vendor's
    /// proxy when it has one, else its URL's host; the SMTP server.
    /// A refusal is final (dead-lettered); a name that does not resolve is retried.
    async fn allowed(&self, sender: &Sender) -> Result<(), Answer> {
        let (what, target) = match sender {
            Sender::Webhook(v) => match &v.proxy {
                Some(proxy) => (
                    format!("vendors.{}.proxy", v.name),
                    Policy::url_target(proxy),
                ),
                None => (
                    format!("vendors.{}.url", v.name),
                    Policy::url_target(&v.url),
                ),
            },
            Sender::Chat(c) => (format!("chat.{}.url", c.name), Policy::url_target(c.url())),
            Sender::Mail(m) => (
                "smtp.host".to_string(),
                m.server
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?))),
            ),
        };
        let Some((host, port)) = target else {
            return Err(Answer::Refused {
                error: format!("{what} has no host to connect to"),
                reason: "egress",
            });
        };
        match self.egress.check(&host, port).await {
            Ok(_) => Ok(()),
            Err(e @ EgressError::Refused { .. }) => Err(Answer::Refused {
                error: format!("{what}: {e}"),
                reason: "egress",
            }),
            Err(e @ EgressError::Resolve { .. }) => Err(Answer::Failed {
                error: format!("{what}: {e}"),
                reason: "connect",
                retry_after: None,
            }),
        }
    }

    async fn send(&self, row: &OutboxRow, vendor: &Vendor, at: Timestamp) -> Answer {
        let signed = match sign(&vendor.secrets, &row.msg_id, at, row.body.as_bytes()) {
            Ok(s) => s,
            Err(e) => {
                return Answer::Refused {
                    error: format!("cannot sign: {e}"),
                    reason: "sign",
                };
            }
        };
        let http = self.proxied.get(&vendor.name).unwrap_or(&self.http);
        let mut request = http
            .post(vendor.url.clone())
            .timeout(vendor.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("itsmd/", env!("CARGO_PKG_VERSION")));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        self.answer(request.body(row.body.clone()), vendor.timeout)
            .await
    }

    /// Sends an HTTP request and says what its answer means.
    async fn answer(&self, request: reqwest::RequestBuilder, timeout: Duration) -> Answer {
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Answer::Failed {
                    error: format!("no answer within {} ms", timeout.as_millis()),
                    reason: "timeout",
                    retry_after: None,
                };
            }
            Err(e) => {
                return Answer::Failed {
                    error: format!("cannot connect: {}", e.without_url()),
                    reason: "connect",
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, self.engine.now()).ok());
        classify(status, retry_after)
    }

    /// What the engine should make of an answer, by the vendor's retry schedule.
    fn judge(
        &self,
        row: &OutboxRow,
        retry: &RetrySchedule,
        attempt: u32,
        answer: Answer,
    ) -> AttemptResult {
        let m = &*self.metrics;
        let name = &row.vendor;
        self.note_outage(name, &answer);
        match answer {
            Answer::Delivered(status) => {
                metrics::vendor(&m.webhook_deliveries, name, "delivered");
                AttemptResult::Delivered { status }
            }
            Answer::Gone(error) => {
                metrics::vendor(&m.webhook_failures, name, "gone");
                metrics::vendor(&m.webhook_deliveries, name, "gone");
                AttemptResult::Gone { error }
            }
            Answer::Refused { error, reason } => {
                metrics::vendor(&m.webhook_failures, name, reason);
                metrics::vendor(&m.webhook_deliveries, name, "dead");
                AttemptResult::Dead {
                    error: format!("{error}; not retried"),
                }
            }
            Answer::Failed {
                error,
                reason,
                retry_after,
            } => {
                metrics::vendor(&m.webhook_failures, name, reason);
                let previous = row.last_delay_ms.map(Duration::from_millis);
                let mut random = fastrand::Rng::new();
                match retry.next(attempt, previous, retry_after, &mut random) {
                    Next::Retry(delay) => {
                        metrics::vendor(&m.webhook_deliveries, name, "retry");
                        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                        let next_at = self
                            .engine
                            .now()
                            .checked_add(delay)
                            .unwrap_or(Timestamp::MAX);
                        debug!(row = row.id, to = %name, attempt, delay_ms, error = %error, "Delivery attempt failed; will retry.");
                        AttemptResult::Retry {
                            error,
                            next_at,
                            delay_ms,
                        }
                    }
                    Next::Dead => {
                        metrics::vendor(&m.webhook_deliveries, name, "dead");
                        AttemptResult::Dead {
                            error: format!("{error}; gave up after {attempt} attempt(s)"),
                        }
                    }
                }
            }
        }
    }

    /// Logs the start of a destination's failures (with the first error) and their end.
    fn note_outage(&self, name: &str, answer: &Answer) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        match answer {
            Answer::Failed { error, .. } | Answer::Refused { error, .. } => {
                if failing.insert(name.to_string()) {
                    warn!(to = %name, error = %error, "Deliveries are failing; they are retried by the destination's schedule.");
                }
            }
            Answer::Delivered(_) | Answer::Gone(_) => {
                if failing.remove(name) {
                    info!(to = %name, "Deliveries succeed again.");
                }
            }
        }
    }

    /// Submits a result, waiting out a full queue; on shutdown the row simply stays due.
    async fn report(&self, body: EventBody) {
        let mut wait = Duration::from_millis(50);
        loop {
            match self.engine.submit(body.clone()).await {
                Ok(_) => return,
                Err(SubmitError::Busy) | Err(SubmitError::Store(_)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    warn!(error = %e, "Delivery result not recorded; the row stays due.");
                    return;
                }
            }
        }
    }
}

/// The meaning of an SMTP hand-over (250 is reported as the status of a delivered mail).
fn mail_answer(sent: Sent) -> Answer {
    match sent {
        Sent::Delivered => Answer::Delivered(250),
        Sent::Transient(error) => Answer::Failed {
            error,
            reason: "smtp_transient",
            retry_after: None,
        },
        Sent::Permanent(error) => Answer::Refused {
            error,
            reason: "smtp_permanent",
        },
    }
}

/// The meaning of an HTTP answer.
fn classify(status: StatusCode, retry_after: Option<Duration>) -> Answer {
    let code = status.as_u16();
    if status.is_success() {
        return Answer::Delivered(code);
    }
    if status == StatusCode::GONE {
        return Answer::Gone("410 Gone".into());
    }
    let error = format!("HTTP {code}");
    match code {
        429 => Answer::Failed {
            error,
            reason: "status_429",
            retry_after,
        },
        408 => Answer::Failed {
            error,
            reason: "timeout",
            retry_after,
        },
        500..=599 => Answer::Failed {
            error,
            reason: "status_5xx",
            retry_after,
        },
        300..=399 => Answer::Refused {
            error: format!("{error}: redirects are not followed"),
            reason: "redirect",
        },
        _ => Answer::Refused {
            error,
            reason: "status_4xx",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_issue_says() {
        let kind = |code: u16| match classify(StatusCode::from_u16(code).unwrap(), None) {
            Answer::Delivered(_) => "delivered",
            Answer::Failed { .. } => "retry",
            Answer::Refused { .. } => "dead",
            Answer::Gone(_) => "gone",
        };
        assert_eq!(kind(200), "delivered");
        assert_eq!(kind(204), "delivered");
        assert_eq!(kind(429), "retry");
        assert_eq!(kind(500), "retry");
        assert_eq!(kind(503), "retry");
        assert_eq!(kind(408), "retry");
        assert_eq!(kind(410), "gone");
        assert_eq!(kind(302), "dead");
        assert_eq!(kind(400), "dead");
        assert_eq!(kind(401), "dead");
    }
}
