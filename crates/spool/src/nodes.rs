//! The nodes that report to an aggregator: who they are, what they may feed, when they were
//! last heard from.
//!
//! Invariants:
//! - A node's secret is never stored: only its SHA-256 (the secret is 256 random bits, so a
//!   fast hash is enough to verify it and useless to reverse).
//! - A node's name is unique; forgetting a node removes its row and every test it reported, so
//!   a decommissioned node no longer counts toward any component.

use rusqlite::{OptionalExtension, params};

use super::*;

/// A node as the aggregator knows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    pub name: String,
    #[serde(skip)]
    pub secret_sha256: String,
    /// The components it may feed; None: any.
    pub components: Option<Vec<String>>,
    pub added_at: i64,
    pub via: Option<String>,
    pub period_ms: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub last_seq: Option<i64>,
}

fn row_node(r: &rusqlite::Row<'_>) -> rusqlite::Result<Node> {
    let components: Option<String> = r.get(2)?;
    Ok(Node {
        name: r.get(0)?,
        secret_sha256: r.get(1)?,
        components: components.and_then(|c| serde_json::from_str(&c).ok()),
        added_at: r.get(3)?,
        via: r.get(4)?,
        period_ms: r.get(5)?,
        last_seen_at: r.get(6)?,
        last_seq: r.get(7)?,
    })
}

const NODE_COLS: &str =
    "name, secret_sha256, components, added_at, via, period_ms, last_seen_at, last_seq";

impl Spool {
    /// Add a node; false when one of that name exists already (nothing changes then).
    pub fn add_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool> {
        let now = self.now();
        let components = components.map(|c| serde_json::to_string(c).unwrap_or_default());
        self.write(|tx, e| {
            let n = tx
                .execute(
                    "INSERT INTO nodes (name, secret_sha256, components, added_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (name) DO NOTHING",
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
            .query_row(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE name = ?1"),
                [name],
                row_node,
            )
            .optional()
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

    /// Remove a node and every test row it reported; false when there was no such node. Clear
    /// its failures first (an event, so the components' states are recomputed and delivered).
    pub fn forget_node(&mut self, name: &str) -> Result<bool> {
        self.write(|tx, e| {
            let n = tx
                .execute("DELETE FROM nodes WHERE name = ?1", [name])
                .map_err(e)?;
            tx.execute("DELETE FROM tests WHERE host = ?1", [name])
                .map_err(e)?;
            Ok(n == 1)
        })
    }
}
