//! Recording events: the raw event, the per-test state it changes, the component's desired
//! state, and the delivery queued when that changes, in one transaction.
//!
//! Invariants:
//! - Ordering is the spool's own sequence (`events.id`), never a timestamp: a test's state is
//!   only changed by an event newer than the one that last changed it.
//! - A component's desired state is the worst of its failing tests, else operational; a change
//!   of it queues exactly one delivery ([`crate::Spool::enqueue`]).
//! - A node's report on the aggregator is recorded by `report`, through `record_tx` here.

use statusrelay_core::mapping::TestKey;
use statusrelay_core::nodes::NodeRule;

use super::*;
use crate::judge::{Seen, desired_state};

impl Spool {
    /// Record an event that could not be mapped or routed; it waits for `replay --rejected`.
    pub fn record_rejected(&mut self, ev: &NewEvent, error: &str) -> Result<i64> {
        let now = self.now();
        self.write(|tx, e| {
            let id = insert_event(tx, ev, now, EventStatus::Rejected, Some(error)).map_err(&e)?;
            Ok(id)
        })
    }

    /// Record an event and apply its test changes, in one transaction. With `replay_of`, the
    /// changes are applied under that (older) event's sequence number and it is marked replayed.
    pub fn record(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        replay_of: Option<i64>,
    ) -> Result<Recorded> {
        self.record_inner(ev, applies, replay_of, None)
    }

    /// Record what `resync` learnt from Monit at sequence `snapshot` (the newest event id when
    /// Monit was asked). Tests changed by a newer event since then are left alone: an exec
    /// event that arrived while Monit was being read is fresher than the snapshot.
    pub fn record_resync(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        snapshot: i64,
    ) -> Result<Recorded> {
        self.record_inner(ev, applies, None, Some(snapshot))
    }

    /// The newest event sequence number (0 for an empty spool).
    pub fn max_event_id(&self) -> Result<i64> {
        self.scalar("SELECT coalesce(max(id), 0) FROM events")
    }

    pub(crate) fn record_inner(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        replay_of: Option<i64>,
        snapshot: Option<i64>,
    ) -> Result<Recorded> {
        let now = self.now();
        let (path, file) = (self.path.clone(), self.file);
        self.write(|tx, e| {
            let aggregator = exec_bool(tx, "SELECT EXISTS (SELECT 1 FROM nodes)").map_err(e)?;
            let at = At {
                path: &path,
                file,
                now,
                aggregator,
            };
            record_tx(
                tx,
                e,
                &at,
                ev,
                applies,
                How {
                    replay_of,
                    snapshot,
                    clear: None,
                },
            )
        })
    }

    /// The failing tests of a component, to say why it shows what it shows.
    pub fn failing_tests(&self, component: &str) -> Result<Vec<FailingTest>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT host, service, test, state, since, description FROM tests
                 WHERE component = ?1 AND state IS NOT NULL ORDER BY host, service, test",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([component], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    TestKey::new(r.get::<_, String>(2)?),
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(host, service, test, state, since, description)| {
                Ok(FailingTest {
                    host,
                    service,
                    test,
                    state: parse_state(&self.path, &state)?,
                    since,
                    description,
                })
            })
            .collect()
    }

    /// The desired state of every component: (component, state, changed_at).
    pub fn desired(&self) -> Result<Vec<(String, State, i64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT component, state, changed_at FROM desired ORDER BY component")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(c, s, t)| Ok((c, parse_state(&self.path, &s)?, t)))
            .collect()
    }
}

