//! The `itsmd` command line: parses arguments and hands off to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use itsmd::config::{self, Config};
use itsmd::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

/// jemalloc instead of glibc's malloc: see docs/performance.md (peak RSS and throughput).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "itsmd",
    version,
    about = "ITSM process platform: alerts, mail and API in; tickets out."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Validate the configuration and the rules without starting; with --data-dir, verify a
    /// store offline instead (daemon stopped). Non-zero exit on any error.
    Check {
        #[command(flatten)]
        base: ConfigArgs,
        /// Store to verify: opens it, decodes every record and reports counts or problems.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Work with rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Replay the recorded events with a candidate rule set (no side effects) and print
    /// what would have happened differently.
    Replay {
        /// Folder of the candidate rules.
        #[arg(long)]
        rules: PathBuf,
        /// Report only events received at or after this time (RFC 3339); all are replayed.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        server: itsmd::cli::ServerArgs,
    },
    /// Work with tickets on a running daemon.
    Ticket(Box<itsmd::tickets::cli::TicketArgs>),
    /// The change calendar and the standard change catalogue of a running daemon.
    Change(Box<itsmd::tickets::change::cli::ChangeArgs>),
    /// List and replay vendor webhook messages on a running daemon (admin token).
    Outbox(Box<itsmd::vendors::cli::OutboxArgs>),
    /// Process reports (MTTA, MTTR, SLA compliance, breaches, backlog, volume, escalations)
    /// for a period, from a running daemon.
    Report(Box<itsmd::reports::cli::ReportArgs>),
    /// Preview mail and chat templates against a ticket of a running daemon (admin token).
    Templates(Box<itsmd::mail::outbound::cli::TemplatesArgs>),
    /// Console accounts (add, passwd, disable, list) on a running daemon; passwords on
    /// standard input.
    User(Box<itsmd::auth::cli::UserArgs>),
    /// Write a consistent JSON-lines dump of a running daemon's store to FILE.
    Export {
        /// Where to write the dump ("-" for standard output).
        file: PathBuf,
        /// Only the journal received at or after this time (RFC 3339) and the tickets
        /// updated since, with their history and comments: an archive before pruning.
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        server: itsmd::cli::ServerArgs,
    },
    /// Return the space the retention sweep freed to the file system: copies the live
    /// records into a fresh store and swaps it in (daemon stopped; embedded store only).
    Compact {
        #[command(flatten)]
        base: ConfigArgs,
        /// Data directory to compact (overrides store.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Copy a whole store to another backend (a data directory to PostgreSQL or back), with
    /// every daemon on either stopped; checked by counts per tree and a checksum, printed.
    Migrate {
        /// The store to copy: a data directory, or a PostgreSQL connection string
        /// (postgres://… or libpq key=value words).
        #[arg(long)]
        from: String,
        /// The store to fill, as --from; must be empty unless --replace.
        #[arg(long)]
        to: String,
        /// Delete whatever the target holds before copying.
        #[arg(long)]
        replace: bool,
    },
    /// Load a dump written by `itsmd export` into an empty data directory (daemon stopped).
    Import {
        /// The dump.
        file: PathBuf,
        #[command(flatten)]
        base: ConfigArgs,
        /// Data directory to fill (overrides store.data_dir); must be empty.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Also import a dump of format 1 (older itsmd, no trailer): each entry is checked,
        /// but a cut-off file cannot be detected.
        #[arg(long)]
        allow_unverified: bool,
    },
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Configuration file (TOML); the embedded defaults when absent.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Folder of rule files (overrides rules.dir).
    #[arg(long)]
    rules_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    base: ConfigArgs,
    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides store.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Maildir to take mail from (overrides mail.maildir); created if missing.
    #[arg(long)]
    maildir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Compile every rule and report all errors; non-zero exit on any.
    Check {
        /// Folder of rule files; rules.dir of the configuration when absent.
        dir: Option<PathBuf>,
        /// Configuration the rules run under (the calendars and templates they name);
        /// embedded defaults if absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run the rule tests in DIR/tests/*.toml through the engine, in memory; non-zero exit
    /// on any failure.
    Test {
        /// Folder of rule files (with a tests/ folder).
        dir: Option<PathBuf>,
        /// Configuration the engine runs with (groups, matrix, …); embedded defaults if absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

impl ConfigArgs {
    fn source(&self) -> config::Source {
        config::Source {
            file: self.config.clone(),
            rules_dir: self.rules_dir.clone(),
            ..config::Source::default()
        }
    }
}

fn load_config(args: &ConfigArgs) -> anyhow::Result<Config> {
    Ok(args.source().load()?)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let source = config::Source {
        listen: args.listen,
        data_dir: args.data_dir,
        maildir: args.maildir,
        ..args.base.source()
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        itsmd::daemon::cancel_on_signals(shutdown.clone())?;
        itsmd::daemon::serve(source, shutdown).await
    })
}

fn check(args: ConfigArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    // Every part is checked, so one run lists every problem, not only the first part's.
    let mut failed: Vec<String> = Vec::new();
    let mut part = |r: anyhow::Result<()>| {
        if let Err(e) = r {
            failed.push(format!("{e:#}"));
        }
    };
    part(itsmd::daemon::load_keys(&config).map(drop));
    part(itsmd::daemon::load_vendors(&config).map(drop));
    part(itsmd::daemon::load_smtp(&config).map(drop));
    part(itsmd::daemon::load_chat(&config).map(drop));
    part(itsmd::daemon::load_tls(&config).map(drop));
    let (refused, unresolved) = itsmd::egress::check_destinations(&config);
    for note in &unresolved {
        eprintln!("Note: {note}");
    }
    if !refused.is_empty() {
        failed.push(format!(
            "[egress] refuses configured destinations:\n  - {}",
            refused.join("\n  - ")
        ));
    }
    let rules = match itsmd::daemon::load_rules(&config) {
        Ok(rules) => Some(rules),
        Err(e) => {
            failed.push(format!("{e:#}"));
            None
        }
    };
    let unknown = itsmd::mail::outbound::rule_notify::literal_problems(
        &config.rules.dir,
        &itsmd::mail::outbound::templates::of(&config),
    );
    // Without a file the calendars and templates are the defaults' (no calendar but 24x7,
    // the built-in templates): say so, or a rule naming one the deployed configuration has
    // reads as broken.
    let against = match &args.config {
        Some(file) => format!(" (of {})", file.display()),
        None => {
            " (of the embedded defaults; pass --config FILE to check against yours)".to_string()
        }
    };
    if !unknown.is_empty() {
        failed.push(format!(
            "rules name unknown templates{against}:\n  - {}",
            unknown.join("\n  - ")
        ));
    }
    let mut calendars = vec![itsmd::sla::calendar_config::ALWAYS_OPEN];
    calendars.extend(config.calendars.keys().map(String::as_str));
    let unknown = itsmd::rules::literals::calendar_problems(&config.rules.dir, &calendars);
    if !unknown.is_empty() {
        failed.push(format!(
            "rules name unknown calendars{against}:\n  - {}",
            unknown.join("\n  - ")
        ));
    }
    match rules {
        Some(rules) if failed.is_empty() => {
            println!(
                "OK: configuration valid; {} rule file(s) from {} compile (version {}).",
                rules.set().files.len(),
                rules.set().origin,
                rules.version()
            );
            Ok(())
        }
        _ => anyhow::bail!("{}", failed.join("\n")),
    }
}

fn check_store(base: ConfigArgs, dir: PathBuf) -> anyhow::Result<()> {
    let mut config = load_config(&base)?;
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    config.store.data_dir = dir;
    let store = itsmd::store::open(&config.store)?;
    let report = itsmd::store::layout::check_store(&*store)
        .with_context(|| format!("cannot read {}", config.store.data_dir.display()))?;
    let total: u64 = report.counts.iter().map(|(_, n)| n).sum();
    for (tree, n) in report.counts.iter().filter(|(_, n)| *n > 0) {
        println!("{:<20} {n}", tree.name());
    }
    if !report.problems.is_empty() {
        for p in &report.problems {
            eprintln!("{p}");
        }
        anyhow::bail!(
            "{} of {total} record(s) in {} are unreadable",
            report.problems.len(),
            config.store.data_dir.display()
        );
    }
    println!(
        "OK: {total} record(s) in {} decode.",
        config.store.data_dir.display()
    );
    Ok(())
}

fn rules_test(dir: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load_config(&ConfigArgs {
        config,
        rules_dir: dir,
    })?;
    let results = itsmd::rules::tester::run_dir(&config, &config.rules.dir)?;
    let failed = results.iter().filter(|r| !r.failures.is_empty()).count();
    for r in &results {
        if r.failures.is_empty() {
            println!("ok      {} :: {}", r.file, r.name);
        } else {
            println!("FAILED  {} :: {}", r.file, r.name);
            for f in &r.failures {
                println!("        {f}");
            }
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed > 0 {
        anyhow::bail!("{failed} rule test(s) failed");
    }
    Ok(())
}

fn rules_check(dir: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<()> {
    let args = ConfigArgs {
        config,
        rules_dir: dir,
    };
    check(args)
}

fn import(
    file: PathBuf,
    base: ConfigArgs,
    data_dir: Option<PathBuf>,
    allow_unverified: bool,
) -> anyhow::Result<()> {
    let mut config = load_config(&base)?;
    if let Some(dir) = data_dir {
        config.store.data_dir = dir;
    }
    let mode = if allow_unverified {
        itsmd::backup::Verify::AllowUnverified
    } else {
        itsmd::backup::Verify::Strict
    };
    itsmd::cli::backup::import(&file, &config, mode)
}

fn compact(base: ConfigArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = load_config(&base)?;
    if let Some(dir) = data_dir {
        config.store.data_dir = dir;
    }
    let done = itsmd::retention::compact::compact(&config.store)
        .with_context(|| format!("cannot compact {}", config.store.data_dir.display()))?;
    // A small store in KiB: "0.5 MiB → 0.0 MiB" would hide what compaction did.
    let size = |b: u64| match b {
        0..0x10_0000 => format!("{} KiB", b.div_ceil(1024)),
        _ => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
    };
    println!(
        "Compacted {}: {} records, {} → {} on disk.",
        config.store.data_dir.display(),
        done.records,
        size(done.bytes_before),
        size(done.bytes_after)
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Tools that run an engine in memory (rules test) keep its routine logs out of the way.
    let quiet = matches!(
        cli.command,
        Command::Rules {
            command: RulesCommand::Test { .. }
        }
    );
    telemetry::init(cli.log_format, if quiet { "warn" } else { "info" });
    if !matches!(cli.command, Command::Serve(_)) {
        // A client command piped into `head` ends quietly when the pipe closes, as Unix tools
        // do, instead of panicking in `println!`. The daemon keeps Rust's default (SIGPIPE
        // ignored): a peer closing its socket must be an error on that connection only.
        // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check {
            data_dir: Some(dir),
            base,
        } => check_store(base, dir),
        Command::Check {
            base,
            data_dir: None,
        } => check(base),
        Command::Rules {
            command: RulesCommand::Check { dir, config },
        } => rules_check(dir, config),
        Command::Rules {
            command: RulesCommand::Test { dir, config },
        } => rules_test(dir, config),
        Command::Export {
            file,
            since,
            server,
        } => itsmd::cli::backup::export(&file, since.as_deref(), &server),
        Command::Compact { base, data_dir } => compact(base, data_dir),
        Command::Replay {
            rules,
            since,
            server,
        } => itsmd::cli::replay::run(&rules, since.as_deref(), &server),
        Command::Import {
            file,
            base,
            data_dir,
            allow_unverified,
        } => import(file, base, data_dir, allow_unverified),
        Command::Migrate { from, to, replace } => itsmd::cli::migrate::run(&from, &to, replace),
        Command::Ticket(args) => itsmd::tickets::cli::run(*args),
        Command::Change(args) => itsmd::tickets::change::cli::run(*args),
        Command::Outbox(args) => itsmd::vendors::cli::run(*args),
        Command::Report(args) => itsmd::reports::cli::run(*args),
        Command::User(args) => itsmd::auth::cli::run(*args),
        Command::Templates(args) => itsmd::mail::outbound::cli::run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("itsmd: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-joined like `{:#}`, but a cause that a message already
/// quotes (errors that show their source inline, for the API and logs) is not said twice.
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
