//! Webhook secrets (`whsec_` + base64 key) and the three places one may come from: the
//! config literal, a file, or an environment variable.
//!
//! Owns parsing and loading. It must never put a secret's value into a `Debug` output, an
//! error message or a log line: errors name the source (`secret_file /etc/…`), not the value,
//! and base64 errors are not passed on because they quote the offending character.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// The prefix of a Standard Webhooks secret.
pub const PREFIX: &str = "whsec_";

/// Key sizes the Standard Webhooks specification allows, in bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// An HMAC key; its value never leaves through `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The base64-decoded bytes after `whsec_`: the HMAC-SHA256 key.
    key: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_***)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`; `origin` names where the text came from, for errors.
    pub fn parse(text: &str, origin: &str) -> Result<Secret, SecretError> {
        let origin = origin.to_string();
        let Some(encoded) = text.trim().strip_prefix(PREFIX) else {
            return Err(SecretError::MissingPrefix { origin });
        };
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64 {
                origin: origin.clone(),
            })?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(SecretError::BadLength {
                origin,
                len: key.len(),
            });
        }
        Ok(Secret { key })
    }

    /// The HMAC key bytes.
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }
}

/// The config literal of a secret: a string whose `Debug` output is redacted, so printing a
/// parsed configuration cannot leak it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(
    /// The secret as written in the configuration.
    pub String,
);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"whsec_***\"")
    }
}

/// Where a secret comes from: `secret = "whsec_…"`, `secret_file = "/etc/itsmd/vendor.key"`
/// or `secret_env = "VENDOR_SECRET"`.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the configuration itself.
    Literal(SecretText),
    /// Read from this file (surrounding whitespace ignored).
    File(PathBuf),
    /// Read from this environment variable (surrounding whitespace ignored).
    Env(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())
    }
}

impl SecretSource {
    /// The source given by a config table's three optional keys; exactly one must be set.
    pub fn from_keys(
        secret: Option<SecretText>,
        secret_file: Option<PathBuf>,
        secret_env: Option<String>,
    ) -> Result<SecretSource, SecretError> {
        match (secret, secret_file, secret_env) {
            (Some(text), None, None) => Ok(SecretSource::Literal(text)),
            (None, Some(path), None) => Ok(SecretSource::File(path)),
            (None, None, Some(name)) => Ok(SecretSource::Env(name)),
            (s, f, e) => Err(SecretError::NotExactlyOne {
                given: [s.is_some(), f.is_some(), e.is_some()]
                    .iter()
                    .filter(|set| **set)
                    .count(),
            }),
        }
    }

    /// Names the source without its value, e.g. `secret_env VENDOR_SECRET`.
    pub fn origin(&self) -> String {
        match self {
            SecretSource::Literal(_) => "secret".to_string(),
            SecretSource::File(path) => format!("secret_file {}", path.display()),
            SecretSource::Env(name) => format!("secret_env {name}"),
        }
    }

    /// Loads the secret, reading the process environment for `secret_env`.
    pub fn load(&self) -> Result<Secret, SecretError> {
        self.load_with(|name| std::env::var_os(name))
    }

    /// Loads the secret with `env` standing in for the process environment.
    pub fn load_with(&self, env: impl Fn(&str) -> Option<OsString>) -> Result<Secret, SecretError> {
        let origin = self.origin();
        match self {
            SecretSource::Literal(text) => Secret::parse(&text.0, &origin),
            SecretSource::File(path) => Secret::parse(&read_file(path, &origin)?, &origin),
            SecretSource::Env(name) => {
                let value = env(name).ok_or_else(|| SecretError::EnvMissing {
                    origin: origin.clone(),
                })?;
                let value = value.into_string().map_err(|_| SecretError::NotUtf8 {
                    origin: origin.clone(),
                })?;
                Secret::parse(&value, &origin)
            }
        }
    }
}

fn read_file(path: &Path, origin: &str) -> Result<String, SecretError> {
    let bytes = std::fs::read(path).map_err(|e| SecretError::Unreadable {
        origin: origin.to_string(),
        // The OS error says why (not found, permission denied); it never holds file content.
        reason: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| SecretError::NotUtf8 {
        origin: origin.to_string(),
    })
}

/// Why a secret could not be had. Messages name the source, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("{origin}: a webhook secret is \"whsec_\" followed by the base64 key")]
    MissingPrefix { origin: String },
    #[error("{origin}: the part after \"whsec_\" is not valid base64")]
    NotBase64 { origin: String },
    #[error("{origin}: the key is {len} bytes; Standard Webhooks keys are 24 to 64 bytes")]
    BadLength { origin: String, len: usize },
    #[error("{origin}: cannot read the file: {reason}")]
    Unreadable { origin: String, reason: String },
    #[error("{origin}: the environment variable is not set")]
    EnvMissing { origin: String },
    #[error("{origin}: the secret is not valid UTF-8")]
    NotUtf8 { origin: String },
    #[error("give exactly one of secret, secret_file and secret_env ({given} given)")]
    NotExactlyOne { given: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks test vector's secret.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn a_secret_decodes_its_key_and_never_prints_it() {
        let s = Secret::parse(SECRET, "secret").unwrap();
        assert_eq!(s.key().len(), 24);
        assert_eq!(s.key()[..3], [0x0b, 0x61, 0x55]);
        let shown = format!("{s:?} {:?}", SecretText(SECRET.into()));
        assert_eq!(shown, "Secret(whsec_***) \"whsec_***\"");
        let source = SecretSource::Literal(SecretText(SECRET.into()));
        assert_eq!(format!("{source:?}"), "secret");
    }

    #[test]
    fn bad_secrets_are_named_by_source_not_value() {
        let cases = [
            (
                "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "secret: a webhook secret is \"whsec_\"",
            ),
            ("whsec_C2FV-BQIhrscChlQIMV+b5sSYspob7oD", "not valid base64"),
            ("whsec_c2hvcnQ=", "the key is 5 bytes"),
        ];
        for (text, needle) in cases {
            let err = Secret::parse(text, "secret").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(
                !err.contains("C2FV") && !err.contains("c2hv"),
                "leaks: {err}"
            );
        }
    }

    #[test]
    fn secrets_load_from_a_file_with_a_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vendor.key");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        let source = SecretSource::from_keys(None, Some(path.clone()), None).unwrap();
        assert_eq!(
            source.load().unwrap(),
            Secret::parse(SECRET, "test").unwrap()
        );

        let missing = SecretSource::File(dir.path().join("absent.key"));
        let err = missing.load().unwrap_err().to_string();
        assert!(err.starts_with("secret_file "), "{err}");
        assert!(err.contains("absent.key: cannot read the file"), "{err}");

        std::fs::write(&path, "whsec_!!!").unwrap();
        let err = source.load().unwrap_err().to_string();
        assert!(err.contains("vendor.key: the part after"), "{err}");
        assert!(!err.contains("!!!"), "{err}");
    }

    #[test]
    fn secrets_load_from_the_environment() {
        let env = |name: &str| (name == "VENDOR_SECRET").then(|| OsString::from(SECRET));
        let source = SecretSource::from_keys(None, None, Some("VENDOR_SECRET".into())).unwrap();
        assert_eq!(
            source.load_with(env).unwrap(),
            Secret::parse(SECRET, "test").unwrap()
        );
        let other = SecretSource::Env("OTHER".into());
        assert_eq!(
            other.load_with(env).unwrap_err().to_string(),
            "secret_env OTHER: the environment variable is not set"
        );
    }

    #[test]
    fn exactly_one_source_is_required() {
        let text = || Some(SecretText(SECRET.into()));
        assert!(matches!(
            SecretSource::from_keys(text(), None, None),
            Ok(SecretSource::Literal(_))
        ));
        assert_eq!(
            SecretSource::from_keys(None, None, None),
            Err(SecretError::NotExactlyOne { given: 0 })
        );
        assert_eq!(
            SecretSource::from_keys(text(), Some("/k".into()), Some("E".into())),
            Err(SecretError::NotExactlyOne { given: 3 })
        );
    }
}
