//! The running daemon: opens the store, loads the rules, starts the engine, the HTTP server
//! and the reload watchers, and on the shutdown signal stops intake, drains the engine and
//! flushes.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::api::AppState;
use crate::auth::Keys;
use crate::clock::{Clock, MonotonicClock, Steady, SystemClock};
use crate::config::Config;
use crate::mail::outbound::SmtpSender;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::rules::{Limits, Rules};
use crate::vendors::dispatch::Dispatcher;
use crate::vendors::registry::Vendors;
use crate::{api, config, engine, reload, systemd};

/// Compiles the configured rules, turning every compile error into one message.
pub fn load_rules(config: &Config) -> anyhow::Result<Rules> {
    Rules::load(Limits::from(&config.rules), &config.rules.dir).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!(
            "rules in {} do not compile ({} error(s)):\n{}",
            config.rules.dir.display(),
            errors.len(),
            list.join("\n")
        )
    })
}

/// Reads the API tokens, turning every problem into one message (never showing a token).
pub fn load_keys(config: &Config) -> anyhow::Result<Keys> {
    Keys::load(&config.auth).map_err(|problems| {
        anyhow::anyhow!(
            "[auth] tokens cannot be loaded:\n  - {}",
            problems.join("\n  - ")
        )
    })
}

/// Reads the vendors' secrets, turning every problem into one message (never showing one).
pub fn load_vendors(config: &Config) -> anyhow::Result<Vendors> {
    Vendors::load(&config.vendors).map_err(|problems| {
        anyhow::anyhow!(
            "[vendors] cannot be loaded:\n  - {}",
            problems.join("\n  - ")
        )
    })
}

/// Sets up the chat channels (`[chat.NAME]`), reading the Matrix token files.
pub fn load_chat(config: &Config) -> anyhow::Result<crate::mail::chat::ChatSenders> {
    crate::mail::chat::ChatSenders::build(&config.chat)
        .map_err(|e| anyhow::anyhow!("[chat] cannot be loaded: {e}"))
}

/// Sets up mail out (`[smtp]`), reading its password file; `None` without the section.
pub fn load_smtp(config: &Config) -> anyhow::Result<Option<SmtpSender>> {
    config
        .smtp
        .as_ref()
        .map(SmtpSender::build)
        .transpose()
        .map_err(|e| anyhow::anyhow!("[smtp] cannot be loaded: {e}"))
}

/// Reads and checks `[server.tls]`'s certificate and key; `None` without TLS.
pub fn load_tls(config: &Config) -> anyhow::Result<Option<Arc<api::tls::Tls>>> {
    config
        .server
        .tls
        .as_ref()
        .map(api::tls::Tls::load)
        .transpose()
        .map_err(|e| anyhow::anyhow!("[server.tls] cannot be served: {e}"))
}

/// Logs each configured destination (a vendor's URL or proxy, the SMTP relay) the egress
/// policy refuses, as `itsmd check` reports them: the daemon runs (DNS may change, a vendor
/// may be fixed by a reload), but whatever is sent there is dead-lettered, and the first
/// message should not be where an operator learns it. Resolved in the background, so a slow
/// DNS does not hold up the start.
fn warn_refused_destinations(config: &Config) {
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let (refused, _) = crate::egress::check_destinations(&config);
        for problem in refused {
            warn!(%problem, "A configured destination is refused by the egress policy: what is sent there is dead-lettered; allow it in [egress] if it is meant.");
        }
    });
}

