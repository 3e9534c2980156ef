//! Reports that change nothing (the steady state: a node's status document every poll cycle,
//! a relay's heartbeat snapshot) are not recorded one by one: no event row, no transaction of
//! their own. The aggregator keeps them in memory and writes when the node was seen and how new
//! its word is, for every such node at once, about once a second (`touch_nodes`).
//!
//! Invariants:
//! - A report is a no-op only if the recording transaction's own decision (`judge`, on the
//!   marks read from the spool) calls it routine (newer than the marks there, the node not
//!   stale, feeding no component it did not before nor, whole, dropping one) and it names
//!   exactly the failing tests the node has in every component it speaks for. Anything else
//!   goes through `record_reports`.
//! - `touch_nodes` only moves marks forward: a touch older than what the spool has changes no
//!   mark. Last-seen times are the aggregator's wall clock as it was, shown to the operator
//!   and never used to judge silence (that is measured on a monotonic clock, see
//!   `Spool::apply_silence`).
//! - A report from a reporter other than the node's, or while the node is in conflict, is
//!   never a no-op: it goes through `record_reports`, which judges it.

use rusqlite::params;

use super::*;

/// A failing test as a store holds it: (component, service, test, state).
pub type FailingRow = (String, String, String, String);

/// Does a report's list of test changes name exactly the failing tests the store holds for
/// the node where it speaks (`have`, kept services left out)? A recovery in it is a change,
/// never a no-op.
pub fn names_what_is_recorded(mut have: Vec<FailingRow>, applies: &[Apply]) -> bool {
    let mut want: Vec<FailingRow> = Vec::with_capacity(applies.len());
    for a in applies {
        let TestChange::Fail(state) = &a.change else {
            return false;
        };
        want.push((
            a.component.clone(),
            a.service.clone(),
            a.test.to_string(),
            state.as_str().to_string(),
        ));
    }
    have.sort();
    want.sort();
    want.dedup();
    have == want
}

/// What an unchanged report leaves: when the node was seen, and how new its word is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub node: String,
    pub at: i64,
    pub via: statusrelay_core::nodes::Via,
    pub period_ms: Option<i64>,
    /// A whole-node report's order (the node's mark).
    pub whole: Option<(i64, i64)>,
    /// The order of the report per component it spoke for.
    pub components: Vec<(String, (i64, i64))>,
}

impl Spool {
    /// Would recording this report change nothing but the node's liveness and marks? (See the
    /// module's invariants.) A read, no lock.
    pub fn report_is_noop(&self, report: &NodeReport<'_>, applies: &[Apply]) -> Result<bool> {
        // The transaction's own decision (`judge`): only a routine report may skip it.
        let Some(mut marks) =
            crate::report::read_marks(&self.conn, report.node).map_err(self.err())?
        else {
            return Ok(false);
        };
        marks.feeds = crate::report::read_feeds(&self.conn, report.node).map_err(self.err())?;
        if !matches!(
            crate::judge(&marks, report),
            crate::Verdict::Apply { routine: true, .. }
        ) {
            return Ok(false);
        }
        let scope = match report.snapshot {
            Snapshot::Components(c) | Snapshot::Node(c) => c,
        };
        let mut have: Vec<FailingRow> = Vec::new();
        {
            let mut st = self
                .conn
                .prepare_cached(
                    "SELECT service, test, state FROM tests
                     WHERE component = ?1 AND host = ?2 AND state IS NOT NULL",
                )
                .map_err(self.err())?;
            for c in scope {
                let rows = st
                    .query_map(params![c, report.node], |r| {
                        Ok((c.clone(), r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(self.err())?;
                for row in rows {
                    let row = row.map_err(self.err())?;
                    // Kept rows are not the report's to match (see `NodeReport::keep`).
                    if !report.keep.contains(&row.1) {
                        have.push(row);
                    }
                }
            }
        }
        Ok(names_what_is_recorded(have, applies))
    }

    /// Write what unchanged reports left, in one transaction; marks and times only move forward.
    pub fn touch_nodes(&mut self, touches: &[Touch]) -> Result<()> {
        if touches.is_empty() {
            return Ok(());
        }
        self.write(|tx, e| {
            for t in touches {
                tx.prepare_cached(
                    "UPDATE nodes SET last_seen_at = ?2, via = ?3,
                       period_ms = coalesce(?4, period_ms) WHERE name = ?1",
                )
                .and_then(|mut st| st.execute(params![t.node, t.at, t.via.as_str(), t.period_ms]))
                .map_err(e)?;
                if let Some((epoch, seq)) = t.whole {
                    tx.prepare_cached(
                        "UPDATE nodes SET epoch = ?2, last_seq = ?3 WHERE name = ?1
                           AND (last_seq IS NULL OR epoch < ?2 OR (epoch = ?2 AND last_seq < ?3))",
                    )
                    .and_then(|mut st| st.execute(params![t.node, epoch, seq]))
                    .map_err(e)?;
                }
                for (c, (epoch, seq)) in &t.components {
                    tx.prepare_cached(
                        "UPDATE feeds SET epoch = ?3, seq = ?4 WHERE node = ?1 AND component = ?2
                           AND (epoch < ?3 OR (epoch = ?3 AND seq < ?4))",
                    )
                    .and_then(|mut st| st.execute(params![t.node, c, epoch, seq]))
                    .map_err(e)?;
                }
            }
            Ok(())
        })
    }
}
