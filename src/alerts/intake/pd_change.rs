//! PagerDuty change events (`POST /v2/change/enqueue`): a deploy, a config push, a flag
//! flipped. PagerDuty's contract: `routing_key`, `payload` with `summary` (required, at most
//! 1024 characters), `timestamp` (ISO 8601), `source` and `custom_details` (an object), and
//! `links` (each an object with `href` and optional `text`). Validation reports every
//! problem in PagerDuty's words, as Events v2 does; unknown fields are tolerated. Pure.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alerts::intake::pagerduty::string;

/// A link a change event carries (a pull request, a build, a runbook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeLink {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One validated change event, as the engine records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Who sent it: the routing key's configured source name (filled in by the receiver).
    pub sender: String,
    /// What changed.
    pub summary: String,
    /// Where: the service or host it changed (`payload.source`); incidents of that service
    /// list it among their recent changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// When it changed (`payload.timestamp`); the arrival time when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_details: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<ChangeLink>,
}

const MAX_SUMMARY: usize = 1024;

/// Validates one change event body: its routing key and the event (sender left empty).
pub fn parse(body: &Value) -> Result<(String, ChangeEvent), Vec<String>> {
    let Some(obj) = body.as_object() else {
        return Err(vec!["Event must be a JSON object".into()]);
    };
    let mut p = Vec::new();
    let routing_key = string(obj, "routing_key", "", &mut p).unwrap_or_default();
    if routing_key.trim().is_empty() && !p.iter().any(|e| e.contains("routing_key")) {
        p.push("'routing_key' is missing or blank".into());
    }
    let mut event = ChangeEvent {
        sender: String::new(),
        summary: String::new(),
        service: None,
        timestamp: None,
        custom_details: None,
        links: Vec::new(),
    };
    match obj.get("payload").and_then(Value::as_object) {
        None => p.push("'payload' is missing or not an object".into()),
        Some(payload) => {
            let summary = string(payload, "summary", "payload.", &mut p).unwrap_or_default();
            if summary.trim().is_empty() {
                p.push("'payload.summary' is missing or blank".into());
            } else if summary.chars().count() > MAX_SUMMARY {
                p.push(format!(
                    "'payload.summary' is longer than {MAX_SUMMARY} characters"
                ));
            }
            event.summary = summary;
            event.service = string(payload, "source", "payload.", &mut p).filter(|s| !s.is_empty());
            if let Some(ts) = string(payload, "timestamp", "payload.", &mut p) {
                match ts.parse::<Timestamp>() {
                    Ok(t) => event.timestamp = Some(t),
                    Err(e) => p.push(format!(
                        "'payload.timestamp' is not an ISO 8601 timestamp: {e}"
                    )),
                }
            }
            match payload.get("custom_details") {
                None | Some(Value::Null) => {}
                Some(v @ Value::Object(_)) => event.custom_details = Some(v.clone()),
                Some(_) => p.push("'payload.custom_details' must be an object".into()),
            }
        }
    }
    match obj.get("links") {
        None | Some(Value::Null) => {}
        Some(Value::Array(links)) => {
            for (i, link) in links.iter().enumerate() {
                let path = format!("links[{i}].");
                let Some(l) = link.as_object() else {
                    p.push(format!("'links[{i}]' must be an object"));
                    continue;
                };
                let href = string(l, "href", &path, &mut p).unwrap_or_default();
                if href.trim().is_empty() {
                    p.push(format!("'{path}href' is missing or blank"));
                }
                let text = string(l, "text", &path, &mut p).filter(|t| !t.is_empty());
                event.links.push(ChangeLink { href, text });
            }
        }
        Some(_) => p.push("'links' must be an array".into()),
    }
    if p.is_empty() {
        Ok((routing_key, event))
    } else {
        Err(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_change_event_is_read() {
        let (key, e) = parse(&json!({
            "routing_key": "k",
            "payload": {
                "summary": "Deployed checkout v2.3.1",
                "timestamp": "2026-03-02T10:00:00Z",
                "source": "checkout",
                "custom_details": {"build": 4711}
            },
            "links": [{"href": "https://ci.example.net/4711", "text": "Build 4711"}],
            "something_new": true
        }))
        .unwrap();
        assert_eq!(key, "k");
        assert_eq!(e.summary, "Deployed checkout v2.3.1");
        assert_eq!(e.service.as_deref(), Some("checkout"));
        assert_eq!(e.timestamp.unwrap().to_string(), "2026-03-02T10:00:00Z");
        assert_eq!(e.custom_details, Some(json!({"build": 4711})));
        assert_eq!(e.links[0].text.as_deref(), Some("Build 4711"));
    }

    #[test]
    fn every_problem_is_listed() {
        assert_eq!(
            parse(&json!({
                "payload": {"summary": "", "timestamp": "soon", "custom_details": 3},
                "links": [{"text": "x"}, 7]
            }))
            .unwrap_err(),
            vec![
                "'routing_key' is missing or blank",
                "'payload.summary' is missing or blank",
                "'payload.timestamp' is not an ISO 8601 timestamp: \
                 failed to parse four digit integer as year: invalid digit, expected 0-9 but got s",
                "'payload.custom_details' must be an object",
                "'links[0].href' is missing or blank",
                "'links[1]' must be an object",
            ]
        );
        assert_eq!(
            parse(&json!({"routing_key": "k"})).unwrap_err(),
            vec!["'payload' is missing or not an object"]
        );
    }
}
