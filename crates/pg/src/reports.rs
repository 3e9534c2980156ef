//! The nodes' reports on PostgreSQL (`statusrelay_spool::store::Reports`): the SQLite spool's
//! `report` and `record` with the same decisions (`judge`, `judge_reporter`,
//! `desired_state`), for several instances recording at once.
//!
//! Invariants:
//! - One transaction per call. It first locks the rows of every node it records, in name
//!   order (`FOR UPDATE`), and reads them in the same statement: two reports of one node, on
//!   any instances, are recorded one after the other, each judged against the marks the other
//!   left. Within the group, what it read is moved in memory exactly as its reports move the
//!   rows (`HeldNodes`), so a report is judged against what a read would return; the
//!   conformance suite has groups of one node's reports to hold that.
//! - A component's state is computed under a transaction lock of the component
//!   (`pg_advisory_xact_lock`), taken after the transaction wrote its tests and before it
//!   reads them, and held until commit. Every transaction that changes a component's tests
//!   computes it afterwards, so the last computation committed saw every committed test,
//!   whichever instance wrote it: an earlier one committed before the last took the lock.
//! - A group computes each component once, at its end (`group_computes`, as the spool does),
//!   so the components' locks are held for those few statements, not while the reports are
//!   written: two instances write their groups side by side and take turns only to compute.
//! - The locks are taken in one order (`record_once`, with `locks`): the nodes' rows first,
//!   then the components all in one statement. A report's writes touch only its own node's
//!   rows (tests, feeds), which its node's lock guards, so no transaction holding a
//!   component's lock waits on them; should PostgreSQL still abort one, it is run again
//!   whole (`PgStore::retrying`), and nothing of the aborted attempt stays.
//! - Ordering is the database's event sequence, as the spool's is its own: a test is changed
//!   only by an event newer than the one that last changed it.

use statusrelay_core::State;
use statusrelay_core::mapping::TestKey;
use statusrelay_core::nodes::NodeRule;
use statusrelay_spool::store::{ReportIn, Reports};
use statusrelay_spool::{
    Apply, EventStatus, FailingRow, FailingTest, Group, Judged, Marks, NewEvent, NodeReport,
    Reported, Snapshot, Touch, Verdict, Written, judge, judge_reporter, names_what_is_recorded,
};

use crate::locks::lock_components;
use crate::marks::{HeldNodes, LOCK_AND_READ_SQL, keep, marks_of, move_marks, read_marks};
use crate::record::{apply_test, refresh_desired};
use crate::store::{Stmts, Tx, word};
use crate::{PgError, PgStore};

impl Reports for PgStore {
    type Error = PgError;

    fn record_reports(&mut self, reports: &[ReportIn<'_, '_>]) -> Result<Vec<Reported>, PgError> {
        let now = self.now();
        let mut names: Vec<&str> = reports.iter().map(|(r, _, _)| r.node).collect();
        names.sort_unstable();
        names.dedup();
        self.retrying(|client, stmts| record_once(client, stmts, now, &names, reports))
    }

