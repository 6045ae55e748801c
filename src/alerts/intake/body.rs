//! Raw request body → alerts, one function per intake format: exactly what the API runs on a
//! body once it has been read (JSON decoding with the path of the first bad field, then the
//! format's own normalisation). The handlers in `api` call these and only add HTTP around
//! them; the fuzz targets (`fuzz/`) call the same functions. Pure: bytes in, data out.

use jiff::Timestamp;
use serde::de::DeserializeOwned;

use crate::alerts::Alert;
use crate::alerts::intake::alertmanager::Webhook;
use crate::alerts::intake::generic::GenericEvent;
use crate::alerts::intake::pagerduty::PdEvent;
use crate::alerts::intake::promalert::WireAlert;
use crate::alerts::intake::{alertmanager, pagerduty, prometheus};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// Well-formed, but the alerts in it are invalid: every problem, with its field path.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Where and why a body is not the JSON expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub struct JsonError {
    /// The field path of the first problem (`[0].labels.a`), `.` for the whole body.
    pub path: String,
    /// 1-based line of the problem in the body, for senders debugging their payload.
    pub line: usize,
    /// 1-based column of the problem in that line.
    pub column: usize,
    /// serde_json's own description.
    pub message: String,
}

impl JsonError {
    fn text(&self) -> String {
        if self.path == "." || self.path == "?" {
            format!("invalid JSON: {}", self.message)
        } else {
            format!("invalid JSON at `{}`: {}", self.path, self.message)
        }
    }
}

/// Parses a whole body as `T` (trailing data is an error), naming the path and position of
/// the first problem.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| (e.path().to_string(), e.into_inner()))
        .and_then(|v| de.end().map(|()| v).map_err(|e| (".".to_string(), e)));
    value.map_err(|(path, inner)| JsonError {
        // A field named "" at the top level has an empty path; name it so the message
        // still says where.
        path: if path.is_empty() { "\"\"".into() } else { path },
        line: inner.line(),
        column: inner.column(),
        message: inner.to_string(),
    })
}

/// A body of the other shape (an object where an array belongs, or the reverse) is most
/// likely a sender pointed at the wrong route: say which route takes it, not serde's
/// "invalid type: map, expected a sequence".
fn shape(bytes: &[u8], array: bool, what: &str) -> Result<(), JsonError> {
    let Some(at) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    let found = match (bytes[at], array) {
        (b'{', true) => {
            "an object (an Alertmanager or Grafana webhook goes to \
                         /webhook/alertmanager, one event to /api/v1/events)"
        }
        (b'[', false) => "an array (Prometheus posts its alerts to /api/v2/alerts)",
        _ => return Ok(()),
    };
    let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
    let column = at
        - bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |n| n + 1)
        + 1;
    Err(JsonError {
        path: ".".into(),
        line,
        column,
        message: format!("this route takes {what}; the body is {found}"),
    })
}

/// `POST /api/v2/alerts` (Prometheus): a JSON array of alerts; `now` decides which have ended.
pub fn prometheus(bytes: &[u8], now: Timestamp) -> Result<Vec<Alert>, DecodeError> {
    shape(
        bytes,
        true,
        "a JSON array of alerts (Alertmanager's API v2)",
    )?;
    let body: Vec<WireAlert> = json(bytes)?;
    prometheus::alerts(body, now).map_err(DecodeError::Invalid)
}

/// `POST /webhook/alertmanager`: Alertmanager's webhook v4 or Grafana's.
pub fn webhook(bytes: &[u8], now: Timestamp) -> Result<Vec<Alert>, DecodeError> {
    shape(bytes, false, "an Alertmanager or Grafana webhook object")?;
    let body: Webhook = json(bytes)?;
    alertmanager::alerts(body, now).map_err(DecodeError::Invalid)
}

/// `POST /api/v1/events`: itsmd's generic event.
pub fn generic(bytes: &[u8]) -> Result<Alert, DecodeError> {
    shape(bytes, false, "one event object")?;
    let body: GenericEvent = json(bytes)?;
    body.into_alert().map_err(DecodeError::Invalid)
}

