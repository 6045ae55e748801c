//! The request the dispatcher sends for a chat row: a POST of the stored body to a Slack or
//! Teams webhook URL, or a PUT to the Matrix room's send endpoint with the row's `msg_id` as
//! the transaction id (a retry is then the same Matrix event) and the channel's access token
//! as a bearer token. The token is read once at start and never logged or stored in a row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use crate::mail::chat::{ChatChannel, ChatFormat, PREFIX};
use crate::vendors::{OutboxRow, RetrySchedule};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("chat.{channel}.token_file {path}: {source}")]
    Token {
        channel: String,
        path: String,
        source: std::io::Error,
    },
    #[error("chat.{channel}.token_file {path} is empty")]
    EmptyToken { channel: String, path: String },
    #[error("chat.{channel}.url: {reason}")]
    Url { channel: String, reason: String },
}

/// One channel, ready to send.
pub struct ChatSender {
    pub name: String,
    format: ChatFormat,
    url: Url,
    room: String,
    token: Option<String>,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub retry: RetrySchedule,
}

/// Every configured channel by its outbox destination (`@chat/NAME`).
#[derive(Clone, Default)]
pub struct ChatSenders(BTreeMap<String, Arc<ChatSender>>);

impl ChatSender {
    /// Where this channel posts: what the egress policy checks before each send.
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl ChatSenders {
    /// Reads each Matrix channel's token file.
    pub fn build(chat: &BTreeMap<String, ChatChannel>) -> Result<ChatSenders, ChatError> {
        let mut out = BTreeMap::new();
        for (name, c) in chat {
            let url = Url::parse(&c.url).map_err(|e| ChatError::Url {
                channel: name.clone(),
                reason: e.to_string(),
            })?;
            let token = if c.format == ChatFormat::Matrix {
                let path = c.token_file.display().to_string();
                let text =
                    std::fs::read_to_string(&c.token_file).map_err(|source| ChatError::Token {
                        channel: name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                let t = text.trim().to_string();
                if t.is_empty() {
                    return Err(ChatError::EmptyToken {
                        channel: name.clone(),
                        path,
                    });
                }
                Some(t)
            } else {
                None
            };
            out.insert(
                format!("{PREFIX}{name}"),
                Arc::new(ChatSender {
                    name: name.clone(),
                    format: c.format,
                    url,
                    room: c.room.clone(),
                    token,
                    timeout: Duration::try_from(c.timeout.0).unwrap_or(Duration::from_secs(10)),
                    max_in_flight: c.max_in_flight,
                    retry: c.retry.clone(),
                }),
            );
        }
        Ok(ChatSenders(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The channel a row's destination names.
    pub fn get(&self, destination: &str) -> Option<Arc<ChatSender>> {
        self.0.get(destination).cloned()
    }
}

impl ChatSender {
    /// Where a row goes: the webhook URL, or the Matrix send endpoint for its `msg_id`.
    pub fn target(&self, row: &OutboxRow) -> Url {
        let mut url = self.url.clone();
        if self.format == ChatFormat::Matrix
            && let Ok(mut path) = url.path_segments_mut()
        {
            path.pop_if_empty().extend([
                "_matrix",
                "client",
                "v3",
                "rooms",
                &self.room,
                "send",
                "m.room.message",
                &row.msg_id,
            ]);
        }
        url
    }

    /// The request for a row, on `http` (the dispatcher's client: no redirects, no proxy).
    pub fn request(&self, http: &reqwest::Client, row: &OutboxRow) -> reqwest::RequestBuilder {
        let url = self.target(row);
        let mut r = match self.format {
            ChatFormat::Matrix => http.put(url),
            ChatFormat::Slack | ChatFormat::Teams => http.post(url),
        };
        r = r
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("itsmd/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = &self.token {
            r = r.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        r.body(row.body.clone())
    }
}
