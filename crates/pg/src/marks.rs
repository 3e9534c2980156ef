//! What the PostgreSQL store holds of a node while its reports are recorded (`reports`): its
//! marks, what it feeds and its reporters, read (alone, or as a group locks them), kept in
//! memory as the group's reports move them, and moved in the database.
//!
//! Invariants:
//! - One set of columns for both reads (`marks_columns!`), mapped by one function
//!   (`marks_of`): what a group holds of a node is what a read would return.
//! - What `keep` holds after a report is what the report's writes left in the row
//!   (`move_marks`, the reporters' row): the conformance suite's groups of one node's reports
//!   compare it with the SQLite spool, which reads the row again each time.

use std::collections::HashMap;

use postgres::types::ToSql;
use statusrelay_core::mapping::TestKey;
use statusrelay_spool::{EventStatus, Marks, NewEvent, NodeReport, Reporters};

use crate::PgError;
use crate::record::{EventRow, insert_event_sql};
use crate::store::Tx;

/// A node's marks, what it feeds and its reporters: the columns after `name` of
/// `READ_MARKS_SQL` and `LOCK_AND_READ_SQL`.
macro_rules! marks_columns {
    () => {
        "epoch, last_seq, stale_since, reporter, reporter_peer, rival, rival_peer,
         rival_seen_at, conflict_since, last_seen_at,
         ARRAY(SELECT component FROM feeds WHERE node = name ORDER BY component),
         ARRAY(SELECT epoch FROM feeds WHERE node = name ORDER BY component),
         ARRAY(SELECT seq FROM feeds WHERE node = name ORDER BY component)"
    };
}

pub(crate) const READ_MARKS_SQL: &str = concat!(
    "SELECT name, ",
    marks_columns!(),
    " FROM nodes WHERE name = $1"
);

/// The group's nodes locked (by name, as every transaction takes them: `locks`) and read in
/// the same statement.
pub(crate) const LOCK_AND_READ_SQL: &str = concat!(
    "SELECT name, ",
    marks_columns!(),
    " FROM nodes WHERE name = ANY($1) ORDER BY name FOR UPDATE"
);

/// What a group's transaction holds of each node it locked: read once, as it locks them, then
/// moved in memory exactly as its reports move the rows (`report_tx`), so each report is
/// judged against what a read would return.
pub(crate) type HeldNodes = HashMap<String, (Marks, Reporters)>;

pub(crate) fn marks_of(r: &postgres::Row) -> (String, (Marks, Reporters)) {
    let reporters = Reporters {
        reporter: r.get(4),
        reporter_peer: r.get(5),
        rival: r.get(6),
        rival_peer: r.get(7),
        rival_seen_at: r.get(8),
        conflict_since: r.get(9),
        last_seen_at: r.get(10),
    };
    let (components, epochs, seqs): (Vec<String>, Vec<i64>, Vec<i64>) =
        (r.get(11), r.get(12), r.get(13));
    let marks = Marks {
        whole: r.get::<_, Option<i64>>(2).map(|s| (r.get(1), s)),
        stale: r.get::<_, Option<i64>>(3).is_some(),
        reporter: reporters.reporter.clone(),
        conflict: reporters.conflict_since.is_some(),
        feeds: components
            .into_iter()
            .zip(epochs.into_iter().zip(seqs))
            .collect(),
    };
    (r.get(0), (marks, reporters))
}

/// The node's marks, with what it feeds, and its reporters, in one statement; None for a
/// node the store does not know.
pub(crate) fn read_marks(
    tx: &mut Tx<'_, '_>,
    node: &str,
) -> Result<Option<(Marks, Reporters)>, PgError> {
    Ok(tx
        .query_opt(READ_MARKS_SQL, &[&node])?
        .map(|r| marks_of(&r).1))
}

/// Keep what the node's row now holds for the group's next reports: its marks, with the
/// reporter and conflict its reporters' row says (as a read would derive them).
pub(crate) fn keep(nodes: &mut HeldNodes, node: &str, mut marks: Marks, row: Reporters) {
    marks.reporter = row.reporter.clone();
    marks.conflict = row.conflict_since.is_some();
    nodes.insert(node.to_string(), (marks, row));
}

/// The node's marks moved by an applied report (the spool's `move_marks`), and its event
/// recorded: the event, what the node feeds and its row in one statement (one round trip of
/// the few a report costs).
pub(crate) fn move_marks(
    tx: &mut Tx<'_, '_>,
    now: i64,
    report: &NodeReport<'_>,
    (ev, status): (&NewEvent, EventStatus),
    (fresh, dropped): (&[&str], &[String]),
    back: bool,
    whole_mark: bool,
) -> Result<i64, PgError> {
    if !dropped.is_empty() {
        tx.execute(
            "DELETE FROM feeds WHERE node = $1 AND component = ANY($2)",
            &[&report.node, &dropped],
        )?;
    }
    if back {
        tx.execute(
            "UPDATE feeds SET stale = false WHERE node = $1",
            &[&report.node],
        )?;
    }
    let row = EventRow::new(ev, now, status);
    let (test, effect) = (
        ev.test.as_ref().map(TestKey::as_str),
        ev.effect.map(|x| x.as_str()),
    );
    let via = report.via.as_str();
    let more: [&(dyn ToSql + Sync); 7] = [
        &report.node,
        &fresh,
        &report.order.0,
        &report.order.1,
        &via,
        &report.period_ms,
        &whole_mark,
    ];
    Ok(tx
        .query_one(
            concat!(
                "WITH f AS (
                   INSERT INTO feeds (node, component, epoch, seq, since)
                   SELECT $12, c, $14, $15, $1 FROM (SELECT DISTINCT unnest($13::text[]) AS c) cs
                   ON CONFLICT (node, component) DO UPDATE
                     SET epoch = excluded.epoch, seq = excluded.seq),
                 n AS (
                   UPDATE nodes SET last_seen_at = $1, via = $16,
                     period_ms = coalesce($17, period_ms), heard_at = now(), stale_since = NULL,
                     epoch = CASE WHEN $18 THEN $14 ELSE epoch END,
                     last_seq = CASE WHEN $18 THEN $15 ELSE last_seq END
                   WHERE name = $12)
                 ",
                insert_event_sql!()
            ),
            &row.with(&more, &test, &effect),
        )?
        .get(0))
}
