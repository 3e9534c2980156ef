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
