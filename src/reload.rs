//! Reloading a running daemon: configuration and rules on SIGHUP, rules alone when a rule
//! file changes or an admin asks. All or nothing: everything is loaded and checked first; only
//! if every part is valid is it swapped in, otherwise every problem is logged (and returned)
//! and what was running keeps running.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::api::tls::Tls;
use crate::auth::Keys;
use crate::config;
use crate::config::Config;
use crate::engine::EngineHandle;
use crate::rules::{Limits, Rules};

pub struct Reloader {
    /// Re-read on every full reload, with the same command-line overrides.
    source: config::Source,
    /// Receives the new rules and engine settings.
    engine: EngineHandle,
    /// Shared with the API; receives the new tokens.
    keys: Keys,
    /// Shared with the accept loop; receives the new certificate and key (with TLS on).
    tls: Option<Arc<Tls>>,
    /// The configuration in force, to compile rules against and to tell what changed.
    /// The lock also serialises reloads.
    current: Mutex<Config>,
    /// The configuration the daemon started with: settings read only at start are compared
    /// with it, so a pending restart is reported on every reload until it is made (and not
    /// once a file changed back).
    started: Config,
    /// How the last reload went, for /healthz and the console: a refused reload is otherwise
    /// only in the log, while the files on disk differ from what runs.
    last: Mutex<LastReload>,
}

/// The outcome of the last reload (or the start, before any).
#[derive(Debug, Clone, Serialize)]
pub struct LastReload {
    /// Whether it was put in force.
    pub ok: bool,
    /// What it read: "configuration and rules" (SIGHUP, and the start) or "rules".
    pub what: &'static str,
    pub at: jiff::Timestamp,
    /// What refused it, as logged (empty when it was put in force).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// [`LastReload::what`] of a full reload (SIGHUP) and of the start.
const ALL: &str = "configuration and rules";
/// [`LastReload::what`] of a reload of the rules folder alone.
const RULES: &str = "rules";

/// What a successful reload put in force.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    pub rules_version: String,
    pub rule_files: usize,
    /// Changed settings that only take effect after a restart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
}

impl Reloader {
    pub fn new(
        source: config::Source,
        config: Config,
        engine: EngineHandle,
        keys: Keys,
        tls: Option<Arc<Tls>>,
    ) -> Reloader {
        let reloader = Reloader {
            source,
            engine,
            keys,
            tls,
            started: config.clone(),
            current: Mutex::new(config),
            last: Mutex::new(LastReload {
                ok: true,
                what: ALL,
                at: jiff::Timestamp::now(),
                problems: Vec::new(),
            }),
        };
        reloader.remember(ALL, &Ok(()));
        reloader
    }

    /// How the last reload went.
    pub fn last_reload(&self) -> LastReload {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a reload's outcome for [`Reloader::last_reload`] and the metrics. A refused
    /// configuration stands until a full reload succeeds: reloading the rules folder does not
    /// read the configuration file, so it cannot say that file is fine now.
    fn remember<T>(&self, what: &'static str, outcome: &Result<T, Vec<String>>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if what == RULES && outcome.is_ok() && !last.ok && last.what == ALL {
            return;
        }
        let now = jiff::Timestamp::now();
        let metrics = self.engine.metrics();
        metrics
            .reload_last_successful
            .set(i64::from(outcome.is_ok()));
        if outcome.is_ok() {
            metrics.reload_last_success_seconds.set(now.as_second());
        }
        *last = LastReload {
            ok: outcome.is_ok(),
            what,
            at: now,
            problems: outcome.as_ref().err().cloned().unwrap_or_default(),
        };
    }

