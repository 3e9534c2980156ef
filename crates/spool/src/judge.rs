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

use std::collections::BTreeMap;

use crate::{NodeReport, Snapshot};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
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
}
