//! The SMTP sender: hands one mail row (its stored envelope and message, byte for byte) to
//! the configured server and says how it went, for the dispatcher to judge. Built once at
//! start, when the password file is read; the password is never logged or shown.

use std::time::Duration;

use lettre::address::Envelope as SmtpEnvelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::mail::outbound::{Envelope, SmtpConfig, TlsMode};
use crate::vendors::RetrySchedule;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("smtp.password_file {path}: cannot read it: {source}")]
    Password {
        path: String,
        source: std::io::Error,
    },
    #[error("smtp.host {host}: {source}")]
    Host {
        host: String,
        source: lettre::transport::smtp::Error,
    },
}

/// How one hand-over went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The server accepted the message.
    Delivered,
    /// Worth trying again: no connection, a timeout, a 4xx answer.
    Transient(String),
    /// The server refused it for good (5xx), or the row cannot be read.
    Permanent(String),
}

pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    pub retry: RetrySchedule,
    pub max_in_flight: usize,
    pub timeout: Duration,
    /// `host:port`, for messages.
    pub server: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Reads the password file and sets up the transport (no connection is made yet).
    pub fn build(c: &SmtpConfig) -> Result<SmtpSender, SmtpError> {
        let host = c.host.trim();
        let builder = match c.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|source| SmtpError::Host {
                    host: host.to_string(),
                    source,
                })?,
            TlsMode::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(|source| {
                    SmtpError::Host {
                        host: host.to_string(),
                        source,
                    }
                })?
            }
        };
        let timeout = c.timeout.to_std();
        let mut builder = builder.port(c.port()).timeout(Some(timeout));
        if !c.username.is_empty() {
            let password = std::fs::read_to_string(&c.password_file).map_err(|source| {
                SmtpError::Password {
                    path: c.password_file.display().to_string(),
                    source,
                }
            })?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            builder = builder.credentials(Credentials::new(c.username.clone(), password));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            retry: c.retry.clone(),
            max_in_flight: c.max_in_flight,
            timeout,
            server: format!("{host}:{}", c.port()),
        })
    }

    /// Hands the row's mail to the server.
    pub async fn send(&self, body: &str) -> Sent {
        let e: Envelope = match serde_json::from_str(body) {
            Ok(e) => e,
            Err(e) => return Sent::Permanent(format!("the row is not a mail: {e}")),
        };
        let envelope = match envelope_of(&e) {
            Ok(v) => v,
            Err(error) => return Sent::Permanent(error),
        };
        let sending = self.transport.send_raw(&envelope, e.message.as_bytes());
        // lettre's timeout is per command; this bounds the whole hand-over.
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), sending).await {
            Ok(Ok(_)) => Sent::Delivered,
            Ok(Err(err)) if err.is_permanent() => {
                Sent::Permanent(format!("{} refused the mail: {err}", self.server))
            }
            Ok(Err(err)) => Sent::Transient(format!("{}: {err}", self.server)),
            Err(_) => Sent::Transient(format!(
                "{}: no answer within {} ms",
                self.server,
                self.timeout.as_millis()
            )),
        }
    }
}

fn envelope_of(e: &Envelope) -> Result<SmtpEnvelope, String> {
    let from = e
        .from
        .parse()
        .map_err(|err| format!("envelope sender {:?}: {err}", e.from))?;
    let mut to = Vec::new();
    for t in &e.to {
        to.push(
            t.parse()
                .map_err(|err| format!("envelope recipient {t:?}: {err}"))?,
        );
    }
    SmtpEnvelope::new(Some(from), to).map_err(|err| format!("envelope: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_password_file_is_named_and_a_bad_row_is_permanent() {
        let c = SmtpConfig {
            host: "127.0.0.1".into(),
            from: "desk@example.com".into(),
            username: "desk".into(),
            password_file: "/nonexistent/itsmd-smtp-pass".into(),
            ..SmtpConfig::default()
        };
        let e = SmtpSender::build(&c).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/itsmd-smtp-pass"), "{e}");
        let open = SmtpSender::build(&SmtpConfig {
            username: String::new(),
            password_file: Default::default(),
            ..c
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(matches!(rt.block_on(open.send("{}")), Sent::Permanent(_)));
    }
}