pub(crate) fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    ev: &NewEvent,
    now: i64,
    status: EventStatus,
    error: Option<&str>,
) -> rusqlite::Result<i64> {
    exec(
        tx,
        "INSERT INTO events (received_at, origin, host, service, event, description, monit_date, raw, test, effect, status, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![now, ev.raw.origin(), ev.host, ev.service, ev.event, ev.description, ev.monit_date, ev.raw.to_json(), ev.test.as_ref().map(TestKey::as_str), ev.effect.map(|x| x.as_str()), status, error],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Apply one test change under `event_id`; rows changed by a newer event are left alone.
pub(crate) fn apply_test(
    tx: &rusqlite::Transaction<'_>,
    a: &Apply,
    event_id: i64,
    now: i64,
    snapshot: Option<i64>,
) -> rusqlite::Result<()> {
    // A failure reported without words keeps those it began with (a status document after
    // Monit's event); a passing test has none.
    let upsert = "INSERT INTO tests (component, host, service, test, state, event_id, since, description) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?9)
                  ON CONFLICT (component, host, service, test) DO UPDATE SET
                    state = excluded.state, event_id = excluded.event_id,
                    since = CASE WHEN tests.state IS excluded.state THEN tests.since ELSE excluded.since END,
                    description = CASE WHEN excluded.state IS NULL THEN NULL
                      ELSE coalesce(excluded.description, CASE WHEN tests.state IS NOT NULL THEN tests.description END) END
                  WHERE excluded.event_id > tests.event_id AND (?8 IS NULL OR tests.event_id <= ?8)";
    let (state, one_shot_families, description) = match &a.change {
        TestChange::Fail(state) => (Some(state.as_str()), None, a.description.as_deref()),
        TestChange::Recover { one_shot_families } => (None, Some(one_shot_families), None),
    };
    exec(
        tx,
        upsert,
        params![
            a.component,
            a.host,
            a.service,
            a.test.as_str(),
            state,
            event_id,
            now,
            snapshot,
            description
        ],
    )?;
    if let Some(one_shot_families) = one_shot_families {
        // One fixed statement clears every row this recovery covers: a handler process
        // compiles each statement afresh, and compiling SQL is most of its CPU time (an OR
        // of LIKEs cost four times as much to compile as this).
        // A sub-test recovery (`resource:cpu`) clears the bare family key (`resource`); a
        // bare recovery clears the whole family; a one-shot family is cleared whole by any.
        let family = a.test.family();
        let bare_key = a.test.as_str().contains(':').then_some(family);
        let mut families = String::from(",");
        if bare_key.is_none() {
            families.push_str(family);
            families.push(',');
        }
        for f in one_shot_families {
            families.push_str(f);
            families.push(',');
        }
        exec(
                tx,
                "UPDATE tests SET state = NULL, event_id = ?4, since = ?5, description = NULL
                 WHERE component = ?1 AND host = ?2 AND service = ?3 AND state IS NOT NULL AND event_id < ?4
                   AND (?6 IS NULL OR event_id <= ?6)
                   AND (test = ?7 OR instr(?8, ',' || substr(test, 1, instr(test || ':', ':') - 1) || ',') > 0)",
                params![a.component, a.host, a.service, event_id, now, snapshot, bare_key, families],
            )?;
    }
    Ok(())
}

/// Recompute a component's desired state from its nodes' tests by `rule` (by default the worst
/// failing test, else operational) and queue a delivery if it changed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn refresh_desired(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    file: Option<(u64, u64)>,
    component: &str,
    rule: NodeRule,
    event_id: i64,
    message: Option<&str>,
    now: i64,
    aggregator: bool,
) -> Result<Option<Change>> {
    let e = |source| sqlite_error(path, file, source);
    // The reads in one statement (see apply_test: compiling SQL is the handler's main cost).
    // States are plain words, so a comma-joined list is unambiguous; a stale node's tests are
    // left out of it. The last column says if a stale node feeds the component (only an
    // aggregator has nodes). Indexed by what is
    // rare (failing tests, stale nodes), so an aggregator with a thousand nodes visits only
    // those; and no JOIN on a bound component, which SQLite re-prepares at every run (see the
    // spool test `the_hot_statements_are_compiled_once`).
    let sql = if aggregator {
        REFRESH_SQL
    } else {
        NODE_REFRESH_SQL
    };
    let (prev, failing, stale, live): (Option<String>, Option<String>, bool, bool) = tx
        .prepare_cached(sql)
        .and_then(|mut st| {
            st.query_row([component], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
        })
        .map_err(e)?;
    let seen = Seen {
        failing: failing
            .iter()
            .flat_map(|f| f.split(','))
            .map(|s| parse_state(path, s))
            .collect::<Result<_>>()?,
        stale,
        live,
        rows: if rule.counts() {
            nodes_rows(tx, path, file, component)?
        } else {
            Vec::new()
        },
    };
    let worst = desired_state(rule, &seen);
    let prev = prev.map(|p| parse_state(path, &p)).transpose()?;
    if prev == Some(worst) {
        return Ok(None);
    }
    exec(
        tx,
        "INSERT INTO desired (component, state, event_id, changed_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (component) DO UPDATE SET state = excluded.state, event_id = excluded.event_id, changed_at = excluded.changed_at",
        params![component, worst.as_str(), event_id, now],
    )
    .map_err(e)?;
    let outbox_id =
        enqueue(tx, component, worst, Some(event_id), message, now, false).map_err(e)?;
    Ok(Some(Change {
        component: component.to_string(),
        from: prev,
        to: worst,
        outbox_id,
    }))
}

/// Queue a delivery of `state` for `component`, due now: the one place a delivery is made.
/// `force` sends it even when the page already shows it (a page restored from backup, a repair).
pub(crate) fn enqueue(
    tx: &rusqlite::Connection,
    component: &str,
    state: State,
    event_id: Option<i64>,
    message: Option<&str>,
    now: i64,
    force: bool,
) -> rusqlite::Result<i64> {
    exec(
        tx,
        "INSERT INTO outbox (component, state, event_id, message, created_at, queued_at, status, force, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'pending', ?6, ?5)",
        params![component, state.as_str(), event_id, message, now, force],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Every row of a component, for a counting rule: each test (passing ones too) and each
/// report on it (a feed), as (host, failing state, whether the host is stale).
fn nodes_rows(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    file: Option<(u64, u64)>,
    component: &str,
) -> Result<Vec<(String, Option<State>, bool)>> {
    let e = |source| sqlite_error(path, file, source);
    let mut st = tx.prepare_cached(NODES_STATE_SQL).map_err(e)?;
    let rows = st
        .query_map([component], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<bool>>(2)?.unwrap_or(false),
            ))
        })
        .map_err(e)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(e)?;
    rows.into_iter()
        .map(|(host, state, stale)| {
            Ok((
                host,
                state.map(|s| parse_state(path, &s)).transpose()?,
                stale,
            ))
        })
        .collect()
}

/// A component's previous desired state, failing states, whether a stale node feeds it, and
/// whether a live one does.
/// The component's shown state; the worst state of its failing tests on nodes that are not
/// stale (index seeks, the worst state first: see migration 9); whether a stale node feeds it;
/// whether a live one does. The states are in `State::severity` order, worst first (a test
/// holds it); a word no state has is read last, so it is an error, never passed over.
/// "A test of the component failing with `$state` on a node that is not stale", as an index
/// seek (migration 9), and that state when there is one: one arm of `REFRESH_SQL`'s CASE.
macro_rules! live_failing {
    ($state:literal) => {
        concat!(
            "WHEN EXISTS (SELECT 1 FROM tests t INDEXED BY tests_failing
        WHERE t.component = ?1 AND t.state = '",
            $state,
            "' AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name = t.host AND n.stale_since IS NOT NULL))
        THEN '",
            $state,
            "'
      "
        )
    };
}
const REFRESH_SQL: &str = concat!(
    "SELECT (SELECT state FROM desired WHERE component = ?1),
    CASE
      ",
    live_failing!("under_maintenance"),
    live_failing!("major_outage"),
    live_failing!("partial_outage"),
    live_failing!("performance_issues"),
    live_failing!("unknown"),
    "ELSE (SELECT t.state FROM tests t INDEXED BY tests_failing
        WHERE t.component = ?1 AND t.state IS NOT NULL
          AND t.state NOT IN ('under_maintenance', 'major_outage', 'partial_outage',
                              'performance_issues', 'unknown', 'operational')
          AND NOT EXISTS
          (SELECT 1 FROM nodes n WHERE n.name = t.host AND n.stale_since IS NOT NULL)
        LIMIT 1)
    END,
    EXISTS (SELECT 1 FROM feeds INDEXED BY feeds_stale WHERE component = ?1 AND stale),
    EXISTS (SELECT 1 FROM feeds WHERE component = ?1 AND NOT stale)"
);
/// Every node of a component with its tests' states and whether it is stale.
const NODES_STATE_SQL: &str = "SELECT host, state,
      host IN (SELECT name FROM nodes INDEXED BY nodes_stale WHERE stale_since IS NOT NULL)
    FROM tests WHERE component = ?1
    UNION ALL
    SELECT node, NULL,
      node IN (SELECT name FROM nodes INDEXED BY nodes_stale WHERE stale_since IS NOT NULL)
    FROM feeds WHERE component = ?1";
