//! The nodes that report to an aggregator: who they are, what they may feed, when they were
//! last heard from.
//!
//! Invariants:
//! - A node's secret is never stored: only its SHA-256 (the secret is 256 random bits, so a
//!   fast hash is enough to verify it and useless to reverse).
//! - A node's name is unique; forgetting a node is one transaction that removes its row,
//!   every test it reported and what it fed, and recomputes every component it fed, so a
//!   decommissioned node no longer counts toward any component and no report of it can land
//!   between the two (one that comes after finds no node: 401).
//! - Whether a node goes stale is decided by the caller on a monotonic clock (`serve`'s
//!   liveness); [`Spool::apply_silence`] records it as an event that recomputes every
//!   component the node feeds, so the page follows without any report arriving. A node comes
//!   back only by its own report (`record_reports` clears the mark). A node with no known
//!   period is never stale.

use rusqlite::{OptionalExtension, params};

use super::*;

/// A node as the aggregator knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    pub name: String,
    #[serde(skip)]
    pub secret_sha256: String,
    /// The components it may feed; None: any.
    pub components: Option<Vec<String>>,
    pub added_at: i64,
    pub via: Option<statusrelay_core::nodes::Via>,
    pub period_ms: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub last_seq: Option<i64>,
    /// Since when it has been silent too long; None while it reports.
    pub stale_since: Option<i64>,
    /// The components it reports on.
    pub feeds: Vec<String>,
    /// The reporter its word is taken from, and that reporter's peer.
    pub reporter: Option<String>,
    pub reporter_peer: Option<String>,
    /// The reporter it replaced, or that contends with it, and its peer.
    pub rival: Option<String>,
    pub rival_peer: Option<String>,
    /// Since when two live reporters alternate on its credential (none is taken).
    pub conflict_since: Option<i64>,
    /// The last report it was refused, as it was told, when, and how many in all.
    pub refused: Option<String>,
    pub refused_at: Option<i64>,
    pub refusals: i64,
}

fn row_node(r: &rusqlite::Row<'_>) -> rusqlite::Result<Node> {
    let components: Option<String> = r.get(2)?;
    Ok(Node {
        name: r.get(0)?,
        secret_sha256: r.get(1)?,
        components: components.and_then(|c| serde_json::from_str(&c).ok()),
        added_at: r.get(3)?,
        via: r
            .get::<_, Option<String>>(4)?
            .and_then(|v| statusrelay_core::nodes::Via::parse(&v)),
        period_ms: r.get(5)?,
        last_seen_at: r.get(6)?,
        last_seq: r.get(7)?,
        stale_since: r.get(8)?,
        feeds: r
            .get::<_, Option<String>>(9)?
            .map(|f| f.split('\n').map(str::to_string).collect())
            .unwrap_or_default(),
        reporter: r.get(10)?,
        reporter_peer: r.get(11)?,
        rival: r.get(12)?,
        rival_peer: r.get(13)?,
        conflict_since: r.get(14)?,
        refused: r.get(15)?,
        refused_at: r.get(16)?,
        refusals: r.get(17)?,
    })
}

const NODE_COLS: &str =
    "name, secret_sha256, components, added_at, via, period_ms, last_seen_at, last_seq,
     stale_since, (SELECT group_concat(component, char(10)) FROM
                     (SELECT component FROM feeds WHERE node = name ORDER BY component)),
     reporter, reporter_peer, rival, rival_peer, conflict_since, refused, refused_at, refusals";

impl Spool {
    /// Add a node; false when one of that name exists already (nothing changes then).
    pub fn add_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool> {
        self.insert_node(name, secret_sha256, components, "DO NOTHING")
    }

    /// Set a node's secret and components, adding it if new; false when it was already so.
    pub fn put_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool> {
        self.insert_node(
            name,
            secret_sha256,
            components,
            "DO UPDATE SET secret_sha256 = excluded.secret_sha256, components = excluded.components
             WHERE nodes.secret_sha256 IS NOT excluded.secret_sha256
                OR nodes.components IS NOT excluded.components",
        )
    }

