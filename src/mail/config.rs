//! `[mail]`: the Maildir that mail intake reads, what it keeps of each message, and the
//! per-sender rate limit of loop protection. Parsing and checks only; the Maildir source and
//! the engine act on it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The Maildir to take mail from (new/, cur/, tmp/ are created if missing); empty turns
    /// mail intake off.
    pub maildir: PathBuf,
    /// Where unreadable and oversized messages go; empty: `quarantine` inside the Maildir,
    /// on the same file system so moving there is a rename.
    pub quarantine: PathBuf,
    /// How often new/ is rescanned besides on file-system events (which can be lost).
    pub rescan_every: Friendly,
    /// A message written straight into new/ (not renamed from tmp/) may still be growing:
    /// it is read only once unchanged for this long.
    pub settle: Friendly,
    /// Larger messages are quarantined unread.
    pub max_message_bytes: u64,
    /// Attachments up to this size are kept (in the event journal); larger ones only by
    /// name, type and size.
    pub max_attachment_bytes: u64,
    /// Mails one sender may send within `rate_window` before further ones open nothing
    /// (a mail loop with a responder that sets no headers); 0 turns the limit off.
    pub rate_limit: u32,
    /// The window `rate_limit` counts in.
    pub rate_window: Friendly,
}

impl Default for MailConfig {
    fn default() -> MailConfig {
        MailConfig {
            maildir: PathBuf::new(),
            quarantine: PathBuf::new(),
            rescan_every: Friendly::from_secs(30),
            settle: Friendly::from_secs(1),
            max_message_bytes: 25 << 20,
            max_attachment_bytes: 1 << 20,
            rate_limit: 20,
            rate_window: Friendly::from_secs(600),
        }
    }
}

impl MailConfig {
    /// The Maildir, when mail intake is on.
    pub fn maildir(&self) -> Option<&Path> {
        (!self.maildir.as_os_str().is_empty()).then_some(self.maildir.as_path())
    }

    /// The quarantine folder of a Maildir.
    pub fn quarantine_in(&self, maildir: &Path) -> PathBuf {
        if self.quarantine.as_os_str().is_empty() {
            maildir.join("quarantine")
        } else {
            self.quarantine.clone()
        }
    }

    /// Keys read only at start (the Maildir reader's), that differ between `self` and `new`.
    pub fn needs_restart(&self, new: &MailConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut differs = |key: &str, changed: bool| {
            if changed {
                out.push(format!("mail.{key}"));
            }
        };
        differs("maildir", self.maildir != new.maildir);
        differs("quarantine", self.quarantine != new.quarantine);
        differs("rescan_every", self.rescan_every != new.rescan_every);
        differs("settle", self.settle != new.settle);
        differs(
            "max_message_bytes",
            self.max_message_bytes != new.max_message_bytes,
        );
        differs(
            "max_attachment_bytes",
            self.max_attachment_bytes != new.max_attachment_bytes,
        );
        out
    }
}

pub(crate) fn problems(m: &MailConfig) -> Vec<String> {
    let mut out = Vec::new();
    if m.rescan_every.0.is_zero() {
        out.push("mail.rescan_every must be greater than 0".into());
    }
    if m.max_message_bytes == 0 {
        out.push("mail.max_message_bytes must be greater than 0".into());
    }
    if m.rate_limit > 0 && m.rate_window.0.is_zero() {
        out.push("mail.rate_window must be greater than 0 when rate_limit is set".into());
    }
    if let Some(dir) = m.maildir() {
        let q = m.quarantine_in(dir);
        for sub in ["new", "cur", "tmp"] {
            if q.starts_with(dir.join(sub)) {
                out.push(format!(
                    "mail.quarantine = {} is inside the Maildir's {sub}/; choose another folder",
                    q.display()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_settings_are_checked_together() {
        let m = MailConfig {
            maildir: "/srv/mail".into(),
            quarantine: "/srv/mail/new/q".into(),
            rescan_every: Friendly::from_secs(0),
            max_message_bytes: 0,
            rate_window: Friendly::from_secs(0),
            ..MailConfig::default()
        };
        let p = problems(&m);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[3].contains("inside the Maildir's new/"), "{p:?}");
        assert!(problems(&MailConfig::default()).is_empty());
        let off = MailConfig {
            rate_limit: 0,
            rate_window: Friendly::from_secs(0),
            ..MailConfig::default()
        };
        assert!(problems(&off).is_empty());
    }

    #[test]
    fn quarantine_defaults_to_a_folder_inside_the_maildir() {
        let m = MailConfig::default();
        assert_eq!(m.maildir(), None);
        assert_eq!(
            m.quarantine_in(Path::new("/srv/mail")),
            PathBuf::from("/srv/mail/quarantine")
        );
        let moved = MailConfig {
            rate_limit: 5,
            settle: Friendly::from_secs(3),
            ..MailConfig::default()
        };
        assert_eq!(m.needs_restart(&moved), vec!["mail.settle".to_string()]);
    }
}
