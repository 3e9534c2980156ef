//! The nodes on PostgreSQL (`statusrelay_spool::store::Nodes`): what `nodes` and `status`
//! show of each, and a node forgotten, as the SQLite spool's `nodes` does.
//!
//! Invariants:
//! - Forgetting a node is one transaction, with the same locks as a report (the node's row,
//!   then its components): its row, tests, feeds and unrouted services go, and every
//!   component it touched is recomputed from what remains. A report of it that comes after
//!   finds no node.
//! - A node's times are the instance's clock in milliseconds, as the spool's (`added_at` is
//!   stored as a timestamp and read back in milliseconds).

use statusrelay_core::nodes::{NodeRule, Via};
use statusrelay_spool::store::Nodes;
use statusrelay_spool::{EventStatus, Forgotten, NewEvent, Node, Recorded};

use crate::locks::{lock_components, lock_nodes};
use crate::record::{insert_event, refresh_desired};
use crate::store::Tx;
use crate::{PgError, PgStore};

const NODE_COLS: &str = "name, secret_sha256, components,
    (extract(epoch FROM added_at) * 1000)::bigint, via, period_ms, last_seen_at, last_seq,
    stale_since,
    ARRAY(SELECT component FROM feeds WHERE node = name ORDER BY component),
    reporter, reporter_peer, rival, rival_peer, conflict_since, refused, refused_at, refusals";

fn row_node(r: &postgres::Row) -> Node {
    Node {
        name: r.get(0),
        secret_sha256: r.get(1),
        components: r.get(2),
        added_at: r.get(3),
        via: r.get::<_, Option<String>>(4).and_then(|v| Via::parse(&v)),
        period_ms: r.get(5),
        last_seen_at: r.get(6),
        last_seq: r.get(7),
        stale_since: r.get(8),
        feeds: r.get(9),
        reporter: r.get(10),
        reporter_peer: r.get(11),
        rival: r.get(12),
        rival_peer: r.get(13),
        conflict_since: r.get(14),
        refused: r.get(15),
        refused_at: r.get(16),
        refusals: r.get(17),
    }
}

impl Nodes for PgStore {
    fn nodes(&mut self) -> Result<Vec<Node>, PgError> {
        Ok(self
            .client
            .query(&format!("SELECT {NODE_COLS} FROM nodes ORDER BY name"), &[])?
            .iter()
            .map(row_node)
            .collect())
    }

    fn node(&mut self, name: &str) -> Result<Option<Node>, PgError> {
        Ok(self
            .client
            .query_opt(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE name = $1"),
                &[&name],
            )?
            .map(|r| row_node(&r)))
    }

    fn node_failing(&mut self, name: &str) -> Result<Vec<(String, String, String)>, PgError> {
        Ok(self
            .client
            .query(
                "SELECT component, service, test FROM tests WHERE host = $1 AND state IS NOT NULL
                 ORDER BY component, service, test",
                &[&name],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn component_nodes(&mut self, component: &str) -> Result<Vec<(String, bool)>, PgError> {
        Ok(self
            .client
            .query(
                "SELECT f.node, n.stale_since IS NOT NULL FROM feeds f
                 JOIN nodes n ON n.name = f.node WHERE f.component = $1 ORDER BY f.node",
                &[&component],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn forget_node(
        &mut self,
        name: &str,
        ev: &NewEvent,
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Option<Forgotten>, PgError> {
        let now = self.now();
        self.retrying(|client, stmts| {
            let mut tx = Tx::new(client.transaction()?, stmts);
            lock_nodes(&mut tx, &[name])?;
            // What it touched, read before its row goes (its feeds go with it).
            let comps: Vec<String> = tx
                .query(
                    "SELECT component FROM feeds WHERE node = $1
                     UNION SELECT component FROM tests WHERE host = $1 ORDER BY component",
                    &[&name],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            let refs: Vec<&str> = comps.iter().map(String::as_str).collect();
            lock_components(&mut tx, &refs, &[])?;
            if tx.execute("DELETE FROM nodes WHERE name = $1", &[&name])? == 0 {
                return Ok(None);
            }
            let cleared = tx.execute(
                "DELETE FROM tests WHERE host = $1 AND state IS NOT NULL",
                &[&name],
            )? as usize;
            tx.execute("DELETE FROM tests WHERE host = $1", &[&name])?;
            let status = EventStatus::Info;
            let event_id = insert_event(&mut tx, ev, now, status)?;
            let mut recorded = Recorded {
                event_id,
                changes: Vec::new(),
            };
            for c in &comps {
                if let Some(change) = refresh_desired(
                    &mut tx,
                    c,
                    rule_of(c),
                    event_id,
                    ev.description.as_deref(),
                    now,
                )? {
                    recorded.changes.push(change);
                }
            }
            tx.commit()?;
            Ok(Some(Forgotten { cleared, recorded }))
        })
    }

    fn note_refusals(&mut self, counted: &[(String, String, u64)]) -> Result<(), PgError> {
        let now = self.now();
        let mut counted: Vec<&(String, String, u64)> = counted.iter().collect();
        // In name order, as every transaction takes the nodes' rows.
        counted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tx = self.client.transaction()?;
        for (name, told, n) in counted {
            tx.execute(
                "UPDATE nodes SET refused = $2, refused_at = $3, refusals = refusals + $4
                 WHERE name = $1",
                &[name, told, &now, &(*n as i64)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn set_unrouted(&mut self, name: &str, services: &[(String, String)]) -> Result<(), PgError> {
        let now = self.now();
        let keep: Vec<&str> = services.iter().map(|s| s.0.as_str()).collect();
        let mut tx = self.client.transaction()?;
        tx.execute(
            "DELETE FROM unrouted WHERE node = $1 AND NOT (service = ANY($2))",
            &[&name, &keep],
        )?;
        for (service, tests) in services {
            tx.execute(
                "INSERT INTO unrouted (node, service, tests, since) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node, service) DO UPDATE SET tests = excluded.tests",
                &[&name, service, tests, &now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn unrouted(&mut self, name: &str) -> Result<Vec<(String, String, i64)>, PgError> {
        Ok(self
            .client
            .query(
                "SELECT service, tests, since FROM unrouted WHERE node = $1 ORDER BY service",
                &[&name],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}
