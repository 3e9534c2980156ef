//! Holds in the flusher: deliveries that wait on purpose.
//!
//! Invariants:
//! - Nothing is sent for a held component: a maintenance window (local or on the page) holds
//!   every state but `under_maintenance` itself; an unresolved incident someone else opened holds
//!   the flip back to operational. Coalescing makes the release deliver only the newest state.
//! - An incident carrying statusrelay's marker is never a human's, so it never holds anything.
//! - Expiry of a local window is recorded by the flusher, never inferred silently.

use statusrelay_backend::PageMaintenance;
use statusrelay_core::State;
use statusrelay_core::config::Schedules;
use statusrelay_core::time::rfc3339;
use statusrelay_spool::Item;
use statusrelay_spool::store::{Holds, Incidents, Record};

use super::Flusher;
use crate::handler::maintenance_event;
use crate::{AppError, info, warn};

/// How long a hold lasts before it is looked at again (page maintenance, manual incidents).
const RECHECK_MS: i64 = 30_000;
/// How long the page's maintenance list is trusted.
const MAINTENANCE_CACHE_MS: i64 = 60_000;

/// The page's maintenance schedule as last read, and when: read again after
/// [`MAINTENANCE_CACHE_MS`], so a delivery does not cost a request for it.
#[derive(Default)]
pub(crate) struct PageSchedule {
    read: Option<(i64, Vec<PageMaintenance>)>,
}

impl PageSchedule {
    /// Is it due to be read again?
    fn stale(&self, now: i64) -> bool {
        self.read
            .as_ref()
            .is_none_or(|(at, _)| now - at >= MAINTENANCE_CACHE_MS)
    }

    /// What the page says now (nothing, when it could not be read: a schedule is never
    /// guessed).
    fn read(&mut self, now: i64, list: Vec<PageMaintenance>) {
        self.read = Some((now, list));
    }

    /// The name of the first maintenance that covers the component: every one with
    /// `schedules = "all"`; else one that names it (by name in its title or text, or by name or
    /// the page's id among its components).
    fn covering(&self, mode: Schedules, component: &str, remote: Option<&str>) -> Option<String> {
        let lc = component.to_lowercase();
        self.read.as_ref()?.1.iter().find_map(|m| {
            let covers = mode == Schedules::All
                || m.name.to_lowercase().contains(&lc)
                || m.message.to_lowercase().contains(&lc)
                || m.components
                    .iter()
                    .any(|c| c == component || Some(c.as_str()) == remote);
            covers.then(|| m.name.clone())
        })
    }
}

impl Flusher<'_> {
    /// Should this delivery wait? Returns until when, and why.
    pub(crate) fn hold_for(&mut self, item: &Item) -> Result<Option<(i64, String)>, AppError> {
        if item.state == State::UnderMaintenance {
            return Ok(None);
        }
        let now = self.spool.now();
        if let Some(w) = self.spool.maintenance_active(&item.component)? {
            let why = w
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            return Ok(Some((
                w.ends_at.min(now + RECHECK_MS),
                format!("held: maintenance until {}{why}", rfc3339(w.ends_at)),
            )));
        }
        if let Some(name) = self.page_maintenance_covering(&item.component) {
            return Ok(Some((
                now + RECHECK_MS,
                format!("held: maintenance on the page ({name:?})"),
            )));
        }
        if item.state == State::Operational
            && self.config.incidents.respect_manual
            && self.page_has_incidents()
        {
            let comp = self.component_ref(&item.component);
            let ours = self
                .spool
                .open_incident(&self.identity, &item.component)?
                .and_then(|i| i.remote_id);
            // If the page cannot be asked now, deliver: the delivery's own retry handles the outage.
            let theirs = self
                .resolve(&comp, false)
                .and_then(|id| self.page()?.open_incidents(&id));
            if let Ok(list) = theirs
                && let Some(i) = list
                    .into_iter()
                    .find(|i| Some(&i.id) != ours.as_ref() && !i.by_statusrelay())
            {
                return Ok(Some((
                    now + RECHECK_MS,
                    format!("held: manual incident #{} {:?}", i.id, i.name),
                )));
            }
        }
        Ok(None)
    }

    /// The name of an in-progress page maintenance that covers the component, if any.
    pub(super) fn page_maintenance_covering(&mut self, component: &str) -> Option<String> {
        // An aggregator has no schedule of its own to read: its page holds on the aggregator.
        self.sink.page()?;
        let mode = self.config.backend.remote()?.schedules;
        if mode == Schedules::Off {
            return None;
        }
        let now = self.spool.now();
        if self.schedule.stale(now) {
            let list = match self.page().and_then(|p| p.active_maintenance()) {
                Ok(list) => list,
                Err(e) => {
                    warn!("cannot read the page's maintenance schedule (assuming none): {e}");
                    Vec::new()
                }
            };
            self.schedule.read(now, list);
        }
        // Pages often list a maintenance's components by id only: resolve (and cache) ours.
        let comp = self.component_ref(component);
        let remote = self.resolve(&comp, false).ok();
        self.schedule.covering(mode, component, remote.as_deref())
    }

    /// End expired local maintenance windows: a shown window's state is cleared, held
    /// deliveries of the component become due.
    pub(crate) fn expire_maintenance(&mut self) -> Result<(), AppError> {
        for w in self.spool.expire_maintenance()? {
            info!(
                "maintenance of {} ended (it was due to end at {})",
                w.component,
                rfc3339(w.ends_at)
            );
            if w.show {
                let (ev, apply) =
                    maintenance_event(self.config, &w.component, false, "maintenance window ended");
                self.spool.record(&ev, &[apply])?;
            }
            self.spool.release_held(Some(&w.component))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> PageSchedule {
        let mut s = PageSchedule::default();
        s.read(
            1_000,
            vec![
                PageMaintenance {
                    name: "Database upgrade".into(),
                    message: "The DB cluster is read-only".into(),
                    components: vec![],
                },
                PageMaintenance {
                    name: "Network work".into(),
                    message: String::new(),
                    components: vec!["42".into()],
                },
            ],
        );
        s
    }

    #[test]
    fn a_page_maintenance_covers_what_it_names_by_name_text_or_id() {
        let s = schedule();
        let on = Schedules::ByName;
        assert_eq!(
            s.covering(on, "database", None).as_deref(),
            Some("Database upgrade"),
            "by name, whatever the case"
        );
        assert_eq!(
            s.covering(on, "db cluster", None).as_deref(),
            Some("Database upgrade"),
            "by its text"
        );
        assert_eq!(
            s.covering(on, "edge", Some("42")).as_deref(),
            Some("Network work"),
            "by the page's id among its components"
        );
        assert_eq!(s.covering(on, "mail", Some("7")), None);
        assert_eq!(
            s.covering(Schedules::All, "mail", None).as_deref(),
            Some("Database upgrade"),
            "schedules = all: every maintenance covers every component"
        );
    }

    #[test]
    fn the_schedule_is_read_again_after_a_minute() {
        let s = schedule();
        assert!(!s.stale(1_000 + MAINTENANCE_CACHE_MS - 1));
        assert!(s.stale(1_000 + MAINTENANCE_CACHE_MS));
        assert!(PageSchedule::default().stale(0), "never read");
    }
}
