//! The process sections: `[groups.NAME]` (people), `[approval]` (service-request approvers,
//! and `[approval.changes.TYPE]`, the change authorities, with `[approval.changes.TYPE.risk.LEVEL]`
//! for the changes of one risk), `[changes.templates.ID]` (the standard change catalogue) and
//! `[lifecycle]` (auto-close). Their semantic checks are [`problems`] and [`ChangeConfig::problems`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::duration::Friendly;
use crate::tickets::{ChangeType, Risk};

/// Groups by name. Replaces the default set as a whole when a config file has any group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Groups(pub BTreeMap<String, GroupConfig>);

impl Default for Groups {
    /// `triage` (where failed rules and unknown groups send tickets), `operations` (the
    /// shipped rule's default route) and `dba` (the README tour's team), all without members.
    fn default() -> Groups {
        let empty = GroupConfig {
            members: Vec::new(),
            lead: None,
            escalate_to: None,
        };
        Groups(BTreeMap::from([
            ("dba".to_string(), empty.clone()),
            ("operations".to_string(), empty.clone()),
            ("triage".to_string(), empty),
        ]))
    }
}

impl Groups {
    pub fn get(&self, name: &str) -> Option<&GroupConfig> {
        self.0.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Names of every group, for messages.
    pub fn names(&self) -> String {
        self.0.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Whether `person` is a member of `group`.
    pub fn is_member(&self, group: &str, person: &str) -> bool {
        self.get(group)
            .is_some_and(|g| g.members.iter().any(|m| m == person))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Who works the group's tickets; only they can be assigned one.
    #[serde(default)]
    pub members: Vec<String>,
    /// The group's lead (a member), for escalations and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<String>,
    /// The group its tickets escalate to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalConfig {
    /// Who may approve or reject service requests (API token names).
    pub approvers: Vec<String>,
    /// Approvals a request needs (N of the M approvers); one rejection rejects.
    pub required: u32,
    /// The change authority of each change type that passes `authorize` (normal, emergency):
    /// who votes and how many votes authorise. Standard changes are pre-authorised.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<ChangeType, ChangeAuthority>,
}

/// A change type's authority: its quorum, and the quorum of changes of a given risk instead
/// (e.g. the CAB for high-risk normal changes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeAuthority {
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Groups whose members vote too (e.g. the CAB as a `[groups.cab]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default = "one")]
    pub required: u32,
    /// Quorums by risk (`low`, `medium`, `high`; names, so that `itsmd check` reports a bad
    /// one by its path); a change of a risk listed here is authorised by that quorum only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub risk: BTreeMap<String, Quorum>,
}

impl ChangeAuthority {
    /// The quorum that authorises a change of `risk`, its groups' members among the
    /// approvers (named approvers first, each name once).
    pub fn quorum(&self, risk: Option<Risk>, people: &Groups) -> Quorum {
        let q = match risk.and_then(|r| self.risk.get(r.as_str())) {
            Some(q) => q.clone(),
            None => Quorum {
                approvers: self.approvers.clone(),
                groups: self.groups.clone(),
                required: self.required,
            },
        };
        let mut approvers = q.approvers;
        for g in &q.groups {
            for m in people
                .get(g)
                .map(|g| g.members.as_slice())
                .unwrap_or_default()
            {
                if !approvers.contains(m) {
                    approvers.push(m.clone());
                }
            }
        }
        Quorum {
            approvers,
            groups: Vec::new(),
            required: q.required,
        }
    }

    /// Whether who authorises depends on the risk (then a change needs one to be authorised).
    pub fn depends_on_risk(&self) -> bool {
        !self.risk.is_empty()
    }
}

impl Default for ApprovalConfig {
    fn default() -> ApprovalConfig {
        ApprovalConfig {
            approvers: Vec::new(),
            required: 1,
            changes: BTreeMap::new(),
        }
    }
}

/// Who may vote, and how many approving votes are needed (N of M); one rejection rejects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quorum {
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Groups whose members vote too (change authorities only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default = "one")]
    pub required: u32,
}

fn one() -> u32 {
    1
}

impl ApprovalConfig {
    /// The service requests' quorum.
    pub fn request(&self) -> Quorum {
        Quorum {
            approvers: self.approvers.clone(),
            groups: Vec::new(),
            required: self.required,
        }
    }

    /// The change authority of changes of type `t`; `None` when not configured.
    pub fn change(&self, t: ChangeType) -> Option<&ChangeAuthority> {
        self.changes.get(&t)
    }
}

impl Quorum {
    /// Every problem of the quorum configured at `key`.
    fn problems(&self, key: &str, out: &mut Vec<String>) {
        if self.required == 0 {
            out.push(format!("{key}.required must be greater than 0"));
        } else if !self.approvers.is_empty() && self.required as usize > self.approvers.len() {
            out.push(format!(
                "{key}.required = {} but only {} approver(s) are configured",
                self.required,
                self.approvers.len()
            ));
        }
    }
}

/// `[changes]`: the standard change catalogue.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangeConfig {
    /// Standard change templates by id: a standard change is created from one of them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, ChangeTemplate>,
}

/// A standard change, pre-authorised once for every change made from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeTemplate {
    pub title: String,
    /// The service its changes touch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Low or medium: a high-risk change is never standard.
    pub risk: Risk,
    pub backout_plan: String,
    /// Who pre-authorised the template (the change authority's decision, e.g. "CAB 2026-03-02").
    pub authorized_by: String,
}

impl ChangeConfig {
    /// Every problem of the catalogue.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (id, t) in &self.templates {
            let key = format!("changes.templates.{id}");
            if id.trim().is_empty() {
                out.push("changes.templates: a template id must not be empty".into());
            }
            for (field, value) in [
                ("title", &t.title),
                ("backout_plan", &t.backout_plan),
                ("authorized_by", &t.authorized_by),
            ] {
                if value.trim().is_empty() {
                    out.push(format!("{key}.{field} must not be empty"));
                }
            }
            if t.service.as_ref().is_some_and(|s| s.trim().is_empty()) {
                out.push(format!("{key}.service must not be empty when given"));
            }
            if t.risk == Risk::High {
                out.push(format!(
                    "{key}.risk = \"high\": a high-risk change is never standard (use low or medium)"
                ));
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// A resolved incident closes itself after this long.
    pub incident_close_after: Friendly,
    /// A fulfilled service request closes itself after this long.
    pub request_close_after: Friendly,
    /// How often itsmd looks for tickets due to close.
    pub sweep_every: Friendly,
}

impl Default for LifecycleConfig {
    fn default() -> LifecycleConfig {
        LifecycleConfig {
            incident_close_after: Friendly::from_secs(5 * 86_400),
            request_close_after: Friendly::from_secs(5 * 86_400),
            sweep_every: Friendly::from_secs(60),
        }
    }
}

/// Every problem with the people, approval and lifecycle settings.
pub fn problems(
    groups: &Groups,
    approval: &ApprovalConfig,
    lifecycle: &LifecycleConfig,
    triage_group: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if !groups.contains(triage_group) {
        out.push(format!(
            "rules.triage_group `{triage_group}` is not a configured group (groups: {})",
            groups.names()
        ));
    }
    for (name, g) in &groups.0 {
        if name.trim().is_empty() {
            out.push("groups: a group name must not be empty".into());
        }
        if let Some(lead) = &g.lead
            && !g.members.contains(lead)
        {
            out.push(format!(
                "groups.{name}.lead `{lead}` is not a member of the group"
            ));
        }
        if let Some(to) = &g.escalate_to {
            if to == name {
                out.push(format!("groups.{name}.escalate_to names the group itself"));
            } else if !groups.contains(to) {
                out.push(format!(
                    "groups.{name}.escalate_to `{to}` is not a configured group"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &g.members {
            if m.trim().is_empty() {
                out.push(format!("groups.{name}.members: a name must not be empty"));
            } else if !seen.insert(m) {
                out.push(format!("groups.{name}.members lists `{m}` twice"));
            }
        }
    }
    approval.request().problems("approval", &mut out);
    let unknown_groups = |key: &str, names: &[String], out: &mut Vec<String>| {
        for g in names.iter().filter(|g| !groups.contains(g)) {
            out.push(format!(
                "{key}.groups: `{g}` is not a configured group (groups: {})",
                groups.names()
            ));
        }
    };
    for (t, authority) in &approval.changes {
        let key = format!("approval.changes.{t}");
        let base = authority.quorum(None, groups);
        if *t == ChangeType::Standard {
            out.push(format!(
                "{key}: standard changes are pre-authorised and never wait for votes"
            ));
        } else if base.approvers.is_empty() {
            out.push(format!(
                "{key}.approvers must name at least one approver (or groups with members)"
            ));
        }
        unknown_groups(&key, &authority.groups, &mut out);
        base.problems(&key, &mut out);
        for (risk, quorum) in &authority.risk {
            let key = format!("{key}.risk.{risk}");
            match risk.parse::<Risk>() {
                Err(e) => out.push(format!("{key}: {e}")),
                Ok(r) => {
                    let q = authority.quorum(Some(r), groups);
                    if q.approvers.is_empty() {
                        out.push(format!(
                            "{key}.approvers must name at least one approver (or groups with members)"
                        ));
                    }
                    q.problems(&key, &mut out);
                }
            }
            unknown_groups(&key, &quorum.groups, &mut out);
        }
    }
    for (name, d) in [
        (
            "lifecycle.incident_close_after",
            lifecycle.incident_close_after,
        ),
        (
            "lifecycle.request_close_after",
            lifecycle.request_close_after,
        ),
        ("lifecycle.sweep_every", lifecycle.sweep_every),
    ] {
        if d.0.is_zero() {
            out.push(format!("{name} must be greater than 0"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_people_and_lifecycle_problem_is_named() {
        let text = r#"
            [groups.dba]
            members = ["ann", "ann"]
            lead = "bob"
            escalate_to = "nowhere"
            [approval]
            approvers = ["ann"]
            required = 2
            [approval.changes.normal]
            approvers = ["ann"]
            required = 3
            [approval.changes.standard]
            approvers = ["ann"]
            [approval.changes.emergency]
            approvers = ["ann"]
            [approval.changes.emergency.risk.high]
            approvers = []
            [changes.templates.certs]
            title = "Rotate certificates"
            risk = "high"
            backout_plan = ""
            authorized_by = "CAB"
            [lifecycle]
            sweep_every = "0s"
            incident_close_after = "1 month"
        "#;
        let err = crate::config::parse(text, "t.toml").unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "rules.triage_group `triage` is not a configured group (groups: dba)",
            "groups.dba.lead `bob` is not a member of the group",
            "groups.dba.escalate_to `nowhere` is not a configured group",
            "groups.dba.members lists `ann` twice",
            "approval.required = 2 but only 1 approver(s) are configured",
            "approval.changes.normal.required = 3 but only 1 approver(s) are configured",
            "approval.changes.standard: standard changes are pre-authorised",
            "approval.changes.emergency.risk.high.approvers must name at least one approver",
            "changes.templates.certs.backout_plan must not be empty",
            "changes.templates.certs.risk = \"high\": a high-risk change is never standard",
            "`lifecycle.incident_close_after`",
            "lifecycle.sweep_every",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        // The bad duration does not hide the section's other keys: sweep_every's 0 is seen.
        assert_eq!(err.problems.len(), 12, "{all}");
    }
}
