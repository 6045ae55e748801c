//! SLA policies as configured (`[sla]`): which targets a ticket's clocks run against, on
//! which calendar, what pauses them, what meets the response target, what a reopen does, and
//! the vendors' underpinning-contract targets. Plus choosing a policy for a ticket.
//!
//! Owns the config shape, its semantic checks and [`choose`]. It must not keep clocks or
//! timers (the engine does, with [`super::track`]) nor do calendar arithmetic.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;
use crate::sla::calendar::Calendar;
use crate::sla::calendar_config::{ALWAYS_OPEN, Calendars};
use crate::sla::clock::{DEFAULT_WARNINGS, Target};
use crate::sla::track;
use crate::tickets::{HoldReason, Kind};

/// The `[sla]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    /// Policies in the order they are tried: the first whose kinds and priorities match a
    /// ticket applies (rules may pick another by name).
    pub policies: Vec<PolicyConfig>,
    /// Targets of the vendors' underpinning contracts (the clock that runs while a ticket
    /// waits on a vendor).
    pub underpinning: UnderpinningConfig,
}

impl Default for SlaConfig {
    fn default() -> SlaConfig {
        let policy =
            |name: &str, kinds: &[Kind], priorities: &[u8], resp: i64, res: i64| PolicyConfig {
                name: name.into(),
                kinds: kinds.to_vec(),
                priorities: priorities.to_vec(),
                response: Friendly::from_secs(resp),
                resolution: Friendly::from_secs(res),
                ..PolicyConfig::default()
            };
        let h = 3_600;
        SlaConfig {
            policies: vec![
                policy("incident-p1", &[Kind::Incident], &[1], 15 * 60, 4 * h),
                policy("incident-p2", &[Kind::Incident], &[2], 30 * 60, 8 * h),
                policy("incident", &[Kind::Incident], &[], 4 * h, 3 * 24 * h),
                policy("request", &[Kind::Request], &[], 8 * h, 5 * 24 * h),
            ],
            underpinning: UnderpinningConfig::default(),
        }
    }
}

/// One `[[sla.policies]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// What tickets, history and reports call the policy; unique.
    pub name: String,
    /// Ticket kinds it applies to; empty: every kind.
    pub kinds: Vec<Kind>,
    /// Priorities (1..=5) it applies to; empty: every priority.
    pub priorities: Vec<u8>,
    /// Calendar the targets count business time in.
    pub calendar: String,
    /// Business time until the first response.
    pub response: Friendly,
    /// Business time until resolution.
    pub resolution: Friendly,
    /// Warnings in percent of each target, e.g. [50, 75, 90].
    pub warnings: Vec<u8>,
    /// Hold reasons that pause the clocks; awaiting_vendor also runs the vendor's clock.
    pub pause_on: Vec<HoldReason>,
    /// What counts as the first response.
    pub response_met_by: Vec<ResponseMet>,
    /// What a reopen does to the resolution clock.
    pub reopen: Reopen,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            name: String::new(),
            kinds: Vec::new(),
            priorities: Vec::new(),
            calendar: ALWAYS_OPEN.into(),
            response: Friendly::from_secs(3_600),
            resolution: Friendly::from_secs(8 * 3_600),
            warnings: DEFAULT_WARNINGS.to_vec(),
            pause_on: vec![HoldReason::AwaitingCaller, HoldReason::AwaitingVendor],
            response_met_by: vec![
                ResponseMet::Acknowledged,
                ResponseMet::PublicComment,
                ResponseMet::InProgress,
            ],
            reopen: Reopen::Resume,
        }
    }
}

impl PolicyConfig {
    /// Whether the policy applies to a ticket of `kind` at `priority`.
    pub fn matches(&self, kind: Kind, priority: u8) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.priorities.is_empty() || self.priorities.contains(&priority))
    }

    /// The target of the response clock.
    pub fn response_target(&self) -> Result<Target, crate::sla::clock::ClockError> {
        Target::new(self.response.0, &self.warnings)
    }

    /// The target of the resolution clock.
    pub fn resolution_target(&self) -> Result<Target, crate::sla::clock::ClockError> {
        Target::new(self.resolution.0, &self.warnings)
    }
}

/// What meets a response target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMet {
    /// The alert source reports a person acknowledged it (PagerDuty `acknowledge`).
    Acknowledged,
    /// A person's first public comment.
    PublicComment,
    /// Work starts: the ticket enters in_progress.
    InProgress,
}

/// What a reopen does to the resolution clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reopen {
    /// The clock continues where it stood at resolution (resolved time does not count).
    #[default]
    Resume,
    /// The clock starts again from zero.
    Reset,
}

/// `[sla.underpinning]`: the vendor clock's targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnderpinningConfig {
    /// Target for vendors without their own.
    pub default: Friendly,
    /// Targets by vendor name (the ticket's `vendor`); a vendor's own `underpinning_target`
    /// in `[vendors.NAME]` takes precedence.
    pub vendors: BTreeMap<String, Friendly>,
    /// Calendar the vendor clocks count in.
    pub calendar: String,
}

impl Default for UnderpinningConfig {
    fn default() -> UnderpinningConfig {
        UnderpinningConfig {
            default: Friendly::from_secs(8 * 3_600),
            vendors: BTreeMap::new(),
            calendar: ALWAYS_OPEN.into(),
        }
    }
}

