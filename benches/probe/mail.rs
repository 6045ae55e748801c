//! Mail into the daemon's Maildir, as a delivery agent does it: each message is written to
//! tmp/ and renamed into new/, at a fixed rate. A watcher lists cur/ every few milliseconds
//! and notes when each message arrived there, which itsmd does only after committing it: the
//! time from delivery to cur/ is the mail's commit latency.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often cur/ is listed.
const POLL: Duration = Duration::from_millis(10);

/// One fixed-rate delivery run.
pub struct Plan {
    /// The Maildir itsmd reads (its new/, cur/ and tmp/).
    pub maildir: PathBuf,
    /// Mails per second.
    pub rate: f64,
    /// How long mails are delivered.
    pub secs: f64,
    /// Makes this run's Message-IDs, senders and file names unique.
    pub prefix: String,
}

/// What delivery and commit measured.
pub struct Outcome {
    /// Mails delivered into new/.
    pub delivered: usize,
    /// Delivered mails found in cur/ before the deadline.
    pub committed: usize,
    /// Per committed mail: from its rename into new/ to its appearance in cur/.
    pub latencies: Vec<Duration>,
    /// From the last delivery to the last mail's appearance in cur/.
    pub last_after_stream: Duration,
    /// Files still in new/ when the watcher stopped.
    pub left_in_new: usize,
}

/// Delivers `plan`'s mails on schedule (blocking; run it on its own thread), then waits up to
/// `deadline` after the last delivery for all of them to reach cur/.
pub fn deliver_and_watch(plan: &Plan, deadline: Duration) -> std::io::Result<Outcome> {
    let total = (plan.rate * plan.secs).round() as usize;
    let (tmp, new, cur) = (
        plan.maildir.join("tmp"),
        plan.maildir.join("new"),
        plan.maildir.join("cur"),
    );
    let mut delivered_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    let mut seen: HashMap<String, Instant> = HashMap::with_capacity(total);
    let start = Instant::now();
    let mut next_poll = start;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / plan.rate);
        loop {
            let now = Instant::now();
            if now >= next_poll {
                poll_cur(&cur, &delivered_at, &mut seen)?;
                next_poll = now + POLL;
            }
            if now >= at {
                break;
            }
            std::thread::sleep((at - now).min(next_poll.saturating_duration_since(now)));
        }
        let name = format!("{}.{}_{i}.bench", plan.prefix, std::process::id());
        deliver(&tmp, &new, &name, &message(&plan.prefix, i))?;
        delivered_at.insert(name, Instant::now());
    }
    let last_delivery = Instant::now();
    while seen.len() < total && last_delivery.elapsed() < deadline {
        std::thread::sleep(POLL);
        poll_cur(&cur, &delivered_at, &mut seen)?;
    }
    let latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(name, arrived)| Some(*arrived - *delivered_at.get(name)?))
        .collect();
    let last = seen.values().max().copied().unwrap_or(last_delivery);
    Ok(Outcome {
        delivered: total,
        committed: seen.len(),
        latencies,
        last_after_stream: last.saturating_duration_since(last_delivery),
        left_in_new: std::fs::read_dir(&new)?.count(),
    })
}

/// Writes the message into tmp/ and renames it into new/: the Maildir delivery protocol.
fn deliver(tmp: &Path, new: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let staged = tmp.join(name);
    std::fs::write(&staged, text)?;
    std::fs::rename(&staged, new.join(name))
}

/// Notes the first sighting in cur/ of each delivered message (`NAME:2,S` there).
fn poll_cur(
    cur: &Path,
    delivered: &HashMap<String, Instant>,
    seen: &mut HashMap<String, Instant>,
) -> std::io::Result<()> {
    let now = Instant::now();
    for entry in std::fs::read_dir(cur)? {
        let file = entry?.file_name();
        let name = file.to_string_lossy();
        let base = name.split_once(':').map_or(&*name, |(b, _)| b);
        if delivered.contains_key(base) && !seen.contains_key(base) {
            seen.insert(base.to_string(), now);
        }
    }
    Ok(())
}

/// Mail number `n` of the run: a new service request from its own sender (so the per-sender
/// loop limit never applies), with a subject that does not read like an outage.
fn message(prefix: &str, n: usize) -> String {
    let date = jiff::Zoned::now().strftime("%a, %d %b %Y %H:%M:%S %z");
    format!(
        "From: Bench User {n} <user-{n}@bench.example>\r\n\
         To: servicedesk@bench.example\r\n\
         Subject: Please set up a new laptop ({prefix} {n})\r\n\
         Date: {date}\r\n\
         Message-ID: <{prefix}-{n}@bench.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Hello service desk,\r\n\r\nplease set up a new laptop for our new colleague.\r\n\
         Request {n} of the benchmark.\r\n"
    )
}
