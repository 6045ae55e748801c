//! Starting and stopping the real daemon for tests.
//!
//! Each daemon is the built `itsmd` binary, listening on 127.0.0.1:0 with its own temp data
//! directory, logging JSON to stderr; the harness reads the bound address from the
//! "Listening." log line and keeps every log line for assertions.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_itsmd");

/// The test fixtures folder.
pub fn fixture(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Everything a test daemon runs with: a temp dir holding data, rules and config.
pub struct Setup {
    pub dir: TempDir,
    /// Rules folder; `None` runs the repository's shipped rules.
    pub rules_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            rules_dir: None,
            config: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Uses only the given rule files (name, text).
    pub fn rules(mut self, files: &[(&str, &str)]) -> Setup {
        let dir = self.dir.path().join("rules");
        std::fs::create_dir_all(&dir).expect("rules dir");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("write rule");
        }
        self.rules_dir = Some(dir);
        self
    }

    /// Uses the given configuration text. One that sends webhooks or mail (to the tests'
    /// loopback receivers) and says nothing of `[egress]` gets loopback allowed.
    pub fn config(mut self, text: &str) -> Setup {
        let path = self.dir.path().join("itsmd.toml");
        let mut text = text.to_string();
        if needs_loopback_egress(&text) {
            text.push_str(LOOPBACK_EGRESS);
        }
        std::fs::write(&path, text).expect("write config");
        self.config = Some(path);
        self
    }

    pub fn start(&self) -> Daemon {
        self.start_with(&[], &[])
    }

    /// Starts with more command-line arguments and environment variables.
    pub fn start_with(&self, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Daemon {
        self.start_under(Command::new(BIN), args, env)
    }

    /// Starts the daemon as the command `wrapper` runs (e.g. `strace -o FILE`), which must
    /// pass its standard error through.
    pub fn start_wrapped(&self, wrapper: &[&std::ffi::OsStr]) -> Daemon {
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..]).arg(BIN);
        self.start_under(cmd, &[], &[])
    }

    fn start_under(
        &self,
        mut cmd: Command,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> Daemon {
        let shipped_rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--rules-dir")
            .arg(self.rules_dir.as_deref().unwrap_or(&shipped_rules))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(args).envs(env.iter().copied());
        Daemon::spawn(cmd)
    }
}

pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::blocking::Client,
}

impl Daemon {
    fn spawn(mut cmd: Command) -> Daemon {
        let mut child = cmd.spawn().expect("spawn itsmd");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "Listening."
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().expect("addr"));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "daemon did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Daemon {
            child,
            addr,
            logs,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a JSON text; returns status and parsed body (Null when not JSON).
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().expect("GET");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// GETs and asserts 200.
    /// A request with a bearer token; the status and the JSON answer (null if none).
    pub fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    /// The value of one series of `GET /metrics` (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    pub fn logs(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until a log line satisfies `pred` (logs are written asynchronously).
    /// The first WARN line whose message starts with `message`, waiting for it.
    pub fn wait_for_warning(&self, message: &str) -> Value {
        self.wait_for_log(|v| {
            v["level"] == "WARN"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
        })
    }

    pub fn wait_for_log(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.logs().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no such log line; logs:\n{}",
                self.logs.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// SIGTERM and wait for exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// SIGKILL: a crash, no chance to flush.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for an exit already asked for (e.g. by [`Daemon::signal`]).
    pub fn wait(mut self) -> ExitStatus {
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A generic alert body with the given labels.
pub fn alert(status: &str, summary: &str, labels: Value) -> String {
    serde_json::json!({
        "source": "test",
        "status": status,
        "severity": "critical",
        "summary": summary,
        "labels": labels,
    })
    .to_string()
}

/// Configuration text with the default groups (triage, operations) plus `extra` groups,
/// for daemons whose rules route to other teams. Members are given as (group, [names]).
pub fn groups_config(extra: &[(&str, &[&str])]) -> String {
    let mut text = String::from("[groups.triage]\n[groups.operations]\n");
    for (name, members) in extra {
        let list: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
        text.push_str(&format!(
            "[groups.{name}]\nmembers = [{}]\n",
            list.join(", ")
        ));
    }
    text
}

/// Asserts that the last history entry of ticket `t` (as `GET /api/v1/tickets/ID` shows it) is
/// the auto-close sweep closing it after `after`.
pub fn assert_closed_by_housekeeping(t: &Value, after: &str) {
    let last = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["actor"],
        serde_json::json!({"type": "system", "component": "housekeeping"})
    );
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("closed automatically after {after}")),
        "{last}"
    );
}

/// A port nobody listens on right now (for the real senders the tests start).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Polls `done` until it holds, failing after 60 s.
/// The state letter of a process (`T` when stopped), from /proc.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every incident, as the ticket list shows them.
pub fn incidents(d: &Daemon) -> Vec<Value> {
    d.get_ok("/api/v1/tickets?kind=incident&limit=500")["tickets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

impl Daemon {
    /// Runs `itsmd export FILE` against this daemon with `token`; returns success and stderr.
    pub fn export_to(&self, file: &Path, token: &str) -> (bool, String) {
        let out = Command::new(BIN)
            .arg("export")
            .arg(file)
            .args([
                "--server",
                &format!("http://{}", self.addr),
                "--token",
                token,
            ])
            .output()
            .expect("run itsmd export");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// Runs the `itsmd` binary (logging warnings only): whether it succeeded, stdout then stderr.
pub fn itsmd(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `[egress]` section that lets a test's configuration reach its loopback receivers.
pub const LOOPBACK_EGRESS: &str = "\n[egress]\nallow = [\"127.0.0.0/8\", \"::1\"]\n";

/// Whether a configuration sends webhooks, mail or chat (to loopback receivers in the tests)
/// without saying anything of `[egress]`.
pub fn needs_loopback_egress(text: &str) -> bool {
    (text.contains("[vendors.") || text.contains("[smtp") || text.contains("[chat."))
        && !text.contains("[egress]")
}
