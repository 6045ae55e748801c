//! The body of a chat message in each format, from a notification's subject and summary
//! line and the ticket's facts. Pure: no network, no clock.
//!
//! - Slack: `{"text": fallback, "blocks": [section (mrkdwn), context]}`;
//! - Teams: `{"type": "message", "attachments": [{"contentType":
//!   "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": AdaptiveCard}]}`;
//! - Matrix: an `m.room.message` of `msgtype` `m.text` with `body` and, as
//!   `org.matrix.custom.html`, a `formatted_body`.

use serde_json::{Value, json};

use crate::mail::chat::ChatFormat;
use crate::tickets::Ticket;

/// What a chat message says.
pub struct Message<'a> {
    pub subject: &'a str,
    pub summary: &'a str,
    pub ticket: &'a Ticket,
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Slack's mrkdwn: `&`, `<` and `>` are its control characters.
fn escape_mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn facts(t: &Ticket) -> Vec<(&'static str, String)> {
    vec![
        ("Ticket", t.id.to_string()),
        ("State", t.state.as_str().to_string()),
        ("Priority", format!("P{}", t.priority)),
        ("Group", t.group.clone().unwrap_or_else(|| "(none)".into())),
        (
            "Assignee",
            t.assignee.clone().unwrap_or_else(|| "(nobody)".into()),
        ),
    ]
}

/// The JSON body of the message in `format`.
pub fn body(format: ChatFormat, m: &Message<'_>) -> Value {
    let facts = facts(m.ticket);
    match format {
        ChatFormat::Slack => {
            let line = facts
                .iter()
                .map(|(k, v)| format!("{k}: {}", escape_mrkdwn(v)))
                .collect::<Vec<_>>()
                .join(" · ");
            json!({
                "text": format!("{}\n{}", m.subject, m.summary),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text":
                        format!("*{}*\n{}", escape_mrkdwn(m.subject), escape_mrkdwn(m.summary))}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": line}]},
                ],
            })
        }
        ChatFormat::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": m.subject, "weight": "Bolder", "size": "Medium", "wrap": true},
                        {"type": "TextBlock", "text": m.summary, "wrap": true},
                        {"type": "FactSet", "facts": facts.iter()
                            .map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()},
                    ],
                },
            }],
        }),
        ChatFormat::Matrix => {
            let rows: String = facts
                .iter()
                .map(|(k, v)| format!("<li>{k}: {}</li>", escape_html(v)))
                .collect();
            json!({
                "msgtype": "m.text",
                "body": format!("{}\n{}", m.subject, m.summary),
                "format": "org.matrix.custom.html",
                "formatted_body": format!(
                    "<p><strong>{}</strong></p><p>{}</p><ul>{rows}</ul>",
                    escape_html(m.subject),
                    escape_html(m.summary)
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        serde_json::from_value(json!({
            "id": "INC-000007", "kind": "incident", "state": "new",
            "title": "Core <switch>", "description": "", "impact": "high",
            "urgency": "high", "priority": 1, "group": "network",
            "created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T10:00:00Z",
            "history_len": 1
        }))
        .unwrap()
    }

    #[test]
    fn each_format_has_its_documented_shape_and_escapes_markup() {
        let t = ticket();
        let m = Message {
            subject: "[INC-000007] P1: Core <switch>",
            summary: "INC-000007 is priority 1 & down.",
            ticket: &t,
        };
        let s = body(ChatFormat::Slack, &m);
        assert!(s["text"].as_str().unwrap().contains("Core <switch>"));
        assert_eq!(s["blocks"][0]["type"], "section");
        assert_eq!(s["blocks"][0]["text"]["type"], "mrkdwn");
        let mrkdwn = s["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            mrkdwn.contains("Core &lt;switch&gt;") && mrkdwn.contains("&amp; down"),
            "{mrkdwn}"
        );
        let teams = body(ChatFormat::Teams, &m);
        assert_eq!(teams["type"], "message");
        let a = &teams["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["body"][2]["facts"][2]["value"], "P1");
        let mx = body(ChatFormat::Matrix, &m);
        assert_eq!(mx["msgtype"], "m.text");
        assert_eq!(mx["format"], "org.matrix.custom.html");
        let html = mx["formatted_body"].as_str().unwrap();
        assert!(
            html.contains("Core &lt;switch&gt;") && !html.contains("<switch>"),
            "{html}"
        );
    }
}
