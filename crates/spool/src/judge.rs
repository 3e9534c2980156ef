//! The one decision on a node's report: against the marks the spool holds of the node, is it
//! outdated, or where does it replace the node's word?
//!
//! Invariants:
//! - [`judge`] is pure. The recording transaction (`record::report_tx`) acts on its verdict;
//!   the steady-state fast path (`Spool::report_is_noop`) skips the transaction only on a
//!   [`Verdict::Apply`] it calls routine, and only when the report's failing tests are the
//!   ones recorded. One decision, so the fast path can never take a report the transaction
//!   would have judged otherwise.
//! - A report applies to a component only where it is newer than the last report applied
//!   there and than the node's last whole report. A whole report also drops the components
//!   the node no longer names (where it is newer than their marks).
//! - A stale node that reports is back, whatever its report is worth: an outdated report of a
//!   stale node is still an [`Verdict::Apply`], with nothing fresh and its `outdated` mark set.
//! - [`desired_state`] is pure too: what a component shows, from what a store read of it
//!   (every store reads the same facts its own way, and decides by this one function).
//! - [`judge_reporter`] is pure too: who may speak for the node, and what the store holds of
//!   its reporters afterwards. Every store writes that row back only when it changed (most
//!   reports are the same reporter's again, and write nothing there).

use std::collections::BTreeMap;

use statusrelay_core::State;
use statusrelay_core::nodes::NodeRule;

use crate::{Conflict, Identity, MAINTENANCE_SOURCE, NodeReport, Snapshot};

/// What the spool holds of a node when one of its reports is judged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// The (epoch, seq) of the node's last whole report, if any.
    pub whole: Option<(i64, i64)>,
    /// The node is stale now.
    pub stale: bool,
    /// The reporter the node's marks are in.
    pub reporter: Option<String>,
    /// Two reporters contend for the node.
    pub conflict: bool,
    /// Per component the node feeds, the (epoch, seq) of the last report applied there.
    pub feeds: BTreeMap<String, (i64, i64)>,
}

/// What becomes of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<'r> {
    /// Not newer anywhere it speaks, and the node not stale: only that the node was heard.
    /// `mark` is the newest of the marks it was compared with, for the node's answer.
    Outdated { mark: (i64, i64) },
    /// Applied where it is newer.
    Apply {
        /// The components whose word the report replaces.
        fresh: Vec<&'r str>,
        /// The components a whole report no longer names: the node no longer feeds them.
        dropped: Vec<String>,
        /// The report is the node's whole truth: its mark becomes the node's.
        whole: bool,
        /// Set when nothing was newer, and the report applies only because a stale node is
        /// back: the node is told its report was outdated.
        outdated: Option<(i64, i64)>,
        /// The node's own reporter, not stale, newer on every component it names and on no
        /// other: applying it changes nothing if its failing tests are the ones recorded.
        routine: bool,
    },
}

/// Judge `report` against `marks` (see the module's invariants).
pub fn judge<'r>(marks: &Marks, report: &NodeReport<'r>) -> Verdict<'r> {
    let too_old = marks.whole.is_some_and(|m| m >= report.order);
    let newer = |c: &str| !too_old && marks.feeds.get(c).is_none_or(|o| report.order > *o);
    let (scope, whole) = match report.snapshot {
        Snapshot::Components(c) => (c, false),
        Snapshot::Node(c) => (c, true),
    };
    let fresh: Vec<&'r str> = scope
        .iter()
        .map(String::as_str)
        .filter(|c| newer(c))
        .collect();
    let dropped: Vec<String> = if whole {
        marks
            .feeds
            .keys()
            .filter(|c| !scope.contains(c) && newer(c))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    let outdated = too_old || (fresh.is_empty() && dropped.is_empty() && !whole);
    let mark = if too_old {
        marks.whole.unwrap_or_default()
    } else {
        marks
            .whole
            .into_iter()
            .chain(scope.iter().filter_map(|c| marks.feeds.get(c).copied()))
            .max()
            .unwrap_or_default()
    };
    if outdated && !marks.stale {
        return Verdict::Outdated { mark };
    }
    let own = report
        .identity
        .is_none_or(|id| marks.reporter.as_deref() == Some(id.reporter) && !marks.conflict);
    let routine = own
        && !outdated
        && !marks.stale
        && scope
            .iter()
            .all(|c| marks.feeds.get(c).is_some_and(|o| report.order > *o))
        && (!whole || marks.feeds.keys().all(|c| scope.contains(c)));
    Verdict::Apply {
        fresh,
        dropped,
        whole,
        outdated: outdated.then_some(mark),
        routine,
    }
}

