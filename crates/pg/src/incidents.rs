//! Incidents and maintenance windows on PostgreSQL (`statusrelay_spool::store::{Incidents,
//! Holds}`): the SQLite spool's `incidents`, with the writer's writes fenced.
//!
//! Invariants:
//! - An incident row is committed as 'opening' before the request that creates it, and
//!   becomes 'open' only with the page's id. One unresolved incident per (backend,
//!   component), by a unique index: two instances can never both open one.
//! - Every incident write, and expiring windows, is the writer's: fenced by its term
//!   (`PgStore::fenced`). Starting and stopping a window, and releasing what it held (making
//!   held deliveries due now), is the operator's, on any instance.
//! - A change to an incident that is not in the state it expects is an error naming it,
//!   never a silent no-op.

use postgres::Row;
use statusrelay_core::State;
use statusrelay_spool::store::{Holds, Incidents};
use statusrelay_spool::{EventContext, Incident, IncidentStatus, Window};

use crate::store::word;
use crate::{PgError, PgStore};

const INC_COLS: &str =
    "id, component, remote_id, status, name, state, intent_at, opened_at, resolved_at, note";
const WIN_COLS: &str = "id, component, starts_at, ends_at, reason, show, ended_at";

fn row_incident(r: &Row) -> Result<Incident, PgError> {
    Ok(Incident {
        id: r.get(0),
        component: r.get(1),
        remote_id: r.get(2),
        status: word::<IncidentStatus>("incidents.status", r.get(3))?,
        name: r.get(4),
        state: word("incidents.state", r.get(5))?,
        intent_at: r.get(6),
        opened_at: r.get(7),
        resolved_at: r.get(8),
        note: r.get(9),
    })
}

fn row_window(r: &Row) -> Window {
    Window {
        id: r.get(0),
        component: r.get(1),
        starts_at: r.get(2),
        ends_at: r.get(3),
        reason: r.get(4),
        show: r.get(5),
        ended_at: r.get(6),
    }
}