    /// Reloads configuration, tokens and rules together (SIGHUP).
    pub fn reload_all(&self) -> Result<Reloaded, Vec<String>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = (|| {
            let config = self.source.load().map_err(|e| e.problems())?;
            let keys = Keys::load(&config.auth);
            let rules = compile(&config);
            // A running TLS listener takes a new certificate; turning TLS on or off needs a
            // restart (reported below), so the certificate is only read with both on.
            let acceptor = match (&self.tls, &config.server.tls) {
                (Some(_), Some(c)) => crate::api::tls::load(c)
                    .map(Some)
                    .map_err(|e| vec![e.to_string()]),
                _ => Ok(None),
            };
            let (keys, rules, acceptor) = match (keys, rules, acceptor) {
                (Ok(k), Ok(r), Ok(a)) => (k, r, a),
                (k, r, a) => {
                    let mut problems = k.err().unwrap_or_default();
                    problems.extend(r.err().unwrap_or_default());
                    problems.extend(a.err().unwrap_or_default());
                    return Err(problems);
                }
            };
            let restart_needed = needs_restart(&self.started, &config);
            let done = Reloaded {
                rules_version: rules.version().to_string(),
                rule_files: rules.set().files.len(),
                restart_needed,
            };
            self.keys.replace_with(&keys);
            if let (Some(tls), Some(acceptor)) = (&self.tls, acceptor) {
                tls.replace(acceptor);
            }
            self.engine.replace(rules, &config);
            *current = config;
            Ok(done)
        })();
        report("Configuration and rules", &outcome);
        self.remember(ALL, &outcome);
        outcome
    }

    /// Recompiles the rules folder with the configuration in force (admin).
    pub fn reload_rules(&self) -> Result<Reloaded, Vec<String>> {
        self.rules_again(true)
    }

    /// Recompiles the rules folder after a file change; a rule set identical to the one in
    /// force (same hash) is not swapped in, and not reported as reloaded.
    pub fn reload_changed_rules(&self) -> Result<Reloaded, Vec<String>> {
        self.rules_again(false)
    }

    fn rules_again(&self, always: bool) -> Result<Reloaded, Vec<String>> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let rules = match compile(&current) {
            Ok(rules) => rules,
            Err(problems) => {
                let outcome = Err(problems);
                report("Rules", &outcome);
                self.remember(RULES, &outcome);
                return outcome;
            }
        };
        let done = Reloaded {
            rules_version: rules.version().to_string(),
            rule_files: rules.set().files.len(),
            restart_needed: Vec::new(),
        };
        if !always && self.engine.status().rules_version == done.rules_version {
            debug!(rules = %done.rules_version, "Rule files touched but unchanged; nothing to reload.");
            let outcome = Ok(done);
            // The rule files are what runs again (a broken file removed): a refused rules
            // reload no longer stands.
            self.remember(RULES, &outcome);
            return outcome;
        }
        self.engine.replace(rules, &current);
        let outcome = Ok(done);
        report("Rules", &outcome);
        self.remember(RULES, &outcome);
        outcome
    }
}

fn compile(config: &Config) -> Result<Rules, Vec<String>> {
    Rules::load(Limits::from(&config.rules), &config.rules.dir)
        .map_err(|errors| errors.iter().map(|e| e.to_string()).collect())
}

fn report(what: &str, outcome: &Result<Reloaded, Vec<String>>) {
    match outcome {
        Ok(done) => {
            // Before "Reloaded.", so that whoever sees that line has seen these.
            for setting in &done.restart_needed {
                warn!(setting = %setting, "Changed setting takes effect only after a restart.");
            }
            info!(rules = %done.rules_version, files = done.rule_files, what, "Reloaded.");
        }
        Err(problems) => {
            for p in problems {
                error!(problem = %p, what, "Reload problem.");
            }
            error!(
                problems = problems.len(),
                what, "Reload refused; what was running keeps running."
            );
        }
    }
}

/// Settings that a running daemon cannot change.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    // The certificate and key files are read again on every reload; the rest of [server],
    // and turning TLS on or off, is bound to the listener.
    let listener = |c: &Config| crate::config::ServerConfig {
        tls: None,
        ..c.server.clone()
    };
    if listener(old) != listener(new) {
        out.push("[server]".to_string());
    }
    if old.server.tls.is_some() != new.server.tls.is_some() {
        out.push("[server.tls] (turning TLS on or off)".to_string());
    }
    if old.store != new.store {
        out.push("[store]".to_string());
    }
    if old.limits != new.limits {
        out.push("[limits]".to_string());
    }
    if old.engine.queue_capacity != new.engine.queue_capacity {
        out.push("engine.queue_capacity".to_string());
    }
    if old.engine.retry_after_secs != new.engine.retry_after_secs {
        out.push("engine.retry_after_secs".to_string());
    }
    // Rules are compiled from the new folder, but the watcher keeps watching the old one.
    if old.rules.dir != new.rules.dir {
        out.push("rules.dir (the folder watched for changes)".to_string());
    }
    // Read by the API from the start-up configuration.
    if old.pagerduty != new.pagerduty {
        out.push("[pagerduty]".to_string());
    }
    // A vendor's events and status_map apply at once; its delivery settings and secrets are
    // loaded by the dispatcher and the callback route at startup.
    let delivery = |c: &Config| {
        let mut v = c.vendors.clone();
        for vendor in v.values_mut() {
            vendor.events.clear();
            vendor.status_map.clear();
        }
        v
    };
    if delivery(old) != delivery(new) {
        out.push(
            "[vendors] (added or removed vendors, url, secrets, timeout, retry, max_in_flight, proxy)"
                .to_string(),
        );
    }
    out.extend(crate::mail::chat::config::needs_restart(
        &old.chat, &new.chat,
    ));
    out.extend(old.mail.needs_restart(&new.mail));
    out.extend(crate::mail::outbound::SmtpConfig::needs_restart(
        old.smtp.as_ref(),
        new.smtp.as_ref(),
    ));
    out
}

