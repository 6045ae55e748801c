//! The `[alerts]` and `[pagerduty]` sections: how alerts correlate into incidents over time,
//! and which PagerDuty routing keys are accepted.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// How alerts correlate into incidents over time. Durations are jiff's friendly format
/// ("90s", "30m", "1h", "2h 30m"); ISO 8601 ("PT1H") is accepted too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Resolve an incident by itself once every alert correlated into it has cleared.
    pub auto_resolve: bool,
    /// A re-fire within this time after its incident resolved reopens it; later, a new
    /// incident is opened and linked to the old one.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub reopen_window: SignedDuration,
    /// This many state changes (firing ↔ resolved) within `flap_window` flag the incident
    /// as flapping.
    pub flap_changes: usize,
    /// The window the state changes are counted in.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub flap_window: SignedDuration,
    /// The flag clears once the alerts kept their state for this long.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub flap_quiet: SignedDuration,
    /// A firing alert from Prometheus' API (`/api/v2/alerts`) that gives no `endsAt` of its
    /// own resolves this long after it was last sent, as Alertmanager's `resolve_timeout`.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub resolve_timeout: SignedDuration,
    /// An incident shows the changes (PagerDuty change events) recorded for its service
    /// within this time before it opened.
    #[serde(serialize_with = "jiff::fmt::serde::duration::friendly::compact::required")]
    pub changes_window: SignedDuration,
    /// `[alerts.sources.NAME]`: what a resolve and a re-fire do for alerts from one source
    /// (a generic event's `source` value) or one wire format (`prometheus`, `alertmanager`,
    /// `grafana`, `pagerduty`, `generic`). The source's own entry wins over its format's.
    pub sources: BTreeMap<String, SourcePolicy>,
}

/// One source's policy; an absent key keeps the `[alerts]` default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcePolicy {
    /// What a resolve that clears the incident's last firing alert does; default: `resolve`
    /// with `alerts.auto_resolve` on, `nothing` with it off.
    pub resolve: Option<OnResolve>,
    /// Whether a re-fire reopens the resolved incident; default `window`.
    pub reopen: Option<Reopen>,
}

/// What a resolve does once every alert of the incident cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnResolve {
    /// Resolve the incident (resolution `alert_cleared`).
    Resolve,
    /// Leave it open and say so in its history.
    Comment,
    /// Leave it open; the alert's status is recorded as usual.
    Nothing,
}

impl OnResolve {
    pub fn as_str(self) -> &'static str {
        match self {
            OnResolve::Resolve => "resolve",
            OnResolve::Comment => "comment",
            OnResolve::Nothing => "nothing",
        }
    }
}

/// Whether a firing alert reopens its resolved incident. Incidents resolved as `duplicate`,
/// `user_error` or `risk_accepted` are never reopened: a person decided they are not a
/// live fault, and a re-fire opens a new incident linked to them instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reopen {
    /// Always a new incident, linked to the earlier one.
    Never,
    /// Reopen within `alerts.reopen_window` of the resolve, else a new linked incident.
    Window,
    /// Reopen however long ago it resolved (a closed incident stays closed).
    Always,
}

/// The policy in force for one alert, with its defaults filled in and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub resolve: OnResolve,
    pub reopen: Reopen,
}

impl AlertsConfig {
    /// The policy for alerts from `source` in wire format `format`.
    pub fn policy(&self, source: &str, format: &str) -> Policy {
        let own = self.sources.get(source).copied().unwrap_or_default();
        let fmt = self.sources.get(format).copied().unwrap_or_default();
        Policy {
            resolve: own.resolve.or(fmt.resolve).unwrap_or(if self.auto_resolve {
                OnResolve::Resolve
            } else {
                OnResolve::Nothing
            }),
            reopen: own.reopen.or(fmt.reopen).unwrap_or(Reopen::Window),
        }
    }

