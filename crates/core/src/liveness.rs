//! Which of an aggregator's nodes are silent: judged on a monotonic clock, never on the wall
//! clock, and never against the aggregator's own downtime.
//!
//! Invariants:
//! - Silence is measured from the last report the aggregator took from the node, on a clock
//!   that only moves forward (the caller's `Instant`), so a wall-clock step on the
//!   aggregator neither hides a dead node nor flashes a live one stale.
//! - No node is judged stale until `stale_after` of its periods have passed since the
//!   aggregator started: a node known from the spool is taken as heard at the start, so a
//!   reboot or an upgrade longer than the stale window flashes nothing.
//! - A node with no known period is never stale; a period is clamped to
//!   [`MIN_PERIOD_MS`]..=[`MAX_PERIOD_MS`] (see [`clamp_period`]), so no announced period makes
//!   a node flap or never go stale.
//! - Only going silent is judged here. A node comes back by its own report alone (which
//!   clears its staleness in the spool and here, [`Liveness::heard`]): a node already stale
//!   when the aggregator starts stays stale until it reports, so its last word is never shown
//!   again by the start itself.
//! - Pure: no I/O. The spool records what [`Liveness::due`] finds (`Spool::apply_silence`),
//!   then the caller [`Liveness::settle`]s it.

use std::collections::BTreeMap;

/// The shortest period a node may announce (the node side's own range: a heartbeat or a
/// Monit poll cycle of a second).
pub const MIN_PERIOD_MS: i64 = 1_000;
/// The longest: an hour.
pub const MAX_PERIOD_MS: i64 = 3_600_000;

/// A period as announced, clamped into range; the bool says it had to be.
pub fn clamp_period(ms: i64) -> (i64, bool) {
    let c = ms.clamp(MIN_PERIOD_MS, MAX_PERIOD_MS);
    (c, c != ms)
}

/// A node that goes stale now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub node: String,
    pub silent_ms: i64,
    pub period_ms: i64,
}

#[derive(Debug, Clone)]
struct Heard {
    at_ms: u64,
    period_ms: Option<i64>,
    stale: bool,
}

/// The nodes' silence, in monotonic milliseconds (any origin: only differences count).
#[derive(Debug, Clone)]
pub struct Liveness {
    stale_after: u32,
    nodes: BTreeMap<String, Heard>,
}

impl Liveness {
    pub fn new(stale_after: u32) -> Liveness {
        Liveness {
            stale_after,
            nodes: BTreeMap::new(),
        }
    }

    /// A node the spool knows at the aggregator's start (`now_ms`): its silence counts from
    /// then, not from when it was last heard before the aggregator stopped.
    pub fn known(&mut self, node: &str, period_ms: Option<i64>, stale: bool, now_ms: u64) {
        self.nodes.insert(
            node.to_string(),
            Heard {
                at_ms: now_ms,
                period_ms: period_ms.map(|p| clamp_period(p).0),
                stale,
            },
        );
    }

    /// The aggregator took a report of the node: it is alive (and no longer stale: the
    /// report itself brought it back).
    pub fn heard(&mut self, node: &str, period_ms: Option<i64>, now_ms: u64) {
        let h = self.nodes.entry(node.to_string()).or_insert(Heard {
            at_ms: now_ms,
            period_ms: None,
            stale: false,
        });
        h.at_ms = h.at_ms.max(now_ms);
        h.stale = false;
        if let Some(p) = period_ms {
            h.period_ms = Some(clamp_period(p).0);
        }
    }

    /// The node is gone (`nodes forget`).
    pub fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    /// The nodes that go stale now: not stale yet, and silent past `stale_after` periods.
    pub fn due(&self, now_ms: u64) -> Vec<Silence> {
        self.nodes
            .iter()
            .filter(|(_, h)| !h.stale)
            .filter_map(|(node, h)| {
                let period = h.period_ms?;
                let silent = now_ms.saturating_sub(h.at_ms) as i64;
                (silent > period.saturating_mul(i64::from(self.stale_after))).then(|| Silence {
                    node: node.clone(),
                    silent_ms: silent,
                    period_ms: period,
                })
            })
            .collect()
    }