impl PgStore {
    fn incidents_where(
        &mut self,
        clause: &str,
        p: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Incident>, PgError> {
        self.client
            .query(
                &format!("SELECT {INC_COLS} FROM incidents WHERE {clause} ORDER BY id"),
                p,
            )?
            .iter()
            .map(row_incident)
            .collect()
    }

    /// One fenced change of one incident; none changed is an error naming it.
    fn change_incident(
        &mut self,
        id: i64,
        sql: &str,
        p: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<(), PgError> {
        let n = self.fenced(|tx, _| Ok(tx.execute(sql, p)?))?;
        if n != 1 {
            return Err(PgError::Corrupt {
                column: "incidents",
                value: format!("incident {id} is not in the expected state"),
            });
        }
        Ok(())
    }
}

impl Incidents for PgStore {
    fn open_incident(
        &mut self,
        backend: &str,
        component: &str,
    ) -> Result<Option<Incident>, PgError> {
        Ok(self
            .incidents_where(
                "backend = $1 AND component = $2
                 AND (status = 'opening' OR status = 'open' OR status = 'resolving')",
                &[&backend, &component],
            )?
            .pop())
    }

    fn incidents(&mut self, backend: &str) -> Result<Vec<Incident>, PgError> {
        self.incidents_where("backend = $1", &[&backend])
    }

    fn incident_intent(
        &mut self,
        backend: &str,
        component: &str,
        name: &str,
        state: State,
    ) -> Result<Incident, PgError> {
        self.fenced(|tx, now| {
            let r = tx.query_one(
                &format!(
                    "INSERT INTO incidents (backend, component, status, name, state, intent_at)
                     VALUES ($1, $2, 'opening', $3, $4, $5) RETURNING {INC_COLS}"
                ),
                &[&backend, &component, &name, &state.as_str(), &now],
            )?;
            row_incident(&r)
        })
    }

    fn incident_opened(&mut self, id: i64, remote_id: &str, state: State) -> Result<(), PgError> {
        let now = self.now();
        self.change_incident(
            id,
            "UPDATE incidents SET status = 'open', remote_id = $2, state = $3,
               opened_at = coalesce(opened_at, $4)
             WHERE id = $1 AND (status = 'opening' OR status = 'open')",
            &[&id, &remote_id, &state.as_str(), &now],
        )
    }

    fn incident_state(&mut self, id: i64, state: State) -> Result<(), PgError> {
        self.change_incident(
            id,
            "UPDATE incidents SET state = $2 WHERE id = $1",
            &[&id, &state.as_str()],
        )
    }

    fn incident_status(
        &mut self,
        id: i64,
        status: IncidentStatus,
        note: Option<&str>,
    ) -> Result<(), PgError> {
        let now = self.now();
        self.change_incident(
            id,
            "UPDATE incidents SET status = $2, note = coalesce($3, note),
               resolved_at = CASE WHEN $2 = 'resolved' OR $2 = 'lost' THEN $4 ELSE resolved_at END
             WHERE id = $1",
            &[&id, &status.as_str(), &note, &now],
        )
    }

    fn event_context(&mut self, event_id: i64) -> Result<EventContext, PgError> {
        Ok(self
            .client
            .query_opt(
                "SELECT service, host, description, received_at FROM events WHERE id = $1",
                &[&event_id],
            )?
            .map(|r| EventContext {
                service: r.get(0),
                host: r.get(1),
                description: r.get(2),
                received_at: r.get(3),
            })
            .unwrap_or_default())
    }
}

impl Holds for PgStore {
    fn maintenance_start(
        &mut self,
        component: &str,
        ends_at: i64,
        reason: Option<&str>,
        show: bool,
    ) -> Result<Window, PgError> {
        let now = self.now();
        let r = self.client.query_one(
            &format!(
                "INSERT INTO maintenance (component, starts_at, ends_at, reason, show)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {WIN_COLS}"
            ),
            &[&component, &now, &ends_at, &reason, &show],
        )?;
        Ok(row_window(&r))
    }

    fn maintenance_stop(&mut self, component: Option<&str>) -> Result<Vec<Window>, PgError> {
        let now = self.now();
        let mut ended: Vec<Window> = self
            .client
            .query(
                &format!(
                    "UPDATE maintenance SET ended_at = $1
                     WHERE ended_at IS NULL AND ($2::text IS NULL OR component = $2)
                     RETURNING {WIN_COLS}"
                ),
                &[&now, &component],
            )?
            .iter()
            .map(row_window)
            .collect();
        ended.sort_by_key(|w| w.id);
        Ok(ended)
    }

    fn expire_maintenance(&mut self) -> Result<Vec<Window>, PgError> {
        let mut ended: Vec<Window> = self.fenced(|tx, now| {
            Ok(tx
                .query(
                    &format!(
                        "UPDATE maintenance SET ended_at = ends_at
                         WHERE ended_at IS NULL AND ends_at <= $1 RETURNING {WIN_COLS}"
                    ),
                    &[&now],
                )?
                .iter()
                .map(row_window)
                .collect())
        })?;
        ended.sort_by_key(|w| w.id);
        Ok(ended)
    }

    fn maintenance_active(&mut self, component: &str) -> Result<Option<Window>, PgError> {
        let now = self.now();
        Ok(self
            .client
            .query_opt(
                &format!(
                    "SELECT {WIN_COLS} FROM maintenance
                     WHERE component = $1 AND ended_at IS NULL AND ends_at > $2
                     ORDER BY ends_at DESC LIMIT 1"
                ),
                &[&component, &now],
            )?
            .map(|r| row_window(&r)))
    }

    fn release_held(&mut self, component: Option<&str>) -> Result<usize, PgError> {
        // Not fenced: the operator's `maintenance stop` does it on any instance, and all it
        // does is make held deliveries due now (the writer claims them, fenced).
        let now = self.now();
        Ok(self.client.execute(
            "UPDATE outbox SET next_attempt_at = $1
             WHERE status = 'pending' AND held IS NOT NULL
               AND ($2::text IS NULL OR component = $2)",
            &[&now, &component],
        )? as usize)
    }

    fn maintenance_list(&mut self, all: bool) -> Result<Vec<Window>, PgError> {
        Ok(self
            .client
            .query(
                &format!(
                    "SELECT {WIN_COLS} FROM maintenance WHERE $1 OR ended_at IS NULL
                     ORDER BY id DESC"
                ),
                &[&all],
            )?
            .iter()
            .map(row_window)
            .collect())
    }
}