    /// The `[alerts.sources]` key that sets `what` (`resolve`, `reopen`) for an alert from
    /// `source` in `format`, e.g. `alerts.sources.pagerduty.reopen`; `None`: the default.
    pub fn policy_origin(&self, source: &str, format: &str, what: &str) -> Option<String> {
        [source, format].into_iter().find_map(|name| {
            let p = self.sources.get(name)?;
            let set = match what {
                "resolve" => p.resolve.is_some(),
                _ => p.reopen.is_some(),
            };
            set.then(|| format!("alerts.sources.{name}.{what}"))
        })
    }
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            auto_resolve: true,
            reopen_window: SignedDuration::from_hours(1),
            flap_changes: 4,
            flap_window: SignedDuration::from_hours(1),
            flap_quiet: SignedDuration::from_mins(30),
            resolve_timeout: SignedDuration::from_mins(5),
            changes_window: SignedDuration::from_hours(4),
            sources: BTreeMap::new(),
        }
    }
}

/// PagerDuty Events API v2 intake (`POST /v2/enqueue`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Accepted routing keys (integration keys), each with the source name recorded on its
    /// alerts. Empty: any routing key is accepted and recorded as the source.
    pub integration_keys: BTreeMap<String, String>,
}

/// Every problem in `[alerts]` and `[pagerduty]`, each naming its key.
pub fn problems(a: &AlertsConfig, pagerduty: &PagerDutyConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (name, d) in [
        ("alerts.reopen_window", a.reopen_window),
        ("alerts.flap_window", a.flap_window),
        ("alerts.flap_quiet", a.flap_quiet),
        ("alerts.changes_window", a.changes_window),
    ] {
        if d.is_negative() {
            out.push(format!("{name} must not be negative"));
        }
    }
    if a.flap_changes < 2 {
        out.push("alerts.flap_changes must be at least 2".into());
    }
    if !a.resolve_timeout.is_positive() {
        out.push("alerts.resolve_timeout must be greater than 0".into());
    }
    if a.flap_window.is_zero() {
        out.push("alerts.flap_window must be greater than 0".into());
    }
    for name in a.sources.keys() {
        if name.trim().is_empty() {
            out.push("alerts.sources: a source name is empty".into());
        }
    }
    for (key, source) in &pagerduty.integration_keys {
        // The key itself is a secret: name it by position, never print it.
        if key.trim().is_empty() {
            out.push("pagerduty.integration_keys: a routing key is empty".into());
        }
        if source.trim().is_empty() {
            out.push("pagerduty.integration_keys: a routing key maps to an empty source".into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_entry_wins_over_its_format_and_defaults_fill_the_rest() {
        let c = crate::config::parse(
            "[alerts]\nauto_resolve = false\n[alerts.sources.pagerduty]\nresolve = \"comment\"\nreopen = \"never\"\n[alerts.sources.zabbix]\nreopen = \"always\"\n",
            "t.toml",
        )
        .unwrap()
        .alerts;
        let p = c.policy("zabbix", "pagerduty");
        assert_eq!((p.resolve, p.reopen), (OnResolve::Comment, Reopen::Always));
        let p = c.policy("other", "generic");
        assert_eq!((p.resolve, p.reopen), (OnResolve::Nothing, Reopen::Window));
        assert_eq!(
            c.policy_origin("zabbix", "pagerduty", "reopen").as_deref(),
            Some("alerts.sources.zabbix.reopen")
        );
        assert_eq!(
            c.policy_origin("zabbix", "pagerduty", "resolve").as_deref(),
            Some("alerts.sources.pagerduty.resolve")
        );
    }

    #[test]
    fn unknown_keys_and_values_are_named() {
        for (text, needle) in [
            (
                "[alerts.sources.x]\nresolv = \"nothing\"\n",
                "alerts.sources.x.resolv",
            ),
            ("[alerts.sources.y]\nreopen = \"sometimes\"\n", "sometimes"),
        ] {
            let e = crate::config::parse(text, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