/// The same on a spool with no nodes (a node's own): no table of the fleet's is read.
const NODE_REFRESH_SQL: &str = "SELECT (SELECT state FROM desired WHERE component = ?1),
    (SELECT group_concat(state, ',') FROM tests WHERE component = ?1 AND state IS NOT NULL), 0, 1";
/// The statements `the_hot_statements_are_compiled_once` watches.
#[cfg(test)]
pub(crate) const HOT_NODE_FOR_TEST: [&str; 1] = [NODE_REFRESH_SQL];
#[cfg(test)]
pub(crate) const HOT_FOR_TEST: [&str; 4] = [
    REFRESH_SQL,
    NODES_STATE_SQL,
    crate::report::REPORT_NODE_SQL,
    crate::report::REPORT_FEEDS_SQL,
];

fn exec_bool(tx: &rusqlite::Connection, sql: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached(sql)?.query_row([], |r| r.get(0))
}

/// Run a statement through the connection's statement cache: a long-running aggregator then
/// compiles each statement once, not per request (a one-shot handler pays the same either way).
pub(crate) fn exec(
    tx: &rusqlite::Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(p)
}

/// How a recording applies: as a replay of an event, under a resync's snapshot, clearing a
/// node's word where a report replaces it.
#[derive(Default, Clone, Copy)]
pub(crate) struct How<'a> {
    /// The rejected event this recording replays (its row is updated, not added).
    pub(crate) replay_of: Option<i64>,
    /// A resync's snapshot: events newer than this id are not overridden.
    pub(crate) snapshot: Option<i64>,
    pub(crate) clear: Option<&'a Clear<'a>>,
}

