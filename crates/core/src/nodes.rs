//! How a component fed by several nodes gets one state: `[component.nodes]`.
//!
//! Each node (a Monit host, or an `event --source`) keeps its own tests; its state is the worst
//! of its failing tests. The component's state comes from all of them:
//! - `rule = "worst"` (the default): the worst state of any node. One database node down is a
//!   major outage of "db cluster".
//! - `rule = "count"`: an outage is counted in nodes. The component shows `partial_outage` once
//!   `partial_at` nodes (default 1) are in an outage, and `major_outage` once `major_at` are
//!   (default 2, or `"all"`: every node the component has heard from). States that are not
//!   outages (performance issues, maintenance, unknown) still show as the worst of them, so a
//!   degraded node is never hidden.
//!
//! A node of an aggregator that stops reporting goes stale (`[serve] stale_after` missed
//! periods). `stale` says what a stale node counts as, per component:
//! - `"unknown"` (the default): the node's state is `unknown`. What it last said may no longer
//!   be true (a dead machine is not operational, a recovered one is not down), so the page
//!   neither freezes in the node's last state nor claims it is fine; an outage on another node
//!   still shows, since outages rank above `unknown`.
//! - `"failing"`: the node counts as in an outage (`major_outage` for the node; under `count`,
//!   one more node down). For components where silence usually means the service is gone.
//! - `"ignore"`: the node is left out, as if it did not feed the component.
//!
//! Invariant: the rule is a pure function of the nodes' states ([`NodeRule::combine`]); a
//! recovery of one node can only change the component through it, so it never hides another
//! node's outage.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::State;

/// Which rule combines the nodes' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// The worst state of any node.
    #[default]
    Worst,
    /// Outages counted in nodes.
    Count,
}

/// How many nodes in an outage make a major outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum MajorAt {
    /// This many nodes.
    Nodes(u32),
    /// `"all"`: every node the component has heard from.
    Word(AllWord),
}

/// The one word `major_at` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllWord {
    All,
}

impl Default for MajorAt {
    fn default() -> Self {
        MajorAt::Nodes(2)
    }
}

/// What a stale node (one that stopped reporting) counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StalePolicy {
    /// Its state is `unknown`.
    #[default]
    Unknown,
    /// It is in an outage.
    Failing,
    /// It is left out.
    Ignore,
}

impl StalePolicy {
    /// The stale node's state; None: leave it out.
    pub fn state(self) -> Option<State> {
        match self {
            StalePolicy::Unknown => Some(State::Unknown),
            StalePolicy::Failing => Some(State::MajorOutage),
            StalePolicy::Ignore => None,
        }
    }
}

