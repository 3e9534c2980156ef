//! Recording on PostgreSQL, as the spool's `record` does: an event, its test changes, and
//! each component it touches computed (`desired_state`) and queued when it changed; a local
//! source's events (`Record`).
//!
//! Invariants:
//! - A test is changed only by an event newer than the one that last changed it.
//! - A component is computed only under its lock (`locks`), taken once the transaction's
//!   own tests are written, so the last computation committed saw every committed test,
//!   whichever instance wrote it.

use statusrelay_core::State;
use statusrelay_core::mapping::TestKey;
use statusrelay_core::nodes::NodeRule;
use statusrelay_spool::store::Record;
use statusrelay_spool::{
    Apply, Change, EventStatus, NewEvent, Recorded, Seen, TestChange, desired_state,
};

use postgres::types::ToSql;

use crate::locks::lock_components;
use crate::store::{Tx, word};
use crate::{PgError, PgStore};

/// An event's row: `$1` to `$11` of every statement that inserts one.
macro_rules! insert_event_sql {
    () => {
        "INSERT INTO events (received_at, origin, host, service, event, description,
           monit_date, raw, test, effect, status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id"
    };
}
pub(crate) use insert_event_sql;

/// An event's values, in the order of `insert_event_sql!`.
pub(crate) struct EventRow<'a> {
    now: i64,
    ev: &'a NewEvent,
    origin: &'static str,
    raw: String,
    status: &'static str,
}

impl<'a> EventRow<'a> {
    pub(crate) fn new(ev: &'a NewEvent, now: i64, status: EventStatus) -> EventRow<'a> {
        EventRow {
            now,
            ev,
            origin: ev.raw.origin(),
            raw: ev.raw.to_json(),
            status: status.as_str(),
        }
    }

    /// `$1` to `$11`, then `more`.
    pub(crate) fn with<'p>(
        &'p self,
        more: &[&'p (dyn ToSql + Sync)],
        test: &'p Option<&'p str>,
        effect: &'p Option<&'static str>,
    ) -> Vec<&'p (dyn ToSql + Sync)> {
        let mut p: Vec<&'p (dyn ToSql + Sync)> = vec![
            &self.now,
            &self.origin,
            &self.ev.host,
            &self.ev.service,
            &self.ev.event,
            &self.ev.description,
            &self.ev.monit_date,
            &self.raw,
            test,
            effect,
            &self.status,
        ];
        p.extend_from_slice(more);
        p
    }
}

pub(crate) fn insert_event(
    tx: &mut Tx<'_, '_>,
    ev: &NewEvent,
    now: i64,
    status: EventStatus,
) -> Result<i64, PgError> {
    let row = EventRow::new(ev, now, status);
    let (test, effect) = (
        ev.test.as_ref().map(TestKey::as_str),
        ev.effect.map(|x| x.as_str()),
    );
    Ok(tx
        .query_one(insert_event_sql!(), &row.with(&[], &test, &effect))?
        .get(0))
}