/// `POST /v2/enqueue` (PagerDuty Events v2): the validated event, before the routing key is
/// checked; problems in PagerDuty's own words, as its `errors` list.
pub fn pagerduty(bytes: &[u8]) -> Result<PdEvent, Vec<String>> {
    pagerduty::parse(&pd_json(bytes)?)
}

/// `POST /v2/change/enqueue`: a PagerDuty change event and its routing key.
pub fn pagerduty_change(
    bytes: &[u8],
) -> Result<(String, crate::alerts::intake::pd_change::ChangeEvent), Vec<String>> {
    crate::alerts::intake::pd_change::parse(&pd_json(bytes)?)
}

fn pd_json(bytes: &[u8]) -> Result<serde_json::Value, Vec<String>> {
    serde_json::from_slice(bytes).map_err(|e| vec![format!("Invalid JSON: {e}")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_name_the_path_and_position() {
        let e = json::<Vec<WireAlert>>(b"[{\"labels\": {\"a\": 1}}]").unwrap_err();
        assert_eq!(e.path, "[0].labels.a");
        assert_eq!((e.line, e.column), (1, 19));
        assert!(
            e.to_string()
                .starts_with("invalid JSON at `[0].labels.a`: invalid type: integer `1`"),
            "{e}"
        );
        let e = json::<GenericEvent>(b"{\"\": \"a\x0c\"}").unwrap_err();
        assert_eq!(
            e.path, "\"\"",
            "found by fuzzing: the empty field name is named"
        );
        assert!(
            e.to_string()
                .starts_with("invalid JSON at `\"\"`: unknown field ``")
        );
        let e = json::<Vec<WireAlert>>(b"[] x").unwrap_err();
        assert_eq!(e.path, ".");
        assert_eq!(
            e.to_string(),
            "invalid JSON: trailing characters at line 1 column 4"
        );
    }

    #[test]
    fn each_format_reports_bad_json_and_invalid_alerts_apart() {
        let now = Timestamp::UNIX_EPOCH;
        assert!(matches!(prometheus(b"{", now), Err(DecodeError::Json(_))));
        assert_eq!(
            prometheus(b"[{}]", now),
            Err(DecodeError::Invalid(vec![
                "`[0].labels` must have at least one label".into()
            ]))
        );
        assert!(matches!(webhook(b"7", now), Err(DecodeError::Json(_))));
        // The other shape names the route that takes it.
        let wrong = |r: Result<Vec<Alert>, DecodeError>| match r {
            Err(DecodeError::Json(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            wrong(prometheus(b" {\"alerts\": []}", now)),
            "invalid JSON: this route takes a JSON array of alerts (Alertmanager's API v2); the \
             body is an object (an Alertmanager or Grafana webhook goes to /webhook/alertmanager, \
             one event to /api/v1/events)"
        );
        assert!(
            wrong(webhook(b"\n[{}]", now))
                .ends_with("the body is an array (Prometheus posts its alerts to /api/v2/alerts)")
        );
        let Err(DecodeError::Json(e)) = generic(b"\n  [{}]") else {
            panic!("an array is not an event")
        };
        assert_eq!((e.line, e.column), (2, 3));
        assert!(
            e.message.starts_with("this route takes one event object"),
            "{e}"
        );
        assert!(matches!(
            generic(br#"{"source":"","status":"firing","severity":"x","summary":"y"}"#),
            Err(DecodeError::Invalid(_))
        ));
        // A misspelt field of the hand-written generic event is named, not dropped; the
        // other tools' formats keep ignoring fields they add over time.
        let Err(DecodeError::Json(e)) = generic(
            br#"{"source":"cron","status":"firing","severity":"x","summary":"y","labelz":{}}"#,
        ) else {
            panic!("an unknown field is refused")
        };
        assert_eq!(e.path, "labelz");
        assert!(
            e.message
                .starts_with("unknown field `labelz`, expected one of `source`, `key`"),
            "{e}"
        );
        assert!(prometheus(br#"[{"labels":{"a":"b"},"newField":1}]"#, now).is_ok());
        assert_eq!(
            pagerduty(b"nope").unwrap_err()[0],
            "Invalid JSON: expected ident at line 1 column 2"
        );
    }
}
