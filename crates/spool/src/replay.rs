//! The operator's side: listing what is open, and replaying deliveries and rejected events;
//! [`Replay`], the part of the store's seam `statusrelay replay` works through.
//!
//! Invariants: `dry_run` changes nothing; a dead letter superseded by a newer delivery of its
//! component is never made due; a rejected event replayed applies under its own (older)
//! sequence, so it never overrides what a newer event changed.

use super::*;
use crate::store::{Queue, Record};

/// `statusrelay replay` on any store: the spool, or an aggregator's PostgreSQL store (from
/// any instance; the writer sends what it queues).
pub trait Replay: Record + Queue {
    /// Make deliveries due now (see [`Spool::replay_items`]).
    fn replay_items(
        &mut self,
        ids: &[i64],
        dead: bool,
        component: Option<&str>,
        dry_run: bool,
    ) -> std::result::Result<Replayed, Self::Error>;

    /// Queue again, forced, the states that changed since `since_ms` (see
    /// [`Spool::replay_since`]).
    fn replay_since(
        &mut self,
        since_ms: i64,
        component: Option<&str>,
        dry_run: bool,
    ) -> std::result::Result<Vec<(String, State)>, Self::Error>;

    /// Apply the rejected event `id` with the test changes the config now plans for it,
    /// under its own sequence; it is rejected no more.
    fn replay_rejected(
        &mut self,
        id: i64,
        ev: &NewEvent,
        applies: &[Apply],
    ) -> std::result::Result<Recorded, Self::Error>;

    /// A rejected event that still cannot be applied: its reason now.
    fn set_rejected_error(&mut self, id: i64, error: &str) -> std::result::Result<(), Self::Error>;

    /// The newest event id received at or before `ms` (0 if none): what an event recorded
    /// elsewhere at `ms` is newer than, when it is moved in (`replay --rejected --from`).
    fn last_event_at_or_before(&mut self, ms: i64) -> std::result::Result<i64, Self::Error>;

    /// Record an event moved in from elsewhere with the test changes the config plans for
    /// it: a test changed by an event newer than `snapshot` is left alone.
    fn record_moved(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        snapshot: i64,
    ) -> std::result::Result<Recorded, Self::Error>;
}

/// Of the pending and dead deliveries, those `replay` asks for: the given ids, or every
/// pending one (and, with `dead`, every dead one), of one component if asked.
pub fn chosen_for_replay(
    items: Vec<Item>,
    ids: &[i64],
    dead: bool,
    component: Option<&str>,
) -> Vec<Item> {
    items
        .into_iter()
        .filter(|i| {
            if ids.is_empty() {
                i.status == DeliveryStatus::Pending || dead
            } else {
                ids.contains(&i.id)
            }
        })
        .filter(|i| component.is_none_or(|c| c == i.component))
        .collect()
}

impl Replay for Spool {
    fn replay_items(
        &mut self,
        ids: &[i64],
        dead: bool,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Replayed> {
        Spool::replay_items(self, ids, dead, component, dry_run)
    }

    fn replay_since(
        &mut self,
        since_ms: i64,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<(String, State)>> {
        Spool::replay_since(self, since_ms, component, dry_run)
    }

    fn replay_rejected(&mut self, id: i64, ev: &NewEvent, applies: &[Apply]) -> Result<Recorded> {
        Spool::record(self, ev, applies, Some(id))
    }

    fn set_rejected_error(&mut self, id: i64, error: &str) -> Result<()> {
        Spool::set_rejected_error(self, id, error)
    }

    fn last_event_at_or_before(&mut self, ms: i64) -> Result<i64> {
        Spool::last_event_at_or_before(self, ms)
    }

    fn record_moved(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        snapshot: i64,
    ) -> Result<Recorded> {
        Spool::record_resync(self, ev, applies, snapshot)
    }
}

impl Spool {
    /// Deliveries that are pending, in flight or dead, oldest first.
    pub fn open_items(&self) -> Result<Vec<Item>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {ITEM_COLS} FROM outbox WHERE status = 'pending' OR status = 'sending' OR status = 'dead' ORDER BY id"
            ))
            .map_err(self.err())?;
        let rows = st.query_map([], row_item).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// One delivery by id, whatever its status.
    pub fn item(&self, id: i64) -> Result<Option<Item>> {
        self.conn
            .query_row(
                &format!("SELECT {ITEM_COLS} FROM outbox WHERE id = ?1"),
                [id],
                row_item,
            )
            .optional()
            .map_err(self.err())
    }

