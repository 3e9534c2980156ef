//! What the writer keeps up on PostgreSQL beside its deliveries: the instances' liveness
//! (`instances`, for `status`), the flusher's figures (`stats`, for the metrics file), and
//! the probe that says whether anything was queued since the writer last looked.
//!
//! Invariants:
//! - Every instance says it is alive (`heartbeat`) on the database's clock; `status` shows
//!   every instance and which one writes.
//! - `data_version` moves whenever a delivery is queued by any instance: the writer's pause
//!   ends at its next poll after another instance's commit (its own commits ring its
//!   doorbell at once).

use statusrelay_spool::Stats;

use crate::{PgError, PgStore};

/// An instance of the aggregator as the database last heard of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Instance {
    pub name: String,
    /// Seconds since it started, and since it was last seen (its heartbeat), on the
    /// database's clock.
    pub up_s: f64,
    pub seen_s: f64,
}

impl PgStore {
    /// Every instance that ever ran on this database, by name.
    pub fn instances(&mut self) -> Result<Vec<Instance>, PgError> {
        Ok(self
            .client
            .query(
                "SELECT name, extract(epoch FROM now() - started_at)::float8,
                        extract(epoch FROM now() - seen_at)::float8
                 FROM instances ORDER BY name",
                &[],
            )?
            .into_iter()
            .map(|r| Instance {
                name: r.get(0),
                up_s: r.get(1),
                seen_s: r.get(2),
            })
            .collect())
    }

    /// Who holds the writer's lease, under which term, for how long yet.
    pub fn writer(&mut self) -> Result<Option<crate::WriterRow>, PgError> {
        crate::lease::writer(&mut *self.client)
    }

    /// This instance is alive: its row in `instances`, on the database's clock.
    pub fn heartbeat(&mut self, started_at_ms: i64) -> Result<(), PgError> {
        let Some(instance) = self.instance.clone() else {
            return Ok(());
        };
        self.client.execute(
            "INSERT INTO instances (name, started_at, seen_at)
             VALUES ($1, to_timestamp($2::bigint / 1000.0), now())
             ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, seen_at = now()",
            &[&instance, &started_at_ms],
        )?;
        Ok(())
    }

    /// The queue's figures and the writer's last results, as the spool's `stats` gives them.
    pub fn stats(&mut self) -> Result<Stats, PgError> {
        let r = self.client.query_one(
            "SELECT
               count(*) FILTER (WHERE status = 'pending'),
               count(*) FILTER (WHERE status = 'pending' AND held IS NOT NULL),
               count(*) FILTER (WHERE status = 'sending'),
               count(*) FILTER (WHERE status = 'dead'),
               min(queued_at) FILTER (WHERE status = 'pending' OR status = 'sending'),
               (SELECT count(*) FROM events WHERE status = 'rejected'),
               (SELECT count(*) FROM events),
               (SELECT last_success_at FROM flusher WHERE id = 1),
               (SELECT last_error FROM flusher WHERE id = 1),
               (SELECT last_error_at FROM flusher WHERE id = 1)
             FROM outbox",
            &[],
        )?;
        Ok(Stats {
            pending: r.get(0),
            held: r.get(1),
            sending: r.get(2),
            dead: r.get(3),
            oldest_pending_at: r.get(4),
            rejected_events: r.get(5),
            events: r.get(6),
            flusher_pid: None,
            flusher_heartbeat_at: None,
            last_success_at: r.get(7),
            last_error: r.get(8),
            last_error_at: r.get(9),
        })
    }

    /// Moves whenever any instance queues a delivery (the outbox's newest id).
    pub fn data_version(&mut self) -> Result<i64, PgError> {
        Ok(self
            .client
            .query_one("SELECT coalesce(max(id), 0) FROM outbox", &[])?
            .get(0))
    }
}
