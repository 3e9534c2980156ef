//! Where a recorded event came from, as it arrived: the one typed value that the handler,
//! `statusrelay event`, maintenance windows and `resync` record (the spool's `events.raw`) and
//! that `replay --rejected` reads back to plan the event again.
//!
//! Invariants:
//! - It serializes to exactly the JSON shapes spools have always held (`{"monit": {...},
//!   "component": ...}`, `{"event": {...}}`, `{"maintenance": {...}}`, `{"resync": {...}}`), so
//!   every spool ever written replays; a test pins each shape as older versions wrote it.
//! - Reading is strict where it matters: a state is a [`State`] serde checks; a record that
//!   fits no shape is `None` from [`EventSource::parse`], reported, never guessed.

use serde::{Deserialize, Serialize};

use crate::{RawEvent, State};

/// The origin of one recorded event, with everything needed to plan it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventSource {
    /// Monit's exec action: every `MONIT_*` variable, and the `--component` it named, if any.
    Monit {
        monit: RawEvent,
        #[serde(default)]
        component: Option<String>,
    },
    /// `statusrelay event`.
    Manual { event: ManualEvent },
    /// A maintenance window shown on the page starting or ending.
    Maintenance { maintenance: MaintenanceChange },
    /// What `resync` read from Monit's status for one service.
    Resync { resync: MonitObservation },
    /// `statusrelay nodes forget`: a decommissioned node's failures cleared.
    Forget { forget: ForgetNode },
    /// A report a node's statusrelay relayed to the aggregator.
    Relay { relay: RelayedReport },
    /// A status document a node's Monit pushed to the aggregator (`set mmonit`), as observed:
    /// never the document itself, which holds the node's Monit credentials.
    Collector { collector: CollectorDocument },
    /// The aggregator found a node silent for too long, or heard from it again.
    Stale { stale: StaleNode },
}

impl EventSource {
    /// The word an event from this source is recorded under (the events' `origin`, shown by
    /// `queue`): one per source, so no caller can say another.
    pub fn origin(&self) -> &'static str {
        match self {
            EventSource::Monit { .. } => "monit",
            EventSource::Manual { .. } => "event",
            EventSource::Maintenance { .. } => "maintenance",
            EventSource::Resync { .. } => "resync",
            EventSource::Forget { .. } => "nodes",
            EventSource::Relay { .. } => "relay",
            EventSource::Collector { .. } => "collector",
            EventSource::Stale { .. } => "stale",
        }
    }
}

/// A node going stale (silent past `[serve] stale_after` periods) or coming back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleNode {
    pub node: String,
    /// True: it went stale; false: it reports again.
    pub stale: bool,
    /// How long it had been silent (ms).
    pub silent_ms: i64,
    /// Its period (ms).
    pub period_ms: i64,
}

/// What the aggregator kept of a collector document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorDocument {
    pub node: String,
    /// When Monit collected it (µs since the epoch): its order.
    pub collected_us: i64,
    pub services: Vec<MonitObservation>,
}

/// A relayed report and the node it came from (by its credential).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedReport {
    pub node: String,
    /// The batch's epoch (see `crate::relay`).
    pub epoch: i64,
    /// Part of a snapshot: the node's whole truth.
    #[serde(default)]
    pub snapshot: bool,
    /// The reports (one, or every component of a snapshot).
    pub reports: Vec<crate::relay::RelayReport>,
}

/// The node `nodes forget` removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetNode {
    pub node: String,
}

/// The arguments of `statusrelay event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualEvent {
    pub component: String,
    pub status: State,
    #[serde(default)]
    pub message: Option<String>,
    pub source: String,
}

/// A shown maintenance window's start (`on`) or end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceChange {
    pub component: String,
    pub on: bool,
    pub why: String,
}

/// One service as Monit's status document reported it to `resync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitObservation {
    pub service: String,
    /// Monit's service type number (`<service type="3">`).
    #[serde(rename = "type")]
    pub kind: u32,
    /// Monit's status bitmask.
    pub status: u32,
    pub host: String,
}

impl EventSource {
    /// The JSON the spool stores.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read a stored record; None when it fits no shape (hand-edited, or damaged).
    pub fn parse(raw: &str) -> Option<EventSource> {
        serde_json::from_str(raw).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each shape exactly as earlier versions wrote it (hand-built JSON), read and written back.
    #[test]
    fn every_shape_older_spools_hold_is_read_and_written_the_same() {
        let old = [
            r#"{"component":"db cluster","monit":{"env":{"MONIT_EVENT":"Does not exist","MONIT_SERVICE":"mysql"}}}"#,
            r#"{"component":null,"monit":{"env":{"MONIT_DESCRIPTION":"bad \ufffd","MONIT_SERVICE":"web"},"invalid_utf8":["MONIT_DESCRIPTION"],"truncated_from":20000}}"#,
            r#"{"event":{"component":"db","message":"deploy","source":"ci","status":"under_maintenance"}}"#,
            r#"{"event":{"component":"db","message":null,"source":"manual","status":"operational"}}"#,
            r#"{"maintenance":{"component":"db","on":true,"why":"deploy 1.4"}}"#,
            r#"{"resync":{"host":"node1","service":"db","status":512,"type":3}}"#,
            r#"{"forget":{"node":"db3"}}"#,
        ];
        for text in old {
            let s = EventSource::parse(text).unwrap_or_else(|| panic!("unreadable: {text}"));
            let back: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
            let want: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(back, want, "{text}");
        }
        match EventSource::parse(old[0]).unwrap() {
            EventSource::Monit { monit, component } => {
                assert_eq!(component.as_deref(), Some("db cluster"));
                assert_eq!(monit.get("MONIT_SERVICE"), Some("mysql"));
            }
            other => panic!("{other:?}"),
        }
        // A Monit record without `component` is read as routed by service.
        assert!(matches!(
            EventSource::parse(r#"{"monit":{"env":{"MONIT_SERVICE":"x"}}}"#),
            Some(EventSource::Monit {
                component: None,
                ..
            })
        ));
        for bad in [
            r#"{"event":{"component":"db","status":"down","source":"x"}}"#,
            r#"{"something":"else"}"#,
            "not json",
        ] {
            assert_eq!(EventSource::parse(bad), None, "{bad}");
        }
    }
}
