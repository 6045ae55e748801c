//! The `itsmd` command line: parses arguments and hands off to the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use itsmd::config::{self, Config};
use itsmd::telemetry::{self, LogFormat};
use tokio_util::sync::CancellationToken;

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
    /// Validate the configuration and the rules without starting; non-zero exit on any error.
    Check(ConfigArgs),
    /// Work with rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Write a consistent JSON-lines dump of a running daemon's store to FILE.
    Export {
        /// Where to write the dump ("-" for standard output).
        file: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
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
    },
}

/// How a client subcommand reaches a running daemon.
#[derive(clap::Args)]
struct ServerArgs {
    /// The daemon's base URL.
    #[arg(long, env = "ITSMD_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// API token (admin role for export).
    #[arg(long, env = "ITSMD_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Compile every rule and report all errors; non-zero exit on any.
    Check {
        /// Folder of rule files; rules.dir of the default configuration when absent.
        dir: Option<PathBuf>,
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
    itsmd::daemon::load_keys(&config)?;
    let rules = itsmd::daemon::load_rules(&config)?;
    println!(
        "OK: configuration valid; {} rule file(s) from {} compile (version {}).",
        rules.set().files.len(),
        rules.set().origin,
        rules.version()
    );
    Ok(())
}

fn rules_check(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let args = ConfigArgs {
        config: None,
        rules_dir: dir,
    };
    check(args)
}

fn export(file: PathBuf, server: ServerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let url = format!(
            "{}/api/v1/admin/export",
            server.server.trim_end_matches('/')
        );
        let mut request = reqwest::Client::new().get(&url);
        if let Some(token) = &server.token {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            anyhow::bail!("{url} answered {status}: {text}");
        }
        // Written beside the target and renamed at the end: a cut-off export never looks whole.
        let to_stdout = file.as_os_str() == "-";
        let partial = file.with_extension("partial");
        let mut out: Box<dyn std::io::Write> = if to_stdout {
            Box::new(std::io::stdout().lock())
        } else {
            let f = std::fs::File::create(&partial)
                .with_context(|| format!("cannot create {}", partial.display()))?;
            Box::new(std::io::BufWriter::new(f))
        };
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await.context("the export was cut off")? {
            out.write_all(&chunk).context("cannot write the export")?;
            bytes += chunk.len();
        }
        out.flush().context("cannot write the export")?;
        drop(out);
        if !to_stdout {
            std::fs::rename(&partial, &file).with_context(|| {
                format!("cannot rename {} to {}", partial.display(), file.display())
            })?;
            eprintln!("Exported {bytes} bytes to {}.", file.display());
        }
        Ok(())
    })
}

fn import(file: PathBuf, base: ConfigArgs, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let mut config = load_config(&base)?;
    if let Some(dir) = data_dir {
        config.store.data_dir = dir;
    }
    let dir = &config.store.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = itsmd::store::SledStore::open(dir, config.store.cache_mb << 20)?;
    let input =
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    let entries = itsmd::backup::import(&store, &mut std::io::BufReader::new(input))
        .with_context(|| format!("cannot import {}", file.display()))?;
    eprintln!("Imported {entries} entries into {}.", dir.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => rules_check(dir),
        Command::Export { file, server } => export(file, server),
        Command::Import {
            file,
            base,
            data_dir,
        } => import(file, base, data_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("itsmd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
