//! The HTTP side of the client subcommands: the connection options every one of them takes,
//! and requests whose non-2xx answers become errors carrying the API's own message.

use anyhow::{Context, anyhow};
use reqwest::Method;
use reqwest::blocking::Client as Http;
use serde_json::Value;

/// Where the daemon is and how to authenticate; flattened into each client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Base URL of the itsmd daemon.
    #[arg(
        long,
        env = "ITSMD_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// API token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "ITSMD_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM file of CA certificates to trust for an https --server (a private CA), besides
    /// the system's.
    #[arg(long, env = "ITSMD_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
}

pub struct Client {
    http: Http,
    /// Base URL without a trailing slash.
    base: String,
    /// The CA certificates of `--ca-cert`, for the download client too.
    roots: Vec<reqwest::Certificate>,
    /// Sent with every request when set.
    token: Option<String>,
}

impl Client {
    pub fn new(args: &ServerArgs) -> anyhow::Result<Client> {
        let roots = match &args.ca_cert {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("--ca-cert: cannot read {}", path.display()))?;
                let roots = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                    format!("--ca-cert: {} is not PEM certificates", path.display())
                })?;
                if roots.is_empty() {
                    anyhow::bail!("--ca-cert: {} holds no certificate", path.display());
                }
                roots
            }
        };
        let http = builder(&roots)
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            base: args.server.trim_end_matches('/').to_string(),
            roots,
            token: args.token.clone(),
        })
    }

    /// Sends a request and returns the JSON answer; a non-2xx answer is an error with the
    /// API's code and message.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .with_context(|| format!("cannot reach the itsmd daemon at {}", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .with_context(|| format!("cannot read the answer to {method} {path}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => {
                // Every problem the daemon listed (compile errors with file:line, invalid
                // fields), one a line, not just their count.
                let listed: Vec<&str> = ["errors", "problems"]
                    .iter()
                    .filter_map(|k| error["details"][k].as_array())
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                Err(anyhow!(refusal(status.as_u16(), code, message, &listed)))
            }
            _ => Err(anyhow!("{method} {path} answered {status}: {value}")),
        }
    }

    /// GETs `path` and streams the answer into `out`, returning the bytes written; a non-2xx
    /// answer is an error carrying the API's message. No overall timeout: dumps can be large.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        let url = format!("{}{path}", self.base);
        let mut req = builder(&self.roots)
            .timeout(None)
            .build()
            .context("cannot build the HTTP client")?
            .get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req
            .send()
            .with_context(|| format!("cannot reach the itsmd daemon at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let error = &value["error"];
            return match (error["code"].as_str(), error["message"].as_str()) {
                (Some(code), Some(message)) => {
                    Err(anyhow!("{} {code}: {message}", status.as_u16()))
                }
                _ => Err(anyhow!("GET {path} answered {status}: {value}")),
            };
        }
        resp.copy_to(out)
            .with_context(|| format!("the answer to GET {path} was cut off"))
    }
}

/// A JSON value in a table cell: strings bare, absent as "-", the rest as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Rows as left-aligned columns two spaces apart, one line each (no trailing spaces).
pub fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// An HTTP client builder trusting `roots` besides the system's CAs.
fn builder(roots: &[reqwest::Certificate]) -> reqwest::blocking::ClientBuilder {
    roots
        .iter()
        .fold(Http::builder(), |b, c| b.add_root_certificate(c.clone()))
}

/// The text of a refused call: status, code and message, then each listed problem on a line
/// of its own; a message that only joins the problems is not printed again.
fn refusal(status: u16, code: &str, message: &str, listed: &[&str]) -> String {
    if listed.is_empty() || listed == [message] {
        return format!("{status} {code}: {message}");
    }
    let mut text = if listed.join("; ") == message {
        format!("{status} {code}:")
    } else {
        format!("{status} {code}: {message}")
    };
    for line in listed {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_lists_its_problems_once() {
        assert_eq!(
            refusal(404, "not_found", "no such ticket", &[]),
            "404 not_found: no such ticket"
        );
        assert_eq!(
            refusal(400, "bad_request", "`q`: empty", &["`q`: empty"]),
            "400 bad_request: `q`: empty"
        );
        assert_eq!(
            refusal(400, "bad_request", "a; b", &["a", "b"]),
            "400 bad_request:\n  a\n  b"
        );
        assert_eq!(
            refusal(
                422,
                "rules_invalid",
                "2 error(s)",
                &["a.rhai:1: x", "b.rhai:2: y"]
            ),
            "422 rules_invalid: 2 error(s)\n  a.rhai:1: x\n  b.rhai:2: y"
        );
    }
}