/// Starts handling SIGHUP now (so an early one cannot kill the daemon) and returns the task
/// that reloads everything on each one until `shutdown`.
pub fn on_sighup(
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    info!("SIGHUP: reloading configuration and rules.");
                    crate::systemd::notify("RELOADING=1");
                    let r = reloader.clone();
                    let _ = tokio::task::spawn_blocking(move || r.reload_all()).await;
                    crate::systemd::notify("READY=1");
                }
                () = shutdown.cancelled() => return,
            }
        }
    })
}

/// How long the rules folder must be quiet before a change is reloaded (editors write in
/// several steps).
const SETTLE: Duration = Duration::from_millis(300);

/// Whether a file-system event can change the rule set: a write, create, rename or removal
/// of a `.rhai` file, or a lost-events signal. Reads (open, access, close without writing)
/// are not: reloading reads every file, and counting that as a change would loop.
fn is_rule_change(e: &notify::Event) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    if e.need_rescan() {
        return true;
    }
    let kind = match e.kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any) => true,
        // The one access that ends a write.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_)
        | EventKind::Modify(ModifyKind::Metadata(_) | ModifyKind::Other)
        | EventKind::Any
        | EventKind::Other => false,
    };
    kind && (e.paths.is_empty()
        || e.paths
            .iter()
            .any(|p| p.extension().is_some_and(|x| x == "rhai")))
}

/// Starts watching `dir` for `.rhai` changes, now (so nothing changed after this returns is
/// missed), and returns the task that reloads the rules on each settled burst of changes
/// until `shutdown`. notify's events are only a signal: the whole folder is recompiled.
/// `None` (with a warning) when the folder cannot be watched.
pub fn watch_rules(
    dir: &Path,
    reloader: Arc<Reloader>,
    shutdown: CancellationToken,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => is_rule_change(e),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "Cannot watch the rules folder; reload with SIGHUP.");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        warn!(dir = %dir.display(), error = %e, "Cannot watch the rules folder; reload with SIGHUP.");
        return None;
    }
    info!(dir = %dir.display(), "Watching rules for changes.");
    Some(async move {
        // Owned by the task: dropping it stops the watch.
        let _watcher = watcher;
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // Let the burst of events settle, then reload once.
                    loop {
                        tokio::select! {
                            more = tokio::time::timeout(SETTLE, rx.recv()) => match more {
                                Ok(Some(())) => continue,
                                Ok(None) => return,
                                Err(_) => break,
                            },
                            () = shutdown.cancelled() => return,
                        }
                    }
                    let r = reloader.clone();
                    let _ = tokio::task::spawn_blocking(move || r.reload_changed_rules()).await;
                }
                () = shutdown.cancelled() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, ModifyKind, RemoveKind, RenameMode,
    };
    use notify::{Event, EventKind};

    use super::{is_rule_change, needs_restart};
    use crate::config::Config;

    fn on(kind: EventKind, path: &str) -> Event {
        Event::new(kind).add_path(path.into())
    }

    #[test]
    fn only_writes_creates_renames_and_removals_of_rule_files_count() {
        let changes = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Content)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ];
        for kind in changes {
            assert!(is_rule_change(&on(kind, "/r/10-a.rhai")), "{kind:?}");
            assert!(!is_rule_change(&on(kind, "/r/10-a.rhai~")), "{kind:?}");
        }
        let reads = [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(
                notify::event::MetadataKind::AccessTime,
            )),
        ];
        for kind in reads {
            assert!(!is_rule_change(&on(kind, "/r/10-a.rhai")), "{kind:?}");
        }
        // Lost events: anything may have changed.
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(is_rule_change(&overflow));
    }

    #[test]
    fn settings_read_only_at_start_ask_for_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.lifecycle.sweep_every = crate::config::duration::Friendly::from_secs(1);
        new.mail.rate_limit += 1;
        assert!(needs_restart(&old, &new).is_empty());
        new.rules.dir = "/elsewhere".into();
        new.pagerduty
            .integration_keys
            .insert("k".into(), "svc".into());
        new.mail.maildir = "/srv/mail".into();
        assert_eq!(
            needs_restart(&old, &new),
            [
                "rules.dir (the folder watched for changes)",
                "[pagerduty]",
                "mail.maildir"
            ]
        );
    }
}
