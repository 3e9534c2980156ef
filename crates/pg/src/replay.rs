//! `statusrelay replay` on PostgreSQL (`statusrelay_spool::store::Replay`), from any
//! instance: deliveries made due now, states queued again, rejected events applied, as the
//! SQLite spool does them.
//!
//! Invariants:
//! - `dry_run` changes nothing: its transaction is rolled back.
//! - A dead letter whose component has a newer delivery is never made due.
//! - A state queued again is read under its component's lock (`locks`), so it is never
//!   older than a delivery another instance queues meanwhile: the queue's newest delivery of
//!   a component is always its newest state.
//! - A rejected event replayed applies under its own (older) sequence, with the locks any
//!   recording takes (`record::apply_all`): it never overrides what a newer event changed.
//! - An event moved in from another spool (`record_moved`) never overrides a test that an
//!   event received after it changed here (its snapshot, `last_event_at_or_before`).
//! - None of it is fenced by the writer's term: like an operator's event, it is recorded
//!   from any instance, and the writer delivers what it queued.

use statusrelay_core::State;
use statusrelay_core::mapping::TestKey;
use statusrelay_spool::store::Replay;
use statusrelay_spool::{
    Apply, DeliveryStatus, EventStatus, Item, NewEvent, Recorded, Replayed, chosen_for_replay,
};

use crate::deliver::{ITEM_COLS, row_item};
use crate::locks::lock_components;
use crate::record::{apply_all, insert_event};
use crate::store::{Tx, word};
use crate::{PgError, PgStore};

impl Replay for PgStore {
    fn replay_items(
        &mut self,
        ids: &[i64],
        dead: bool,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Replayed, PgError> {
        let now = self.now();
        let mut tx = self.client.transaction()?;
        let items: Vec<Item> = tx
            .query(
                &format!(
                    "SELECT {ITEM_COLS} FROM outbox WHERE status IN ('pending', 'dead')
                     ORDER BY id FOR UPDATE"
                ),
                &[],
            )?
            .iter()
            .map(row_item)
            .collect::<Result<_, _>>()?;
        let chosen = chosen_for_replay(items, ids, dead, component);
        // A dead letter whose component has a newer delivery is history: sending its state
        // again would show an outage that ended.
        let mut out = Replayed {
            due: Vec::new(),
            superseded: Vec::new(),
        };
        for i in chosen {
            let newer = if i.status == DeliveryStatus::Dead {
                tx.query_opt(
                    &format!(
                        "SELECT {ITEM_COLS} FROM outbox WHERE component = $1 AND id > $2
                         ORDER BY id DESC LIMIT 1"
                    ),
                    &[&i.component, &i.id],
                )?
                .as_ref()
                .map(row_item)
                .transpose()?
            } else {
                None
            };
            match newer {
                Some(n) => out.superseded.push((i, n)),
                None => out.due.push(i),
            }
        }
        if dry_run {
            return Ok(out);
        }
        for i in &out.due {
            tx.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $2,
                   attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END,
                   queued_at = CASE WHEN status = 'dead' THEN $2 ELSE queued_at END
                 WHERE id = $1 AND status IN ('pending', 'dead')",
                &[&i.id, &now],
            )?;
        }
        tx.commit()?;
        Ok(out)
    }

    fn replay_since(
        &mut self,
        since_ms: i64,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<(String, State)>, PgError> {
        let now = self.now();
        let mut tx = Tx::new(self.client.transaction()?, &mut self.stmts);
        let which = "SELECT component, state, event_id FROM desired
             WHERE (changed_at >= $1 OR component IN (SELECT component FROM outbox
                                                      WHERE created_at >= $1))
               AND ($2::text IS NULL OR component = $2)
             ORDER BY component";
        let names: Vec<String> = tx
            .query(which, &[&since_ms, &component])?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        lock_components(&mut tx, &names, &[])?;
        // Read again under the locks: what is queued is the newest state.
        let mut out = Vec::new();
        for r in tx.query(which, &[&since_ms, &component])? {
            let (c, state, event_id): (String, String, Option<i64>) =
                (r.get(0), r.get(1), r.get(2));
            let state: State = word("desired.state", state)?;
            if !dry_run {
                tx.execute(
                    "INSERT INTO outbox (component, state, event_id, message, created_at,
                       queued_at, status, force, next_attempt_at)
                     VALUES ($1, $2, $3, 'replayed from history', $4, $4, 'pending', true, $4)",
                    &[&c, &state.as_str(), &event_id, &now],
                )?;
            }
            out.push((c, state));
        }
        if !dry_run {
            tx.commit()?;
        }
        Ok(out)
    }

    fn replay_rejected(
        &mut self,
        id: i64,
        ev: &NewEvent,
        applies: &[Apply],
    ) -> Result<Recorded, PgError> {
        let now = self.now();
        let status = if applies.is_empty() {
            EventStatus::Info
        } else {
            EventStatus::Applied
        };
        let (test, effect) = (
            ev.test.as_ref().map(TestKey::as_str),
            ev.effect.map(|x| x.as_str()),
        );
        self.retrying(|client, stmts| {
            let mut tx = Tx::new(client.transaction()?, stmts);
            tx.execute(
                "UPDATE events SET status = $2, test = $3, effect = $4, error = NULL
                 WHERE id = $1",
                &[&id, &status.as_str(), &test, &effect],
            )?;
            let changes = apply_all(&mut tx, applies, (id, None), ev.description.as_deref(), now)?;
            tx.commit()?;
            Ok(Recorded {
                event_id: id,
                changes,
            })
        })
    }

    fn last_event_at_or_before(&mut self, ms: i64) -> Result<i64, PgError> {
        Ok(self
            .client
            .query_one(
                "SELECT coalesce(max(id), 0) FROM events WHERE received_at <= $1",
                &[&ms],
            )?
            .get(0))
    }

    fn record_moved(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        snapshot: i64,
    ) -> Result<Recorded, PgError> {
        let now = self.now();
        let status = if applies.is_empty() {
            EventStatus::Info
        } else {
            EventStatus::Applied
        };
        self.retrying(|client, stmts| {
            let mut tx = Tx::new(client.transaction()?, stmts);
            let event_id = insert_event(&mut tx, ev, now, status)?;
            let message = ev.description.as_deref();
            let changes = apply_all(&mut tx, applies, (event_id, Some(snapshot)), message, now)?;
            tx.commit()?;
            Ok(Recorded { event_id, changes })
        })
    }

    fn set_rejected_error(&mut self, id: i64, error: &str) -> Result<(), PgError> {
        self.client.execute(
            "UPDATE events SET error = $2 WHERE id = $1 AND status = 'rejected'",
            &[&id, &error],
        )?;
        Ok(())
    }
}
