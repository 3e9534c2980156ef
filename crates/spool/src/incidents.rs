//! Incident and maintenance bookkeeping in the spool.
//!
//! Invariants:
//! - An incident row is committed as 'opening' before the request that creates it; it becomes
//!   'open' only with the page's id. A unique index allows one unresolved incident per
//!   (backend, component), so two workers can never both open one.
//! - A maintenance window is active while `ended_at` is NULL and `now < ends_at`; expiry is
//!   recorded by the flusher (`expire_maintenance`), never inferred silently.

use rusqlite::{OptionalExtension, params};
use statusrelay_core::State;

use crate::{IncidentStatus, Result, Spool, parse_state};

/// An incident statusrelay opened (or is opening).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Incident {
    pub id: i64,
    pub component: String,
    pub remote_id: Option<String>,
    pub status: IncidentStatus,
    pub name: String,
    pub state: State,
    pub intent_at: i64,
    pub opened_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub note: Option<String>,
}

/// A local maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    pub id: i64,
    pub component: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub reason: Option<String>,
    pub show: bool,
    pub ended_at: Option<i64>,
}

/// An event's context, for incident templates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventContext {
    pub service: Option<String>,
    pub host: Option<String>,
    pub description: Option<String>,
    pub received_at: i64,
}

const INC_COLS: &str =
    "id, component, remote_id, status, name, state, intent_at, opened_at, resolved_at, note";
const WIN_COLS: &str = "id, component, starts_at, ends_at, reason, show, ended_at";

fn row_window(r: &rusqlite::Row<'_>) -> rusqlite::Result<Window> {
    Ok(Window {
        id: r.get(0)?,
        component: r.get(1)?,
        starts_at: r.get(2)?,
        ends_at: r.get(3)?,
        reason: r.get(4)?,
        show: r.get::<_, i64>(5)? != 0,
        ended_at: r.get(6)?,
    })
}

