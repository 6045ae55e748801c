//! `[smtp]`: where outgoing mail is handed over (host, port, TLS, credentials), who it is
//! from, how deliveries are retried, and which caller mails are sent. Parsing and checks
//! only; the password is read by [`crate::mail::outbound::SmtpSender::build`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;
use crate::vendors::RetrySchedule;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain text (a relay on the same host only).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
}

/// Which mails a ticket's caller gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerMail {
    /// A ticket opened by the caller's mail: its number and how to reply.
    pub acknowledged: bool,
    /// Every public comment that is not the caller's own.
    pub commented: bool,
    /// Resolved or fulfilled, with how to reopen it.
    pub resolved: bool,
    /// Closed: a reply now opens a follow-up.
    pub closed: bool,
}

impl Default for CallerMail {
    fn default() -> CallerMail {
        CallerMail {
            acknowledged: true,
            commented: true,
            resolved: true,
            closed: true,
        }
    }
}

/// Who on a ticket's side hears of something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The ticket's assignee.
    Assignee,
    /// Every member of the ticket's group.
    Group,
    /// The lead of the ticket's group.
    Lead,
}

/// Which staff notifications are mailed, and to whom (an empty list sends none). People
/// are the names `[groups]` uses; their addresses are in `[smtp.people]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeopleMail {
    /// A ticket was assigned to someone (or, without an assignee, to a group).
    pub assigned: Vec<Audience>,
    /// A ticket's escalation level went up.
    pub escalated: Vec<Audience>,
    /// An SLA clock breached its target.
    pub sla_breached: Vec<Audience>,
    /// An SLA clock reached its warning stage (the target is near).
    pub sla_warning: Vec<Audience>,
    /// A priority 1 ticket was opened (or raised to priority 1).
    pub p1_opened: Vec<Audience>,
    /// A rule's `notify_lead(message)`: the lead gets the message.
    pub lead_notified: bool,
}

impl Default for PeopleMail {
    fn default() -> PeopleMail {
        PeopleMail {
            assigned: vec![Audience::Assignee, Audience::Group],
            escalated: vec![Audience::Assignee, Audience::Lead],
            sla_breached: vec![Audience::Assignee, Audience::Lead],
            sla_warning: vec![Audience::Assignee],
            p1_opened: vec![Audience::Group, Audience::Lead],
            lead_notified: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// The SMTP server (relay or submission server).
    pub host: String,
    /// Its port; unset: 25 without TLS, 587 with STARTTLS, 465 with TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The service desk's address: `From` of every mail and the envelope sender.
    pub from: String,
    pub tls: TlsMode,
    /// Login name; empty sends without authentication.
    pub username: String,
    /// File holding the password (trailing newline ignored); required with `username`.
    pub password_file: PathBuf,
    /// Further addresses that are the desk's own (aliases): never mailed.
    pub own_addresses: Vec<String>,
    /// Longest one delivery (connect to final answer) may take.
    pub timeout: Friendly,
    /// Deliveries at once.
    pub max_in_flight: usize,
    /// When failed deliveries are tried again.
    pub retry: RetrySchedule,
    /// Which mails callers get.
    pub caller: CallerMail,
    /// Staff addresses by the names `[groups]` uses: `alice = "alice@example.com"`.
    pub people: std::collections::BTreeMap<String, String>,
    /// Which staff notifications are mailed, and to whom.
    pub notify: PeopleMail,
    /// A folder of templates laid over the shipped ones by file name (`NAME.subject`,
    /// `NAME.txt`, `NAME.html`); empty: the shipped ones only.
    pub templates: PathBuf,
    /// Quiet hours by person (`[smtp.quiet.alice]`): their non-urgent mail is held.
    pub quiet: std::collections::BTreeMap<String, crate::mail::outbound::quiet::QuietHours>,
    /// At most one notification mail per person per window: what follows the first within
    /// it goes as one batch when it ends; zero (the default) coalesces only within an event.
    pub coalesce: Friendly,
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            host: String::new(),
            port: None,
            from: String::new(),
            tls: TlsMode::default(),
            username: String::new(),
            password_file: PathBuf::new(),
            own_addresses: Vec::new(),
            timeout: Friendly::from_secs(30),
            max_in_flight: 4,
            retry: RetrySchedule::default(),
            caller: CallerMail::default(),
            people: Default::default(),
            notify: PeopleMail::default(),
            templates: PathBuf::new(),
            quiet: Default::default(),
            coalesce: Friendly::from_secs(0),
        }
    }
}

