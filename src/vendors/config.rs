//! `[vendors.NAME]`: partner vendors that are sent signed webhooks about their tickets and
//! may call back. Owns the shape of a vendor's configuration and its semantic checks; it must
//! not read secrets (that happens once at startup, in `vendors::registry`) nor print them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;
use crate::tickets::{HoldReason, Resolution, State};
use crate::vendors::outbox::WEBHOOK_TYPES;
use crate::vendors::{RetrySchedule, SecretSource, SecretText};

/// One partner vendor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorConfig {
    /// Where webhooks are POSTed (http or https). Redirects are not followed.
    pub url: String,
    /// The signing secret, `whsec_<base64>`, written here…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretText>,
    /// …or read from this file…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// …or from this environment variable (exactly one of the three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// While a secret rotates: the old one, also used to sign (two signatures per message)
    /// and accepted on callbacks. At most one of the three `previous_secret*` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<SecretText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_env: Option<String>,
    /// The webhook types this vendor receives (`ticket.assigned`, …); all by default.
    #[serde(default = "all_types")]
    pub events: Vec<String>,
    /// Longest one delivery attempt may take before it counts as failed and is retried.
    #[serde(default = "default_timeout")]
    pub timeout: Friendly,
    /// Deliveries to this vendor at once (different tickets; one ticket's go in order).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// When failed deliveries are tried again and when they are given up.
    #[serde(default)]
    pub retry: RetrySchedule,
    /// The underpinning contract's target for the vendor's part of a ticket (SLA clocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underpinning_target: Option<Friendly>,
    /// The vendor's status words in callbacks → the ticket state each moves the ticket to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_map: BTreeMap<String, StatusTarget>,
    /// An HTTP(S) proxy for this vendor's webhooks. None by default, and then HTTP_PROXY,
    /// HTTPS_PROXY and ALL_PROXY are not used either: signed ticket data goes straight to
    /// the vendor unless a proxy is configured here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
}

fn all_types() -> Vec<String> {
    WEBHOOK_TYPES.iter().map(|t| t.to_string()).collect()
}

fn default_timeout() -> Friendly {
    Friendly::from_secs(10)
}

fn default_max_in_flight() -> usize {
    4
}

/// Where a vendor's status moves the ticket: `"in_progress"`, or a table when the target
/// state needs more, e.g. `{ to = "resolved", resolution = "fixed" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TargetForm", into = "TargetForm")]
pub struct StatusTarget {
    pub to: State,
    /// Required when resolving.
    pub resolution: Option<Resolution>,
    /// When going on hold; `awaiting_vendor` if not given.
    pub hold_reason: Option<HoldReason>,
}

/// The two ways to write a [`StatusTarget`].
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TargetForm {
    State(State),
    Table {
        to: State,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<Resolution>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_reason: Option<HoldReason>,
    },
}

impl From<TargetForm> for StatusTarget {
    fn from(f: TargetForm) -> StatusTarget {
        match f {
            TargetForm::State(to) => StatusTarget {
                to,
                resolution: None,
                hold_reason: None,
            },
            TargetForm::Table {
                to,
                resolution,
                hold_reason,
            } => StatusTarget {
                to,
                resolution,
                hold_reason,
            },
        }
    }
}

impl From<StatusTarget> for TargetForm {
    fn from(t: StatusTarget) -> TargetForm {
        TargetForm::Table {
            to: t.to,
            resolution: t.resolution,
            hold_reason: t.hold_reason,
        }
    }
}

impl VendorConfig {
    /// Where the signing secret comes from.
    pub fn secret_source(&self) -> Result<SecretSource, crate::vendors::SecretError> {
        SecretSource::from_keys(
            self.secret.clone(),
            self.secret_file.clone(),
            self.secret_env.clone(),
        )
    }

    /// Where the previous secret comes from, if one is rotating out.
    pub fn previous_source(&self) -> Option<Result<SecretSource, crate::vendors::SecretError>> {
        let (s, f, e) = (
            self.previous_secret.clone(),
            self.previous_secret_file.clone(),
            self.previous_secret_env.clone(),
        );
        if s.is_none() && f.is_none() && e.is_none() {
            return None;
        }
        Some(SecretSource::from_keys(s, f, e))
    }

    /// Whether this vendor receives webhooks of type `kind`.
    pub fn receives(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == kind)
    }
}

