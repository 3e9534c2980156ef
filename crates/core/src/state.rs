//! Component states, the vocabulary every backend maps from.
//!
//! Invariant: `severity()` is a total order used for "worst of"; `under_maintenance` ranks above
//! every outage because a declared maintenance is what the page must say while it lasts.

use std::fmt;
use std::str::FromStr;

use crate::CoreError;

/// The state a component shows on a status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Operational,
    Unknown,
    PerformanceIssues,
    PartialOutage,
    MajorOutage,
    UnderMaintenance,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Operational,
        State::PerformanceIssues,
        State::PartialOutage,
        State::MajorOutage,
        State::UnderMaintenance,
        State::Unknown,
    ];

    /// The name used in config, CLI, JSON and the spool.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Operational => "operational",
            State::PerformanceIssues => "performance_issues",
            State::PartialOutage => "partial_outage",
            State::MajorOutage => "major_outage",
            State::UnderMaintenance => "under_maintenance",
            State::Unknown => "unknown",
        }
    }

    /// Human label for pages and listings.
    pub fn label(self) -> &'static str {
        match self {
            State::Operational => "Operational",
            State::PerformanceIssues => "Performance issues",
            State::PartialOutage => "Partial outage",
            State::MajorOutage => "Major outage",
            State::UnderMaintenance => "Under maintenance",
            State::Unknown => "Unknown",
        }
    }

    /// Rank for "worst of": higher is worse.
    pub fn severity(self) -> u8 {
        match self {
            State::Operational => 0,
            State::Unknown => 1,
            State::PerformanceIssues => 2,
            State::PartialOutage => 3,
            State::MajorOutage => 4,
            State::UnderMaintenance => 5,
        }
    }

    /// The worse of two states.
    pub fn worst(self, other: State) -> State {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<State, CoreError> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == norm)
            .ok_or_else(|| CoreError::BadState(s.to_string()))
    }
}

impl<'de> serde::Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_garbage() {
        for st in State::ALL {
            assert_eq!(st.as_str().parse::<State>().unwrap(), st);
        }
        assert_eq!("Major Outage".parse::<State>().unwrap(), State::MajorOutage);
        assert!("down".parse::<State>().is_err());
    }

    #[test]
    fn worst_prefers_outage_over_degradation() {
        assert_eq!(
            State::PerformanceIssues.worst(State::MajorOutage),
            State::MajorOutage
        );
        assert_eq!(
            State::MajorOutage.worst(State::Operational),
            State::MajorOutage
        );
        assert_eq!(State::Operational.worst(State::Unknown), State::Unknown);
    }
}