/// What a store read of a component to decide the state it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The states of its failing tests on nodes that are not stale, and of local sources
    /// (maintenance); a store may give only the worst of them.
    pub failing: Vec<State>,
    /// A stale node feeds it.
    pub stale: bool,
    /// A node that is not stale feeds it.
    pub live: bool,
    /// Read for a counting rule only: each of its rows, a test (passing or failing) or a
    /// feed, as (host, failing state, whether the host is stale).
    pub rows: Vec<(String, Option<State>, bool)>,
}

/// The state a component shows by `rule`: by default the worst of its failing tests, else
/// operational, with what a stale node counts as; by a counting rule, from each node's own
/// state. Local maintenance is a source of its own, never a node. When nodes feed it and every
/// one of them is silent, nobody can say it is fine: at least unknown (a lost rack is never
/// `operational`).
pub fn desired_state(rule: NodeRule, seen: &Seen) -> State {
    let worst = if rule.counts() {
        let mut own: BTreeMap<&str, (State, bool)> = BTreeMap::new();
        let mut maintenance = State::Operational;
        for (host, state, stale) in &seen.rows {
            let state = state.unwrap_or(State::Operational);
            if host == MAINTENANCE_SOURCE {
                maintenance = maintenance.worst(state);
                continue;
            }
            let node = own.entry(host).or_insert((State::Operational, *stale));
            node.0 = node.0.worst(state);
        }
        let nodes: BTreeMap<String, State> = own
            .into_iter()
            .filter_map(|(host, (state, stale))| {
                Some((host.to_string(), rule.node_state(state, stale)?))
            })
            .collect();
        rule.combine(&nodes).worst(maintenance)
    } else {
        // The same as combining every node's state, without visiting each node.
        let worst = seen
            .failing
            .iter()
            .copied()
            .fold(State::Operational, State::worst);
        match rule.stale.state() {
            Some(s) if seen.stale => worst.worst(s),
            _ => worst,
        }
    };
    if seen.stale && !seen.live {
        worst.worst(State::Unknown)
    } else {
        worst
    }
}

/// A store's query that looks for a component's worst failing state tries every failing
/// state, worst first: the states it names after `THEN '`, in order (for both stores'
/// tests).
pub fn assert_worst_first(sql: &str) {
    let looked: Vec<&str> = sql
        .split("THEN '")
        .skip(1)
        .map(|s| s.split('\'').next().unwrap_or_default())
        .collect();
    let mut want: Vec<State> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Operational)
        .collect();
    want.sort_by_key(|s| std::cmp::Reverse(s.severity()));
    assert_eq!(
        looked,
        want.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "the refresh must try every failing state, worst first"
    );
}

/// What a store holds of who speaks for a node (the reporter columns of its row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reporters {
    /// The reporter the node's marks are in.
    pub reporter: Option<String>,
    pub reporter_peer: Option<String>,
    /// The reporter it last contended with (or replaced).
    pub rival: Option<String>,
    pub rival_peer: Option<String>,
    pub rival_seen_at: Option<i64>,
    /// Since when two live reporters alternate on the node's credential.
    pub conflict_since: Option<i64>,
    /// When the node (its reporter) was last heard.
    pub last_seen_at: Option<i64>,
}

/// Who may speak for a node now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// The reporter its marks are in.
    Same,
    /// A new reporter takes over (the node reinstalled, its Monit restarted, its way in
    /// changed): its marks start anew.
    New,
    /// Two live reporters alternate: refused.
    Refuse(Conflict),
}

