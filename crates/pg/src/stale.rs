//! Staleness on PostgreSQL (`statusrelay_spool::store::Staleness`): nodes silent too long
//! recorded as the SQLite spool records them, and who is silent judged from the database.
//!
//! Invariants:
//! - Several instances take reports, each remembering only its own, so silence is judged from
//!   `nodes.heard_at`, written on the database's clock by every instance that hears a node
//!   (a report, an outdated one, a touch). [`PgStore::silent_nodes`] is asked by the writer.
//! - A node is never judged silent before `stale_after` of its periods since the writer took
//!   its lease: a writer taking over after the whole cluster was down gives every node its
//!   time to report, as a single aggregator does after it starts. With no live lease (every
//!   instance stopped, or one starting before it is elected), no silence is judged at all:
//!   the old lease's start would count the time nobody listened.
//! - Recording silence takes the same locks as a report, in the same order (the nodes' rows,
//!   then their components): a report and a verdict of one node are one after the other.

use statusrelay_core::nodes::NodeRule;
use statusrelay_spool::store::Staleness;
use statusrelay_spool::{Recorded, Silence, StaleChange};

use crate::locks::{lock_components, lock_nodes};
use crate::record::{insert_event, refresh_desired};
use crate::store::Tx;
use crate::{PgError, PgStore};

impl Staleness for PgStore {
    fn apply_silence(
        &mut self,
        silences: &[Silence],
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Vec<StaleChange>, PgError> {
        if silences.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let mut names: Vec<&str> = silences.iter().map(|s| s.node.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        self.retrying(|client, stmts| {
            let mut tx = Tx::new(client.transaction()?, stmts);
            lock_nodes(&mut tx, &names)?;
            let mut crossed: Vec<&Silence> = Vec::new();
            for s in silences {
                let was: Option<bool> = tx
                    .query_opt(
                        "SELECT stale_since IS NOT NULL FROM nodes WHERE name = $1",
                        &[&s.node],
                    )?
                    .map(|r| r.get(0));
                if was == Some(false) && !crossed.iter().any(|c| c.node == s.node) {
                    crossed.push(s);
                }
            }
            let nodes: Vec<&str> = crossed.iter().map(|s| s.node.as_str()).collect();
            let touched: Vec<String> = tx
                .query(
                    "SELECT component FROM tests WHERE host = ANY($1)",
                    &[&nodes],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            let touched: Vec<&str> = touched.iter().map(String::as_str).collect();
            lock_components(&mut tx, &touched, &nodes)?;
            let mut out = Vec::new();
            for s in crossed {
                let node = &s.node;
                tx.execute(
                    "UPDATE nodes SET stale_since = $2 WHERE name = $1",
                    &[node, &now],
                )?;
                tx.execute("UPDATE feeds SET stale = true WHERE node = $1", &[node])?;
                let ev = statusrelay_spool::stale_event(s);
                let description = ev.description.clone().unwrap_or_default();
                let event_id =
                    insert_event(&mut tx, &ev, now, statusrelay_spool::EventStatus::Info)?;
                let mut recorded = Recorded {
                    event_id,
                    changes: Vec::new(),
                };
                let comps: Vec<String> = tx
                    .query(
                        "SELECT component FROM feeds WHERE node = $1
                         UNION SELECT component FROM tests WHERE host = $1 ORDER BY component",
                        &[node],
                    )?
                    .into_iter()
                    .map(|r| r.get(0))
                    .collect();
                for c in &comps {
                    if let Some(change) =
                        refresh_desired(&mut tx, c, rule_of(c), event_id, Some(&description), now)?
                    {
                        recorded.changes.push(change);
                    }
                }
                out.push(StaleChange {
                    node: node.clone(),
                    silent_ms: s.silent_ms,
                    period_ms: s.period_ms,
                    recorded,
                });
            }
            tx.commit()?;
            Ok(out)
        })
    }
}

impl PgStore {
    /// The nodes silent for more than `stale_after` of their periods, on the database's clock
    /// and never counted from before the writer took its lease, nor while no lease is live
    /// (see the module's invariants);
    /// a node already stale, or with no known period, is never among them. By name.
    pub fn silent_nodes(&mut self, stale_after: u32) -> Result<Vec<Silence>, PgError> {
        let stale_after = i64::from(stale_after);
        Ok(self
            .client
            .query(
                "SELECT name, period_ms,
                   (extract(epoch FROM now() - heard_at) * 1000)::bigint
                 FROM nodes
                 WHERE stale_since IS NULL AND period_ms IS NOT NULL AND heard_at IS NOT NULL
                   AND now() - greatest(heard_at, coalesce(
                         (SELECT since FROM writer WHERE id = 1 AND expires_at > now()), now()))
                       > make_interval(secs => $1 * period_ms / 1000.0)
                 ORDER BY name",
                &[&stale_after],
            )?
            .into_iter()
            .map(|r| Silence {
                node: r.get(0),
                period_ms: r.get(1),
                silent_ms: r.get(2),
            })
            .collect())
    }
}
