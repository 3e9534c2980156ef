//! Deliveries and the page's state on PostgreSQL (`statusrelay_spool::store::{Deliveries,
//! PageState}`): the SQLite spool's `deliver` and `page`, with every write fenced.
//!
//! Invariants:
//! - Every write here runs in a transaction that first checks this instance still holds the
//!   writer's lease under the term it acts on (`lease::fence`, the row kept locked until the
//!   transaction ends). A store acting as no writer (`PgError::NotWriter`), or a deposed one
//!   (`PgError::Deposed`), writes nothing.
//! - A claim is a token on the row, with the term it was made under; finishing with a token
//!   that no longer owns the row is `PgError::StaleClaim`, and the transaction is rolled back
//!   whole (the page and flusher notes with it).
//! - A confirmed page state is only what the page answered; whatever may have changed the page
//!   unseen forgets it (`forget_page_state`), as in the spool.

use postgres::Transaction;
use statusrelay_core::State;
use statusrelay_spool::store::{Deliveries, PageState, Queue};
use statusrelay_spool::{Claimed, DeliveryStatus, Item, Outcome, RejectedEvent};

use crate::store::word;
use crate::{PgError, PgStore, Term, lease};

pub(crate) const ITEM_COLS: &str = "id, component, state, status, attempts, created_at, queued_at,
    next_attempt_at, last_error, message, force, event_id, held";

pub(crate) fn row_item(r: &postgres::Row) -> Result<Item, PgError> {
    Ok(Item {
        id: r.get(0),
        component: r.get(1),
        state: word("outbox.state", r.get(2))?,
        status: word::<DeliveryStatus>("outbox.status", r.get(3))?,
        attempts: r.get::<_, i32>(4).max(0) as u32,
        created_at: r.get(5),
        queued_at: r.get(6),
        next_attempt_at: r.get(7),
        last_error: r.get(8),
        message: r.get(9),
        force: r.get(10),
        event_id: r.get(11),
        held: r.get(12),
    })
}

impl PgStore {
    /// Act as the writer under `term` (as `Lease::acquire` said): every delivery and page
    /// write is fenced by it from now on.
    pub fn writing_as(&mut self, instance: &str, term: Term) {
        self.writer = Some((instance.to_string(), term));
    }

    /// Act as no writer: every delivery and page write is refused.
    pub fn following(&mut self) {
        self.writer = None;
    }

