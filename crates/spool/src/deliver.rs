//! The flusher's side of the queue: claiming the next due delivery (after coalescing) and
//! finishing it.
//!
//! Invariants:
//! - A delivery is claimed with a token; finishing it with a token that no longer owns the row
//!   is [`SpoolError::StaleClaim`], never a silent overwrite.
//! - Only the newest delivery of a component is ever sent: older pending ones are superseded.
//! - Retry state lives on the row (attempts, next attempt, last error); when to retry is the
//!   pure policy's decision (`retry`), made before `finish` is called.

use super::*;

impl Spool {
    /// At flusher start: deliveries left 'sending' by a crashed flusher go back to pending.
    /// Delivery is idempotent (a PUT of a state), so sending again is safe. The request in
    /// flight may still land late, so the page is read back at `verify_at`.
    pub fn recover_claims(&mut self, verify_at: i64) -> Result<usize> {
        self.write(|tx, e| {
            // The request in flight may have reached the page: what the page shows is unknown.
            let in_flight: Vec<String> = {
                let mut st = tx
                    .prepare("SELECT DISTINCT component FROM outbox WHERE status = 'sending'")
                    .map_err(&e)?;
                st.query_map([], |r| r.get(0))
                    .map_err(&e)?
                    .collect::<std::result::Result<_, _>>()
                    .map_err(&e)?
            };
            for component in &in_flight {
                forget_page_state(tx, None, component).map_err(&e)?;
                tx.execute(
                "UPDATE page SET verify_at = min(coalesce(verify_at, ?2), ?2) WHERE component = ?1",
                params![component, verify_at],
            )
            .map_err(&e)?;
            }
            let n = tx
                .execute(
                    "UPDATE outbox SET status = 'pending', claim = NULL, claimed_at = NULL,
                 last_error = coalesce(last_error, 'flusher stopped mid-delivery; sending again')
                 WHERE status = 'sending'",
                    [],
                )
                .map_err(&e)?;
            Ok(n)
        })
    }