/// One test change under `event_id` (the spool's `apply_test`); rows changed by a newer event
/// are left alone, and with `snapshot`, rows changed by an event newer than it (an event
/// moved in from elsewhere, received when `snapshot` was the newest here).
pub(crate) fn apply_test(
    tx: &mut Tx<'_, '_>,
    a: &Apply,
    event_id: i64,
    now: i64,
    snapshot: Option<i64>,
) -> Result<(), PgError> {
    let (state, one_shot_families, description) = match &a.change {
        TestChange::Fail(state) => (Some(state.as_str()), None, a.description.as_deref()),
        TestChange::Recover { one_shot_families } => (None, Some(one_shot_families), None),
    };
    tx.execute(
        "INSERT INTO tests (component, host, service, test, state, event_id, since, description)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (component, host, service, test) DO UPDATE SET
           state = excluded.state, event_id = excluded.event_id,
           since = CASE WHEN tests.state IS NOT DISTINCT FROM excluded.state
                        THEN tests.since ELSE excluded.since END,
           description = CASE WHEN excluded.state IS NULL THEN NULL
             ELSE coalesce(excluded.description,
                           CASE WHEN tests.state IS NOT NULL THEN tests.description END) END
         WHERE excluded.event_id > tests.event_id
           AND ($9::bigint IS NULL OR tests.event_id <= $9)",
        &[
            &a.component,
            &a.host,
            &a.service,
            &a.test.as_str(),
            &state,
            &event_id,
            &now,
            &description,
            &snapshot,
        ],
    )?;
    if let Some(one_shot_families) = one_shot_families {
        // A sub-test recovery (`resource:cpu`) clears the bare family key (`resource`); a
        // bare recovery clears the whole family; a one-shot family is cleared whole by any.
        let family = a.test.family();
        let bare_key = a.test.as_str().contains(':').then_some(family);
        let mut families: Vec<&str> = one_shot_families.iter().map(String::as_str).collect();
        if bare_key.is_none() {
            families.push(family);
        }
        tx.execute(
            "UPDATE tests SET state = NULL, event_id = $4, since = $5, description = NULL
             WHERE component = $1 AND host = $2 AND service = $3 AND state IS NOT NULL
               AND event_id < $4 AND ($8::bigint IS NULL OR event_id <= $8)
               AND (test = $6 OR split_part(test, ':', 1) = ANY($7))",
            &[
                &a.component,
                &a.host,
                &a.service,
                &event_id,
                &now,
                &bare_key,
                &families,
                &snapshot,
            ],
        )?;
    }
    Ok(())
}

/// "A test of the component failing with `$state` on a node that is not stale", an index
/// seek (`tests_failing`), and that state when there is one: one arm of `REFRESH_SQL`.
macro_rules! live_failing {
    ($state:literal) => {
        concat!(
            "WHEN EXISTS (SELECT 1 FROM tests t WHERE t.component = $1 AND t.state = '",
            $state,
            "' AND NOT EXISTS (SELECT 1 FROM nodes n
                               WHERE n.name = t.host AND n.stale_since IS NOT NULL))
             THEN '",
            $state,
            "' "
        )
    };
}

/// A component's shown state; the worst state of its failing tests on nodes that are not
/// stale, looked for worst first, each an index seek (a burst of a thousand nodes' reports
/// visits no more rows than one node's); whether a stale node feeds it; whether a live one
/// does. A word no state has is read last, so it is an error, never passed over.
const REFRESH_SQL: &str = concat!(
    "SELECT (SELECT state FROM desired WHERE component = $1), CASE ",
    live_failing!("under_maintenance"),
    live_failing!("major_outage"),
    live_failing!("partial_outage"),
    live_failing!("performance_issues"),
    live_failing!("unknown"),
    "ELSE (SELECT t.state FROM tests t
           WHERE t.component = $1 AND t.state IS NOT NULL
             AND t.state NOT IN ('under_maintenance', 'major_outage', 'partial_outage',
                                 'performance_issues', 'unknown', 'operational')
             AND NOT EXISTS (SELECT 1 FROM nodes n
                             WHERE n.name = t.host AND n.stale_since IS NOT NULL)
           LIMIT 1)
     END,
     EXISTS (SELECT 1 FROM feeds WHERE component = $1 AND stale),
     EXISTS (SELECT 1 FROM feeds WHERE component = $1 AND NOT stale)"
);

