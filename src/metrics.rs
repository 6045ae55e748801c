//! Every metric itsmd exports, named in one place, and the Prometheus text encoding.
//!
//! Each engine instance owns one [`Metrics`] registry (the daemon's is the one `/metrics`
//! serves; replay and `rules test` run on a scratch one that is thrown away). Counters and
//! histograms are incremented where things happen; gauges that describe stored state (tickets by kind and state, queue depth) are set
//! from the store and the engine at scrape time, so they cannot drift from the data.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    /// Who sent it: the token's name, or the source a PagerDuty routing key stands for.
    pub caller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// The wire format an event came in (generic, alertmanager, prometheus, pagerduty, …).
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub source: String,
    /// The API error code, e.g. `invalid_json`, `queue_full`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TicketLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabels {
    /// `journal` (events), `ticket_alerts` (their occurrence rows), `vendor_callbacks`
    /// (callback-ids whose event was pruned) or `mail_senders` (ended rate windows).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `process` (rules and decisions against the overlay), `apply` (the store write) or
    /// `flush` (the fsync that makes the batch durable).
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TreeLabels {
    /// The store's tree (`events`, `tickets`, `history`, an index…).
    pub tree: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// Rule file name.
    pub rule: String,
    pub hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlaLabels {
    /// The SLA policy the clock runs under.
    pub policy: String,
    /// response, resolution or vendor.
    pub clock: String,
    /// warning or breach.
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route pattern (not the raw path, to bound cardinality).
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VendorLabels {
    /// The vendor's configured name.
    pub vendor: String,
    /// What happened: for deliveries delivered|retry|dead|gone, for failures the reason
    /// (timeout, connect, status_429, status_5xx, status_4xx, redirect, gone), for
    /// callbacks applied|duplicate|bad_signature|refused.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What the engine did with an event: opened, updated, reopened, suppressed, seen, …
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why, as a short name, e.g. `auto_submitted`, `rate_limit`, `unparseable`.
    pub reason: String,
}

pub struct Metrics {
    /// Holds every family below for encoding.
    registry: Registry,
    pub events_received: Family<SourceLabels, Counter>,
    pub events_accepted: Family<SourceLabels, Counter>,
    pub events_rejected: Family<RejectLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub queue_depth: Gauge,
    /// Cluster mode: events in the shared inbox not yet processed by the leader.
    pub inbox_depth: Gauge,
    /// Cluster mode: times this node took or lost the engine lease.
    pub lease_changes: Counter,
    /// Cluster mode: batches refused because this node's lease token was no longer current.
    pub fenced_batches: Counter,
    pub batch_size: Histogram,
    /// Database queries per engine batch (reads, inbox read and commit; 0 on the embedded store).
    pub batch_round_trips: Histogram,
    pub commit_seconds: Histogram,
    /// Where commit time goes, so a slow engine points at rules, the store or the disk.
    pub commit_stage_seconds: Family<StageLabels, Counter<f64>>,
    /// Keys the engine's commits wrote (puts and deletes) per tree, and the bytes of the
    /// values put: what an event costs the store, so a change that adds keys shows.
    pub store_writes: Family<TreeLabels, Counter>,
    pub store_write_bytes: Family<TreeLabels, Counter>,
    pub tickets: Family<TicketLabels, Gauge>,
    pub rule_evaluations: Family<RuleLabels, Counter>,
    pub rule_errors: Family<RuleLabels, Counter>,
    pub rule_decisions: Family<RuleLabels, Counter>,
    pub rule_seconds: Family<RuleLabels, Counter<f64>>,
    /// Rule files disabled until the next reload for exhausting their budget.
    pub rules_disabled: Gauge,
    /// 1 when the last reload (SIGHUP, a rule file saved, the admin API) was put in force, 0
    /// when it was refused: the files on disk are then not what runs. As Prometheus'
    /// and Alertmanager's `*_config_last_reload_successful`, so the same alert fits.
    pub reload_last_successful: Gauge,
    /// When a reload last succeeded (or the daemon started), in Unix seconds.
    pub reload_last_success_seconds: Gauge,
    /// Rows waiting in the outbox, set at scrape time.
    pub outbox_pending: Gauge,
    /// Dead rows waiting for a replay, set at scrape time.
    pub outbox_dead: Gauge,
    pub webhook_deliveries: Family<VendorLabels, Counter>,
    pub webhook_failures: Family<VendorLabels, Counter>,
    pub vendor_callbacks: Family<VendorLabels, Counter>,
    /// SLA warnings and breaches fired, by policy, clock and stage.
    pub sla_stages: Family<SlaLabels, Counter>,
    /// Tickets with an SLA timer yet to fire (one row each; set from the store at scrape time).
    pub sla_timers_pending: Gauge,
    pub mails_processed: Family<OutcomeLabels, Counter>,
    pub mails_suppressed: Family<ReasonLabels, Counter>,
    pub mails_quarantined: Family<ReasonLabels, Counter>,
    /// Messages in new/ that could not be read or moved to cur/ (each counted once until it
    /// is taken), by reason.
    pub mails_stuck: Family<ReasonLabels, Counter>,
    /// Intake requests refused with 429 by the per-caller rate limit, by caller.
    pub rate_limited: Family<CallerLabels, Counter>,
    /// Records the retention sweep deleted, by kind.
    pub retention_pruned: Family<PrunedLabels, Counter>,
    /// Checkpoints of the embedded store (a close and reopen, so a start replays little),
    /// and how long store calls waited for them.
    pub store_checkpoints: Counter,
    pub store_checkpoint_seconds: Counter<f64>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered and every counter at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("itsmd");
        let m = Metrics {
            events_received: Family::default(),
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            http_requests: Family::default(),
            queue_depth: Gauge::default(),
            inbox_depth: Gauge::default(),
            lease_changes: Counter::default(),
            fenced_batches: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            batch_round_trips: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            commit_stage_seconds: Family::default(),
            store_writes: Family::default(),
            store_write_bytes: Family::default(),
            retention_pruned: Family::default(),
            store_checkpoints: Counter::default(),
            store_checkpoint_seconds: Counter::<f64>::default(),
            tickets: Family::default(),
            rule_evaluations: Family::default(),
            rule_errors: Family::default(),
            rule_decisions: Family::default(),
            rule_seconds: Family::default(),
            outbox_pending: Gauge::default(),
            outbox_dead: Gauge::default(),
            webhook_deliveries: Family::default(),
            webhook_failures: Family::default(),
            vendor_callbacks: Family::default(),
            sla_stages: Family::default(),
            sla_timers_pending: Gauge::default(),
            rules_disabled: Gauge::default(),
            reload_last_successful: Gauge::default(),
            reload_last_success_seconds: Gauge::default(),
            mails_processed: Family::default(),
            mails_suppressed: Family::default(),
            mails_quarantined: Family::default(),
            mails_stuck: Family::default(),
            rate_limited: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "rate_limited",
            "Intake requests refused by the per-caller rate limit (429), by caller",
            m.rate_limited.clone(),
        );
        registry.register(
            "events_received",
            "Events received by intake, by wire format",
            m.events_received.clone(),
        );
        registry.register(
            "events_accepted",
            "Events durably accepted (2xx sent)",
            m.events_accepted.clone(),
        );
        registry.register(
            "events_rejected",
            "Events refused, by wire format and reason",
            m.events_rejected.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "queue_depth",
            "Events waiting for the engine",
            m.queue_depth.clone(),
        );
        registry.register(
            "inbox_depth",
            "Cluster mode: events in the shared inbox not yet processed by the leader",
            m.inbox_depth.clone(),
        );
        registry.register(
            "lease_changes",
            "Cluster mode: times this node took or lost the engine lease",
            m.lease_changes.clone(),
        );
        registry.register(
            "fenced_batches",
            "Cluster mode: batches refused because another node holds the lease",
            m.fenced_batches.clone(),
        );
        registry.register(
            "batch_size",
            "Events per engine commit",
            m.batch_size.clone(),
        );
        registry.register(
            "batch_round_trips",
            "Database queries per engine batch (0 on the embedded store)",
            m.batch_round_trips.clone(),
        );
        registry.register(
            "commit_seconds",
            "Time to process, apply and flush one batch",
            m.commit_seconds.clone(),
        );
        registry.register(
            "commit_stage_seconds",
            "Engine time per commit stage: process, apply, flush",
            m.commit_stage_seconds.clone(),
        );
        registry.register(
            "store_writes",
            "Keys written (put or deleted) by the engine's commits, per tree",
            m.store_writes.clone(),
        );
        registry.register(
            "store_write_bytes",
            "Bytes of the values the engine's commits put, per tree",
            m.store_write_bytes.clone(),
        );
        registry.register("tickets", "Tickets by kind and state", m.tickets.clone());
        registry.register(
            "rule_evaluations",
            "Hook calls per rule file",
            m.rule_evaluations.clone(),
        );
        registry.register(
            "rule_errors",
            "Failed hook calls per rule file",
            m.rule_errors.clone(),
        );
        registry.register(
            "rule_decisions",
            "Decisions recorded per rule file",
            m.rule_decisions.clone(),
        );
        registry.register(
            "rule_seconds",
            "Time spent in hook calls per rule file",
            m.rule_seconds.clone(),
        );
        registry.register(
            "outbox_pending",
            "Webhook messages waiting in the outbox (delivering or retrying)",
            m.outbox_pending.clone(),
        );
        registry.register(
            "outbox_dead",
            "Webhook messages given up on, waiting for a replay",
            m.outbox_dead.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by vendor and result",
            m.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_failures",
            "Failed webhook delivery attempts by vendor and reason",
            m.webhook_failures.clone(),
        );
        registry.register(
            "vendor_callbacks",
            "Vendor callbacks by vendor and result",
            m.vendor_callbacks.clone(),
        );
        registry.register(
            "sla_stages",
            "SLA warnings and breaches fired, by policy, clock and stage",
            m.sla_stages.clone(),
        );
        registry.register(
            "rules_disabled",
            "Rule files disabled until the next reload for exhausting their budget",
            m.rules_disabled.clone(),
        );
        registry.register(
            "reload_last_successful",
            "Whether the last reload of configuration or rules was put in force (1) or refused (0)",
            m.reload_last_successful.clone(),
        );
        registry.register(
            "reload_last_success_timestamp_seconds",
            "When a reload last succeeded, or the daemon started, in Unix seconds",
            m.reload_last_success_seconds.clone(),
        );
        registry.register(
            "sla_timers_pending",
            "Tickets with an SLA timer yet to fire",
            m.sla_timers_pending.clone(),
        );
        registry.register(
            "mails_processed",
            "Mails taken from the Maildir and committed, by outcome",
            m.mails_processed.clone(),
        );
        registry.register(
            "mails_suppressed",
            "Mails that opened no ticket, by reason (loop protection, bounce, rule)",
            m.mails_suppressed.clone(),
        );
        registry.register(
            "mails_quarantined",
            "Messages moved to quarantine, by reason",
            m.mails_quarantined.clone(),
        );
        registry.register(
            "mail_stuck",
            "Messages left in new/ because they cannot be read or moved to cur/, by reason",
            m.mails_stuck.clone(),
        );
        registry.register(
            "retention_pruned",
            "Records the retention sweep deleted, by kind (journal, ticket_alerts, vendor_callbacks, mail_senders)",
            m.retention_pruned.clone(),
        );
        registry.register(
            "store_checkpoints",
            "Checkpoints of the embedded store (closed and reopened so that a start replays only what came after)",
            m.store_checkpoints.clone(),
        );
        registry.register(
            "store_checkpoint_seconds",
            "Time store calls waited for the embedded store's checkpoints",
            m.store_checkpoint_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an intake request's outcome.
    pub fn intake(&self, source: &str, outcome: Result<(), &str>) {
        self.events_received
            .get_or_create(&SourceLabels {
                source: source.into(),
            })
            .inc();
        match outcome {
            Ok(()) => {
                self.events_accepted
                    .get_or_create(&SourceLabels {
                        source: source.into(),
                    })
                    .inc();
            }
            Err(reason) => {
                self.events_rejected
                    .get_or_create(&RejectLabels {
                        source: source.into(),
                        reason: reason.into(),
                    })
                    .inc();
            }
        }
    }
}

/// Counts one vendor-related happening in `family` (deliveries, failures, callbacks).
pub fn vendor(family: &Family<VendorLabels, Counter>, vendor: &str, result: &str) {
    family
        .get_or_create(&VendorLabels {
            vendor: vendor.into(),
            result: result.into(),
        })
        .inc();
}
