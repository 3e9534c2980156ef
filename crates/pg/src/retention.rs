//! Retention on PostgreSQL (`statusrelay_spool::store::Retention`): finished deliveries and
//! old events pruned in bounded batches, as the SQLite spool prunes them.
//!
//! Invariants:
//! - Nothing is deleted before it is finished: only deliveries done, superseded or skipped,
//!   and events no delivery or test row points at and that are not rejected (they wait for
//!   `replay --rejected`). The same rule as the spool's, held by the conformance suite.
//! - One transaction removes at most `batch` rows of each table, and it is fenced by the
//!   writer's term (`PgStore::fenced`): only the writer prunes, so instances never delete
//!   side by side, and a deposed one deletes nothing.
//! - The oldest first by the event sequence (the primary key's order): a batch is an index
//!   scan from the start, never a sort of the whole history.

use std::time::Duration;

use statusrelay_spool::Pruned;
use statusrelay_spool::store::Retention;

use crate::{PgError, PgStore};

/// An event nothing still needs: no delivery or test row points at it, and it is not
/// waiting for `replay --rejected`.
macro_rules! unneeded {
    () => {
        "status != 'rejected'
         AND id NOT IN (SELECT event_id FROM outbox WHERE event_id IS NOT NULL)
         AND id NOT IN (SELECT event_id FROM tests)"
    };
}

impl Retention for PgStore {
    fn prune_batch(
        &mut self,
        max_age: Duration,
        max_events: u64,
        batch: u32,
    ) -> Result<Pruned, PgError> {
        let started = std::time::Instant::now();
        let cutoff = self.now() - max_age.as_millis() as i64;
        let (batch, max_events) = (i64::from(batch), max_events as i64);
        let (deliveries, events) = self.fenced(|tx, _| {
            let deliveries = tx.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                   WHERE status IN ('done', 'superseded', 'skipped') AND finished_at < $1
                   ORDER BY id LIMIT $2)",
                &[&cutoff, &batch],
            )? as i64;
            let mut events = tx.execute(
                concat!(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events
                       WHERE received_at < $1 AND ",
                    unneeded!(),
                    " ORDER BY id LIMIT $2)"
                ),
                &[&cutoff, &batch],
            )? as i64;
            let count: i64 = tx.query_one("SELECT count(*) FROM events", &[])?.get(0);
            let excess = (count - max_events).clamp(0, batch - events);
            if excess > 0 {
                events += tx.execute(
                    concat!(
                        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ",
                        unneeded!(),
                        " ORDER BY id LIMIT $1)"
                    ),
                    &[&excess],
                )? as i64;
            }
            Ok((deliveries, events))
        })?;
        Ok(Pruned {
            deliveries: deliveries as usize,
            events: events as usize,
            more: deliveries == batch || events == batch,
            held: started.elapsed(),
        })
    }
}
