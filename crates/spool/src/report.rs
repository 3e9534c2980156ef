//! Recording a node's report on the aggregator: who may speak for the node, the one decision
//! on the report (`judge`), the node's marks moved, and its test changes written through
//! `record::write_tx`, in the caller's transaction; a group's components computed once at
//! its end (`group_computes`).
//!
//! Invariants:
//! - A report applies to a component only where it is newer than the last report applied
//!   there and than the node's last whole report (see `judge`); a retried or delayed one
//!   changes nothing and is acknowledged as outdated.
//! - A new reporter starts a new sequence; two live reporters alternating on one credential
//!   are both refused until one falls silent (`judge_reporter`).
//! - A node that reports is alive, whatever its report is worth; a stale node that reports is
//!   back, and every component it feeds is recomputed.

use std::collections::BTreeMap;

use super::*;
use crate::judge::{Judged, Reporters};
use crate::record::{At, Clear, How, exec, refresh_desired, write_tx};
use crate::{Group, Written};

impl Spool {
    /// Record a node's report (`statusrelay serve`): its test changes, and for a snapshot the
    /// recovery of every test the node reported failing before and no longer does, in one
    /// transaction with the node's sequence guard. A report that is not newer than the last one
    /// applied from that node changes nothing, so a delayed or retried older report never
    /// overrides a newer one, and acknowledging it again is safe.
    pub fn record_report(
        &mut self,
        report: &NodeReport<'_>,
        ev: &NewEvent,
        applies: &[Apply],
    ) -> Result<Reported> {
        Ok(self
            .record_reports(&[(report, ev, applies)])?
            .pop()
            .unwrap_or(Reported::UnknownNode))
    }