    /// What was recorded: the node is stale (until it is [`Liveness::heard`] again).
    pub fn settle(&mut self, node: &str) {
        if let Some(h) = self.nodes.get_mut(node) {
            h.stale = true;
        }
    }

    /// Is the node stale, as last settled?
    pub fn is_stale(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(|h| h.stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Silence]) -> Vec<&str> {
        v.iter().map(|s| s.node.as_str()).collect()
    }

    /// Issue 20, situation 5: the aggregator was down longer than the stale window; nodes it
    /// knew are not stale at its start, only once they stay silent a whole window after it.
    #[test]
    fn silence_counts_from_the_aggregators_start() {
        let mut l = Liveness::new(3);
        let start = 1_000_000;
        l.known("a", Some(30_000), false, start);
        l.known("b", Some(30_000), false, start);
        assert!(l.due(start).is_empty());
        assert!(
            l.due(start + 90_000).is_empty(),
            "exactly 3 periods: not yet"
        );
        l.heard("a", Some(30_000), start + 10_000);
        assert_eq!(names(&l.due(start + 90_001)), ["b"]);
        l.settle("b");
        assert!(l.due(start + 90_002).is_empty(), "once");
        l.heard("b", None, start + 95_000);
        assert!(!l.is_stale("b"), "a report brings it back");
        assert!(l.due(start + 95_000).is_empty());
    }

    /// A node already stale when the aggregator starts stays stale until it reports: the
    /// start is not a report, so its last word is not shown again (and then hidden again).
    #[test]
    fn a_node_stale_at_the_start_stays_stale_until_it_reports() {
        let mut l = Liveness::new(3);
        l.known("gone", Some(10_000), true, 0);
        assert!(l.due(0).is_empty(), "{:?}", l.due(0));
        assert!(l.due(31_000).is_empty());
        assert!(l.is_stale("gone"));
        l.heard("gone", None, 40_000);
        assert!(!l.is_stale("gone"));
        assert_eq!(names(&l.due(71_000)), ["gone"]);
    }

    /// Issue 20, situation 6: the wall clock steps back an hour on the aggregator. Silence is
    /// measured on the monotonic clock the caller passes, so a node that dies right then is
    /// stale after its window, not after the window plus the step; a wall clock stepping
    /// forward flashes nobody stale either, since only the monotonic clock is read.
    #[test]
    fn a_wall_clock_step_changes_nothing() {
        let mut l = Liveness::new(3);
        // Monotonic time is what the caller measures with `Instant`; the wall clock is not an
        // input at all, which is the point: nothing here can see it step.
        l.heard("dies", Some(10_000), 5_000);
        l.heard("lives", Some(10_000), 5_000);
        for t in (6_000..40_000).step_by(1_000) {
            l.heard("lives", None, t);
        }
        assert_eq!(names(&l.due(35_001)), ["dies"]);
    }

    /// Issue 20, situation 10: announced periods are clamped, so none flaps the page or makes
    /// a node that can never be stale.
    #[test]
    fn periods_are_clamped_to_a_second_and_an_hour() {
        assert_eq!(clamp_period(1), (1_000, true));
        assert_eq!(clamp_period(0), (1_000, true));
        assert_eq!(clamp_period(-5), (1_000, true));
        assert_eq!(clamp_period(1_000_000_000_000), (3_600_000, true));
        assert_eq!(clamp_period(30_000), (30_000, false));
        let mut l = Liveness::new(3);
        l.heard("fast", Some(1), 0);
        assert!(
            l.due(2_999).is_empty(),
            "1 ms is taken as 1 s: 3 s of grace"
        );
        assert_eq!(names(&l.due(3_001)), ["fast"]);
        l.heard("huge", Some(i64::MAX), 0);
        assert!(
            names(&l.due(3 * 3_600_000 + 1)).contains(&"huge"),
            "an hour at most"
        );
        l.heard("none", None, 0);
        assert!(!names(&l.due(u64::MAX / 2)).contains(&"none"));
    }
}