/// Runs until `shutdown` is cancelled, then stops cleanly.
pub async fn serve(source: config::Source, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = source.load()?;
    // Bound first: a port already taken (a second itsmd) fails before the store is opened
    // and any task has started. Connections wait in the backlog until the server accepts.
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let store = crate::store::open(&config.store)?;
    // Cluster mode: two more connections, for the lease and for intake's inbox.
    let clustered = if config.cluster.enabled {
        let state = Arc::new(crate::cluster::ClusterState::new(
            config.cluster.node_name(),
        ));
        info!(node = %state.node, "Cluster mode: taking intake into the shared inbox.");
        Some((
            crate::store::open_shared(&config.store)?,
            crate::store::open_shared(&config.store)?,
            crate::store::open_shared(&config.store)?,
            state,
        ))
    } else {
        None
    };
    info!(store = %crate::store::describe(&config.store), "Store opened.");
    if config.store.backend == crate::config::StoreBackend::Embedded
        && let Some(fs) = crate::store::memory_file_system(&config.store.data_dir)
    {
        warn!(
            data_dir = %config.store.data_dir.display(),
            file_system = fs,
            "The data directory is in memory: every ticket and event is lost at the next reboot; point store.data_dir (--data-dir) at a disk."
        );
    }

    let rules = load_rules(&config)?;
    info!(
        rules = %rules.version(),
        origin = %rules.set().origin,
        files = rules.set().files.len(),
        "Rules loaded."
    );
    let keys = load_keys(&config)?;
    if keys.is_open() {
        warn!(listen = %config.server.listen, "No API tokens configured: the API is open to local clients.");
    }

    let vendors = load_vendors(&config)?;
    let tls = load_tls(&config)?;
    warn_refused_destinations(&config);

    // Never backwards, whatever the wall clock does (SLA timers neither fire twice nor stop).
    let clock: Arc<dyn Clock> = Arc::new(Steady::new(SystemClock, MonotonicClock::new()));
    // The daemon's one registry: its engine, intake, dispatcher and mail intake count into
    // it and `/metrics` serves it. Replays run a second engine on a registry of their own.
    let metrics = Arc::new(Metrics::new());
    let (engine, engine_thread) = engine::start_on(
        &config,
        store.clone(),
        clustered
            .as_ref()
            .map(|(shared, _, intake, state)| engine::Clustered {
                shared: shared.clone(),
                intake: intake.clone(),
                state: state.clone(),
            }),
        rules,
        clock,
        metrics.clone(),
        tracing::Span::none(),
    )
    .context("cannot start the engine thread")?;

    // Background tasks end on `shutdown`; they hold engine handles, so they are awaited
    // before the engine is joined.
    let tasks = TaskTracker::new();
    // The consumers of shared state: here at once on one node; in cluster mode, each term
    // of leadership starts them and its end cancels them.
    let leader_tasks = {
        let (engine, store, vendors) = (engine.clone(), store.clone(), vendors.clone());
        let smtp_config = config.clone();
        move |cancel: CancellationToken| -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
            let dispatcher = Dispatcher::new(
                store.clone(),
                engine.clone(),
                vendors.clone(),
                load_smtp(&smtp_config)?,
                load_chat(&smtp_config)?,
                crate::egress::Policy::new(&smtp_config.egress),
                cancel.clone(),
            )
            .context("cannot build the webhook HTTP client")?;
            Ok(vec![
                tokio::spawn(crate::tickets::housekeeping::run(
                    engine.clone(),
                    store.clone(),
                    cancel.clone(),
                )),
                tokio::spawn(crate::retention::task::run(
                    engine.clone(),
                    store.clone(),
                    cancel.clone(),
                )),
                tokio::spawn(dispatcher.run()),
                tokio::spawn(crate::sla::task::run(
                    engine.clone(),
                    store.clone(),
                    cancel.clone(),
                )),
                tokio::spawn(crate::alerts::expiry::run(
                    engine.clone(),
                    store.clone(),
                    cancel,
                )),
            ])
        }
    };
    match clustered {
        None => {
            let started = leader_tasks(shutdown.clone())?;
            // It holds engine handles: the engine drains only once every one is gone.
            drop(leader_tasks);
            for task in started {
                tasks.spawn(async move {
                    let _ = task.await;
                });
            }
        }
        Some((_, lease, _, state)) => {
            let start = leader_tasks;
            tasks.spawn(crate::cluster::run(
                config.cluster.clone(),
                lease,
                state,
                metrics.clone(),
                shutdown.clone(),
                Box::new(move |cancel| match start(cancel) {
                    Ok(tasks) => tasks,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "Leader tasks cannot start; this node leads without them.");
                        Vec::new()
                    }
                }),
            ));
        }
    }
    if let Some(mail) = crate::mail::maildir::start(&config.mail, engine.clone(), shutdown.clone())
        .context("cannot start mail intake")?
    {
        tasks.spawn(mail);
    }
    let reloader = Arc::new(Reloader::new(
        source,
        config.clone(),
        engine.clone(),
        keys.clone(),
        tls.clone(),
    ));
    if config.store.backend == crate::config::StoreBackend::Embedded {
        tasks.spawn(crate::store::checkpoint::run(
            store.clone(),
            crate::store::checkpoint::CheckpointPolicy::from_config(&config.store),
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    tasks.spawn(
        reload::on_sighup(reloader.clone(), shutdown.clone()).context("cannot handle SIGHUP")?,
    );
    if config.rules.dir.is_dir()
        && let Some(watch) =
            reload::watch_rules(&config.rules.dir, reloader.clone(), shutdown.clone())
    {
        tasks.spawn(watch);
    }
    tasks.close();

    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    info!(%addr, tls = tls.is_some(), "Listening.");
    systemd::notify("READY=1");

    let conn_limits = api::ConnLimits::new(&config.server);
    let limits = api::Limits::new(&config.server).counting(metrics.clone());
    let browser = api::browser::Guard::new(&config.server, addr);
    // Cookies are Secure when the listener speaks TLS.
    let secure_cookies = config.server.tls.is_some();
    let state = AppState {
        store: store.clone(),
        engine,
        config: Arc::new(config),
        keys,
        shutdown: shutdown.clone(),
        reloader,
        vendors,
        limits,
        metrics,
        browser,
        console: crate::console::session::Sessions::new(secure_cookies),
    };
    api::serve(listener, api::router(state), conn_limits, tls, shutdown).await;
    systemd::notify("STOPPING=1");
    info!("Intake stopped; draining the engine.");
    tasks.wait().await;

    // The router and the tasks (and with them every engine handle) are gone: the engine
    // drains its queue and stops.
    engine_thread.join().await;
    store.flush().context("final flush failed")?;
    info!("Stopped cleanly.");
    Ok(())
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signals(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        info!(signal = which, "Shutting down.");
        token.cancel();
    });
    Ok(())
}
