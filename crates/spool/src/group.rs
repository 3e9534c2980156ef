//! A group of reports recorded in one transaction computes each component once, at the end.
//!
//! Invariants:
//! - Every component a report of the group asked to compute (its tests changed, a node began
//!   or stopped feeding it, a stale node came back) is computed exactly once, after every
//!   report of the group is written: the state committed is the one the whole group leaves.
//! - The change goes with the last report that asked for the component: its event and its
//!   words are the delivery's. A state the group passed through on the way is never queued;
//!   the flusher would have coalesced it anyway, since a claim takes only the newest
//!   delivery of a component and the group commits at once.
//! - By component name, so the queue's order does not depend on the reports' order, and the
//!   same group queues the same rows on every store.

use statusrelay_core::nodes::NodeRule;

use crate::{Change, Recorded, Reported};

/// A report written, its components not yet computed: what every store's group commit keeps
/// of each report until the group's end.
pub struct Written {
    pub reported: Reported,
    /// The report's event, when it recorded one.
    pub event_id: Option<i64>,
    /// The components it changed: computed once for the whole group.
    pub compute: Vec<(String, NodeRule)>,
}

impl Written {
    /// A report that wrote nothing to compute (refused, outdated, a node unknown).
    pub fn only(reported: Reported) -> Written {
        Written {
            reported,
            event_id: None,
            compute: Vec::new(),
        }
    }

    /// An applied report's event and what it asks to compute; `outdated`: applied in part,
    /// answered as outdated against that mark.
    pub fn applied(
        event_id: i64,
        compute: Vec<(String, NodeRule)>,
        outdated: Option<(i64, i64)>,
        order: (i64, i64),
    ) -> Written {
        let reported = match outdated {
            Some(mark) => Reported::outdated(mark, order),
            None => Reported::Applied(Recorded {
                event_id,
                changes: Vec::new(),
            }),
        };
        Written {
            reported,
            event_id: Some(event_id),
            compute,
        }
    }
}

/// A group's reports as written, finished by computing each component once (see the module's
/// invariants).
pub struct Group {
    written: Vec<Written>,
}

impl Group {
    pub fn new(written: Vec<Written>) -> Group {
        Group { written }
    }

    /// The components to compute, by name (a store locks them first).
    pub fn components(&self) -> Vec<String> {
        group_computes(&self.asked())
            .iter()
            .map(|g| g.component.to_string())
            .collect()
    }

    fn asked(&self) -> Vec<Vec<(&str, NodeRule)>> {
        self.written
            .iter()
            .map(|w| w.compute.iter().map(|(c, r)| (c.as_str(), *r)).collect())
            .collect()
    }

    /// Compute each component once with `refresh(component, rule, event_id, report index)`;
    /// a change goes with the last report that asked for it, when that one was applied.
    pub fn finish<E>(
        self,
        mut refresh: impl FnMut(&str, NodeRule, i64, usize) -> Result<Option<Change>, E>,
    ) -> Result<Vec<Reported>, E> {
        let asked = self.asked();
        let mut changes: Vec<(usize, Change)> = Vec::new();
        for g in group_computes(&asked) {
            let Some(event_id) = self.written[g.report].event_id else {
                continue;
            };
            if let Some(c) = refresh(g.component, g.rule, event_id, g.report)? {
                changes.push((g.report, c));
            }
        }
        let mut out: Vec<Reported> = self.written.into_iter().map(|w| w.reported).collect();
        for (i, c) in changes {
            if let Reported::Applied(r) = &mut out[i] {
                r.changes.push(c);
            }
        }
        Ok(out)
    }
}

/// One component to compute for a group: its rule, and the index (in the group) of the last
/// report that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCompute<'a> {
    pub component: &'a str,
    pub rule: NodeRule,
    pub report: usize,
}

/// The components the group's reports asked to compute (`asked[i]`, report `i`'s), each
/// once, by name, with the last report that asked for it.
pub fn group_computes<'a>(asked: &[Vec<(&'a str, NodeRule)>]) -> Vec<GroupCompute<'a>> {
    let mut out: Vec<GroupCompute<'a>> = Vec::new();
    for (i, list) in asked.iter().enumerate() {
        for &(component, rule) in list {
            match out.iter_mut().find(|g| g.component == component) {
                Some(g) => {
                    g.rule = rule;
                    g.report = i;
                }
                None => out.push(GroupCompute {
                    component,
                    rule,
                    report: i,
                }),
            }
        }
    }
    out.sort_by(|a, b| a.component.cmp(b.component));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_once_by_name_with_the_last_report_that_asked() {
        let r = NodeRule::default();
        let asked = vec![
            vec![("web", r), ("api", r)],
            vec![],
            vec![("api", r), ("db", r)],
            vec![("web", r)],
        ];
        let got: Vec<(&str, usize)> = group_computes(&asked)
            .iter()
            .map(|g| (g.component, g.report))
            .collect();
        assert_eq!(got, vec![("api", 2), ("db", 2), ("web", 3)]);
    }

    #[test]
    fn a_group_that_asked_for_nothing_computes_nothing() {
        assert!(group_computes(&[vec![], vec![]]).is_empty());
    }
}