/// Every problem with the vendors' settings (not their secrets' values: those are read at
/// startup).
pub fn problems(vendors: &BTreeMap<String, VendorConfig>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, v) in vendors {
        let at = format!("vendors.{name}");
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            out.push(format!(
                "{at}: a vendor name may only hold letters, digits, `-` and `_` (it is a URL path segment)"
            ));
        }
        match reqwest::Url::parse(&v.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => out.push(format!("{at}.url must be an http or https URL with a host")),
            Err(e) => out.push(format!("{at}.url {:?} is not a URL: {e}", v.url)),
        }
        if let Some(proxy) = &v.proxy {
            match reqwest::Url::parse(proxy) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => out.push(format!(
                    "{at}.proxy must be an http or https URL with a host"
                )),
            }
        }
        // Literal secrets are checked here; files and variables are read at startup.
        match v.secret_source() {
            Ok(SecretSource::Literal(text)) => {
                if let Err(e) = crate::vendors::Secret::parse(&text.0, "secret") {
                    out.push(format!("{at}.{e}"));
                }
            }
            Ok(_) => {}
            Err(e) => out.push(format!("{at}: {e}")),
        }
        match v.previous_source() {
            Some(Ok(SecretSource::Literal(text))) => {
                if let Err(e) = crate::vendors::Secret::parse(&text.0, "previous_secret") {
                    out.push(format!("{at}.{e}"));
                }
            }
            Some(Err(e)) => out.push(format!("{at} (previous_secret*): {e}")),
            _ => {}
        }
        for e in &v.events {
            if !WEBHOOK_TYPES.contains(&e.as_str()) {
                out.push(format!(
                    "{at}.events: unknown webhook type `{e}`; known: {}",
                    WEBHOOK_TYPES.join(", ")
                ));
            }
        }
        if v.timeout.0.is_zero() {
            out.push(format!("{at}.timeout must be greater than 0"));
        }
        if v.max_in_flight == 0 {
            out.push(format!("{at}.max_in_flight must be at least 1"));
        }
        out.extend(v.retry.problems(&format!("{at}.retry")));
        for (word, target) in &v.status_map {
            if word.trim().is_empty() {
                out.push(format!("{at}.status_map: a status word is empty"));
            }
            if target.to == State::New {
                out.push(format!(
                    "{at}.status_map.{word}: a vendor cannot move a ticket back to new"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
        crate::config::parse(text, "t")
    }

    #[test]
    fn a_vendor_reads_with_defaults_and_both_status_forms() {
        let c = parse(
            r#"
            [vendors.acme]
            url = "https://hooks.acme.example/itsmd"
            secret_env = "ACME_SECRET"
            underpinning_target = "4h"
            [vendors.acme.status_map]
            acknowledged = "in_progress"
            resolved = { to = "resolved", resolution = "fixed" }
            "#,
        )
        .unwrap();
        let v = &c.vendors["acme"];
        assert_eq!(v.events.len(), WEBHOOK_TYPES.len());
        assert_eq!(v.timeout, Friendly::from_secs(10));
        assert_eq!(v.underpinning_target, Some(Friendly::from_secs(4 * 3600)));
        assert_eq!(v.status_map["acknowledged"].to, State::InProgress);
        assert_eq!(v.status_map["resolved"].resolution, Some(Resolution::Fixed));
        assert!(format!("{c:?}").contains("ACME_SECRET"));
    }

    #[test]
    fn the_example_in_the_shipped_config_is_valid() {
        let (_, rest) = crate::config::DEFAULT_TOML
            .split_once("# A vendor, for example:")
            .expect("the shipped config has a vendor example");
        let (example, _) = rest.split_once("\n\n").expect("the example ends");
        let text: String = example
            .lines()
            .map(|l| l.strip_prefix('#').unwrap_or(l).trim())
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        let v = &config.vendors["storage-vendor"];
        assert_eq!(v.events.len(), 4);
        assert_eq!(v.status_map["waiting_for_parts"].to, State::OnHold);
    }

    #[test]
    fn every_vendor_problem_is_reported_and_no_secret_is_printed() {
        let err = parse(
            r#"
            [vendors."bad name"]
            url = "ftp://x"
            secret = "whsec_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw=="
            secret_env = "X"
            events = ["ticket.exploded"]
            max_in_flight = 0
            timeout = "0s"
            [vendors."bad name".retry]
            max_attempts = 0
            "#,
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "URL path segment",
            "http or https",
            "exactly one",
            "ticket.exploded",
            "max_in_flight",
            "timeout",
            "retry.max_attempts",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(!all.contains("c2VjcmV0"), "{all}");
    }
}
