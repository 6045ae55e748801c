//! Configuration: TOML shaped like `config/itsmd.toml`, whose text is also embedded as the
//! defaults. Loading is pure: [`parse`] turns text into a [`Config`] or into every problem at
//! once (syntax, unknown keys, wrong types, invalid values), so an operator fixes all of them
//! in one round.

pub mod duration;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::alerts::{AlertsConfig, PagerDutyConfig};
use crate::auth::AuthConfig;
use crate::mail::MailConfig;
use crate::mail::outbound::SmtpConfig;
use crate::sla::CalendarConfig;
use crate::tickets::{ApprovalConfig, Groups, LifecycleConfig, PriorityMatrix};
use crate::vendors::VendorConfig;

/// The shipped, commented configuration; `itsmd serve` without `--config` runs on it.
pub const DEFAULT_TOML: &str = include_str!("../../config/itsmd.toml");

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub engine: EngineConfig,
    pub rules: RulesConfig,
    pub priority: PriorityConfig,
    pub auth: AuthConfig,
    /// Business-hours calendars for SLA clocks, by name (`24x7` is built in).
    pub calendars: BTreeMap<String, CalendarConfig>,
    pub alerts: AlertsConfig,
    pub pagerduty: PagerDutyConfig,
    pub groups: Groups,
    pub approval: ApprovalConfig,
    pub lifecycle: LifecycleConfig,
    /// `[changes]`: the standard change catalogue.
    pub changes: crate::tickets::ChangeConfig,
    /// Partner vendors sent signed webhooks, by name (none by default).
    pub vendors: BTreeMap<String, VendorConfig>,
    /// SLA policies (targets, calendars, pauses) and the vendors' underpinning targets.
    pub sla: crate::sla::SlaConfig,
    /// Mail intake from a Maildir.
    pub mail: MailConfig,
    /// Largest text fields the API accepts (`api::fields`).
    pub limits: FieldLimits,
    /// Mail out over SMTP; none without the section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    /// Several nodes on one PostgreSQL database (`cluster`).
    pub cluster: crate::cluster::ClusterConfig,
    /// How long the event journal is kept (`retention`).
    pub retention: crate::retention::RetentionConfig,
    /// Chat channels people notifications are posted to, by name (none by default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chat: BTreeMap<String, crate::mail::chat::ChatChannel>,
    /// Where the daemon may connect on its own (`egress`).
    pub egress: crate::egress::EgressConfig,
}

/// `[limits]`: the largest field of each kind an API request may carry, in bytes; a larger
/// one is refused (413 `field_too_large`) naming the field. Bounds what one request can make
/// the store keep (tickets are rewritten on every change) and what list answers carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldLimits {
    /// Each alert label's name and value.
    pub label_bytes: usize,
    /// Each alert annotation's value.
    pub annotation_bytes: usize,
    /// An alert's summary, a ticket's title.
    pub title_bytes: usize,
    /// An alert's or a ticket's description.
    pub description_bytes: usize,
    /// A comment's body.
    pub comment_bytes: usize,
}

