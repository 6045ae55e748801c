//! The closed vocabularies of the process model: hold reasons, resolution codes, change types,
//! change risk, review outcomes, comment visibility. Each is a snake_case name on the wire and in the store;
//! which one a transition needs is [`super::lifecycle`]'s business, not this module's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Defines a unit-only enum with its snake_case names, `ALL`, `as_str`, `Display` and a
/// `FromStr` whose error lists every accepted name.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} {s:?}; expected one of {}", $what, names($name::ALL)))
            }
        }
    };
}

/// Comma-separated names, for messages.
pub fn names<T: fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

vocabulary! {
    /// Why a ticket is on hold. Data on the ticket, not a state of its own.
    HoldReason, "hold reason" {
        AwaitingCaller = "awaiting_caller",
        AwaitingVendor = "awaiting_vendor",
        AwaitingChange = "awaiting_change",
        AwaitingProblem = "awaiting_problem",
    }
}

vocabulary! {
    /// How a ticket was resolved. Which codes a resolving transition accepts is set in
    /// [`super::lifecycle`].
    Resolution, "resolution code" {
        /// The cause was removed.
        Fixed = "fixed",
        /// Service restored around the cause, which remains.
        Workaround = "workaround",
        /// Nothing wrong could be found.
        NoFaultFound = "no_fault_found",
        /// The caller's mistake; explained.
        UserError = "user_error",
        /// Another ticket covers it (needs a duplicate_of link).
        Duplicate = "duplicate",
        /// A problem whose cause is known and deliberately not fixed.
        RiskAccepted = "risk_accepted",
        /// The monitoring alert that opened it cleared (automatic resolution).
        AlertCleared = "alert_cleared",
    }
}

vocabulary! {
    /// The change types of ITIL change enablement; each has its own path.
    #[derive(Default)]
    ChangeType, "change type" {
        /// Pre-authorised, low risk: skips assessment and authorisation.
        Standard = "standard",
        /// Assessed and authorised before scheduling (the default).
        #[default]
        Normal = "normal",
        /// Must happen now: skips assessment, still authorised.
        Emergency = "emergency",
    }
}

vocabulary! {
    /// How likely and how bad a change's failure would be, as assessed; the change
    /// authority may depend on it (`[approval.changes.TYPE.risk.LEVEL]`).
    Risk, "risk" {
        Low = "low",
        Medium = "medium",
        High = "high",
    }
}

vocabulary! {
    /// What the post-implementation review found.
    ReviewOutcome, "review outcome" {
        Successful = "successful",
        SuccessfulWithIssues = "successful_with_issues",
        Failed = "failed",
    }
}

vocabulary! {
    /// Who may see a comment: the caller too, or only agents.
    Visibility, "visibility" {
        Public = "public",
        Internal = "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_choices() {
        for r in Resolution::ALL {
            assert_eq!(r.as_str().parse::<Resolution>(), Ok(*r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        let err = "later".parse::<HoldReason>().unwrap_err();
        assert_eq!(
            err,
            "unknown hold reason \"later\"; expected one of awaiting_caller, awaiting_vendor, \
             awaiting_change, awaiting_problem"
        );
    }
}
