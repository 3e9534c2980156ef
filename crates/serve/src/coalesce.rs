//! Writes the aggregator does not make: a report that changes nothing is noted in memory.
//!
//! Invariants:
//! - When none of a request's reports would change anything (the steady state), no event row
//!   and no transaction is written: the node is noted as seen, with how new its word is.
//! - What is noted is written about once a second (the sweep), at shutdown, and before
//!   anything else is recorded, so the spool's marks are always checked against the newest
//!   word. A report not newer than a noted mark goes the recorded way (and is found outdated
//!   there).

use statusrelay_spool::{
    Apply, NewEvent, NodeReport, Reported, Snapshot, Spool, SpoolError, Touch,
};

use crate::ingest::Memory;

/// Per node, what unchanged reports left to write.
pub(crate) type Pending = std::collections::BTreeMap<String, Touch>;

/// Write what unchanged reports left.
pub(crate) fn write_touches(spool: &mut Spool, memory: &mut Memory) -> Result<(), SpoolError> {
    let touches: Vec<Touch> = memory.pending.values().cloned().collect();
    spool.touch_nodes(&touches)?;
    memory.pending.clear();
    Ok(())
}

/// Record a node's reports, or, when none of them would change anything, only note them (see
/// the module's invariants).
pub(crate) fn record_or_touch(
    spool: &mut Spool,
    memory: &mut Memory,
    now: i64,
    reports: &[(&NodeReport<'_>, &NewEvent, &[Apply])],
) -> Result<Vec<Reported>, SpoolError> {
    let Some(node) = reports.first().map(|r| r.0.node) else {
        return Ok(Vec::new());
    };
    let pending = &mut memory.pending;
    let covered = |r: &NodeReport<'_>| {
        pending.get(node).is_some_and(|t| match r.snapshot {
            Snapshot::Node(_) => t.whole.is_some_and(|m| m >= r.order),
            Snapshot::Components(cs) => cs
                .iter()
                .any(|c| t.components.iter().any(|(tc, m)| tc == c && *m >= r.order)),
        })
    };
    let mut noop = true;
    for (r, _, applies) in reports {
        if covered(r) || !spool.report_is_noop(r, applies)? {
            noop = false;
            break;
        }
    }
    if !noop {
        write_touches(spool, memory)?;
        return spool.record_reports(reports);
    }
    for (r, _, _) in reports {
        note(pending, node, now, r);
    }
    Ok(reports
        .iter()
        .map(|_| Reported::Applied(statusrelay_spool::Recorded::default()))
        .collect())
}

/// Note an unchanged report of `node` in memory: seen now, its word as new as `r`'s mark.
fn note(pending: &mut Pending, node: &str, now: i64, r: &NodeReport<'_>) {
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