impl UnderpinningConfig {
    /// The vendor clock's target for `vendor` (its own, else the default), with the
    /// warnings of the ticket's policy.
    pub fn target(
        &self,
        vendor: Option<&str>,
        warnings: &[u8],
    ) -> Result<Target, crate::sla::clock::ClockError> {
        let d = vendor
            .and_then(|v| self.vendors.get(v))
            .unwrap_or(&self.default);
        Target::new(d.0, warnings)
    }
}

/// What one clock runs against: its target and calendar.
#[derive(Debug, Clone)]
pub struct ClockSetup {
    /// Business time allowed and the warnings.
    pub target: Target,
    /// The calendar business time is counted in.
    pub calendar: Arc<Calendar>,
}

impl SlaConfig {
    /// The target and calendar of `clock` under `policy`; the vendor clock uses the
    /// underpinning target of `vendor`. An error says what is missing (a calendar removed by
    /// a reload, an unknown clock).
    pub fn setup(
        &self,
        calendars: &Calendars,
        policy: &PolicyConfig,
        clock: &str,
        vendor: Option<&str>,
    ) -> Result<ClockSetup, String> {
        let (target, calendar) = match clock {
            track::RESPONSE => (policy.response_target(), &policy.calendar),
            track::RESOLUTION => (policy.resolution_target(), &policy.calendar),
            track::VENDOR => (
                self.underpinning.target(vendor, &policy.warnings),
                &self.underpinning.calendar,
            ),
            other => return Err(format!("unknown clock `{other}`")),
        };
        let target = target.map_err(|e| format!("policy {}: {e}", policy.name))?;
        let calendar = calendars
            .get(calendar)
            .ok_or_else(|| format!("calendar `{calendar}` is not configured"))?
            .clone();
        Ok(ClockSetup { target, calendar })
    }

    /// The policy called `name`.
    pub fn policy(&self, name: &str) -> Option<&PolicyConfig> {
        self.policies.iter().find(|p| p.name == name)
    }

    /// The first policy that applies to `kind` at `priority`.
    pub fn choose(&self, kind: Kind, priority: u8) -> Option<&PolicyConfig> {
        self.policies.iter().find(|p| p.matches(kind, priority))
    }
}

/// Every problem of the `[sla]` section; `calendars` are the configured calendar names
/// (`24x7` is always there).
pub fn problems<'a>(sla: &SlaConfig, calendars: impl Iterator<Item = &'a String>) -> Vec<String> {
    let names: Vec<&String> = calendars.collect();
    let known = |c: &str| c == ALWAYS_OPEN || names.iter().any(|n| n.as_str() == c);
    let mut out = Vec::new();
    for (i, p) in sla.policies.iter().enumerate() {
        let at = format!("sla.policies[{i}] ({:?})", p.name);
        if p.name.trim().is_empty() {
            out.push(format!("{at}: a policy needs a name"));
        }
        if sla.policies[..i].iter().any(|q| q.name == p.name) {
            out.push(format!("{at}: the name is used by an earlier policy"));
        }
        if !known(&p.calendar) {
            out.push(format!("{at}: unknown calendar `{}`", p.calendar));
        }
        if let Some(bad) = p.priorities.iter().find(|x| !(1..=5).contains(*x)) {
            out.push(format!("{at}: priority {bad} is out of range 1..=5"));
        }
        if p.response_met_by.is_empty() {
            out.push(format!(
                "{at}: response_met_by is empty, so no response could ever be met"
            ));
        }
        for (what, t) in [
            ("response", p.response_target()),
            ("resolution", p.resolution_target()),
        ] {
            if let Err(e) = t {
                out.push(format!("{at}: {what}: {e}"));
            }
        }
    }
    let u = &sla.underpinning;
    if !known(&u.calendar) {
        out.push(format!(
            "sla.underpinning.calendar: unknown calendar `{}`",
            u.calendar
        ));
    }
    for (vendor, d) in std::iter::once((&"default".to_string(), &u.default)).chain(&u.vendors) {
        if d.0.is_zero() {
            out.push(format!(
                "sla.underpinning: the target of {vendor} must be positive"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_policy_applies() {
        let sla = SlaConfig::default();
        let name = |k, p| sla.choose(k, p).map(|p| p.name.as_str());
        assert_eq!(name(Kind::Incident, 1), Some("incident-p1"));
        assert_eq!(name(Kind::Incident, 2), Some("incident-p2"));
        assert_eq!(name(Kind::Incident, 4), Some("incident"));
        assert_eq!(name(Kind::Request, 1), Some("request"));
        assert_eq!(name(Kind::Change, 1), None);
        assert!(problems(&sla, std::iter::empty()).is_empty());
    }

    #[test]
    fn problems_name_each_bad_policy() {
        let mut sla = SlaConfig::default();
        sla.policies[1].name = "incident-p1".into();
        sla.policies[2].calendar = "office".into();
        sla.policies[3].warnings = vec![0, 50];
        sla.policies[3].priorities = vec![7];
        sla.underpinning
            .vendors
            .insert("acme".into(), Friendly::from_secs(0));
        let found = problems(&sla, std::iter::empty());
        assert_eq!(found.len(), 6, "{found:#?}");
        assert!(found[0].contains("used by an earlier policy"), "{found:#?}");
        assert!(found[1].contains("unknown calendar `office`"), "{found:#?}");
        assert!(found.iter().any(|p| p.contains("acme")), "{found:#?}");
        let office = "office".to_string();
        assert_eq!(problems(&sla, [&office].into_iter()).len(), 5);
    }
}
