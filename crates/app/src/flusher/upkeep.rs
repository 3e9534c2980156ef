//! Upkeep between deliveries: the metrics file, resync with Monit, pruning in batches, and
//! reading the page back after a write whose outcome was unknown. None of it stops delivery:
//! a failure is logged and tried again later.

use statusrelay_backend::ReadBack;
use statusrelay_spool::store::{PageState, Retention};

use super::Flusher;
use crate::{AppError, debug, info, warn};

impl Flusher<'_> {
    /// Write the metrics file atomically; a failure is a warning, never a reason to stop.
    pub(super) fn write_metrics(&mut self, path: Option<&std::path::Path>, up: bool) {
        let Some(path) = path else { return };
        let text = match self.spool.stats() {
            Ok(s) => {
                let mut text = crate::metrics::render(&s, &self.report, up, self.spool.now());
                if let Some(e) = &self.election {
                    let term = e.writes().filter(|_| up);
                    text.push_str(&crate::metrics::writer(&e.target.lease.instance, term));
                }
                text
            }
            Err(e) => {
                warn!("metrics not written: {e}");
                return;
            }
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Err(e) = statusrelay_core::fsutil::write_atomic(dir, &name, text.as_bytes(), 0o644) {
            warn!("cannot write metrics to {}: {e}", path.display());
        }
    }

    /// Repair from Monit's own view; a failure is logged, never fatal (Monit may be restarting).
    pub(super) fn resync(&mut self) {
        // Resync reads this node's own Monit into its own spool: never an aggregator's store.
        let Some(spool) = self.spool.sqlite() else {
            return;
        };
        match crate::resync::run(self.config, spool, false) {
            Ok(d) if d.is_empty() => debug!("resync: in step with Monit"),
            Ok(d) => {
                for x in &d {
                    let now = x
                        .now
                        .map(|s| format!("failing ({s})"))
                        .unwrap_or_else(|| "passing".into());
                    info!(
                        "resync: {}: {} {} is {now} per Monit; recorded",
                        x.component, x.service, x.test
                    );
                }
            }
            Err(e) => warn!("resync failed (will try again at the next interval): {e}"),
        }
    }

    /// Prune one batch; true while there is more. Batches are spread out over the loop's
    /// iterations (a poll interval apart), so handlers always find the write lock free soon.
    pub(super) fn prune(&mut self) -> bool {
        // On PostgreSQL only the writer prunes, fenced by its term: a follower leaves it to
        // the writer (the first step of a new term prunes, see `Run::step`).
        if self.election.is_some() && self.term.is_none() {
            return false;
        }
        let r = &self.config.retention;
        match Retention::prune_batch(
            &mut self.spool,
            r.events,
            r.max_events,
            statusrelay_spool::PRUNE_BATCH,
        ) {
            Ok(p) => {
                if p.deliveries + p.events > 0 {
                    debug!(
                        "pruned {} finished deliveries and {} events past retention (lock held {} ms){}",
                        p.deliveries,
                        p.events,
                        p.held.as_millis(),
                        if p.more { "; more to prune" } else { "" }
                    );
                }
                p.more
            }
            Err(e) => {
                warn!("pruning the spool failed (will try again later): {e}");
                false
            }
        }
    }

    /// Read back the components whose last write had an unknown outcome, now that no delivery
    /// of theirs is pending; a page that shows something else (a late write landed over a
    /// newer one) gets the desired state again.
    pub(super) fn verify_due(&mut self) -> Result<(), AppError> {
        for (component, want) in self.spool.verifications_due(&self.identity)? {
            let comp = self.component_ref(&component);
            // An aggregator is not read back: a report sent again is outdated there, harmless.
            let read = if self.sink.page().is_none() {
                Ok(ReadBack::Unsupported)
            } else {
                self.resolve(&comp, false)
                    .and_then(|id| self.page()?.read_back(&id, want))
            };
            match read {
                Ok(ReadBack::Shows) => {
                    debug!("read back {component}: the page shows {want}, as it should");
                    self.spool
                        .verified(&self.identity, &component, Some(want))?;
                }
                Ok(ReadBack::Unsupported) => {
                    self.spool.verified(&self.identity, &component, None)?;
                }
                Ok(ReadBack::Differs(shows)) => {
                    self.spool.verified(&self.identity, &component, None)?;
                    let id = self.spool.enqueue_repair(
                        &component,
                        "repair: the page showed another state after a write whose outcome was unknown",
                    )?;
                    warn!(
                        "read back {component}: the page shows {shows} but should show {want} (a write whose answer was lost was carried out late); sending {want} again (delivery {})",
                        id.map(|i| i.to_string()).unwrap_or_else(|| "-".into())
                    );
                }
                Err(e) => {
                    let at = self.spool.now() + 30_000;
                    warn!("cannot read {component} back from the page (trying again in 30s): {e}");
                    self.spool.verified(&self.identity, &component, None)?;
                    self.spool.verify_later(&self.identity, &component, at)?;
                }
            }
        }
        Ok(())
    }
}