/// How a node reports to the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Its own statusrelay relays its spool (`POST /v1/reports`).
    Relay,
    /// Its Monit pushes status documents (`POST /collector`).
    Collector,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Relay => "relay",
            Via::Collector => "collector",
        }
    }

    /// The stored word back; None for one no statusrelay writes.
    pub fn parse(word: &str) -> Option<Via> {
        match word {
            "relay" => Some(Via::Relay),
            "collector" => Some(Via::Collector),
            _ => None,
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[component.nodes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeRule {
    pub rule: RuleKind,
    /// `count`: this many nodes in an outage make a partial outage.
    pub partial_at: u32,
    /// `count`: this many (or all) nodes in an outage make a major outage.
    pub major_at: MajorAt,
    /// What a stale node counts as.
    pub stale: StalePolicy,
}

impl Default for NodeRule {
    fn default() -> Self {
        NodeRule {
            rule: RuleKind::Worst,
            partial_at: 1,
            major_at: MajorAt::default(),
            stale: StalePolicy::default(),
        }
    }
}

fn is_outage(s: State) -> bool {
    matches!(s, State::PartialOutage | State::MajorOutage)
}

impl NodeRule {
    /// Does the rule need each node's state (not only the worst of all)?
    pub fn counts(&self) -> bool {
        self.rule == RuleKind::Count
    }

    /// What a node counts as: its own state (the worst of its failing tests), or for a stale
    /// node what the policy says; None: leave it out.
    pub fn node_state(&self, own: State, stale: bool) -> Option<State> {
        if stale { self.stale.state() } else { Some(own) }
    }

    /// The component's state from each node's state (operational for a node whose tests all
    /// pass). Every node the component has heard from is in `nodes`.
    pub fn combine(&self, nodes: &BTreeMap<String, State>) -> State {
        let worst = nodes
            .values()
            .copied()
            .fold(State::Operational, State::worst);
        if self.rule == RuleKind::Worst {
            return worst;
        }
        let down = nodes.values().filter(|s| is_outage(**s)).count() as u32;
        let major_at = match self.major_at {
            MajorAt::Nodes(n) => n,
            MajorAt::Word(AllWord::All) => nodes.len() as u32,
        };
        let outage = if down > 0 && down >= major_at {
            State::MajorOutage
        } else if down > 0 && down >= self.partial_at {
            State::PartialOutage
        } else {
            State::Operational
        };
        nodes
            .values()
            .copied()
            .filter(|s| !is_outage(*s))
            .fold(outage, State::worst)
    }

    /// What is wrong with the numbers, if anything (for the config's validation).
    pub fn problem(&self) -> Option<String> {
        if self.rule == RuleKind::Worst {
            return None;
        }
        if self.partial_at == 0 {
            return Some("partial_at must be at least 1 node".into());
        }
        match self.major_at {
            MajorAt::Nodes(n) if n < self.partial_at => Some(format!(
                "major_at = {n} is below partial_at = {}: a major outage needs at least as many nodes as a partial one",
                self.partial_at
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_way_in_is_stored_and_shown_as_its_word() {
        for v in [Via::Relay, Via::Collector] {
            assert_eq!(Via::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert_eq!(Via::parse("carrier pigeon"), None);
    }

    use super::*;

    fn nodes(states: &[(&str, State)]) -> BTreeMap<String, State> {
        states.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    const OK: State = State::Operational;
    const DOWN: State = State::MajorOutage;

    #[test]
    fn worst_of_is_the_default_and_one_recovery_never_hides_another_outage() {
        let r = NodeRule::default();
        assert_eq!(r.combine(&nodes(&[("db1", DOWN), ("db2", DOWN)])), DOWN);
        assert_eq!(r.combine(&nodes(&[("db1", OK), ("db2", DOWN)])), DOWN);
        assert_eq!(r.combine(&nodes(&[("db1", OK), ("db2", OK)])), OK);
        assert_eq!(r.combine(&BTreeMap::new()), OK);
    }

    #[test]
    fn counting_makes_one_of_three_nodes_a_partial_outage() {
        let r = NodeRule {
            rule: RuleKind::Count,
            ..NodeRule::default()
        };
        let three = |a, b, c| nodes(&[("db1", a), ("db2", b), ("db3", c)]);
        assert_eq!(r.combine(&three(DOWN, OK, OK)), State::PartialOutage);
        assert_eq!(r.combine(&three(DOWN, State::PartialOutage, OK)), DOWN);
        assert_eq!(r.combine(&three(OK, OK, OK)), OK);
        // A degraded node still shows, below an outage it never hides.
        assert_eq!(
            r.combine(&three(State::PerformanceIssues, OK, OK)),
            State::PerformanceIssues
        );
        assert_eq!(
            r.combine(&three(DOWN, State::UnderMaintenance, OK)),
            State::UnderMaintenance
        );
        let all = NodeRule {
            rule: RuleKind::Count,
            partial_at: 1,
            major_at: MajorAt::Word(AllWord::All),
            ..NodeRule::default()
        };
        assert_eq!(all.combine(&three(DOWN, DOWN, OK)), State::PartialOutage);
        assert_eq!(all.combine(&three(DOWN, DOWN, DOWN)), DOWN);
        let two = NodeRule {
            rule: RuleKind::Count,
            partial_at: 2,
            major_at: MajorAt::Nodes(3),
            ..NodeRule::default()
        };
        assert_eq!(two.combine(&three(DOWN, OK, OK)), OK);
    }

    #[test]
    fn a_stale_node_neither_freezes_the_page_nor_hides_another_outage() {
        let r = NodeRule::default();
        // db2 was down when it went silent: by default it is unknown, not down for ever.
        let db2 = r.node_state(DOWN, true).unwrap();
        assert_eq!(db2, State::Unknown);
        assert_eq!(
            r.combine(&nodes(&[("db1", OK), ("db2", db2)])),
            State::Unknown
        );
        assert_eq!(r.combine(&nodes(&[("db1", DOWN), ("db2", db2)])), DOWN);
        assert_eq!(r.node_state(DOWN, false), Some(DOWN));
        let failing = NodeRule {
            rule: RuleKind::Count,
            stale: StalePolicy::Failing,
            ..NodeRule::default()
        };
        let db2 = failing.node_state(OK, true).unwrap();
        assert_eq!(
            failing.combine(&nodes(&[("db1", DOWN), ("db2", db2)])),
            DOWN
        );
        let ignore = NodeRule {
            stale: StalePolicy::Ignore,
            ..NodeRule::default()
        };
        assert_eq!(ignore.node_state(DOWN, true), None);
    }

    #[test]
    fn the_numbers_are_checked() {
        let bad = NodeRule {
            rule: RuleKind::Count,
            partial_at: 3,
            major_at: MajorAt::Nodes(2),
            ..NodeRule::default()
        };
        assert!(bad.problem().unwrap().contains("below partial_at"));
        let zero = NodeRule {
            rule: RuleKind::Count,
            partial_at: 0,
            ..NodeRule::default()
        };
        assert!(zero.problem().is_some());
        assert!(NodeRule::default().problem().is_none());
    }
}