/// Compute a component's state (`desired_state`) from what this transaction sees, under the
/// component's lock (taken by the caller), and queue a delivery when it changed.
pub(crate) fn refresh_desired(
    tx: &mut Tx<'_, '_>,
    component: &str,
    rule: NodeRule,
    event_id: i64,
    message: Option<&str>,
    now: i64,
) -> Result<Option<Change>, PgError> {
    let r = tx.query_one(REFRESH_SQL, &[&component])?;
    let prev: Option<String> = r.get(0);
    let failing: Option<String> = r.get(1);
    let mut seen = Seen {
        failing: failing
            .map(|s| word("tests.state", s))
            .transpose()?
            .into_iter()
            .collect(),
        stale: r.get(2),
        live: r.get(3),
        rows: Vec::new(),
    };
    if rule.counts() {
        seen.rows = tx
            .query(
                "SELECT host, state, EXISTS (SELECT 1 FROM nodes n
                                            WHERE n.name = host AND n.stale_since IS NOT NULL)
                 FROM tests WHERE component = $1
                 UNION ALL
                 SELECT node, NULL, EXISTS (SELECT 1 FROM nodes n
                                            WHERE n.name = node AND n.stale_since IS NOT NULL)
                 FROM feeds WHERE component = $1",
                &[&component],
            )?
            .into_iter()
            .map(|r| {
                let state: Option<String> = r.get(1);
                Ok((
                    r.get(0),
                    state.map(|s| word("tests.state", s)).transpose()?,
                    r.get(2),
                ))
            })
            .collect::<Result<_, PgError>>()?;
    }
    let worst = desired_state(rule, &seen);
    let prev: Option<State> = prev.map(|p| word("desired.state", p)).transpose()?;
    if prev == Some(worst) {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO desired (component, state, event_id, changed_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (component) DO UPDATE SET state = excluded.state,
           event_id = excluded.event_id, changed_at = excluded.changed_at",
        &[&component, &worst.as_str(), &event_id, &now],
    )?;
    let outbox_id: i64 = tx
        .query_one(
            "INSERT INTO outbox (component, state, event_id, message, created_at, queued_at,
               status, force, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $5, 'pending', false, $5) RETURNING id",
            &[&component, &worst.as_str(), &event_id, &message, &now],
        )?
        .get(0);
    Ok(Some(Change {
        component: component.to_string(),
        from: prev,
        to: worst,
        outbox_id,
    }))
}

/// An event's test changes applied under `event_id`, then each component they touch locked
/// (once its tests are written, as a group of reports does in `reports`: a report writing the
/// same host's tests never waits on a lock this transaction holds) and computed.
pub(crate) fn apply_all(
    tx: &mut Tx<'_, '_>,
    applies: &[Apply],
    (event_id, snapshot): (i64, Option<i64>),
    message: Option<&str>,
    now: i64,
) -> Result<Vec<Change>, PgError> {
    let mut touched: Vec<(&str, NodeRule)> = Vec::new();
    for a in applies {
        apply_test(tx, a, event_id, now, snapshot)?;
        if !touched.iter().any(|(c, _)| *c == a.component) {
            touched.push((&a.component, a.rule));
        }
    }
    let components: Vec<&str> = touched.iter().map(|(c, _)| *c).collect();
    lock_components(tx, &components, &[])?;
    let mut changes = Vec::new();
    for (c, rule) in touched {
        if let Some(change) = refresh_desired(tx, c, rule, event_id, message, now)? {
            changes.push(change);
        }
    }
    Ok(changes)
}

impl Record for PgStore {
    fn record(&mut self, ev: &NewEvent, applies: &[Apply]) -> Result<Recorded, PgError> {
        let now = self.now();
        self.retrying(|client, stmts| {
            let mut tx = Tx::new(client.transaction()?, stmts);
            let status = if applies.is_empty() {
                EventStatus::Info
            } else {
                EventStatus::Applied
            };
            let event_id = insert_event(&mut tx, ev, now, status)?;
            let changes = apply_all(
                &mut tx,
                applies,
                (event_id, None),
                ev.description.as_deref(),
                now,
            )?;
            tx.commit()?;
            Ok(Recorded { event_id, changes })
        })
    }

    fn record_rejected(&mut self, ev: &NewEvent, error: &str) -> Result<i64, PgError> {
        let now = self.now();
        let mut tx = Tx::new(self.client.transaction()?, &mut self.stmts);
        let id = insert_event(&mut tx, ev, now, EventStatus::Rejected)?;
        tx.execute("UPDATE events SET error = $2 WHERE id = $1", &[&id, &error])?;
        tx.commit()?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_looks_for_the_worst_state_first() {
        statusrelay_spool::assert_worst_first(REFRESH_SQL);
    }
}