    /// Run `f` in a transaction fenced by this instance's term.
    pub(crate) fn fenced<T>(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>, i64) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let now = self.now();
        let Some((instance, term)) = self.writer.clone() else {
            return Err(PgError::NotWriter);
        };
        let mut tx = self.client.transaction()?;
        lease::fence(&mut tx, &instance, term)?;
        let out = f(&mut tx, now)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Forget what the page was last confirmed to show for `component` (on `backend`, or on
/// every page): something may have changed it unseen.
fn forget_page_state(
    tx: &mut Transaction<'_>,
    backend: Option<&str>,
    component: &str,
) -> Result<(), PgError> {
    tx.execute(
        "UPDATE page SET state = NULL, confirmed_at = NULL
         WHERE component = $1 AND ($2::text IS NULL OR backend = $2)",
        &[&component, &backend],
    )?;
    Ok(())
}

fn note_error(tx: &mut Transaction<'_>, error: &str, now: i64) -> Result<(), PgError> {
    tx.execute(
        "INSERT INTO flusher (id, last_error, last_error_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error,
           last_error_at = excluded.last_error_at",
        &[&error, &now],
    )?;
    Ok(())
}

impl Queue for PgStore {
    fn open_items(&mut self) -> Result<Vec<Item>, PgError> {
        self.client
            .query(
                &format!(
                    "SELECT {ITEM_COLS} FROM outbox
                     WHERE status = 'pending' OR status = 'sending' OR status = 'dead' ORDER BY id"
                ),
                &[],
            )?
            .iter()
            .map(row_item)
            .collect()
    }

    fn rejected_events(&mut self) -> Result<Vec<RejectedEvent>, PgError> {
        Ok(self
            .client
            .query(
                "SELECT id, received_at, origin, service, event, raw, error FROM events
                 WHERE status = 'rejected' ORDER BY id",
                &[],
            )?
            .into_iter()
            .map(|r| RejectedEvent {
                id: r.get(0),
                received_at: r.get(1),
                origin: r.get(2),
                service: r.get(3),
                event: r.get(4),
                raw: r.get(5),
                error: r.get(6),
            })
            .collect())
    }
}

impl Deliveries for PgStore {
    fn recover_claims(&mut self, verify_at: i64) -> Result<usize, PgError> {
        self.fenced(|tx, _| {
            let in_flight: Vec<String> = tx
                .query(
                    "SELECT DISTINCT component FROM outbox WHERE status = 'sending'
                     ORDER BY component",
                    &[],
                )?
                .into_iter()
                .map(|r| r.get(0))
                .collect();
            for component in &in_flight {
                forget_page_state(tx, None, component)?;
                tx.execute(
                    "UPDATE page SET verify_at = least(coalesce(verify_at, $2), $2)
                     WHERE component = $1",
                    &[component, &verify_at],
                )?;
            }
            let n = tx.execute(
                "UPDATE outbox SET status = 'pending', claim = NULL, claimed_at = NULL, term = NULL,
                   last_error = coalesce(last_error, 'flusher stopped mid-delivery; sending again')
                 WHERE status = 'sending'",
                &[],
            )?;
            Ok(n as usize)
        })
    }

    fn claim_next(&mut self, claim: &str) -> Result<(Option<Claimed>, Vec<Item>), PgError> {
        let term = self.writer.as_ref().map(|w| w.1);
        self.fenced(|tx, now| {
            let mut superseded = tx
                .query(
                    &format!(
                        "UPDATE outbox SET status = 'superseded', finished_at = $1
                         WHERE status = 'pending' AND EXISTS (
                           SELECT 1 FROM outbox n WHERE n.component = outbox.component
                             AND n.id > outbox.id)
                         RETURNING {ITEM_COLS}"
                    ),
                    &[&now],
                )?
                .iter()
                .map(row_item)
                .collect::<Result<Vec<_>, _>>()?;
            superseded.sort_by_key(|i| i.id);
            // The newest row inherits the backoff of what it replaced.
            for s in &superseded {
                tx.execute(
                    "UPDATE outbox SET attempts = greatest(attempts, $2),
                       next_attempt_at = greatest(next_attempt_at, $3)
                     WHERE component = $1 AND status = 'pending' AND $2 > 0",
                    &[&s.component, &(s.attempts as i32), &s.next_attempt_at],
                )?;
            }
            let item = tx
                .query_opt(
                    &format!(
                        "SELECT {ITEM_COLS} FROM outbox o
                         WHERE status = 'pending' AND next_attempt_at <= $1
                           AND NOT EXISTS (SELECT 1 FROM outbox s
                                           WHERE s.component = o.component AND s.status = 'sending')
                         ORDER BY next_attempt_at, id LIMIT 1"
                    ),
                    &[&now],
                )?
                .map(|r| row_item(&r))
                .transpose()?;
            let claimed = match item {
                Some(mut item) => {
                    tx.execute(
                        "UPDATE outbox SET status = 'sending', claim = $2, claimed_at = $3, term = $4
                         WHERE id = $1 AND status = 'pending'",
                        &[&item.id, &claim, &now, &term],
                    )?;
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

    fn finish(&mut self, claimed: &Claimed, outcome: &Outcome) -> Result<(), PgError> {
        let id = claimed.item.id;
        let claim = claimed.claim.as_str();
        let component = claimed.item.component.as_str();
        self.fenced(|tx, now| {
            let guard = "WHERE id = $1 AND status = 'sending' AND claim = $2";
            let n = match outcome {
                Outcome::Delivered { backend, state } => {
                    let n = tx.execute(
                        &format!(
                            "UPDATE outbox SET status = 'done', finished_at = $3,
                               attempts = attempts + 1, last_error = NULL, claim = NULL {guard}"
                        ),
                        &[&id, &claim, &now],
                    )?;
                    if n == 1 {
                        tx.execute(
                            "INSERT INTO page (backend, component, state, confirmed_at)
                             VALUES ($1, $2, $3, $4)
                             ON CONFLICT (backend, component) DO UPDATE SET
                               state = excluded.state, confirmed_at = excluded.confirmed_at",
                            &[backend, &component, &state.as_str(), &now],
                        )?;
                        tx.execute(
                            "INSERT INTO flusher (id, last_success_at) VALUES (1, $1)
                             ON CONFLICT (id) DO UPDATE SET
                               last_success_at = excluded.last_success_at",
                            &[&now],
                        )?;
                    }
                    n
                }
                Outcome::Skipped { reason } => tx.execute(
                    &format!(
                        "UPDATE outbox SET status = 'skipped', finished_at = $3, last_error = $4,
                           claim = NULL {guard}"
                    ),
                    &[&id, &claim, &now, reason],
                )?,
                Outcome::Retry { at, error } => {
                    let n = tx.execute(
                        &format!(
                            "UPDATE outbox SET status = 'pending', attempts = attempts + 1,
                               next_attempt_at = $3, last_error = $4, claim = NULL,
                               claimed_at = NULL {guard}"
                        ),
                        &[&id, &claim, at, error],
                    )?;
                    forget_page_state(tx, None, component)?;
                    note_error(tx, error, now)?;
                    n
                }
                Outcome::Dead { error } => {
                    let n = tx.execute(
                        &format!(
                            "UPDATE outbox SET status = 'dead', attempts = attempts + 1,
                               finished_at = $3, last_error = $4, claim = NULL {guard}"
                        ),
                        &[&id, &claim, &now, error],
                    )?;
                    note_error(tx, error, now)?;
                    n
                }
                Outcome::Held { until, reason } => tx.execute(
                    &format!(
                        "UPDATE outbox SET status = 'pending', next_attempt_at = $3, held = $4,
                           claim = NULL, claimed_at = NULL {guard}"
                    ),
                    &[&id, &claim, until, reason],
                )?,
            };
            if n == 1 && !matches!(outcome, Outcome::Held { .. }) {
                tx.execute("UPDATE outbox SET held = NULL WHERE id = $1", &[&id])?;
            }
            if n != 1 {
                // Returning the error drops the transaction: the notes above roll back too.
                return Err(PgError::StaleClaim {
                    id,
                    claim: claim.to_string(),
                });
            }
            Ok(())
        })
    }

    fn next_due_at(&mut self) -> Result<Option<i64>, PgError> {
        Ok(self
            .client
            .query_one(
                "SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'",
                &[],
            )?
            .get(0))
    }

    fn is_stale_claim(e: &PgError) -> bool {
        matches!(e, PgError::StaleClaim { .. })
    }
}

impl PageState for PgStore {
    fn page_state(&mut self, backend: &str, component: &str) -> Result<Option<State>, PgError> {
        let state: Option<String> = self
            .client
            .query_opt(
                "SELECT state FROM page WHERE backend = $1 AND component = $2",
                &[&backend, &component],
            )?
            .and_then(|r| r.get(0));
        state.map(|s| word("page.state", s)).transpose()
    }

    fn verify_later(&mut self, backend: &str, component: &str, at: i64) -> Result<(), PgError> {
        self.fenced(|tx, _| {
            tx.execute(
                "INSERT INTO page (backend, component, verify_at) VALUES ($1, $2, $3)
                 ON CONFLICT (backend, component) DO UPDATE SET
                   verify_at = least(coalesce(page.verify_at, excluded.verify_at),
                                     excluded.verify_at)",
                &[&backend, &component, &at],
            )?;
            Ok(())
        })
    }

    fn verifications_due(&mut self, backend: &str) -> Result<Vec<(String, State)>, PgError> {
        let now = self.now();
        self.client
            .query(
                "SELECT p.component, d.state FROM page p JOIN desired d ON d.component = p.component
                 WHERE p.backend = $1 AND p.verify_at <= $2
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.component = p.component
                                   AND (o.status = 'pending' OR o.status = 'sending'))
                 ORDER BY p.component",
                &[&backend, &now],
            )?
            .into_iter()
            .map(|r| Ok((r.get(0), word("desired.state", r.get(1))?)))
            .collect()
    }

    fn next_verify_at(&mut self, backend: &str) -> Result<Option<i64>, PgError> {
        Ok(self
            .client
            .query_one(
                "SELECT min(verify_at) FROM page WHERE backend = $1",
                &[&backend],
            )?
            .get(0))
    }

    fn verified(
        &mut self,
        backend: &str,
        component: &str,
        shows: Option<State>,
    ) -> Result<(), PgError> {
        let shows = shows.map(State::as_str);
        self.fenced(|tx, now| {
            tx.execute(
                "UPDATE page SET verify_at = NULL, state = $3,
                   confirmed_at = CASE WHEN $3::text IS NULL THEN NULL ELSE $4::bigint END
                 WHERE backend = $1 AND component = $2",
                &[&backend, &component, &shows, &now],
            )?;
            Ok(())
        })
    }

    fn enqueue_repair(&mut self, component: &str, message: &str) -> Result<Option<i64>, PgError> {
        self.fenced(|tx, now| {
            let Some(r) = tx.query_opt(
                "SELECT state, event_id FROM desired WHERE component = $1",
                &[&component],
            )?
            else {
                return Ok(None);
            };
            let state: State = word("desired.state", r.get(0))?;
            let event_id: Option<i64> = r.get(1);
            let id: i64 = tx
                .query_one(
                    "INSERT INTO outbox (component, state, event_id, message, created_at,
                       queued_at, status, force, next_attempt_at)
                     VALUES ($1, $2, $3, $4, $5, $5, 'pending', true, $5) RETURNING id",
                    &[&component, &state.as_str(), &event_id, &message, &now],
                )?
                .get(0);
            Ok(Some(id))
        })
    }

    fn remote_id(&mut self, backend: &str, component: &str) -> Result<Option<String>, PgError> {
        Ok(self
            .client
            .query_opt(
                "SELECT remote_id FROM page WHERE backend = $1 AND component = $2",
                &[&backend, &component],
            )?
            .and_then(|r| r.get(0)))
    }

    fn set_remote_id(
        &mut self,
        backend: &str,
        component: &str,
        id: Option<&str>,
    ) -> Result<(), PgError> {
        self.fenced(|tx, _| {
            match id {
                Some(id) => {
                    tx.execute(
                        "INSERT INTO page (backend, component, remote_id) VALUES ($1, $2, $3)
                         ON CONFLICT (backend, component) DO UPDATE SET
                           remote_id = excluded.remote_id",
                        &[&backend, &component, &id],
                    )?;
                }
                None => {
                    tx.execute(
                        "UPDATE page SET remote_id = NULL WHERE backend = $1 AND component = $2",
                        &[&backend, &component],
                    )?;
                    forget_page_state(tx, Some(backend), component)?;
                }
            }
            Ok(())
        })
    }
}
