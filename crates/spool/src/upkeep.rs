//! Upkeep: the flusher's heartbeat, pruning in bounded batches, and the counts `status` shows.
//!
//! Invariant: nothing is deleted before it is finished: pruning only touches finished
//! deliveries and events no open delivery, test row or rejected replay refers to, and one
//! transaction removes at most [`PRUNE_BATCH`] rows per table.

use super::*;

impl Spool {
    /// Mark the flusher alive.
    pub fn heartbeat(&mut self, pid: u32, started_at: i64) -> Result<()> {
        let now = self.now();
        self.conn
            .execute(
                "INSERT INTO flusher (id, pid, started_at, heartbeat_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                params![pid, started_at, now],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Mark the flusher stopped (a clean exit), so `status` does not report it alive.
    pub fn flusher_stopped(&mut self) -> Result<()> {
        self.conn
            .execute("UPDATE flusher SET pid = NULL WHERE id = 1", [])
            .map(|_| ())
            .map_err(self.err())
    }

    /// Prune at most `batch` finished deliveries and `batch` events past the retention limits,
    /// in one short transaction: handlers wait for the write lock, so pruning never holds it
    /// for long (the flusher calls this again, with its poll interval between calls, while
    /// [`Pruned::more`] says there is more to do).
    pub fn prune_batch(
        &mut self,
        max_age: Duration,
        max_events: u64,
        batch: u32,
    ) -> Result<Pruned> {
        let cutoff = self.now() - max_age.as_millis() as i64;
        let started = std::time::Instant::now();
        self.write(|tx, e| {
        let deliveries = tx
            .execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                   WHERE status IN ('done', 'superseded', 'skipped') AND finished_at < ?1 LIMIT ?2)",
                params![cutoff, batch],
            )
            .map_err(&e)?;
        // Keep events that an open delivery, a test row or a desired state still points at.
        let keep = "id NOT IN (SELECT event_id FROM outbox WHERE event_id IS NOT NULL)
                    AND id NOT IN (SELECT event_id FROM tests) AND status != 'rejected'";
        let mut events = tx
            .execute(
                &format!(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events
                       WHERE received_at < ?1 AND {keep} ORDER BY received_at LIMIT ?2)"
                ),
                params![cutoff, batch],
            )
            .map_err(&e)?;
        let count: i64 = tx
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(&e)?;
        let excess = (count - max_events as i64).clamp(0, i64::from(batch) - events as i64);
        if excess > 0 {
            events += tx
                .execute(
                    &format!("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {keep} ORDER BY id LIMIT ?1)"),
                    [excess],
                )
                .map_err(&e)?;
        }
        Ok(Pruned {
            deliveries,
            events,
            more: deliveries == batch as usize || events == batch as usize,
            held: started.elapsed(),
        })
        })
    }

    /// Prune everything past retention, batch after batch (tests and tools; the flusher spreads
    /// the batches out with [`Spool::prune_batch`]). Returns (deliveries, events) removed.
    pub fn prune(&mut self, max_age: Duration, max_events: u64) -> Result<(usize, usize)> {
        let (mut d, mut ev) = (0, 0);
        loop {
            let p = self.prune_batch(max_age, max_events, PRUNE_BATCH)?;
            (d, ev) = (d + p.deliveries, ev + p.events);
            if !p.more {
                return Ok((d, ev));
            }
        }
    }

    /// Counts and times for `status`.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        let mut st = self.conn.prepare("SELECT status, count(*) FROM outbox WHERE status = 'pending' OR status = 'sending' OR status = 'dead' GROUP BY status").map_err(self.err())?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        for row in rows {
            let (k, n) = row.map_err(self.err())?;
            match k.as_str() {
                "pending" => s.pending = n,
                "sending" => s.sending = n,
                _ => s.dead = n,
            }
        }
        s.held = self
            .scalar("SELECT count(*) FROM outbox WHERE status = 'pending' AND held IS NOT NULL")?;
        s.oldest_pending_at = self.scalar(
            "SELECT min(queued_at) FROM outbox WHERE status = 'pending' OR status = 'sending'",
        )?;
        s.rejected_events = self.scalar("SELECT count(*) FROM events WHERE status = 'rejected'")?;
        s.events = self.scalar("SELECT count(*) FROM events")?;
        let f = self
            .conn
            .query_row(
                "SELECT pid, heartbeat_at, last_success_at, last_error, last_error_at FROM flusher WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(self.err())?;
        if let Some((pid, hb, ok, err, err_at)) = f {
            (
                s.flusher_pid,
                s.flusher_heartbeat_at,
                s.last_success_at,
                s.last_error,
                s.last_error_at,
            ) = (pid, hb, ok, err, err_at);
        }
        Ok(s)
    }
}