    /// Coalesce (a pending delivery with a newer one of its component, whatever that one's
    /// status, is superseded: only the newest state may reach the page), then claim the next due
    /// delivery (oldest due first), if any.
    /// Returns the claimed item and the ids superseded on the way (for the decision log).
    pub fn claim_next(&mut self, claim: &str) -> Result<(Option<Claimed>, Vec<Item>)> {
        let now = self.now();
        self.write(|tx, e| {
        let superseded = {
            let mut st = tx
                .prepare(&format!(
                    "UPDATE outbox SET status = 'superseded', finished_at = ?1
                     WHERE status = 'pending' AND EXISTS (
                        SELECT 1 FROM outbox n WHERE n.component = outbox.component
                        AND n.id > outbox.id)
                     RETURNING {ITEM_COLS}"
                ))
                .map_err(&e)?;
            let rows = st.query_map([now], row_item).map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&e)?
        };
        // The newest row inherits the backoff of what it replaced: a flood of events must not
        // turn into a flood of requests against an API that is down.
        for s in &superseded {
            tx.execute(
                "UPDATE outbox SET attempts = max(attempts, ?2), next_attempt_at = max(next_attempt_at, ?3)
                 WHERE component = ?1 AND status = 'pending' AND ?2 > 0",
                params![s.component, s.attempts, s.next_attempt_at],
            )
            .map_err(&e)?;
        }
        let item = tx
            .query_row(
                &format!(
                    "SELECT {ITEM_COLS} FROM outbox o WHERE status = 'pending' AND next_attempt_at <= ?1
                     AND NOT EXISTS (SELECT 1 FROM outbox s WHERE s.component = o.component AND s.status = 'sending')
                     ORDER BY next_attempt_at, id LIMIT 1"
                ),
                [now],
                row_item,
            )
            .optional()
            .map_err(&e)?;
        let claimed = match item {
            Some(mut item) => {
                tx.execute(
                    "UPDATE outbox SET status = 'sending', claim = ?2, claimed_at = ?3 WHERE id = ?1 AND status = 'pending'",
                    params![item.id, claim, now],
                )
                .map_err(&e)?;
                item.status = DeliveryStatus::Sending;
                Some(Claimed {
                    item,
                    claim: claim.to_string(),
                })
            }
            None => None,
        };
        let superseded = superseded
            .into_iter()
            .map(|i| Item {
                status: DeliveryStatus::Superseded,
                ..i
            })
            .collect();
        Ok((claimed, superseded))
        })
    }

    /// Record how a claimed delivery ended. Fails loudly if the claim is no longer valid.
    pub fn finish(&mut self, claimed: &Claimed, outcome: &Outcome) -> Result<()> {
        let now = self.now();
        let id = claimed.item.id;
        self.write(|tx, e| {
        let guard = "WHERE id = ?1 AND status = 'sending' AND claim = ?2";
        let n = match outcome {
            Outcome::Delivered { backend, state } => {
                let n = tx
                    .execute(
                        &format!("UPDATE outbox SET status = 'done', finished_at = ?3, attempts = attempts + 1, last_error = NULL, claim = NULL {guard}"),
                        params![id, claimed.claim, now],
                    )
                    .map_err(&e)?;
                if n == 1 {
                    tx.execute(
                        "INSERT INTO page (backend, component, state, confirmed_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (backend, component) DO UPDATE SET state = excluded.state, confirmed_at = excluded.confirmed_at",
                        params![backend, claimed.item.component, state.as_str(), now],
                    )
                    .map_err(&e)?;
                    tx.execute(
                        "INSERT INTO flusher (id, last_success_at) VALUES (1, ?1)
                         ON CONFLICT (id) DO UPDATE SET last_success_at = excluded.last_success_at",
                        [now],
                    )
                    .map_err(&e)?;
                }
                n
            }
            Outcome::Skipped { reason } => tx
                .execute(
                    &format!("UPDATE outbox SET status = 'skipped', finished_at = ?3, last_error = ?4, claim = NULL {guard}"),
                    params![id, claimed.claim, now, reason],
                )
                .map_err(&e)?,
            Outcome::Retry { at, error } => {
                let n = tx
                    .execute(
                        &format!("UPDATE outbox SET status = 'pending', attempts = attempts + 1, next_attempt_at = ?3, last_error = ?4, claim = NULL, claimed_at = NULL {guard}"),
                        params![id, claimed.claim, at, error],
                    )
                    .map_err(&e)?;
                // A timeout or lost answer may hide a request the page applied: stop trusting
                // the last confirmation, so a later state is never skipped as "already shown".
                forget_page_state(tx, None, &claimed.item.component).map_err(&e)?;
                note_error(tx, error, now).map_err(&e)?;
                n
            }
            Outcome::Dead { error } => {
                let n = tx
                    .execute(
                        &format!("UPDATE outbox SET status = 'dead', attempts = attempts + 1, finished_at = ?3, last_error = ?4, claim = NULL {guard}"),
                        params![id, claimed.claim, now, error],
                    )
                    .map_err(&e)?;
                note_error(tx, error, now).map_err(&e)?;
                n
            }
            Outcome::Held { until, reason } => tx
                .execute(
                    &format!("UPDATE outbox SET status = 'pending', next_attempt_at = ?3, held = ?4, claim = NULL, claimed_at = NULL {guard}"),
                    params![id, claimed.claim, until, reason],
                )
                .map_err(&e)?,
        };
        if n == 1 && !matches!(outcome, Outcome::Held { .. }) {
            tx.execute("UPDATE outbox SET held = NULL WHERE id = ?1", [id])
                .map_err(&e)?;
        }
        if n != 1 {
            // Dropping the transaction rolls back the page/flusher notes too.
            return Err(SpoolError::StaleClaim {
                id,
                claim: claimed.claim.clone(),
            });
        }
        Ok(())
        })
    }

    /// When the next pending delivery is due (None: nothing pending).
    pub fn next_due_at(&self) -> Result<Option<i64>> {
        self.scalar("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'")
    }

    /// Changes whenever another connection commits: the flusher's cheap "anything new?" probe.
    pub fn data_version(&self) -> Result<i64> {
        self.scalar("PRAGMA data_version")
    }
}

pub(crate) fn row_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let state: String = r.get(2)?;
    Ok(Item {
        id: r.get(0)?,
        component: r.get(1)?,
        state: state.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("bad state {state:?}").into(),
            )
        })?,
        status: r.get(3)?,
        attempts: r.get(4)?,
        created_at: r.get(5)?,
        queued_at: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        message: r.get(9)?,
        force: r.get::<_, i64>(10)? != 0,
        event_id: r.get(11)?,
        held: r.get(12)?,
    })
}

pub(crate) fn note_error(
    tx: &rusqlite::Transaction<'_>,
    error: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO flusher (id, last_error, last_error_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
        params![error, now],
    )
    .map(|_| ())
}