    /// Events waiting for `replay --rejected`, oldest first.
    pub fn rejected_events(&self) -> Result<Vec<RejectedEvent>> {
        let mut st = self
            .conn
            .prepare("SELECT id, received_at, origin, service, event, raw, error FROM events WHERE status = 'rejected' ORDER BY id")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok(RejectedEvent {
                    id: r.get(0)?,
                    received_at: r.get(1)?,
                    origin: r.get(2)?,
                    service: r.get(3)?,
                    event: r.get(4)?,
                    raw: r.get(5)?,
                    error: r.get(6)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// The newest event id received at or before `ms` (0 if none): what an event recorded
    /// elsewhere at `ms` is newer than, when it is moved into this spool.
    pub fn last_event_at_or_before(&self, ms: i64) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT coalesce(max(id), 0) FROM events WHERE received_at <= ?1",
                [ms],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Mark a rejected event as moved into another spool (`replay --rejected --from`).
    pub fn mark_moved(&mut self, id: i64, note: &str) -> Result<()> {
        self.note_rejected(id, EventStatus::Replayed, note)
    }

    /// Update the error of a rejected event that still cannot be applied.
    pub fn set_rejected_error(&mut self, id: i64, error: &str) -> Result<()> {
        self.note_rejected(id, EventStatus::Rejected, error)
    }

    pub(crate) fn note_rejected(&mut self, id: i64, status: EventStatus, note: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE events SET status = ?2, error = ?3 WHERE id = ?1 AND status = 'rejected'",
                params![id, status, note],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Make deliveries due now: the given ids (pending or dead), or all pending (and, with
    /// `dead`, all dead) ones, optionally of one component. Dead items start a fresh retry
    /// budget; a dead item whose component has a newer delivery is never made due (it is
    /// returned as superseded, with that delivery). Returns the items as they were before;
    /// `dry_run` changes nothing.
    pub fn replay_items(
        &mut self,
        ids: &[i64],
        dead: bool,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Replayed> {
        let mut superseded = Vec::new();
        let now = self.now();
        self.write(|tx, e| {
        let items: Vec<Item> = {
            let mut st = tx
                .prepare(&format!(
                    "SELECT {ITEM_COLS} FROM outbox WHERE status IN ('pending', 'dead') ORDER BY id"
                ))
                .map_err(&e)?;
            let rows = st.query_map([], row_item).map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&e)?
        };
        let chosen = chosen_for_replay(items, ids, dead, component);
        // A dead letter whose component has a newer delivery is history: the page has moved on
        // (or will), and sending the old state again would show an outage that ended.
        let mut chosen_now = Vec::new();
        for i in chosen {
            let newer = if i.status == DeliveryStatus::Dead {
                tx.query_row(
                    &format!(
                        "SELECT {ITEM_COLS} FROM outbox WHERE component = ?1 AND id > ?2 ORDER BY id DESC LIMIT 1"
                    ),
                    params![i.component, i.id],
                    row_item,
                )
                .optional()
                .map_err(&e)?
            } else {
                None
            };
            match newer {
                Some(n) => superseded.push((i, n)),
                None => chosen_now.push(i),
            }
        }
        let chosen = chosen_now;
        if !dry_run {
            for i in &chosen {
                tx.execute(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = ?2,
                       attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END,
                       queued_at = CASE WHEN status = 'dead' THEN ?2 ELSE queued_at END
                     WHERE id = ?1 AND status IN ('pending', 'dead')",
                    params![i.id, now],
                )
                .map_err(&e)?;
            }
        }
        Ok(Replayed {
            due: chosen,
            superseded,
        })
        })
    }

    /// Queue the current desired state of every component whose state changed, or that had a
    /// delivery queued, since `since_ms`, forced past the "page already shows it" check (for a
    /// page restored from a backup). Returns the queued (component, state).
    pub fn replay_since(
        &mut self,
        since_ms: i64,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<(String, State)>> {
        let now = self.now();
        let path = self.path.clone();
        self.write(|tx, e| {
            let rows: Vec<(String, String, Option<i64>)> = {
                let mut st = tx
                    .prepare(
                        "SELECT component, state, event_id FROM desired WHERE (changed_at >= ?1
                       OR component IN (SELECT component FROM outbox WHERE created_at >= ?1))
                       AND (?2 IS NULL OR component = ?2) ORDER BY component",
                    )
                    .map_err(&e)?;
                let rows = st
                    .query_map(params![since_ms, component], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .map_err(&e)?;
                rows.collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(&e)?
            };
            let mut out = Vec::new();
            for (comp, state, event_id) in rows {
                let st = parse_state(&path, &state)?;
                if !dry_run {
                    enqueue(
                        tx,
                        &comp,
                        st,
                        event_id,
                        Some("replayed from history"),
                        now,
                        true,
                    )
                    .map_err(&e)?;
                }
                out.push((comp, st));
            }
            Ok(out)
        })
    }
}