/// Judge a report's reporter against the node's (see `Spool::record_reports`), and say what
/// the store holds of its reporters afterwards:
/// - the node's reporter speaks, unless the rival it contends with was heard within the
///   window (then both are refused until one of them falls silent);
/// - another reporter takes over, unless it is the rival the node's live reporter replaced,
///   or the node is in conflict: two live reporters alternate on one credential, and no
///   order between their sequences exists, so neither is taken.
///
/// Every report of the node's reporter moves its last-seen time, taken or not, so a conflict
/// ends only once one side has been silent for the whole window.
pub fn judge_reporter(held: &Reporters, now: i64, id: Identity<'_>) -> (Judged, Reporters) {
    let live = |t: Option<i64>| t.is_some_and(|t| now - t < id.window_ms);
    let conflict_of = |since: i64, rival: &str, rival_peer: &str| Conflict {
        reporter: held.reporter.clone().unwrap_or_default(),
        peer: held.reporter_peer.clone().unwrap_or_default(),
        rival: rival.to_string(),
        rival_peer: rival_peer.to_string(),
        since,
    };
    let mut next = held.clone();
    match held.reporter.as_deref() {
        Some(cur) if cur == id.reporter => {
            next.reporter_peer = Some(id.peer.to_string());
            if held.conflict_since.is_some() && live(held.rival_seen_at) {
                next.last_seen_at = Some(now);
                let mut c = conflict_of(
                    held.conflict_since.unwrap_or(now),
                    held.rival.as_deref().unwrap_or_default(),
                    held.rival_peer.as_deref().unwrap_or_default(),
                );
                c.peer = id.peer.to_string();
                return (Judged::Refuse(c), next);
            }
            next.conflict_since = None;
            (Judged::Same, next)
        }
        Some(_)
            if (held.rival.as_deref() == Some(id.reporter) || held.conflict_since.is_some())
                && live(held.last_seen_at) =>
        {
            let since = held.conflict_since.unwrap_or(now);
            next.conflict_since = Some(since);
            next.rival = Some(id.reporter.to_string());
            next.rival_peer = Some(id.peer.to_string());
            next.rival_seen_at = Some(now);
            (
                Judged::Refuse(conflict_of(since, id.reporter, id.peer)),
                next,
            )
        }
        _ => {
            next.rival = held.reporter.clone();
            next.rival_peer = held.reporter_peer.clone();
            next.rival_seen_at = held.last_seen_at;
            next.reporter = Some(id.reporter.to_string());
            next.reporter_peer = Some(id.peer.to_string());
            next.conflict_since = None;
            (Judged::New, next)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statusrelay_core::nodes::{NodeRule, Via};

    fn rule(_: &str) -> NodeRule {
        NodeRule::default()
    }

    fn report<'a>(
        order: (i64, i64),
        snapshot: Snapshot<'a>,
        identity: Option<Identity<'a>>,
    ) -> NodeReport<'a> {
        NodeReport {
            node: "db1",
            order,
            snapshot,
            via: Via::Relay,
            period_ms: None,
            rule_of: &rule,
            keep: &[],
            identity,
        }
    }

    fn marks(whole: Option<(i64, i64)>, feeds: &[(&str, (i64, i64))]) -> Marks {
        Marks {
            whole,
            reporter: Some("relay:a".into()),
            feeds: feeds.iter().map(|(c, m)| (c.to_string(), *m)).collect(),
            ..Marks::default()
        }
    }

    /// The verdict as a line: what a table of cases can say.
    fn said(v: &Verdict<'_>) -> String {
        match v {
            Verdict::Outdated { mark } => format!("outdated {mark:?}"),
            Verdict::Apply {
                fresh,
                dropped,
                whole,
                outdated,
                routine,
            } => format!(
                "apply {fresh:?} drop {dropped:?}{}{}{}",
                if *whole { " whole" } else { "" },
                outdated
                    .map(|m| format!(" outdated {m:?}"))
                    .unwrap_or_default(),
                if *routine { " routine" } else { "" }
            ),
        }
    }

    #[test]
    fn a_table_of_reports_and_what_becomes_of_them() {
        let web_db = vec!["web".to_string(), "db".to_string()];
        let web = vec!["web".to_string()];
        let a = Identity {
            reporter: "relay:a",
            peer: "192.0.2.1",
            window_ms: 60_000,
        };
        let b = Identity {
            reporter: "relay:b",
            ..a
        };
        let fed = [("web", (1, 5)), ("db", (1, 5))];
        let stale = Marks {
            stale: true,
            ..marks(Some((1, 5)), &fed)
        };
        let conflict = Marks {
            conflict: true,
            ..marks(Some((1, 5)), &fed)
        };
        let cases: Vec<(&str, Marks, NodeReport<'_>, &str)> = vec![
            (
                "the next whole report of the node's own reporter",
                marks(Some((1, 5)), &fed),
                report((1, 6), Snapshot::Node(&web_db), Some(a)),
                "apply [\"web\", \"db\"] drop [] whole routine",
            ),
            (
                "a whole report that no longer names a component drops it",
                marks(Some((1, 5)), &fed),
                report((1, 6), Snapshot::Node(&web), Some(a)),
                "apply [\"web\"] drop [\"db\"] whole",
            ),
            (
                "a retried whole report",
                marks(Some((1, 5)), &fed),
                report((1, 5), Snapshot::Node(&web_db), Some(a)),
                "outdated (1, 5)",
            ),
            (
                "an older run's report",
                marks(Some((2, 1)), &fed),
                report((1, 9), Snapshot::Node(&web_db), None),
                "outdated (2, 1)",
            ),
            (
                "a component's report older than its own mark, newer than the node's",
                marks(Some((1, 5)), &[("web", (1, 8))]),
                report((1, 7), Snapshot::Components(&web), None),
                "outdated (1, 8)",
            ),
            (
                "a component's report newer than its mark",
                marks(Some((1, 5)), &[("web", (1, 8))]),
                report((1, 9), Snapshot::Components(&web), None),
                "apply [\"web\"] drop [] routine",
            ),
            (
                "a first report on a component: applied, never routine",
                marks(None, &[]),
                report((1, 1), Snapshot::Components(&web), None),
                "apply [\"web\"] drop []",
            ),
            (
                "an outdated report of a stale node brings it back",
                stale.clone(),
                report((1, 5), Snapshot::Node(&web_db), Some(a)),
                "apply [] drop [] whole outdated (1, 5)",
            ),
            (
                "a newer report of a stale node is applied, never routine",
                stale,
                report((1, 6), Snapshot::Node(&web_db), Some(a)),
                "apply [\"web\", \"db\"] drop [] whole",
            ),
            (
                "another reporter's report is never routine",
                marks(Some((1, 5)), &fed),
                report((1, 6), Snapshot::Node(&web_db), Some(b)),
                "apply [\"web\", \"db\"] drop [] whole",
            ),
            (
                "nor is one while two reporters contend",
                conflict,
                report((1, 6), Snapshot::Node(&web_db), Some(a)),
                "apply [\"web\", \"db\"] drop [] whole",
            ),
        ];
        let mut failed = Vec::new();
        for (what, m, r, want) in &cases {
            let got = said(&judge(m, r));
            if got != *want {
                failed.push(format!("{what}: got {got}, want {want}"));
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn who_speaks_for_a_node_and_what_is_written_back() {
        let a = Identity {
            reporter: "relay:a",
            peer: "192.0.2.1",
            window_ms: 60_000,
        };
        let b = Identity {
            reporter: "relay:b",
            peer: "192.0.2.2",
            ..a
        };
        let held = Reporters {
            reporter: Some("relay:a".into()),
            reporter_peer: Some("192.0.2.1".into()),
            last_seen_at: Some(1_000),
            ..Reporters::default()
        };
        // The same reporter again, from the same address: nothing to write.
        assert_eq!(
            judge_reporter(&held, 2_000, a),
            (Judged::Same, held.clone())
        );
        // Another reporter while the first was heard within the window: it takes over (the
        // node reinstalled), the first becomes the rival.
        let (j, after_b) = judge_reporter(&held, 2_000, b);
        assert_eq!(j, Judged::New);
        assert_eq!(after_b.reporter.as_deref(), Some("relay:b"));
        assert_eq!(after_b.rival.as_deref(), Some("relay:a"));
        assert_eq!(after_b.rival_seen_at, Some(1_000));
        // The replaced reporter back while its successor is live: both refused from now on.
        let heard_b = Reporters {
            last_seen_at: Some(2_500),
            ..after_b
        };
        let (j, in_conflict) = judge_reporter(&heard_b, 3_000, a);
        assert!(matches!(j, Judged::Refuse(ref c) if c.since == 3_000 && c.rival == "relay:a"));
        assert_eq!(in_conflict.conflict_since, Some(3_000));
        let (j, _) = judge_reporter(&in_conflict, 3_100, b);
        assert!(matches!(j, Judged::Refuse(ref c) if c.since == 3_000 && c.peer == "192.0.2.2"));
        // Once the rival has been silent for the whole window, the reporter speaks again.
        let (j, after) = judge_reporter(&in_conflict, 3_000 + 60_000, b);
        assert_eq!(j, Judged::Same);
        assert_eq!(after.conflict_since, None);
    }
}