impl Spool {
    fn incident_from(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<(Incident, String)> {
        Ok((
            Incident {
                id: r.get(0)?,
                component: r.get(1)?,
                remote_id: r.get(2)?,
                status: r.get(3)?,
                name: r.get(4)?,
                state: State::Unknown,
                intent_at: r.get(6)?,
                opened_at: r.get(7)?,
                resolved_at: r.get(8)?,
                note: r.get(9)?,
            },
            r.get(5)?,
        ))
    }

    fn incidents_where(&self, clause: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<Incident>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {INC_COLS} FROM incidents WHERE {clause} ORDER BY id"
            ))
            .map_err(self.err())?;
        let rows = st
            .query_map(p, |r| self.incident_from(r))
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(mut i, s)| {
                i.state = parse_state(&self.path, &s)?;
                Ok(i)
            })
            .collect()
    }

    /// The unresolved incident of a component on `backend`, if any.
    pub fn open_incident(&self, backend: &str, component: &str) -> Result<Option<Incident>> {
        Ok(self
            .incidents_where(
                "backend = ?1 AND component = ?2 AND status IN ('opening', 'open', 'resolving')",
                &[&backend, &component],
            )?
            .pop())
    }

    /// Every incident on `backend`, oldest first.
    pub fn incidents(&self, backend: &str) -> Result<Vec<Incident>> {
        self.incidents_where("backend = ?1", &[&backend])
    }

    /// Record the intent to open an incident, before the request.
    pub fn incident_intent(
        &mut self,
        backend: &str,
        component: &str,
        name: &str,
        state: State,
    ) -> Result<Incident> {
        let now = self.now();
        self.conn
            .execute(
                "INSERT INTO incidents (backend, component, status, name, state, intent_at) VALUES (?1, ?2, 'opening', ?3, ?4, ?5)",
                params![backend, component, name, state.as_str(), now],
            )
            .map_err(self.err())?;
        let id = self.conn.last_insert_rowid();
        Ok(self
            .incidents_where("id = ?1", &[&id])?
            .pop()
            .expect("just inserted"))
    }

    /// The page confirmed (or a lookup found) the incident.
    pub fn incident_opened(&mut self, id: i64, remote_id: &str, state: State) -> Result<()> {
        let now = self.now();
        self.exec1(
            "UPDATE incidents SET status = 'open', remote_id = ?2, state = ?3, opened_at = coalesce(opened_at, ?4) WHERE id = ?1 AND status IN ('opening', 'open')",
            params![id, remote_id, state.as_str(), now],
            id,
        )
    }

    /// The incident now describes `state`.
    pub fn incident_state(&mut self, id: i64, state: State) -> Result<()> {
        self.exec1(
            "UPDATE incidents SET state = ?2 WHERE id = ?1",
            params![id, state.as_str()],
            id,
        )
    }

    /// Mark the incident resolving (before the request) or resolved (after).
    pub fn incident_status(
        &mut self,
        id: i64,
        status: IncidentStatus,
        note: Option<&str>,
    ) -> Result<()> {
        let now = self.now();
        self.exec1(
            "UPDATE incidents SET status = ?2, note = coalesce(?3, note),
               resolved_at = CASE WHEN ?2 IN ('resolved', 'lost') THEN ?4 ELSE resolved_at END WHERE id = ?1",
            params![id, status, note, now],
            id,
        )
    }

    fn exec1(&self, sql: &str, p: impl rusqlite::Params, id: i64) -> Result<()> {
        let n = self.conn.execute(sql, p).map_err(self.err())?;
        if n != 1 {
            return Err(crate::SpoolError::Corrupt {
                path: self.path.clone(),
                column: "incidents",
                value: format!("incident {id} is not in the expected state"),
            });
        }
        Ok(())
    }

    /// The event behind a delivery, for incident texts.
    pub fn event_context(&self, id: i64) -> Result<EventContext> {
        Ok(self
            .conn
            .query_row(
                "SELECT service, host, description, received_at FROM events WHERE id = ?1",
                [id],
                |r| {
                    Ok(EventContext {
                        service: r.get(0)?,
                        host: r.get(1)?,
                        description: r.get(2)?,
                        received_at: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())?
            .unwrap_or_default())
    }

    /// Start a maintenance window.
    pub fn maintenance_start(
        &mut self,
        component: &str,
        ends_at: i64,
        reason: Option<&str>,
        show: bool,
    ) -> Result<Window> {
        let now = self.now();
        self.conn
            .execute(
                "INSERT INTO maintenance (component, starts_at, ends_at, reason, show) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![component, now, ends_at, reason, show],
            )
            .map_err(self.err())?;
        let id = self.conn.last_insert_rowid();
        self.conn
            .query_row(
                &format!("SELECT {WIN_COLS} FROM maintenance WHERE id = ?1"),
                [id],
                row_window,
            )
            .map_err(self.err())
    }

    /// End active windows (of one component, or all) now; returns those ended.
    pub fn maintenance_stop(&mut self, component: Option<&str>) -> Result<Vec<Window>> {
        let now = self.now();
        let mut st = self
            .conn
            .prepare(&format!(
                "UPDATE maintenance SET ended_at = ?1 WHERE ended_at IS NULL AND (?2 IS NULL OR component = ?2) RETURNING {WIN_COLS}"
            ))
            .map_err(self.err())?;
        let rows = st
            .query_map(params![now, component], row_window)
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// End windows whose time is up; returns those ended.
    pub fn expire_maintenance(&mut self) -> Result<Vec<Window>> {
        let now = self.now();
        let mut st = self
            .conn
            .prepare(&format!("UPDATE maintenance SET ended_at = ends_at WHERE ended_at IS NULL AND ends_at <= ?1 RETURNING {WIN_COLS}"))
            .map_err(self.err())?;
        let rows = st.query_map([now], row_window).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// The active window of a component, if any.
    pub fn maintenance_active(&self, component: &str) -> Result<Option<Window>> {
        let now = self.now();
        self.conn
            .query_row(
                &format!("SELECT {WIN_COLS} FROM maintenance WHERE component = ?1 AND ended_at IS NULL AND ends_at > ?2 ORDER BY ends_at DESC LIMIT 1"),
                params![component, now],
                row_window,
            )
            .optional()
            .map_err(self.err())
    }

    /// Make held deliveries (of one component, or all) due now, e.g. when a window ends.
    pub fn release_held(&mut self, component: Option<&str>) -> Result<usize> {
        let now = self.now();
        self.conn
            .execute(
                "UPDATE outbox SET next_attempt_at = ?1 WHERE status = 'pending' AND held IS NOT NULL AND (?2 IS NULL OR component = ?2)",
                params![now, component],
            )
            .map_err(self.err())
    }

    /// Windows, newest first: active ones, and with `all`, ended ones too.
    pub fn maintenance_list(&self, all: bool) -> Result<Vec<Window>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {WIN_COLS} FROM maintenance WHERE ?1 OR ended_at IS NULL ORDER BY id DESC"
            ))
            .map_err(self.err())?;
        let rows = st.query_map([all], row_window).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }
}