    /// Insert a node, `on_conflict` deciding what an existing one of that name becomes.
    fn insert_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
        on_conflict: &str,
    ) -> Result<bool> {
        let now = self.now();
        let components = components.map(|c| serde_json::to_string(c).unwrap_or_default());
        self.write(|tx, e| {
            let n = tx
                .execute(
                    &format!(
                        "INSERT INTO nodes (name, secret_sha256, components, added_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (name) {on_conflict}"
                    ),
                    params![name, secret_sha256, components, now],
                )
                .map_err(e)?;
            Ok(n == 1)
        })
    }

    /// Every node, by name.
    pub fn nodes(&self) -> Result<Vec<Node>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {NODE_COLS} FROM nodes ORDER BY name"))
            .map_err(self.err())?;
        let rows = st.query_map([], row_node).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// One node by name.
    pub fn node(&self, name: &str) -> Result<Option<Node>> {
        self.conn
            .prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE name = ?1"))
            .and_then(|mut st| st.query_row([name], row_node).optional())
            .map_err(self.err())
    }

    /// The tests a node reported that are failing now: (component, service, test).
    pub fn node_failing(&self, name: &str) -> Result<Vec<(String, String, String)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT component, service, test FROM tests WHERE host = ?1 AND state IS NOT NULL
                 ORDER BY component, service, test",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// The nodes that report on a component: (name, stale), by name.
    pub fn component_nodes(&self, component: &str) -> Result<Vec<(String, bool)>> {
        // Cached: the aggregator's flusher asks at every delivery (the page's words).
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT f.node, n.stale_since IS NOT NULL FROM feeds f JOIN nodes n ON n.name = f.node
                 WHERE f.component = ?1 ORDER BY f.node",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([component], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// Forget a node in one transaction: its row, every test it reported and what it fed go,
    /// and every component it fed is recomputed from what remains (`ev` is the event that says
    /// so). None when there was no such node.
    pub fn forget_node(
        &mut self,
        name: &str,
        ev: &NewEvent,
        rule_of: &dyn Fn(&str) -> statusrelay_core::nodes::NodeRule,
    ) -> Result<Option<Forgotten>> {
        let now = self.now();
        let (path, file) = (self.path.clone(), self.file);
        self.write(|tx, e| {
            let n = tx
                .execute("DELETE FROM nodes WHERE name = ?1", [name])
                .map_err(e)?;
            if n == 0 {
                return Ok(None);
            }
            let comps = node_components(tx, name).map_err(e)?;
            let cleared = tx
                .execute(
                    "DELETE FROM tests WHERE host = ?1 AND state IS NOT NULL",
                    [name],
                )
                .map_err(e)?;
            for sql in [
                "DELETE FROM tests WHERE host = ?1",
                "DELETE FROM feeds WHERE node = ?1",
                "DELETE FROM unrouted WHERE node = ?1",
            ] {
                tx.execute(sql, [name]).map_err(e)?;
            }
            let at = crate::record::At {
                path: &path,
                file,
                now,
                aggregator: true,
            };
            let mut recorded = crate::record::record_tx(tx, e, &at, ev, &[], Default::default())?;
            recompute(
                tx,
                &at,
                &comps,
                rule_of,
                &mut recorded,
                ev.description.as_deref(),
            )?;
            Ok(Some(Forgotten { cleared, recorded }))
        })
    }

    /// Note a report of a node that was refused before it reached the spool's judgement (its
    /// marks far ahead, say): what it was told, counted, for `nodes` and `status`.
    pub fn note_refusal(&mut self, name: &str, told: &str) -> Result<()> {
        self.note_refusals(&[(name.to_string(), told.to_string(), 1)])
    }

    /// Note refusals counted elsewhere (the aggregator's gate, in memory): for each node,
    /// the last thing it was told and how many more it was refused, in one transaction.
    pub fn note_refusals(&mut self, counted: &[(String, String, u64)]) -> Result<()> {
        let now = self.now();
        self.write(|tx, e| {
            for (name, told, n) in counted {
                tx.execute(
                    "UPDATE nodes SET refused = ?2, refused_at = ?3, refusals = refusals + ?4 WHERE name = ?1",
                    params![name, told, now, *n as i64],
                )
                .map_err(e)?;
            }
            Ok(())
        })
    }

    /// Replace what a node's failing services that no component takes are: (service, test
    /// families). Rows of services still listed keep their `since`.
    pub fn set_unrouted(&mut self, name: &str, services: &[(String, String)]) -> Result<()> {
        let now = self.now();
        self.write(|tx, e| {
            let keep: Vec<&str> = services.iter().map(|s| s.0.as_str()).collect();
            let old: Vec<String> = {
                let mut st = tx
                    .prepare_cached("SELECT service FROM unrouted WHERE node = ?1")
                    .map_err(e)?;
                st.query_map([name], |r| r.get(0))
                    .map_err(e)?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(e)?
            };
            for o in old.iter().filter(|o| !keep.contains(&o.as_str())) {
                tx.execute(
                    "DELETE FROM unrouted WHERE node = ?1 AND service = ?2",
                    params![name, o],
                )
                .map_err(e)?;
            }
            for (service, tests) in services {
                tx.execute(
                    "INSERT INTO unrouted (node, service, tests, since) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (node, service) DO UPDATE SET tests = excluded.tests",
                    params![name, service, tests, now],
                )
                .map_err(e)?;
            }
            Ok(())
        })
    }

    /// A node's failing services that no component takes: (service, tests, since).
    pub fn unrouted(&self, name: &str) -> Result<Vec<(String, String, i64)>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT service, tests, since FROM unrouted WHERE node = ?1 ORDER BY service",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }
}

