//! Standard Webhooks signatures: `webhook-id`, `webhook-timestamp` (unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
//!
//! Owns signing (with every active secret while one rotates) and verification (constant-time
//! comparison, timestamp tolerance around a given `now`). It must not read the wall clock,
//! send requests, or include secrets or computed signatures in errors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;

use crate::vendors::secret::Secret;

/// Header carrying the message id (the same on every retry, for receivers' idempotency).
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the send time in unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// How far a received timestamp may be from `now`, either way (replay protection).
pub const DEFAULT_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

type HmacSha256 = Hmac<Sha256>;

/// The three headers of a signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the message id.
    pub id: String,
    /// `webhook-timestamp`: unix seconds when signed.
    pub timestamp: i64,
    /// `webhook-signature`: one `v1,…` per active secret, space-separated.
    pub signature: String,
}

impl SignedHeaders {
    /// The headers as (name, value) pairs, ready to put on a request.
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_ID, self.id.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }
}

/// Why a message could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("no secret to sign with")]
    NoSecret,
    #[error("message id {0:?} must be 1..=256 visible ASCII characters without spaces or commas")]
    BadId(String),
}

/// Signs `body` as message `id` at `timestamp` with every secret in `secrets` (several while
/// a secret rotates, so receivers holding either the old or the new one accept it).
pub fn sign(
    secrets: &[Secret],
    id: &str,
    timestamp: Timestamp,
    body: &[u8],
) -> Result<SignedHeaders, SignError> {
    if secrets.is_empty() {
        return Err(SignError::NoSecret);
    }
    let id_ok =
        !id.is_empty() && id.len() <= 256 && id.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if !id_ok {
        return Err(SignError::BadId(id.chars().take(64).collect()));
    }
    let seconds = timestamp.as_second();
    let signature = secrets
        .iter()
        .map(|s| {
            format!(
                "v1,{}",
                STANDARD.encode(mac(s, id, seconds, body).finalize().into_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    Ok(SignedHeaders {
        id: id.to_string(),
        timestamp: seconds,
        signature,
    })
}

/// The MAC over `{id}.{timestamp}.{body}`, not yet finalised.
fn mac(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.key()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature headers of a received request, as found (absent headers are `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceivedHeaders<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
}

impl<'a> ReceivedHeaders<'a> {
    /// Picks the three headers out of an HTTP header map.
    pub fn from_header_map(headers: &'a axum::http::HeaderMap) -> Result<Self, VerifyError> {
        let get = |name: &'static str| -> Result<Option<&'a str>, VerifyError> {
            headers
                .get(name)
                .map(|v| v.to_str().map_err(|_| VerifyError::NotAscii(name)))
                .transpose()
        };
        Ok(ReceivedHeaders {
            id: get(HEADER_ID)?,
            timestamp: get(HEADER_TIMESTAMP)?,
            signature: get(HEADER_SIGNATURE)?,
        })
    }
}

/// Why a received message is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not visible ASCII")]
    NotAscii(&'static str),
    #[error("header webhook-timestamp {0:?} is not unix seconds")]
    MalformedTimestamp(String),
    #[error("header webhook-signature has no well-formed \"v1,<base64>\" signature")]
    MalformedSignature,
    #[error(
        "header webhook-timestamp {timestamp} is {off_by_secs} s away from now ({now}); \
         at most {tolerance_secs} s allowed"
    )]
    Stale {
        timestamp: i64,
        now: i64,
        off_by_secs: i64,
        tolerance_secs: i64,
    },
    #[error("no secret configured to verify with")]
    NoSecret,
    #[error("no signature matches any configured secret")]
    NoMatch,
}

/// Checks a received message: headers present and well formed, timestamp within `tolerance`
/// of `now`, and some `v1` signature made by some secret in `secrets` (compared in constant
/// time). Signatures of other versions are ignored, as the specification asks.
pub fn verify(
    secrets: &[Secret],
    headers: &ReceivedHeaders<'_>,
    body: &[u8],
    now: Timestamp,
    tolerance: SignedDuration,
) -> Result<(), VerifyError> {
    let id = headers.id.ok_or(VerifyError::MissingHeader(HEADER_ID))?;
    let ts_text = headers
        .timestamp
        .ok_or(VerifyError::MissingHeader(HEADER_TIMESTAMP))?;
    let sig_text = headers
        .signature
        .ok_or(VerifyError::MissingHeader(HEADER_SIGNATURE))?;
    let malformed_ts = || VerifyError::MalformedTimestamp(ts_text.chars().take(32).collect());
    if ts_text.is_empty() || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed_ts());
    }
    let timestamp: i64 = ts_text.parse().map_err(|_| malformed_ts())?;
    let off_by = timestamp.saturating_sub(now.as_second()).saturating_abs();
    if off_by > tolerance.as_secs() {
        return Err(VerifyError::Stale {
            timestamp,
            now: now.as_second(),
            off_by_secs: off_by,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let signatures: Vec<Vec<u8>> = sig_text
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .collect();
    if signatures.is_empty() {
        return Err(VerifyError::MalformedSignature);
    }
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    // Every pair is checked, so timing does not tell which secret or signature matched.
    let mut matched = false;
    for secret in secrets {
        let expected = mac(secret, id, timestamp, body);
        for sig in &signatures {
            matched |= expected.clone().verify_slice(sig).is_ok();
        }
    }
    if matched {
        return Ok(());
    }
    Err(VerifyError::NoMatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference test vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn secret() -> Secret {
        Secret::parse(SECRET, "test").unwrap()
    }

    /// A second, unrelated secret (24 bytes).
    fn other() -> Secret {
        Secret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX", "test").unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn received(signature: &str) -> ReceivedHeaders<'_> {
        ReceivedHeaders {
            id: Some(ID),
            timestamp: Some("1649367553"),
            signature: Some(signature),
        }
    }

    #[test]
    fn signing_matches_the_reference_vector() {
        let headers = sign(&[secret()], ID, at(TIMESTAMP), BODY).unwrap();
        assert_eq!(headers.signature, SIGNATURE);
        assert_eq!(
            headers.pairs(),
            [
                ("webhook-id", ID.to_string()),
                ("webhook-timestamp", "1649367553".to_string()),
                ("webhook-signature", SIGNATURE.to_string()),
            ]
        );
    }

    #[test]
    fn while_rotating_every_secret_signs_and_either_verifies() {
        let headers = sign(&[other(), secret()], ID, at(TIMESTAMP), BODY).unwrap();
        let parts: Vec<&str> = headers.signature.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], SIGNATURE);
        assert_ne!(parts[0], SIGNATURE);
        let got = received(&headers.signature);
        for held in [vec![secret()], vec![other()], vec![other(), secret()]] {
            assert_eq!(
                verify(&held, &got, BODY, at(TIMESTAMP), DEFAULT_TOLERANCE),
                Ok(())
            );
        }
    }

    #[test]
    fn verification_accepts_the_reference_vector_within_tolerance() {
        let got = received(SIGNATURE);
        for now in [TIMESTAMP, TIMESTAMP - 300, TIMESTAMP + 300] {
            assert_eq!(
                verify(&[secret()], &got, BODY, at(now), DEFAULT_TOLERANCE),
                Ok(())
            );
        }
        // Unknown versions are skipped, not fatal.
        let mixed = format!("v1a,c29tZXRoaW5n {SIGNATURE}");
        assert_eq!(
            verify(
                &[secret()],
                &received(&mixed),
                BODY,
                at(TIMESTAMP),
                DEFAULT_TOLERANCE
            ),
            Ok(())
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let got = received(SIGNATURE);
        for now in [TIMESTAMP + 301, TIMESTAMP - 301] {
            let err = verify(&[secret()], &got, BODY, at(now), DEFAULT_TOLERANCE).unwrap_err();
            assert!(
                matches!(
                    err,
                    VerifyError::Stale {
                        off_by_secs: 301,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("301 s away"), "{err}");
        }
    }

    #[test]
    fn tampering_or_the_wrong_secret_is_no_match() {
        let got = received(SIGNATURE);
        let now = at(TIMESTAMP);
        let tampered = br#"{"email":"evil@example.com","username":"test_user"}"#;
        assert_eq!(
            verify(&[secret()], &got, tampered, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&[other()], &got, BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        let other_id = ReceivedHeaders {
            id: Some("msg_other"),
            ..got
        };
        assert_eq!(
            verify(&[secret()], &other_id, BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&[], &got, BODY, now, DEFAULT_TOLERANCE),
            Err(VerifyError::NoSecret)
        );
    }

    #[test]
    fn malformed_headers_get_clear_errors() {
        let now = at(TIMESTAMP);
        let check = |h: ReceivedHeaders<'_>| {
            verify(&[secret()], &h, BODY, now, DEFAULT_TOLERANCE).unwrap_err()
        };
        let full = received(SIGNATURE);
        assert_eq!(
            check(ReceivedHeaders { id: None, ..full }),
            VerifyError::MissingHeader("webhook-id")
        );
        assert_eq!(
            check(ReceivedHeaders {
                timestamp: None,
                ..full
            }),
            VerifyError::MissingHeader("webhook-timestamp")
        );
        assert_eq!(
            check(ReceivedHeaders {
                signature: None,
                ..full
            }),
            VerifyError::MissingHeader("webhook-signature")
        );
        for ts in [
            "",
            "-1649367553",
            "1649367553.5",
            "soon",
            "99999999999999999999",
        ] {
            assert!(
                matches!(
                    check(ReceivedHeaders {
                        timestamp: Some(ts),
                        ..full
                    }),
                    VerifyError::MalformedTimestamp(_)
                ),
                "{ts}"
            );
        }
        for sig in [
            "",
            "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1,not base64!",
            "v2,abcd",
        ] {
            assert_eq!(
                check(received(sig)),
                VerifyError::MalformedSignature,
                "{sig:?}"
            );
        }
    }

    #[test]
    fn headers_are_read_from_an_http_header_map() {
        let headers = sign(&[secret()], ID, at(TIMESTAMP), BODY).unwrap();
        let mut map = axum::http::HeaderMap::new();
        for (name, value) in headers.pairs() {
            map.insert(name, value.parse().unwrap());
        }
        let got = ReceivedHeaders::from_header_map(&map).unwrap();
        assert_eq!(got, received(SIGNATURE));
        assert_eq!(
            verify(&[secret()], &got, BODY, at(TIMESTAMP), DEFAULT_TOLERANCE),
            Ok(())
        );

        map.insert(
            HEADER_ID,
            axum::http::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(
            ReceivedHeaders::from_header_map(&map),
            Err(VerifyError::NotAscii("webhook-id"))
        );
    }

    #[test]
    fn bad_ids_and_missing_secrets_cannot_be_signed() {
        assert_eq!(sign(&[], ID, at(TIMESTAMP), BODY), Err(SignError::NoSecret));
        for id in ["", "msg 1", "msg,1", "msg\n1"] {
            assert!(
                matches!(
                    sign(&[secret()], id, at(TIMESTAMP), BODY),
                    Err(SignError::BadId(_))
                ),
                "{id:?}"
            );
        }
    }
}