    /// Several reports (one request of a node, or of several) in one transaction, each with
    /// its node's sequence guard, in order; then each component they changed computed once
    /// (`group_computes`), its change with the last report that asked for it.
    pub fn record_reports(
        &mut self,
        reports: &[(&NodeReport<'_>, &NewEvent, &[Apply])],
    ) -> Result<Vec<Reported>> {
        let now = self.now();
        let (path, file) = (self.path.clone(), self.file);
        self.write(|tx, e| {
            let at = At {
                path: &path,
                file,
                now,
                aggregator: true,
            };
            let written = reports
                .iter()
                .map(|(report, ev, applies)| report_tx(tx, e, &at, report, ev, applies))
                .collect::<Result<Vec<_>>>()?;
            Group::new(written).finish(|component, rule, event_id, i| {
                let message = reports[i].1.description.as_deref();
                refresh_desired(
                    tx, at.path, at.file, component, rule, event_id, message, now, true,
                )
            })
        })
    }
}

/// The marks the spool holds of a node (its feeds read apart, see [`read_feeds`]); None for
/// a node it does not know.
pub(crate) fn read_marks(
    conn: &rusqlite::Connection,
    node: &str,
) -> rusqlite::Result<Option<Marks>> {
    conn.prepare_cached(REPORT_NODE_SQL)?
        .query_row([node], |r| {
            let (epoch, last_seq): (i64, Option<i64>) = (r.get(0)?, r.get(1)?);
            Ok(Marks {
                whole: last_seq.map(|s| (epoch, s)),
                stale: r.get::<_, Option<i64>>(2)?.is_some(),
                reporter: r.get(3)?,
                conflict: r.get::<_, Option<i64>>(4)?.is_some(),
                feeds: BTreeMap::new(),
            })
        })
        .optional()
}

/// Per component a node feeds, the mark of the last report applied there.
pub(crate) fn read_feeds(
    conn: &rusqlite::Connection,
    node: &str,
) -> rusqlite::Result<BTreeMap<String, (i64, i64)>> {
    conn.prepare_cached(REPORT_FEEDS_SQL)?
        .query_map([node], |r| {
            Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
        })?
        .collect()
}

pub(crate) const REPORT_NODE_SQL: &str =
    "SELECT epoch, last_seq, stale_since, reporter, conflict_since FROM nodes WHERE name = ?1";
pub(crate) const REPORT_FEEDS_SQL: &str = "SELECT component, epoch, seq FROM feeds WHERE node = ?1";

/// One node report inside the caller's transaction (see `Spool::record_reports`).
///
/// A report applies to each component it speaks for only where it is newer than the last
/// report applied there (and than the node's last whole report); a whole-node report also
/// clears a component the node no longer feeds. A stale node that reports is back: every
/// component it feeds is recomputed.
fn report_tx(
    tx: &rusqlite::Transaction<'_>,
    e: &dyn Fn(rusqlite::Error) -> SpoolError,
    at: &At<'_>,
    report: &NodeReport<'_>,
    ev: &NewEvent,
    applies: &[Apply],
) -> Result<Written> {
    let Some(mut marks) = read_marks(tx, report.node).map_err(e)? else {
        return Ok(Written::only(Reported::UnknownNode));
    };
    if let Some(id) = report.identity {
        match judge_reporter(tx, at.now, report.node, id).map_err(e)? {
            Judged::Refuse(c) => return Ok(Written::only(Reported::Conflict(c))),
            Judged::Same => {}
            Judged::New => {
                // A new reporter's sequence has nothing to do with the old one's: its marks
                // start anew, so a reinstalled node or a Monit restarted with its clock set
                // back is heard at once.
                exec(
                    tx,
                    "UPDATE nodes SET epoch = 0, last_seq = NULL WHERE name = ?1",
                    [report.node],
                )
                .map_err(e)?;
                exec(
                    tx,
                    "UPDATE feeds SET epoch = ?2, seq = ?2 WHERE node = ?1",
                    params![report.node, i64::MIN],
                )
                .map_err(e)?;
                marks.whole = None;
            }
        }
        // The reporter now speaks for the node, out of any conflict (`judge_reporter`).
        marks.reporter = Some(id.reporter.to_string());
        marks.conflict = false;
    }
    marks.feeds = read_feeds(tx, report.node).map_err(e)?;
    let (fresh, dropped, whole, outdated) = match judge(&marks, report) {
        Verdict::Outdated { mark } => {
            heard(tx, at, report).map_err(e)?;
            return Ok(Written::only(Reported::outdated(mark, report.order)));
        }
        Verdict::Apply {
            fresh,
            dropped,
            whole,
            outdated,
            ..
        } => (fresh, dropped, whole, outdated),
    };
    let back = marks.stale;
    let feeds = marks.feeds;
    let all: Vec<Apply> = applies
        .iter()
        .filter(|a| fresh.contains(&a.component.as_str()))
        .cloned()
        .collect();
    // Where the report replaces the node's word, its failing tests the report does not name
    // pass: cleared set-based in `write_tx` (a service the node has no word on keeps its
    // rows: Monit initialising or not monitoring it, its status 0 means "not checked").
    let clear = Clear {
        node: report.node,
        components: fresh
            .iter()
            .copied()
            .chain(dropped.iter().map(String::as_str))
            .map(|c| (c, (report.rule_of)(c)))
            .collect(),
        keep: report.keep,
    };
    // What the node feeds, and whether it is back, before the states are computed.
    move_marks(
        tx,
        at,
        report,
        &fresh,
        &dropped,
        back,
        whole && outdated.is_none(),
    )
    .map_err(e)?;
    let (event_id, mut compute) = write_tx(
        tx,
        e,
        at,
        ev,
        &all,
        How {
            clear: Some(&clear),
            ..How::default()
        },
    )?;
    // Components whose nodes changed without a test changing (a node's first report on a
    // component, one it no longer feeds, a stale node back) are computed too.
    let mut again: Vec<String> = fresh
        .iter()
        .filter(|c| !feeds.contains_key(**c))
        .map(|c| c.to_string())
        .collect();
    again.extend(dropped);
    if back {
        again.extend(feeds.into_keys());
    }
    for c in again {
        if !compute.iter().any(|(t, _)| *t == c) {
            let rule = (report.rule_of)(&c);
            compute.push((c, rule));
        }
    }
    Ok(Written::applied(event_id, compute, outdated, report.order))
}

/// A node that reports is alive, whatever the report is worth.
fn heard(
    tx: &rusqlite::Transaction<'_>,
    at: &At<'_>,
    report: &NodeReport<'_>,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "UPDATE nodes SET last_seen_at = ?2, via = ?3, period_ms = coalesce(?4, period_ms)
         WHERE name = ?1",
        params![report.node, at.now, report.via.as_str(), report.period_ms],
    )
    .map(|_| ())
}

/// The node's marks moved by an applied report: the components it now feeds and no longer
/// feeds, no longer stale (`back`), and its whole mark when the report was its whole truth
/// (`whole_mark`).
fn move_marks(
    tx: &rusqlite::Transaction<'_>,
    at: &At<'_>,
    report: &NodeReport<'_>,
    fresh: &[&str],
    dropped: &[String],
    back: bool,
    whole_mark: bool,
) -> rusqlite::Result<()> {
    for c in fresh {
        exec(
            tx,
            "INSERT INTO feeds (node, component, epoch, seq, since) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (node, component) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
            params![report.node, c, report.order.0, report.order.1, at.now],
        )?;
    }
    for c in dropped {
        exec(
            tx,
            "DELETE FROM feeds WHERE node = ?1 AND component = ?2",
            params![report.node, c],
        )?;
    }
    if back {
        exec(
            tx,
            "UPDATE feeds SET stale = 0 WHERE node = ?1",
            [report.node],
        )?;
    }
    // Heard, no longer stale, and its whole mark moved: one write of the node's row.
    exec(
        tx,
        "UPDATE nodes SET last_seen_at = ?5, via = ?6, period_ms = coalesce(?7, period_ms),
           stale_since = NULL,
           epoch = CASE WHEN ?2 THEN ?3 ELSE epoch END,
           last_seq = CASE WHEN ?2 THEN ?4 ELSE last_seq END
         WHERE name = ?1",
        params![
            report.node,
            whole_mark,
            report.order.0,
            report.order.1,
            at.now,
            report.via.as_str(),
            report.period_ms
        ],
    )?;
    Ok(())
}

/// Who may speak for the node (`judge::judge_reporter`), its reporters' row written back only
/// when the decision changed it.
fn judge_reporter(
    tx: &rusqlite::Transaction<'_>,
    now: i64,
    node: &str,
    id: crate::Identity<'_>,
) -> rusqlite::Result<Judged> {
    let held = tx
        .prepare_cached(
            "SELECT reporter, reporter_peer, rival, rival_peer, rival_seen_at, conflict_since,
                    last_seen_at FROM nodes WHERE name = ?1",
        )?
        .query_row([node], |r| {
            Ok(Reporters {
                reporter: r.get(0)?,
                reporter_peer: r.get(1)?,
                rival: r.get(2)?,
                rival_peer: r.get(3)?,
                rival_seen_at: r.get(4)?,
                conflict_since: r.get(5)?,
                last_seen_at: r.get(6)?,
            })
        })?;
    let (judged, next) = crate::judge::judge_reporter(&held, now, id);
    if next != held {
        exec(
            tx,
            "UPDATE nodes SET reporter = ?2, reporter_peer = ?3, rival = ?4, rival_peer = ?5,
               rival_seen_at = ?6, conflict_since = ?7, last_seen_at = ?8 WHERE name = ?1",
            params![
                node,
                next.reporter,
                next.reporter_peer,
                next.rival,
                next.rival_peer,
                next.rival_seen_at,
                next.conflict_since,
                next.last_seen_at
            ],
        )?;
    }
    Ok(judged)
}
