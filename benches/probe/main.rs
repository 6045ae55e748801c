//! The benchmark's load probe, driven by `bench/run.sh` (see docs/performance.md): what wrk
//! cannot do. Each subcommand prints one line of `name=value` pairs.
//!
//!   rate   open-loop fixed-rate alerts; ack latency from each request's scheduled time
//!   mixed  scenario (d): fixed-rate alerts while mails are delivered into the Maildir
//!   big    1,000,000 Prometheus alerts into 100,000 tickets (closed loop, batches)
//!   ready  time from the daemon's exec to /readyz answering 200
//!   e2e    alert → incident committed → vendor webhook verified by a loopback receiver
//!
//! Built with `cargo bench --no-run --bench probe`; `bench/run.sh` runs the binary directly.

mod big;
mod bodies;
mod e2e;
mod mail;
mod mixed;
mod open_loop;
mod ready;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(about = "itsmd's benchmark load probe")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Alerts at a fixed offered rate; prints rates, latency p50/p99/max, failures, keys.
    Rate(RateArgs),
    /// Alerts at a fixed rate plus mails delivered into the Maildir at a fixed rate.
    Mixed {
        #[command(flatten)]
        alerts: RateArgs,
        /// The daemon's Maildir.
        #[arg(long)]
        maildir: PathBuf,
        /// Mails per second.
        #[arg(long, default_value_t = 20.0)]
        mail_rate: f64,
    },
    /// The big store: passes × keys Prometheus alerts in batches, closed loop.
    Big {
        /// The server's base URL.
        #[arg(long)]
        url: String,
        /// Distinct alert keys.
        #[arg(long, default_value_t = 100_000)]
        keys: usize,
        /// Times every key is sent.
        #[arg(long, default_value_t = 10)]
        passes: usize,
        /// Alerts per request.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Concurrent senders.
        #[arg(long, default_value_t = 16)]
        conns: usize,
    },
    /// New-key alerts at a fixed rate to a daemon that notifies the probe's loopback
    /// receiver of every new incident; ack and end-to-end (webhook verified) latencies.
    E2e {
        #[command(flatten)]
        alerts: RateArgs,
        /// Where the receiver listens (the vendor's url in the daemon's configuration).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The vendor's signing secret (`whsec_…`), as configured in the daemon.
        #[arg(long)]
        secret: String,
    },
    /// Polls a readiness URL; prints the time since the given exec time.
    Ready {
        /// The readiness URL, e.g. http://127.0.0.1:18080/readyz.
        #[arg(long)]
        url: String,
        /// When the daemon was exec'd, in nanoseconds since the Unix epoch (`date +%s%N`).
        #[arg(long)]
        since_ns: u128,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 120)]
        deadline_secs: u64,
    },
}

/// One fixed-rate alert stream.
#[derive(Args)]
struct RateArgs {
    /// The server's base URL.
    #[arg(long)]
    url: String,
    /// What to send.
    #[arg(long, value_enum)]
    kind: bodies::Kind,
    /// Offered alerts per second.
    #[arg(long)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Distinct alert keys, sent round-robin.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Makes this run's keys (and mails) distinct from other runs'.
    #[arg(long)]
    prefix: String,
}

impl RateArgs {
    fn plan(self) -> open_loop::Plan {
        open_loop::Plan {
            url: self.url,
            kind: self.kind,
            rate: self.rate,
            secs: self.secs,
            keys: self.keys,
            prefix: self.prefix,
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let client = open_loop::client()?;
    match Cli::parse().command {
        Command::Rate(args) => {
            let plan = args.plan();
            open_loop::run(&client, &plan).await.line(&plan).print();
        }
        Command::Mixed {
            alerts,
            maildir,
            mail_rate,
        } => {
            let alerts = alerts.plan();
            let mails = mail::Plan {
                maildir,
                rate: mail_rate,
                secs: alerts.secs,
                prefix: alerts.prefix.clone(),
            };
            mixed::run(&client, alerts, mails).await?;
        }
        Command::Big {
            url,
            keys,
            passes,
            batch,
            conns,
        } => {
            let plan = big::Plan {
                url,
                keys,
                passes,
                batch,
                conns,
            };
            big::run(&client, plan).await?;
        }
        Command::E2e {
            alerts,
            listen,
            secret,
        } => {
            e2e::run(
                &client,
                alerts.url,
                alerts.rate,
                alerts.secs,
                alerts.prefix,
                listen,
                &secret,
            )
            .await?
        }
        Command::Ready {
            url,
            since_ns,
            deadline_secs,
        } => ready::run(&client, &url, since_ns, Duration::from_secs(deadline_secs)).await?,
    }
    Ok(())
}
