//! The connection to the server, and what the logs may say about it (never a password).
//!
//! TLS follows libpq's words in the connection string (`?sslmode=…&sslrootcert=…` in a URL,
//! `sslmode=… sslrootcert=…` among key=value words): `disable` is plain; `prefer` (the
//! default) and `require` encrypt (`prefer` falls back to plain if the server has no TLS),
//! without checking the certificate unless `sslrootcert` names a root certificate file, when
//! its chain is checked; `verify-ca` checks the chain and `verify-full` the chain and the
//! host name, both against the PEM file `sslrootcert` (required with them).

use std::path::PathBuf;

use postgres::config::SslMode;
use postgres::{Client, NoTls};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::store::StoreError;
use crate::store::postgres::tls::{Check, Rustls};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A connection string as `postgres::Config` reads it, and the TLS words it does not.
struct Target {
    rest: String,
    mode: Mode,
    root: Option<PathBuf>,
}

pub(super) fn connect(url: &str) -> Result<Client, StoreError> {
    let open = |error: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::Connect {
            // The URL may carry a password: name the server only.
            target: describe(url),
            error: with_causes(error.as_ref()).into(),
        }
    };
    let target = split(url).map_err(|e| open(e.into()))?;
    let mut config: postgres::Config = target.rest.parse().map_err(|e| open(Box::new(e)))?;
    if target.mode == Mode::Disable {
        config.ssl_mode(SslMode::Disable);
        return config.connect(NoTls).map_err(|e| open(Box::new(e)));
    }
    config.ssl_mode(if target.mode == Mode::Prefer {
        SslMode::Prefer
    } else {
        SslMode::Require
    });
    let check = match (target.mode, &target.root) {
        (Mode::VerifyFull, Some(_)) => Check::ChainAndName,
        (Mode::VerifyCa, Some(_)) | (Mode::Prefer | Mode::Require, Some(_)) => Check::Chain,
        (Mode::VerifyCa | Mode::VerifyFull, None) => {
            return Err(open(
                "sslmode=verify-ca and verify-full need sslrootcert=FILE (the PEM root \
                 certificates the server's certificate is checked against)"
                    .into(),
            ));
        }
        _ => Check::Nothing,
    };
    let mut roots = rustls::RootCertStore::empty();
    if let Some(file) = &target.root {
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| open(format!("sslrootcert {}: {e}", file.display()).into()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(open(
                format!("sslrootcert {} holds no usable certificate", file.display()).into(),
            ));
        }
    }
    let tls = Rustls::new(check, roots).map_err(|e| open(Box::new(e)))?;
    config.connect(tls).map_err(|e| open(Box::new(e)))
}

/// An error with its causes (a TLS handshake error or a bad option says why only in its
/// source).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// What is wrong with a connection string without connecting (for `itsmd check`): its
/// syntax, its TLS words, a root-certificate file that is not there.
pub(crate) fn problem(url: &str) -> Option<String> {
    let target = match split(url) {
        Ok(t) => t,
        Err(e) => return Some(e),
    };
    if let Err(e) = target.rest.parse::<postgres::Config>() {
        return Some(with_causes(&e));
    }
    match &target.root {
        None if matches!(target.mode, Mode::VerifyCa | Mode::VerifyFull) => Some(
            "sslmode=verify-ca and verify-full need sslrootcert=FILE (the PEM root \
             certificates the server's certificate is checked against)"
                .into(),
        ),
        Some(file) if !file.is_file() => Some(format!(
            "sslrootcert {} is not a readable file",
            file.display()
        )),
        _ => None,
    }
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query or a key=value string.
fn split(url: &str) -> Result<Target, String> {
    let mut mode = Mode::Prefer;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                mode = match value {
                    "disable" => Mode::Disable,
                    "allow" | "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other} is none of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        ));
                    }
                };
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(k, &percent_decode(v))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (k, v) = word.split_once('=').unwrap_or((word, ""));
            if !take(k.trim(), v.trim_matches('\''))? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok(Target { rest, mode, root })
}

/// `%XX` escapes of a URL query value (a path with spaces, say).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `host:port/dbname` of a connection string, without user or password.
pub(crate) fn describe(url: &str) -> String {
    let parsed = split(url)
        .ok()
        .and_then(|t| t.rest.parse::<postgres::Config>().ok());
    match parsed {
        Some(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    postgres::config::Host::Tcp(name) => name.clone(),
                    postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres {host}:{port}/{}",
                c.get_dbname().unwrap_or_default()
            )
        }
        None => "postgres (an unreadable connection string)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_words_are_taken_out_of_both_forms_of_connection_string() {
        let t = split("postgres://u:p@db:5433/itsmd?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x").unwrap();
        assert_eq!(t.mode, Mode::VerifyFull);
        assert_eq!(t.root, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(t.rest, "postgres://u:p@db:5433/itsmd?application_name=x");
        let t = split("host=db sslmode=require dbname=itsmd sslrootcert='/ca.pem'").unwrap();
        assert_eq!(t.mode, Mode::Require);
        assert_eq!(t.root, Some(PathBuf::from("/ca.pem")));
        assert_eq!(t.rest, "host=db dbname=itsmd");
        assert_eq!(split("host=db").unwrap().mode, Mode::Prefer);
        let e = split("host=db sslmode=sometimes").err().unwrap();
        assert!(e.contains("sslmode=sometimes"), "{e}");
        assert_eq!(
            describe("host=db port=6000 dbname=x password=secret sslmode=verify-full"),
            "postgres db:6000/x"
        );
    }

    #[test]
    fn a_connection_string_is_checked_without_connecting() {
        assert_eq!(
            problem("postgres://u:p@127.0.0.1:1/itsmd?sslmode=disable"),
            None
        );
        let e = problem("host=db connect_timeout=soon").unwrap();
        assert!(e.contains("connect_timeout"), "{e}");
        let e = problem("host=db sslmode=verify-full").unwrap();
        assert!(e.contains("need sslrootcert"), "{e}");
        let e = problem("host=db sslmode=verify-ca sslrootcert=/nonexistent/ca.pem").unwrap();
        assert!(
            e.contains("/nonexistent/ca.pem is not a readable file"),
            "{e}"
        );
    }
}
