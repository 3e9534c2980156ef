//! Writes the aggregator does not make: a report that changes nothing is noted in memory.
//!
//! Invariants:
//! - When none of a request's reports would change anything (the steady state), no event row
//!   and no transaction is written: the node is noted as seen, with how new its word is.
//! - What is noted is written about once a second (the sweep), at shutdown, and in the
//!   group's commit before anything else is recorded (`group`), so the spool's marks are
//!   always checked against the newest word. A report not newer than a noted mark goes the
//!   recorded way (and is found outdated there).

use statusrelay_spool::store::Reports;
use statusrelay_spool::{Apply, NewEvent, NodeReport, Snapshot, Touch};

use crate::store::{Store, StoreFailure};

use crate::ingest::Memory;

/// Per node, what unchanged reports left to write.
pub(crate) type Pending = std::collections::BTreeMap<String, Touch>;

/// Write what unchanged reports left.
pub(crate) fn write_touches(spool: &mut Store, memory: &mut Memory) -> Result<(), StoreFailure> {
    let touches: Vec<Touch> = memory.pending.values().cloned().collect();
    spool.touch_nodes(&touches)?;
    memory.pending.clear();
    Ok(())
}

/// Would recording these reports (one request's, of one node) change nothing? Read from
/// the spool (see `Spool::report_is_noop`), unless memory holds a mark at least as new, which
/// the spool has not seen yet: then the recorded way judges it.
pub(crate) fn unchanged(
    spool: &mut Store,
    memory: &Memory,
    reports: &[(&NodeReport<'_>, &NewEvent, &[Apply])],
) -> Result<bool, StoreFailure> {
    let Some(node) = reports.first().map(|r| r.0.node) else {
        return Ok(true);
    };
    let covered = |r: &NodeReport<'_>| {
        memory.pending.get(node).is_some_and(|t| match r.snapshot {
            Snapshot::Node(_) => t.whole.is_some_and(|m| m >= r.order),
            Snapshot::Components(cs) => cs
                .iter()
                .any(|c| t.components.iter().any(|(tc, m)| tc == c && *m >= r.order)),
        })
    };
    for (r, _, applies) in reports {
        if covered(r) || !spool.report_is_noop(r, applies)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Note unchanged reports in memory: their node seen now, its word as new as their marks.
pub(crate) fn note(
    memory: &mut Memory,
    now: i64,
    reports: &[(&NodeReport<'_>, &NewEvent, &[Apply])],
) {
    for (r, _, _) in reports {
        note_one(&mut memory.pending, now, r);
    }
}

/// Note an unchanged report in memory: its node seen now, its word as new as its mark.
fn note_one(pending: &mut Pending, now: i64, r: &NodeReport<'_>) {
    let node = r.node;
    let t = pending.entry(node.to_string()).or_insert_with(|| Touch {
        node: node.to_string(),
        at: now,
        via: r.via,
        period_ms: None,
        whole: None,
        components: Vec::new(),
    });
    t.at = now;
    t.via = r.via;
    t.period_ms = r.period_ms.or(t.period_ms);
    let scope = match r.snapshot {
        Snapshot::Node(cs) => {
            t.whole = Some(t.whole.map_or(r.order, |m| m.max(r.order)));
            cs
        }
        Snapshot::Components(cs) => cs,
    };
    for c in scope {
        match t.components.iter_mut().find(|(tc, _)| tc == c) {
            Some((_, m)) => *m = (*m).max(r.order),
            None => t.components.push((c.clone(), r.order)),
        }
    }
}