impl Default for FieldLimits {
    fn default() -> FieldLimits {
        FieldLimits {
            label_bytes: 16 << 10,
            annotation_bytes: 64 << 10,
            title_bytes: 4 << 10,
            description_bytes: 64 << 10,
            comment_bytes: 64 << 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest a request may take, body included; then 503 + Retry-After.
    pub request_timeout_secs: u64,
    /// Longest a client may take to send the request headers; then the connection closes.
    pub header_timeout_secs: u64,
    /// Requests handled at once; past it, 503 + Retry-After (load shedding).
    pub max_concurrent_requests: usize,
    /// Of those, requests to routes reachable without a token (PagerDuty Events API, vendor
    /// callbacks, the console) handled at once: a budget of their own, so anonymous clients
    /// cannot use up the one authenticated intake needs.
    pub max_unauthenticated_requests: usize,
    /// Longest a client may take to send a request's body once its headers are in; then
    /// 408 and the connection is closed.
    pub body_read_timeout_secs: u64,
    /// Open connections at once; past it, a new one gets 503 and is closed. 0: no cap.
    pub max_connections: usize,
    /// Open connections at once from one address; past it, 503 and closed. 0: no cap.
    pub max_connections_per_peer: usize,
    /// Most JSON one list answer carries (tickets, history, outbox); a page stops there
    /// and its cursor goes on.
    pub max_list_bytes: usize,
    /// Intake requests per second allowed per token (sustained); 0 turns the limit off.
    pub ingest_rate_per_sec: u32,
    /// Intake requests a token may send in a burst above the rate.
    pub ingest_burst: u32,
    /// Host names (`name` or `name:port`, `*` for any) the API answers to and whose web
    /// pages may call it; empty: the listen address and localhost, 127.0.0.1, [::1] with its
    /// port (`api::browser`).
    pub allowed_hosts: Vec<String>,
    /// `[server.tls]`: certificate and key for HTTPS; absent, plain HTTP.
    pub tls: Option<crate::api::tls::TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1 << 20,
            request_timeout_secs: 30,
            header_timeout_secs: 10,
            max_concurrent_requests: 1024,
            max_unauthenticated_requests: 128,
            body_read_timeout_secs: 10,
            max_connections: 4096,
            max_connections_per_peer: 1024,
            max_list_bytes: 8 << 20,
            ingest_rate_per_sec: 5000,
            ingest_burst: 10000,
            allowed_hosts: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend holds the data: the embedded one (one node) or PostgreSQL.
    pub backend: StoreBackend,
    /// Directory of the embedded database.
    pub data_dir: PathBuf,
    /// Page cache of the embedded store, in MiB.
    pub cache_mb: u64,
    /// The embedded store checkpoints (closes and reopens itself, so a start replays only
    /// what came after) once this many MiB were written and it was quiet for a second; 0
    /// never does.
    pub checkpoint_mb: u64,
    /// ... and once this many MiB were written even while writes go on (a pause of intake as
    /// long as a start would replay, so off by default); 0 never does.
    pub checkpoint_busy_mb: u64,
    /// PostgreSQL connection string (`postgres://user@host:port/db` or libpq key=value), for
    /// `backend = "postgres"`.
    pub url: Option<String>,
}

/// The store backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// The embedded database under `data_dir` (sled): one node.
    #[default]
    Embedded,
    /// PostgreSQL at `url`.
    Postgres,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            backend: StoreBackend::Embedded,
            data_dir: PathBuf::from("./data"),
            cache_mb: 48,
            checkpoint_mb: 64,
            checkpoint_busy_mb: 0,
            url: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Events waiting for the engine; when full, intake answers 503 + Retry-After.
    pub queue_capacity: usize,
    /// Most events committed in one transaction (one flush).
    pub max_batch: usize,
    /// Seconds a sender is told to wait when the queue is full.
    pub retry_after_secs: u64,
    /// A batch still not committed after this many seconds turns /readyz 503 (stalled).
    pub stall_after_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            queue_capacity: 8192,
            max_batch: 128,
            retry_after_secs: 1,
            stall_after_secs: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// Folder of `*.rhai` rule files, run in file-name order.
    pub dir: PathBuf,
    /// Group that receives tickets whose rules failed.
    pub triage_group: String,
    /// Rhai operations one hook call may execute.
    pub max_operations: u64,
    /// Wall-clock budget of one hook call, in milliseconds.
    pub time_budget_ms: u64,
    /// Deepest function-call nesting.
    pub max_call_depth: usize,
    /// Longest string a rule may build, in bytes.
    pub max_string_size: usize,
    /// Largest array a rule may build.
    pub max_array_size: usize,
    /// Largest object map a rule may build.
    pub max_map_size: usize,
    /// How many rounds of `on_ticket` one event may cause (decisions of on_ticket rules
    /// change tickets, which runs on_ticket again); past it the loop is cut and reported.
    pub max_ticket_hook_depth: u32,
    /// Comments the rules may add for one event (all hooks, all rule files together).
    pub max_comments_per_event: u32,
    /// Transitions the rules may ask for one event.
    pub max_transitions_per_event: u32,
    /// Notifications (`notify`, `notify_lead`) the rules may send for one event.
    pub max_notifications_per_event: u32,
    /// Tickets the rules may open (`open_ticket`) for one event.
    pub max_opened_tickets_per_event: u32,
    /// Events on which one rule file may hit a cap or exhaust its budget (operations, time)
    /// before it is disabled until the next reload; 0 never disables.
    pub disable_after: u32,
}

impl Default for RulesConfig {
    fn default() -> RulesConfig {
        RulesConfig {
            dir: PathBuf::from("./rules"),
            triage_group: "triage".into(),
            max_operations: 1_000_000,
            time_budget_ms: 100,
            max_call_depth: 32,
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_ticket_hook_depth: 5,
            max_comments_per_event: 20,
            max_transitions_per_event: 20,
            max_notifications_per_event: 20,
            max_opened_tickets_per_event: 5,
            disable_after: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorityConfig {
    /// Priority by impact (rows) and urgency (columns high, medium, low).
    pub matrix: PriorityMatrix,
}

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{origin}: {} problem(s):\n  - {}", .problems.len(), .problems.join("\n  - "))]
pub struct ConfigErrors {
    /// The file (or "embedded defaults") the text came from.
    pub origin: String,
    pub problems: Vec<String>,
}

/// Where a configuration comes from: a file (or the embedded defaults) and the command-line
/// overrides, kept so that a reload re-reads exactly the same way.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    /// The TOML file; the embedded defaults when `None`.
    pub file: Option<PathBuf>,
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--rules-dir`
    pub rules_dir: Option<PathBuf>,
    /// `--maildir`
    pub maildir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
}

impl LoadError {
    /// Every problem, one per entry.
    pub fn problems(&self) -> Vec<String> {
        match self {
            LoadError::Read { .. } => vec![self.to_string()],
            LoadError::Invalid(e) => e
                .problems
                .iter()
                .map(|p| format!("{}: {p}", e.origin))
                .collect(),
        }
    }
}

impl Source {
    /// Reads, parses and validates the configuration with the overrides applied.
    pub fn load(&self) -> Result<Config, LoadError> {
        let (text, origin) = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            None => (DEFAULT_TOML.to_string(), "embedded defaults".to_string()),
        };
        let mut config = parse(&text, &origin)?;
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.store.data_dir = dir.clone();
        }
        if let Some(dir) = &self.rules_dir {
            config.rules.dir = dir.clone();
        }
        if let Some(dir) = &self.maildir {
            config.mail.maildir = dir.clone();
        }
        let mut problems = validate::problems(&config);
        // A folder named on the command line must be there: only the configured default
        // falls back to the built-in rules, so a typo cannot check or run the wrong rules.
        if let Some(dir) = &self.rules_dir
            && !dir.is_dir()
        {
            problems.push(format!(
                "--rules-dir {}: no such folder of rule files",
                dir.display()
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigErrors {
                origin: format!("{origin} (with command-line overrides)"),
                problems,
            }
            .into());
        }
        Ok(config)
    }
}

/// The sections `parse` reads, for the suggestion when one is misspelt.
const SECTIONS: &[&str] = &[
    "server",
    "store",
    "engine",
    "rules",
    "priority",
    "auth",
    "calendars",
    "alerts",
    "pagerduty",
    "groups",
    "approval",
    "lifecycle",
    "changes",
    "vendors",
    "sla",
    "mail",
    "limits",
    "smtp",
    "cluster",
    "retention",
    "chat",
    "egress",
];

/// Parses and validates configuration text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
    let fail = |problems| ConfigErrors {
        origin: origin.to_string(),
        problems,
    };
    let table: toml::Table =
        toml::from_str(text).map_err(|e| fail(vec![syntax_error(text, &e)]))?;
    let mut problems = Vec::new();
    let mut config = Config::default();
    for (section, value) in table {
        match section.as_str() {
            "server" => config.server = section_of(&section, value, &mut problems),
            "store" => config.store = section_of(&section, value, &mut problems),
            "engine" => config.engine = section_of(&section, value, &mut problems),
            "rules" => config.rules = section_of(&section, value, &mut problems),
            "priority" => config.priority = section_of(&section, value, &mut problems),
            "auth" => config.auth = section_of(&section, value, &mut problems),
            "calendars" => config.calendars = section_of(&section, value, &mut problems),
            "alerts" => config.alerts = section_of(&section, value, &mut problems),
            "pagerduty" => config.pagerduty = section_of(&section, value, &mut problems),
            "groups" => config.groups = section_of(&section, value, &mut problems),
            "approval" => config.approval = section_of(&section, value, &mut problems),
            "lifecycle" => config.lifecycle = section_of(&section, value, &mut problems),
            "changes" => config.changes = section_of(&section, value, &mut problems),
            "vendors" => config.vendors = section_of(&section, value, &mut problems),
            "sla" => config.sla = section_of(&section, value, &mut problems),
            "mail" => config.mail = section_of(&section, value, &mut problems),
            "limits" => config.limits = section_of(&section, value, &mut problems),
            "smtp" => config.smtp = Some(section_of(&section, value, &mut problems)),
            "cluster" => config.cluster = section_of(&section, value, &mut problems),
            "retention" => config.retention = section_of(&section, value, &mut problems),
            "chat" => config.chat = section_of(&section, value, &mut problems),
            "egress" => config.egress = section_of(&section, value, &mut problems),
            other => {
                let hint = crate::suggest::nearest(other, SECTIONS)
                    .map_or(String::new(), |n| format!("; did you mean `{n}`?"));
                problems.push(format!("unknown section or key `{other}`{hint}"));
            }
        }
    }
    problems.extend(validate::problems(&config));
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(fail(problems))
    }
}

/// Deserialises one section, reporting every unknown key (`deny_unknown_fields`) and every
/// bad value with its path.
///
/// serde stops at the first error, so each key is first checked on its own (every field has
/// a default); the section is then built from the keys that passed, so the semantic checks
/// (`validate.rs`) see them too.
fn section_of<T>(section: &str, value: toml::Value, problems: &mut Vec<String>) -> T
where
    T: for<'de> Deserialize<'de> + Default,
{
    let toml::Value::Table(table) = value else {
        problems.push(format!("`{section}` must be a table"));
        return T::default();
    };
    // Keep the keys that are valid on their own, so the semantic checks still see them.
    let mut valid = toml::Table::new();
    for (key, v) in table {
        let mut single = toml::Table::new();
        single.insert(key.clone(), v.clone());
        if deserialize_reporting::<T>(section, toml::Value::Table(single), problems).is_some() {
            valid.insert(key, v);
        }
    }
    deserialize_reporting(section, toml::Value::Table(valid), problems).unwrap_or_default()
}

/// A TOML syntax error as "line L, column C: what", without the offending source line that
/// toml's own message quotes: that line may hold a token or a secret.
fn syntax_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

fn deserialize_reporting<T>(
    section: &str,
    value: toml::Value,
    problems: &mut Vec<String>,
) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    let result: Result<T, _> = serde_path_to_error::deserialize(value);
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            let path = e.path().to_string();
            let at = if path == "." {
                section.to_string()
            } else {
                format!("{section}.{path}")
            };
            // toml appends "in `key`" lines; the path already says where.
            let message = e.into_inner().to_string();
            let first = message.lines().next().unwrap_or_default();
            problems.push(format!("`{at}`: {first}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    #[test]
    fn embedded_defaults_parse_to_the_built_in_defaults() {
        let parsed = parse(DEFAULT_TOML, "embedded").expect("defaults are valid");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn every_suggested_section_is_one_parse_reads() {
        // Every section the defaults write out is suggested (`smtp` is absent by default).
        let written = toml::Table::try_from(Config::default()).expect("defaults serialize");
        for section in written.keys() {
            assert!(
                SECTIONS.contains(&section.as_str()),
                "{section} is not in SECTIONS"
            );
        }
        for section in SECTIONS {
            let problems = match parse(&format!("[{section}]"), "test.toml") {
                Ok(_) => Vec::new(),
                Err(e) => e.problems,
            };
            assert!(
                !problems.iter().any(|p| p.contains("unknown section")),
                "{section}: {problems:?}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
            colour = "blue"
            [server]
            listen = "not an address"
            typo = 1
            [engine]
            queue_capacity = 0
            max_batch = 0
            [rules]
            time_budget_ms = "fast"
            [priority.matrix]
            high = [1, 2, 9]
            medium = [2, 3, 4]
            low = [3, 4, 5]
            [serverr]
            listen = "127.0.0.1:1"
        "#;
        let err = parse(text, "test.toml").unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "unknown section or key `colour`",
            "unknown section or key `serverr`; did you mean `server`?",
            "`server.typo`: unknown field `typo`, expected one of `listen`, `max_body_bytes`",
            "`server.listen`",
            "`rules.time_budget_ms`",
            "engine.queue_capacity",
            "engine.max_batch",
            "priority.matrix.high[2] = 9",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(
            err.to_string().starts_with("test.toml: 8 problem(s)"),
            "{err}"
        );
    }

    #[test]
    fn alert_durations_read_the_friendly_format_and_bad_values_are_named() {
        let c = parse(
            "[alerts]\nreopen_window = \"2h 30m\"\nflap_quiet = \"PT90S\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.alerts.reopen_window, SignedDuration::from_mins(150));
        assert_eq!(c.alerts.flap_quiet, SignedDuration::from_secs(90));
        let err = parse(
            "[alerts]\nreopen_window = \"soon\"\n[pagerduty]\nintegration_keys = { k = \"\" }\n",
            "t",
        )
        .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(
            err.problems[0].starts_with("`alerts.reopen_window`"),
            "{err}"
        );
        assert!(err.problems[1].contains("maps to an empty source"), "{err}");
        let err = parse("[alerts]\nflap_changes = 1\nflap_window = \"0s\"\n", "t").unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_position() {
        let err = parse("[server\nlisten = 1", "x.toml").unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].contains("line 1"), "{}", err.problems[0]);
    }

    #[test]
    fn a_syntax_error_does_not_echo_the_line_it_is_on() {
        let text = "[[auth.tokens]]\nname = \"root\"\ntoken = \"s3cr3t-0123456789\" oops\n";
        let err = parse(text, "x.toml").unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("line 3, column"), "{shown}");
    }
}
