//! The crash test's load: alert senders in two wire formats (generic `/api/v1/events`, one
//! alert a request; Prometheus `/api/v2/alerts`, several a request), a mail writer that
//! delivers into the Maildir the proper way (tmp/, then rename into new/), and the ledger of
//! what was sent and what was acknowledged. Senders never retry: a request cut off by the
//! kill is recorded as unknown, and it may or may not have been stored.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// Alert keys per wire format; senders re-send them over and over.
pub const KEYS: usize = 8;

/// Every Prometheus alert of one key starts at this time, so its re-sends are unchanged
/// re-sends (stored once, answered `seen`).
const PROM_STARTS_AT: &str = "2026-01-05T09:00:00Z";

/// SplitMix64: a tiny seeded generator, so a seed replays the same choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// The wire format an alert was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Generic,
    Prometheus,
}

/// What the daemon answered for one acknowledged alert.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The event that stored it (for a `seen` re-send, the one that stored it first).
    pub event_id: u64,
    /// The ticket it went to.
    pub ticket: String,
    /// `opened`, `updated`, `seen`, …
    pub outcome: String,
}

/// One alert sent: its key, its unique nonce (an annotation), and its receipt when the
/// request was acknowledged (2xx); `None` when the request failed or was cut off.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The wire format it was sent in.
    pub format: Format,
    /// Its `crash_key` label: which ticket it belongs to.
    pub key: String,
    /// Its `nonce` annotation, unique to this send.
    pub nonce: String,
    /// The daemon's answer, when it acknowledged the request.
    pub receipt: Option<Receipt>,
}

/// Everything the load did, shared by the sender threads.
#[derive(Default)]
pub struct Ledger {
    /// Every alert sent, acknowledged or not.
    pub sent: Mutex<Vec<Sent>>,
    /// Nonces are unique across the whole test.
    next_nonce: AtomicU64,
    /// Mails delivered into new/ so far (their names are `N.crash`).
    pub mails: AtomicU64,
}

impl Ledger {
    fn nonce(&self) -> String {
        format!("n{}", self.next_nonce.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, sent: Vec<Sent>) {
        self.sent.lock().unwrap().extend(sent);
    }
}

/// The key label value of alert key number `i` of a format.
pub fn key_name(format: Format, i: u64) -> String {
    match format {
        Format::Generic => format!("g{i:02}"),
        Format::Prometheus => format!("p{i:02}"),
    }
}

/// Sets the flag when dropped: the load threads stop even when the test panics while they
/// run (a scope waits for them).
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sends alerts of `format` to `base` until `stop`; a generic alert carries an annotation of
/// `pad` bytes besides its nonce (to fill a disk).
pub fn send_alerts(
    base: &str,
    format: Format,
    pad: usize,
    seed: u64,
    ledger: &Ledger,
    stop: &AtomicBool,
) {
    let mut rng = Rng::new(seed);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    while !stop.load(Ordering::Relaxed) {
        let (path, body, mut sent) = match format {
            Format::Generic => generic(&mut rng, ledger, pad),
            Format::Prometheus => prometheus(&mut rng, ledger),
        };
        let answer = http
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send();
        // Acknowledged means a 2xx answer read whole; an answer cut off by the kill while
        // its body was read is as unknown as a refused, timed-out or unanswered request.
        let acked = answer
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.json::<Value>().ok());
        match acked {
            Some(v) => {
                let receipts: Vec<Value> = match format {
                    Format::Generic => vec![v],
                    Format::Prometheus => v["receipts"].as_array().expect("receipts").clone(),
                };
                assert_eq!(receipts.len(), sent.len(), "one receipt per alert: {body}");
                for (s, r) in sent.iter_mut().zip(receipts) {
                    s.receipt = Some(Receipt {
                        event_id: r["event_id"].as_u64().expect("event_id"),
                        ticket: r["ticket"].as_str().expect("ticket").to_string(),
                        outcome: r["outcome"].as_str().expect("outcome").to_string(),
                    });
                }
            }
            // Never retried: the next request is another alert.
            None => std::thread::sleep(Duration::from_millis(5)),
        }
        ledger.record(sent);
    }
}

fn generic(rng: &mut Rng, ledger: &Ledger, pad: usize) -> (&'static str, Value, Vec<Sent>) {
    let key = key_name(Format::Generic, rng.range(0, KEYS as u64));
    let nonce = ledger.nonce();
    let body = json!({
        "source": "crash-test",
        "key": format!("crash-{key}"),
        "status": "firing",
        "severity": "critical",
        "summary": format!("crash alert {key}"),
        "labels": {"crash_key": key, "crash_format": "generic"},
        "annotations": {"nonce": nonce},
    });
    let mut body = body;
    if pad > 0 {
        body["annotations"]["pad"] = Value::String("p".repeat(pad));
    }
    let sent = Sent {
        format: Format::Generic,
        key,
        nonce,
        receipt: None,
    };
    ("/api/v1/events", body, vec![sent])
}

/// One to three alerts of distinct keys in one request.
fn prometheus(rng: &mut Rng, ledger: &Ledger) -> (&'static str, Value, Vec<Sent>) {
    let n = rng.range(1, 4);
    let first = rng.range(0, KEYS as u64);
    let mut alerts = Vec::new();
    let mut sent = Vec::new();
    for i in 0..n {
        let key = key_name(Format::Prometheus, (first + i) % KEYS as u64);
        let nonce = ledger.nonce();
        alerts.push(json!({
            "labels": {"alertname": "CrashTest", "crash_key": key, "crash_format": "prometheus"},
            "annotations": {"summary": format!("crash alert {key}"), "nonce": nonce},
            "startsAt": PROM_STARTS_AT,
        }));
        sent.push(Sent {
            format: Format::Prometheus,
            key,
            nonce,
            receipt: None,
        });
    }
    ("/api/v2/alerts", Value::Array(alerts), sent)
}

/// The subject of mail number `n`: its ticket's title.
pub fn mail_subject(n: u64) -> String {
    format!("crash mail {n}")
}

/// Delivers mails into `maildir` as delivery agents do (write in tmp/, rename into new/),
/// each from its own sender (so no rate limit applies), until `stop`.
pub fn write_mails(maildir: &Path, seed: u64, ledger: &Ledger, stop: &AtomicBool) {
    let mut rng = Rng::new(seed);
    while !stop.load(Ordering::Relaxed) {
        let n = ledger.mails.load(Ordering::Relaxed);
        let text = format!(
            "From: Caller {n} <caller{n}@example.com>\nTo: servicedesk@example.com\n\
             Subject: {}\nMessage-ID: <crash-{n}@example.com>\n\
             Date: Mon, 05 Jan 2026 09:00:00 +0000\n\nPlease help, case {n}.\n",
            mail_subject(n)
        );
        let name = format!("{n}.crash");
        let tmp = maildir.join("tmp").join(&name);
        std::fs::write(&tmp, text).expect("write tmp/");
        std::fs::rename(&tmp, maildir.join("new").join(&name)).expect("rename into new/");
        ledger.mails.store(n + 1, Ordering::Relaxed);
        // Pacing only: mail arrives a few at a time, as it does.
        std::thread::sleep(Duration::from_millis(rng.range(5, 40)));
    }
}
