//! `[chat.NAME]`: one chat channel: its format, where messages go, and whose notifications
//! it carries (the groups and people it lists). Parsing and checks; the Matrix token is read
//! by [`crate::mail::chat::ChatSenders::build`] at start.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;
use crate::vendors::RetrySchedule;

/// The message format a channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatFormat {
    /// A Slack incoming webhook: `{"text", "blocks"}` POSTed to `url`.
    Slack,
    /// A Microsoft Teams incoming webhook (or Workflows): a message with an Adaptive Card.
    Teams,
    /// A Matrix room: `PUT {url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}`.
    Matrix,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatChannel {
    pub format: ChatFormat,
    /// Slack, Teams: the incoming webhook's URL. Matrix: the homeserver's base URL.
    pub url: String,
    /// Matrix: the room id (`!abc:example.org`).
    pub room: String,
    /// Matrix: the file holding the access token (sent as a bearer token).
    pub token_file: PathBuf,
    /// Groups whose notifications (a rule's `notify("group", …)`, a P1 or a new ticket for
    /// the group) are posted here.
    pub groups: Vec<String>,
    /// People whose notifications are posted here (their own channel or direct room).
    pub people: Vec<String>,
    /// Longest one delivery may take.
    pub timeout: Friendly,
    /// Deliveries at once.
    pub max_in_flight: usize,
    /// When failed deliveries are tried again.
    pub retry: RetrySchedule,
}

impl Default for ChatChannel {
    fn default() -> ChatChannel {
        ChatChannel {
            format: ChatFormat::Slack,
            url: String::new(),
            room: String::new(),
            token_file: PathBuf::new(),
            groups: Vec::new(),
            people: Vec::new(),
            timeout: Friendly::from_secs(10),
            max_in_flight: 2,
            retry: RetrySchedule::default(),
        }
    }
}

pub(crate) fn problems(
    chat: &std::collections::BTreeMap<String, ChatChannel>,
    groups: &crate::tickets::Groups,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, c) in chat {
        let at = format!("chat.{name}");
        if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            out.push(format!(
                "{at}: a channel name holds only letters, digits, - and _"
            ));
        }
        match reqwest::Url::parse(&c.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => out.push(format!("{at}.url = {:?} is not an http(s) URL", c.url)),
        }
        let matrix = c.format == ChatFormat::Matrix;
        if matrix && c.room.trim().is_empty() {
            out.push(format!(
                "{at}.room must be set for a matrix channel (`!id:server`)"
            ));
        }
        if matrix && c.token_file.as_os_str().is_empty() {
            out.push(format!("{at}.token_file must be set for a matrix channel"));
        }
        if !matrix && !c.room.is_empty() {
            out.push(format!("{at}.room is only for a matrix channel"));
        }
        if !matrix && !c.token_file.as_os_str().is_empty() {
            out.push(format!("{at}.token_file is only for a matrix channel"));
        }
        for g in &c.groups {
            if !groups.contains(g) {
                out.push(format!(
                    "{at}.groups: `{g}` is not a configured group ({})",
                    groups.names()
                ));
            }
        }
        if c.groups.is_empty() && c.people.is_empty() {
            out.push(format!(
                "{at}: lists no groups and no people, so it would get nothing"
            ));
        }
        if c.timeout.0.is_zero() {
            out.push(format!("{at}.timeout must be greater than 0"));
        }
        if c.max_in_flight == 0 {
            out.push(format!("{at}.max_in_flight must be greater than 0"));
        }
        out.extend(c.retry.problems(&format!("{at}.retry")));
    }
    out
}

/// Whose notifications a channel carries applies at once; the rest (added or removed
/// channels, format, url, room, token, timeout, retry) is loaded by the dispatcher at start.
pub(crate) fn needs_restart(
    old: &std::collections::BTreeMap<String, ChatChannel>,
    new: &std::collections::BTreeMap<String, ChatChannel>,
) -> Vec<String> {
    let delivery = |c: &std::collections::BTreeMap<String, ChatChannel>| {
        let mut c = c.clone();
        for ch in c.values_mut() {
            ch.groups.clear();
            ch.people.clear();
        }
        c
    };
    if delivery(old) == delivery(new) {
        Vec::new()
    } else {
        vec!["[chat] (added or removed channels, format, url, room, token_file, timeout, retry, max_in_flight)".to_string()]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn channels_are_checked_and_bad_values_named() {
        let err = crate::config::parse(
            "[groups.triage]\n[chat.ops]\nformat = \"matrix\"\nurl = \"ftp://x\"\ngroups = [\"nope\"]\n[chat.c]\ncolour = 1\n[chat.s]\nformat = \"slack\"\nurl = \"https://hooks.example/T\"\nroom = \"!r:x\"\n",
            "t",
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for want in [
            "colour",
            "chat.ops.url",
            "chat.ops.room must be set",
            "chat.ops.token_file must be set",
            "`nope` is not a configured group",
            "chat.s: lists no groups",
            "chat.s.room is only for a matrix",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        let ok = crate::config::parse(
            "[groups.triage]\n[chat.s]\nformat = \"teams\"\nurl = \"https://x.example/hook\"\npeople = [\"alice\"]\n",
            "t",
        )
        .unwrap();
        assert_eq!(ok.chat["s"].format, super::ChatFormat::Teams);
    }
}