/// What forgetting a node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forgotten {
    /// Failing tests of the node that went with it.
    pub cleared: usize,
    pub recorded: Recorded,
}

/// A node found stale by [`Spool::apply_silence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleChange {
    pub node: String,
    pub silent_ms: i64,
    pub period_ms: i64,
    pub recorded: Recorded,
}

pub use statusrelay_core::liveness::Silence;

impl Spool {
    /// Mark stale the nodes the caller found silent (for more than `stale_after` periods on a
    /// monotonic clock, counted from the aggregator's start at the earliest): each an event
    /// recomputing the components the node feeds by their rules. A node already stale, or
    /// gone, is passed over. Returns the changes made.
    pub fn apply_silence(
        &mut self,
        silences: &[Silence],
        rule_of: &dyn Fn(&str) -> statusrelay_core::nodes::NodeRule,
    ) -> Result<Vec<StaleChange>> {
        if silences.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let (path, file) = (self.path.clone(), self.file);
        self.write(|tx, e| {
            let mut crossed = Vec::new();
            for s in silences {
                let was: Option<bool> = tx
                    .query_row(
                        "SELECT stale_since IS NOT NULL FROM nodes WHERE name = ?1",
                        [&s.node],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(e)?;
                if was == Some(false) {
                    crossed.push((s.node.clone(), s.period_ms, s.silent_ms));
                }
            }
            let at = crate::record::At {
                path: &path,
                file,
                now,
                aggregator: true,
            };
            let mut out = Vec::new();
            for (node, period_ms, silent_ms) in crossed {
                tx.execute(
                    "UPDATE nodes SET stale_since = ?2 WHERE name = ?1",
                    params![node, now],
                )
                .map_err(e)?;
                tx.execute("UPDATE feeds SET stale = 1 WHERE node = ?1", [&node])
                    .map_err(e)?;
                let ev = stale_event(&Silence {
                    node: node.clone(),
                    silent_ms,
                    period_ms,
                });
                let description = ev.description.clone().unwrap_or_default();
                let mut recorded =
                    crate::record::record_tx(tx, e, &at, &ev, &[], Default::default())?;
                let comps = node_components(tx, &node).map_err(e)?;
                recompute(tx, &at, &comps, rule_of, &mut recorded, Some(&description))?;
                out.push(StaleChange {
                    node,
                    silent_ms,
                    period_ms,
                    recorded,
                });
            }
            Ok(out)
        })
    }
}

/// A node gone stale, as the event every store records: its description is the operator's
/// words, used again for the delivery it causes.
pub fn stale_event(s: &Silence) -> NewEvent {
    let ms = |v: i64| {
        statusrelay_core::duration::format(std::time::Duration::from_millis(v.max(0) as u64))
    };
    let description = format!(
        "node {} is stale: not heard from for {} ({} periods of {})",
        s.node,
        ms(s.silent_ms),
        s.silent_ms / s.period_ms.max(1),
        ms(s.period_ms)
    );
    NewEvent {
        host: Some(s.node.clone()),
        description: Some(description),
        ..NewEvent::new(statusrelay_core::EventSource::Stale {
            stale: statusrelay_core::source::StaleNode {
                node: s.node.clone(),
                stale: true,
                silent_ms: s.silent_ms,
                period_ms: s.period_ms,
            },
        })
    }
}

/// The components a node touches: those it feeds and those it has test rows in.
fn node_components(tx: &rusqlite::Transaction<'_>, node: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = tx.prepare_cached(
        "SELECT component FROM feeds WHERE node = ?1
         UNION SELECT component FROM tests WHERE host = ?1 ORDER BY component",
    )?;
    st.query_map([node], |r| r.get::<_, String>(0))?.collect()
}

/// Recompute each of `comps` by its rule under `recorded`'s event, adding what changed.
fn recompute(
    tx: &rusqlite::Transaction<'_>,
    at: &crate::record::At<'_>,
    comps: &[String],
    rule_of: &dyn Fn(&str) -> statusrelay_core::nodes::NodeRule,
    recorded: &mut Recorded,
    message: Option<&str>,
) -> Result<()> {
    for c in comps {
        if let Some(change) = crate::record::refresh_desired(
            tx,
            at.path,
            at.file,
            c,
            rule_of(c),
            recorded.event_id,
            message,
            at.now,
            true,
        )? {
            recorded.changes.push(change);
        }
    }
    Ok(())
}
