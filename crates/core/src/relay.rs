//! What a node's statusrelay sends to the aggregator (`[backend] kind = "relay"` to
//! `statusrelay serve`): one JSON document per request, `POST /v1/reports`.
//!
//! Invariants:
//! - The node's identity is its credential (HTTP basic auth), never anything in the body.
//! - Each report is the node's whole truth about one component: the tests failing on it now.
//!   Every other test of that component the node reported before is passing. A `snapshot`
//!   batch is the node's whole truth: a component it feeds no longer is cleared too.
//! - Reports are ordered by `(epoch, seq)`: `epoch` is the node's flusher run (it grows at
//!   every start, so a fresh or restored spool starts over above the old run), `seq` the
//!   newest event of the node's spool when the report was read (the same `seq` means the same
//!   truth). The aggregator keeps the newest `(epoch, seq)` per node and component and applies a
//!   report only if it is newer, so a retried or delayed older report never overrides a newer
//!   one, whatever component it is about.
//! - A batch names its `reporter` (the node's spool id): order holds within one reporter, and
//!   a new one (a reinstalled node) starts a new sequence on the aggregator.
//! - Strict: unknown fields and unknown states are refused (HTTP 400, naming them).

use serde::{Deserialize, Serialize};

use crate::State;

/// Outdated answers in a row that make a warning, on the node as on the aggregator.
pub const OUTDATED_WARN_AFTER: u32 = 3;

/// How far ahead of the aggregator's clock a node's mark may be (a relay's epoch, a Monit
/// document's collected time): beyond, the report is refused (422, naming how far ahead),
/// since a mark far in the future would make every later report look outdated.
pub const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

/// The most failing tests one report (one component of one node) may carry: a Monit service
/// has a few dozen test families at most, so this is hundreds of services failing at once.
pub const MAX_FAILING_PER_REPORT: usize = 1_000;

/// The most failing tests one request (a batch, a status document) may carry in all.
pub const MAX_FAILING_PER_REQUEST: usize = 10_000;

/// One request: several reports, applied in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayBatch {
    /// The node's flusher run (see the module's invariants).
    pub epoch: i64,
    /// How often the node reports when nothing changes (its heartbeat), in milliseconds.
    #[serde(default)]
    pub period_ms: Option<i64>,
    /// The node's whole truth: every component it feeds is in `reports`.
    #[serde(default)]
    pub snapshot: bool,
    /// The node's spool id (random, kept for the spool's life): a new one starts a new
    /// sequence on the aggregator. Absent from nodes older than it; they are ordered as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<String>,
    pub reports: Vec<RelayReport>,
}

/// One component, as one node sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayReport {
    pub seq: i64,
    pub component: String,
    /// The tests failing on the node for this component; empty: all pass.
    pub failing: Vec<RelayTest>,
}

/// A failing test on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayTest {
    pub service: String,
    pub test: crate::mapping::TestKey,
    pub state: State,
    /// What the node's Monit said about it, if anything.
    #[serde(default)]
    pub description: Option<String>,
}

/// The aggregator's answer: how many reports were applied, and how many were not newer than
/// what it had (acknowledged all the same: nothing is lost by sending one again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayAck {
    pub applied: usize,
    pub outdated: usize,
    /// Why reports were outdated (the mark they were not newer than), so the node can say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outdated_why: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_strict() {
        let ok = r#"{"epoch":1,"period_ms":30000,"reports":[{"seq":7,"component":"db cluster","failing":[{"service":"mysql","test":"existence","state":"major_outage"}]}]}"#;
        let b: RelayBatch = serde_json::from_str(ok).unwrap();
        assert_eq!(b.reports[0].failing[0].state, State::MajorOutage);
        for bad in [
            r#"{"epoch":1,"reports":[{"seq":7,"component":"db","failing":[],"node":"db2"}]}"#,
            r#"{"epoch":1,"reports":[{"seq":7,"component":"db","failing":[{"service":"s","test":"t","state":"down"}]}]}"#,
            r#"{"epoch":1,"reports":[{"component":"db","failing":[]}]}"#,
            r#"{"reports":[{"seq":7,"component":"db","failing":[]}]}"#,
        ] {
            assert!(serde_json::from_str::<RelayBatch>(bad).is_err(), "{bad}");
        }
    }
}