    fn report_is_noop(
        &mut self,
        report: &NodeReport<'_>,
        applies: &[Apply],
    ) -> Result<bool, PgError> {
        // One snapshot for every read (REPEATABLE READ): the marks and the tests agree.
        let tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let mut tx = Tx::new(tx, &mut self.stmts);
        let Some((marks, _)) = read_marks(&mut tx, report.node)? else {
            return Ok(false);
        };
        if !matches!(judge(&marks, report), Verdict::Apply { routine: true, .. }) {
            return Ok(false);
        }
        let (Snapshot::Components(scope) | Snapshot::Node(scope)) = report.snapshot;
        // Kept rows are not the report's to match (see `NodeReport::keep`).
        let have: Vec<FailingRow> = tx
            .query(
                "SELECT component, service, test, state FROM tests
                 WHERE component = ANY($1) AND host = $2 AND state IS NOT NULL
                   AND NOT (service = ANY($3))",
                &[&scope, &report.node, &report.keep],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        tx.commit()?;
        Ok(names_what_is_recorded(have, applies))
    }

    fn touch_nodes(&mut self, touches: &[Touch]) -> Result<(), PgError> {
        if touches.is_empty() {
            return Ok(());
        }
        // In name order, as every transaction takes the nodes' rows (see `record_once`).
        let mut touches: Vec<&Touch> = touches.iter().collect();
        touches.sort_by(|a, b| a.node.cmp(&b.node));
        let mut tx = Tx::new(self.client.transaction()?, &mut self.stmts);
        for t in touches {
            tx.execute(
                "UPDATE nodes SET last_seen_at = $2, via = $3, period_ms = coalesce($4, period_ms),
                   heard_at = now() WHERE name = $1",
                &[&t.node, &t.at, &t.via.as_str(), &t.period_ms],
            )?;
            if let Some((epoch, seq)) = t.whole {
                tx.execute(
                    "UPDATE nodes SET epoch = $2, last_seq = $3 WHERE name = $1
                       AND (last_seq IS NULL OR epoch < $2 OR (epoch = $2 AND last_seq < $3))",
                    &[&t.node, &epoch, &seq],
                )?;
            }
            for (c, (epoch, seq)) in &t.components {
                tx.execute(
                    "UPDATE feeds SET epoch = $3, seq = $4 WHERE node = $1 AND component = $2
                       AND (epoch < $3 OR (epoch = $3 AND seq < $4))",
                    &[&t.node, c, epoch, seq],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn marks(&mut self, node: &str) -> Result<Option<Marks>, PgError> {
        let mut tx = Tx::new(self.client.transaction()?, &mut self.stmts);
        let Some((marks, _)) = read_marks(&mut tx, node)? else {
            return Ok(None);
        };
        tx.commit()?;
        Ok(Some(marks))
    }

    fn desired(&mut self) -> Result<Vec<(String, State, i64)>, PgError> {
        self.client
            .query(
                "SELECT component, state, changed_at FROM desired ORDER BY component",
                &[],
            )?
            .into_iter()
            .map(|r| Ok((r.get(0), word("desired.state", r.get(1))?, r.get(2))))
            .collect()
    }

    fn failing_tests(&mut self, component: &str) -> Result<Vec<FailingTest>, PgError> {
        self.client
            .query(
                "SELECT host, service, test, state, since, description FROM tests
                 WHERE component = $1 AND state IS NOT NULL ORDER BY host, service, test",
                &[&component],
            )?
            .into_iter()
            .map(|r| {
                Ok(FailingTest {
                    host: r.get(0),
                    service: r.get(1),
                    test: TestKey::new(r.get::<_, String>(2)),
                    state: word("tests.state", r.get(3))?,
                    since: r.get(4),
                    description: r.get(5),
                })
            })
            .collect()
    }
}

/// One attempt at recording `reports` (see `record_reports`): the nodes' rows locked (by
/// name) and every report written; then the components the reports changed locked (by the
/// lock's key) and each computed once (`group_computes`). A transaction waits on a
/// component's lock only for the few statements that compute it, never for another's
/// reports being written.
fn record_once(
    client: &mut postgres::Client,
    stmts: &mut Stmts,
    now: i64,
    names: &[&str],
    reports: &[ReportIn<'_, '_>],
) -> Result<Vec<Reported>, PgError> {
    let mut tx = Tx::new(client.transaction()?, stmts);
    let mut held: HeldNodes = tx
        .query(LOCK_AND_READ_SQL, &[&names])?
        .iter()
        .map(marks_of)
        .collect();
    let written = reports
        .iter()
        .map(|(report, ev, applies)| report_tx(&mut tx, &mut held, now, report, ev, applies))
        .collect::<Result<Vec<_>, _>>()?;
    let group = Group::new(written);
    let components = group.components();
    let components: Vec<&str> = components.iter().map(String::as_str).collect();
    lock_components(&mut tx, &components, &[])?;
    let out = group.finish(|component, rule, event_id, i| {
        let message = reports[i].1.description.as_deref();
        refresh_desired(&mut tx, component, rule, event_id, message, now)
    })?;
    tx.commit()?;
    Ok(out)
}

/// One node report inside the caller's transaction: the spool's `report_tx`, step for step.
fn report_tx(
    tx: &mut Tx<'_, '_>,
    nodes: &mut HeldNodes,
    now: i64,
    report: &NodeReport<'_>,
    ev: &NewEvent,
    applies: &[Apply],
) -> Result<Written, PgError> {
    let Some((mut marks, held)) = nodes.get(report.node).cloned() else {
        return Ok(Written::only(Reported::UnknownNode));
    };
    // What the node's row holds after this report, kept for the group's next reports.
    let mut row = held.clone();
    if let Some(id) = report.identity {
        let (judged, next) = judge_reporter(&held, now, id);
        row = next.clone();
        if next != held {
            tx.execute(
                "UPDATE nodes SET reporter = $2, reporter_peer = $3, rival = $4, rival_peer = $5,
                   rival_seen_at = $6, conflict_since = $7, last_seen_at = $8,
                   heard_at = CASE WHEN last_seen_at IS DISTINCT FROM $8 THEN now()
                                   ELSE heard_at END
                 WHERE name = $1",
                &[
                    &report.node,
                    &next.reporter,
                    &next.reporter_peer,
                    &next.rival,
                    &next.rival_peer,
                    &next.rival_seen_at,
                    &next.conflict_since,
                    &next.last_seen_at,
                ],
            )?;
        }
        match judged {
            Judged::Refuse(c) => {
                keep(nodes, report.node, marks, row);
                return Ok(Written::only(Reported::Conflict(c)));
            }
            Judged::Same => {}
            Judged::New => {
                // A new reporter's sequence has nothing to do with the old one's.
                tx.execute(
                    "UPDATE nodes SET epoch = 0, last_seq = NULL WHERE name = $1",
                    &[&report.node],
                )?;
                tx.execute(
                    "UPDATE feeds SET epoch = $2, seq = $2 WHERE node = $1",
                    &[&report.node, &i64::MIN],
                )?;
                for mark in marks.feeds.values_mut() {
                    *mark = (i64::MIN, i64::MIN);
                }
                marks.whole = None;
            }
        }
        marks.reporter = Some(id.reporter.to_string());
        marks.conflict = false;
    }
    let (fresh, dropped, whole, outdated) = match judge(&marks, report) {
        Verdict::Outdated { mark } => {
            tx.execute(
                "UPDATE nodes SET last_seen_at = $2, via = $3, period_ms = coalesce($4, period_ms),
                   heard_at = now() WHERE name = $1",
                &[&report.node, &now, &report.via.as_str(), &report.period_ms],
            )?;
            row.last_seen_at = Some(now);
            keep(nodes, report.node, marks, row);
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
    let feeds = marks.feeds.clone();
    let all: Vec<&Apply> = applies
        .iter()
        .filter(|a| fresh.contains(&a.component.as_str()))
        .collect();
    let clear: Vec<(&str, NodeRule)> = fresh
        .iter()
        .copied()
        .chain(dropped.iter().map(String::as_str))
        .map(|c| (c, (report.rule_of)(c)))
        .collect();
    let status = if all.is_empty() && clear.is_empty() {
        EventStatus::Info
    } else {
        EventStatus::Applied
    };
    let whole_mark = whole && outdated.is_none();
    let event_id = move_marks(
        tx,
        now,
        report,
        (ev, status),
        (&fresh, &dropped),
        back,
        whole_mark,
    )?;
    // The same moves in memory: what the node now feeds, no longer stale, its whole mark.
    for c in &fresh {
        marks.feeds.insert(c.to_string(), report.order);
    }
    for c in &dropped {
        marks.feeds.remove(c);
    }
    marks.stale = false;
    if whole_mark {
        marks.whole = Some(report.order);
    }
    row.last_seen_at = Some(now);
    keep(nodes, report.node, marks, row);
    let mut compute: Vec<(String, NodeRule)> = Vec::new();
    for a in &all {
        apply_test(tx, a, event_id, now, None)?;
        if !compute.iter().any(|(c, _)| *c == a.component) {
            compute.push((a.component.clone(), a.rule));
        }
    }
    // Where the report replaces the node's word, its failing tests the report does not name
    // pass (a service the node has no word on keeps its rows): one statement for every
    // component, saying which it changed.
    if !clear.is_empty() {
        let names: Vec<&str> = clear.iter().map(|(c, _)| *c).collect();
        let cleared: Vec<String> = tx
            .query(
                "UPDATE tests SET state = NULL, event_id = $3, since = $4, description = NULL
                 WHERE component = ANY($1) AND host = $2 AND state IS NOT NULL AND event_id < $3
                   AND NOT (service = ANY($5))
                 RETURNING component",
                &[&names, &report.node, &event_id, &now, &report.keep],
            )?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        for (component, rule) in &clear {
            if cleared.iter().any(|c| c == component)
                && !compute.iter().any(|(t, _)| t == component)
            {
                compute.push((component.to_string(), *rule));
            }
        }
    }
    // Components whose nodes changed without a test changing (a first report on one, one no
    // longer fed, a stale node back) are computed too.
    let again = fresh
        .iter()
        .copied()
        .filter(|c| !feeds.contains_key(*c))
        .chain(dropped.iter().map(String::as_str))
        .chain(feeds.keys().map(String::as_str).filter(|_| back));
    for c in again {
        if !compute.iter().any(|(t, _)| t == c) {
            compute.push((c.to_string(), (report.rule_of)(c)));
        }
    }
    Ok(Written::applied(event_id, compute, outdated, report.order))
}