impl SmtpConfig {
    /// The port in force.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        })
    }

    /// The bare address of `from` (`desk@example.com` of `Desk <desk@example.com>`).
    pub fn from_address(&self) -> String {
        bare_address(&self.from)
    }

    /// Whether `address` is one of the desk's own.
    pub fn is_own(&self, address: &str) -> bool {
        let a = bare_address(address);
        a == self.from_address() || self.own_addresses.iter().any(|o| bare_address(o) == a)
    }

    /// Keys the SMTP sender reads only at start, that differ between `self` and `new`.
    pub fn needs_restart(old: Option<&SmtpConfig>, new: Option<&SmtpConfig>) -> Vec<String> {
        let sender = |c: Option<&SmtpConfig>| {
            c.map(|c| {
                (
                    c.host.clone(),
                    c.port(),
                    c.tls,
                    c.username.clone(),
                    c.password_file.clone(),
                    c.timeout.0,
                    c.max_in_flight,
                    c.retry.clone(),
                )
            })
        };
        if sender(old) == sender(new) {
            Vec::new()
        } else {
            vec!["smtp".to_string()]
        }
    }
}

/// Whether `destination` is a mail queue: `@smtp`, or a person's own (`@smtp/NAME`: quiet
/// hours, coalescing), so `itsmd outbox replay --vendor` takes either.
pub fn is_mail_queue(destination: &str) -> bool {
    let m = crate::vendors::MAIL_DESTINATION;
    destination == m
        || destination
            .strip_prefix(m)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|name| !name.is_empty())
}

/// The address inside `Name <address>`, lower-cased; the text itself when there are no
/// angle brackets.
pub fn bare_address(text: &str) -> String {
    let t = text.trim();
    let inner = match (t.rfind('<'), t.rfind('>')) {
        (Some(a), Some(b)) if a < b => &t[a + 1..b],
        _ => t,
    };
    inner.trim().to_ascii_lowercase()
}

pub(crate) fn problems(smtp: Option<&SmtpConfig>) -> Vec<String> {
    let Some(s) = smtp else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if s.host.trim().is_empty() {
        out.push("smtp.host must be set (the SMTP server mail is handed to)".into());
    }
    if s.from.trim().is_empty() {
        out.push("smtp.from must be set (the service desk's address)".into());
    } else if s.from.parse::<lettre::message::Mailbox>().is_err() {
        out.push(format!(
            "smtp.from = {:?} is not a mail address (`desk@example.com` or `Desk <desk@example.com>`)",
            s.from
        ));
    }
    for a in &s.own_addresses {
        if a.parse::<lettre::message::Mailbox>().is_err() {
            out.push(format!("smtp.own_addresses: {a:?} is not a mail address"));
        }
    }
    for (name, a) in &s.people {
        if a.parse::<lettre::message::Mailbox>().is_err() {
            out.push(format!("smtp.people.{name}: {a:?} is not a mail address"));
        }
    }
    if s.port == Some(0) {
        out.push("smtp.port must be greater than 0".into());
    }
    let user = !s.username.is_empty();
    let file = !s.password_file.as_os_str().is_empty();
    if user && !file {
        out.push("smtp.username is set but smtp.password_file is not".into());
    }
    if file && !user {
        out.push("smtp.password_file is set but smtp.username is not".into());
    }
    if s.timeout.0.is_zero() {
        out.push("smtp.timeout must be greater than 0".into());
    }
    if s.max_in_flight == 0 {
        out.push("smtp.max_in_flight must be greater than 0".into());
    }
    if s.coalesce.0 > jiff::SignedDuration::from_hours(24) {
        out.push(format!(
            "smtp.coalesce = \"{}\" is longer than a day (24h); notifications would wait that long",
            s.coalesce
        ));
    }
    out.extend(s.retry.problems("smtp.retry"));
    out.extend(crate::mail::outbound::quiet::problems(&s.quiet));
    if let Err(problems) = crate::mail::outbound::Templates::load(&s.templates) {
        out.extend(problems);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_settings_are_checked_and_bad_values_named() {
        let err = crate::config::parse(
            "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"desk@example.com\"\ntls = \"ssl\"\nhots = 1\nusername = \"u\"\n",
            "t",
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        assert!(all.contains("hots"), "{all}");
        assert!(all.contains("ssl") && all.contains("starttls"), "{all}");
        assert!(all.contains("smtp.password_file is not"), "{all}");
        let ok = crate::config::parse(
            "[smtp]\nhost = \"127.0.0.1\"\nfrom = \"Desk <Desk@Example.com>\"\ntls = \"none\"\n",
            "t",
        )
        .unwrap();
        let s = ok.smtp.unwrap();
        assert_eq!(s.port(), 25);
        assert!(s.is_own("desk@example.com"));
        assert!(!s.is_own("alice@example.com"));
        assert!(crate::config::parse("", "t").unwrap().smtp.is_none());
    }

    #[test]
    fn a_persons_queue_is_a_mail_queue() {
        assert!(is_mail_queue("@smtp") && is_mail_queue("@smtp/alice"));
        assert!(!is_mail_queue("@smtp/") && !is_mail_queue("@smtpx") && !is_mail_queue("acme"));
    }

    #[test]
    fn bare_addresses_come_out_of_display_names() {
        assert_eq!(bare_address("Alice <Alice@X.org>"), "alice@x.org");
        assert_eq!(bare_address(" bob@y "), "bob@y");
    }
}
