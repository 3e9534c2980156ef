//! What the status page shows, as its API last confirmed it, its ids, and read-backs.
//!
//! Invariants:
//! - A confirmed state is only ever what the page answered; anything that may have changed the
//!   page unseen (a lost answer, a killed flusher, a forgotten id) forgets it
//!   ([`crate::Spool::forget_page_state`]).

use super::*;

impl Spool {
    /// The page's state for a component as last confirmed by `backend`'s API.
    pub fn page_state(&self, backend: &str, component: &str) -> Result<Option<State>> {
        let (state, _) = self.page_row(backend, component)?;
        state.map(|s| parse_state(&self.path, &s)).transpose()
    }

    /// (confirmed state, remote id) of a component on `backend`, as the `page` table has them.
    fn page_row(&self, backend: &str, component: &str) -> Result<(Option<String>, Option<String>)> {
        Ok(self
            .conn
            .query_row(
                "SELECT state, remote_id FROM page WHERE backend = ?1 AND component = ?2",
                params![backend, component],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err())?
            .unwrap_or_default())
    }

    /// Read the component's state back from `backend`'s page at `at`: a write's outcome is
    /// unknown (no answer, or a server error), and the server may still carry it out late.
    /// An earlier verification already due is kept.
    pub fn verify_later(&mut self, backend: &str, component: &str, at: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO page (backend, component, verify_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (backend, component) DO UPDATE SET verify_at = min(coalesce(verify_at, excluded.verify_at), excluded.verify_at)",
                params![backend, component, at],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Components whose page state is due to be read back now, with the state they should
    /// show. Components with a delivery pending or in flight wait: that delivery comes first.
    pub fn verifications_due(&self, backend: &str) -> Result<Vec<(String, State)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT p.component, d.state FROM page p JOIN desired d ON d.component = p.component
                 WHERE p.backend = ?1 AND p.verify_at <= ?2
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.component = p.component
                                   AND o.status IN ('pending', 'sending'))
                 ORDER BY p.component",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![backend, self.now()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(c, s)| Ok((c, parse_state(&self.path, &s)?)))
            .collect()
    }

    /// When the next read-back is due on `backend` (None: nothing in doubt).
    pub fn next_verify_at(&self, backend: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT min(verify_at) FROM page WHERE backend = ?1",
                [backend],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// The page was read back: record what it shows (None: the page cannot be read back, or
    /// it showed something else, so nothing is confirmed), and nothing is in doubt any more.
    pub fn verified(&mut self, backend: &str, component: &str, shows: Option<State>) -> Result<()> {
        let now = self.now();
        self.conn
            .execute(
                "UPDATE page SET verify_at = NULL, state = ?3,
                   confirmed_at = CASE WHEN ?3 IS NULL THEN NULL ELSE ?4 END
                 WHERE backend = ?1 AND component = ?2",
                params![backend, component, shows.map(|s| s.as_str()), now],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Queue the component's desired state again, forced past the "already shown" check: the
    /// page was read back showing something else (a late write landed over a newer one).
    pub fn enqueue_repair(&mut self, component: &str, message: &str) -> Result<Option<i64>> {
        let now = self.now();
        let path = self.path.clone();
        self.write(|tx, e| {
            let desired: Option<(String, Option<i64>)> = tx
                .query_row(
                    "SELECT state, event_id FROM desired WHERE component = ?1",
                    [component],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(e)?;
            let Some((state, event_id)) = desired else {
                return Ok(None);
            };
            let state = parse_state(&path, &state)?;
            enqueue(tx, component, state, event_id, Some(message), now, true)
                .map(Some)
                .map_err(e)
        })
    }

    /// Cached remote id of a component on `backend`.
    pub fn remote_id(&self, backend: &str, component: &str) -> Result<Option<String>> {
        Ok(self.page_row(backend, component)?.1)
    }

    /// Cache (or, with None, forget) the remote id of a component on `backend`. Forgetting also
    /// forgets the confirmed state: a re-created component starts from nothing.
    pub fn set_remote_id(
        &mut self,
        backend: &str,
        component: &str,
        id: Option<&str>,
    ) -> Result<()> {
        let r = match id {
            Some(id) => self.conn.execute(
                "INSERT INTO page (backend, component, remote_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (backend, component) DO UPDATE SET remote_id = excluded.remote_id",
                params![backend, component, id],
            ),
            None => self
                .conn
                .execute(
                    "UPDATE page SET remote_id = NULL WHERE backend = ?1 AND component = ?2",
                    params![backend, component],
                )
                .and_then(|_| forget_page_state(&self.conn, Some(backend), component)),
        };
        r.map(|_| ()).map_err(self.err())
    }
}

/// Forget what the page was last confirmed to show for `component` (on `backend`, or on every
/// page): something may have changed it unseen. The one place a confirmation is dropped.
pub(crate) fn forget_page_state(
    conn: &rusqlite::Connection,
    backend: Option<&str>,
    component: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE page SET state = NULL, confirmed_at = NULL WHERE component = ?1 AND (?2 IS NULL OR backend = ?2)",
        params![component, backend],
    )
}