/// A node's word replaced in `components`: its failing tests there that the report did not
/// name pass, except those of the services in `keep`.
pub(crate) struct Clear<'a> {
    pub(crate) node: &'a str,
    pub(crate) components: Vec<(&'a str, NodeRule)>,
    pub(crate) keep: &'a [String],
}

/// Where and when a recording happens.
pub(crate) struct At<'a> {
    pub(crate) path: &'a Path,
    pub(crate) file: Option<(u64, u64)>,
    pub(crate) now: i64,
    /// The spool has nodes (an aggregator's): states take stale nodes into account. A
    /// node's own spool takes the plain path, which reads no table of the fleet's.
    pub(crate) aggregator: bool,
}

/// The recording itself, inside the caller's transaction (see `Spool::record_inner`): the
/// event and its test changes written, then each component they touched computed.
pub(crate) fn record_tx(
    tx: &rusqlite::Transaction<'_>,
    e: &dyn Fn(rusqlite::Error) -> SpoolError,
    at: &At<'_>,
    ev: &NewEvent,
    applies: &[Apply],
    how: How<'_>,
) -> Result<Recorded> {
    let (event_id, touched) = write_tx(tx, e, at, ev, applies, how)?;
    let mut changes = Vec::new();
    for (comp, rule) in touched {
        let message = ev.description.as_deref();
        if let Some(c) = refresh_desired(
            tx,
            at.path,
            at.file,
            &comp,
            rule,
            event_id,
            message,
            at.now,
            at.aggregator,
        )? {
            changes.push(c);
        }
    }
    Ok(Recorded { event_id, changes })
}

/// The event and its test changes written, nothing computed: the event's id, and the
/// components whose tests changed (each once), which the caller computes.
pub(crate) fn write_tx(
    tx: &rusqlite::Transaction<'_>,
    e: &dyn Fn(rusqlite::Error) -> SpoolError,
    at: &At<'_>,
    ev: &NewEvent,
    applies: &[Apply],
    how: How<'_>,
) -> Result<(i64, Vec<(String, NodeRule)>)> {
    let How {
        replay_of,
        snapshot,
        clear,
    } = how;
    let now = at.now;
    let status = if applies.is_empty() && clear.is_none_or(|c| c.components.is_empty()) {
        EventStatus::Info
    } else {
        EventStatus::Applied
    };
    let event_id = match replay_of {
        Some(old) => {
            exec(
                tx,
                "UPDATE events SET status = ?2, test = ?3, effect = ?4, error = NULL WHERE id = ?1",
                params![
                    old,
                    status,
                    ev.test.as_ref().map(TestKey::as_str),
                    ev.effect.map(|x| x.as_str())
                ],
            )
            .map_err(e)?;
            old
        }
        None => insert_event(tx, ev, now, status, None).map_err(e)?,
    };
    let mut touched: Vec<(String, NodeRule)> = Vec::new();
    for a in applies {
        apply_test(tx, a, event_id, now, snapshot).map_err(e)?;
        if !touched.iter().any(|(c, _)| *c == a.component) {
            touched.push((a.component.clone(), a.rule));
        }
    }
    // Set-based: one statement per component, whatever the number of tests it clears (a
    // report's own tests were just written under this event, so they are left).
    if let Some(c) = clear {
        // The kept services as one string, each between unit separators (no service name
        // holds one): a plain `instr`, where a subquery (`json_each`) built an ephemeral
        // table at every report, a third more CPU in the partition burst on musl.
        let keep: String = c.keep.iter().map(|k| format!("\u{1f}{k}\u{1f}")).collect();
        for (component, rule) in &c.components {
            let n = exec(
                tx,
                "UPDATE tests SET state = NULL, event_id = ?3, since = ?4, description = NULL
                 WHERE component = ?1 AND host = ?2 AND state IS NOT NULL AND event_id < ?3
                   AND instr(?5, char(31) || service || char(31)) = 0",
                params![component, c.node, event_id, now, keep],
            )
            .map_err(e)?;
            if n > 0 && !touched.iter().any(|(t, _)| t == component) {
                touched.push((component.to_string(), *rule));
            }
        }
    }
    Ok((event_id, touched))
}

#[cfg(test)]
mod order_tests {
    use super::*;

    #[test]
    fn the_refresh_looks_for_the_worst_state_first() {
        crate::judge::assert_worst_first(REFRESH_SQL);
    }
}
