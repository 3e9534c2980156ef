//! Delivery of one claimed item: held, skipped as already shown, sent (with its incident), or
//! failed; whether to retry is the error's decision, when is the pure retry policy's.

use statusrelay_spool::store::{Deliveries, PageState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statusrelay_backend::{BackendError, ComponentRef};
use statusrelay_core::duration;
use statusrelay_spool::retry::{Verdict, next_attempt};
use statusrelay_spool::{Claimed, Outcome};

use super::Flusher;
use super::incidents::Failure;
use crate::{AppError, debug, error, info, warn};

impl Flusher<'_> {
    /// Deliver everything due now, one component at a time.
    pub(super) fn drain(&mut self, shutdown: &AtomicBool) -> Result<(), AppError> {
        while !shutdown.load(Ordering::SeqCst) {
            let (claimed, superseded) = self.spool.claim_next(&self.claim)?;
            for s in &superseded {
                self.report.superseded += 1;
                info!(
                    "coalesced delivery {} ({}: {}): superseded by a newer state",
                    s.id, s.component, s.state
                );
            }
            let Some(c) = claimed else { return Ok(()) };
            self.deliver(&c)?;
        }
        Ok(())
    }

    pub(crate) fn component_ref(&self, name: &str) -> ComponentRef {
        let c = self.config.components.iter().find(|c| c.name == name);
        ComponentRef {
            name: name.to_string(),
            id: c.and_then(|c| c.id.clone()),
            container: c.and_then(|c| c.container.clone()),
        }
    }

    pub(crate) fn resolve(
        &mut self,
        comp: &ComponentRef,
        fresh: bool,
    ) -> Result<String, BackendError> {
        if let (false, Ok(Some(id))) = (fresh, self.spool.remote_id(&self.identity, &comp.name)) {
            return Ok(id);
        }
        let id = self.page()?.resolve(comp)?;
        if let Err(e) = self
            .spool
            .set_remote_id(&self.identity, &comp.name, Some(&id))
        {
            warn!("could not cache the id of {:?}: {e}", comp.name);
        }
        Ok(id)
    }

    pub(crate) fn send(&mut self, c: &Claimed) -> Result<statusrelay_core::State, BackendError> {
        if matches!(self.sink, statusrelay_backend::Sink::Aggregator(_)) {
            // An aggregator gets the failing tests behind the state, so it can show which
            // service and test failed on which node and combine the nodes by its own rule.
            self.relay_component(&c.item.component)?;
            return Ok(c.item.state);
        }
        let comp = self.component_ref(&c.item.component);
        // An aggregator's page says what fails in Monit's words, not what event changed it.
        let fleet = self
            .page_words(&c.item)
            .map_err(|e| super::relay::spool_failure(self, e))?
            .map(|w| w.description);
        let message = match &fleet {
            Some(words) => words.as_deref(),
            None => c.item.message.as_deref(),
        };
        self.send_state(&comp, c.item.state, message)
    }

    /// Set a component's state; a cached id the page no longer knows is looked up again once.
    pub(crate) fn send_state(
        &mut self,
        comp: &ComponentRef,
        state: statusrelay_core::State,
        msg: Option<&str>,
    ) -> Result<statusrelay_core::State, BackendError> {
        let comp = comp.clone();
        let id = self.resolve(&comp, false)?;
        match self.page()?.set_state(&id, &comp, state, msg) {
            // A cached id may point at a component deleted and re-created on the page.
            Err(e) if e.is_not_found() && comp.id.is_none() => {
                warn!(
                    "{:?}: id {id} is gone from the page; looking the name up again",
                    comp.name
                );
                let _ = self.spool.set_remote_id(&self.identity, &comp.name, None);
                let id = self.resolve(&comp, true)?;
                self.page()?.set_state(&id, &comp, state, msg)
            }
            other => other,
        }
    }

    pub(super) fn deliver(&mut self, c: &Claimed) -> Result<(), AppError> {
        let item = &c.item;
        if let Some((until, reason)) = self.hold_for(item)? {
            // Log a hold once, not at every recheck.
            if item.held.as_deref() != Some(reason.as_str()) {
                info!(
                    "held delivery {} ({}: {}): {reason}",
                    item.id, item.component, item.state
                );
            }
            self.spool.finish(c, &Outcome::Held { until, reason })?;
            return Ok(());
        }
        let incidents = self.incidents_for(&item.component);
        if !item.force
            && self.spool.page_state(&self.identity, &item.component)? == Some(item.state)
            && !(incidents && self.incident_work_pending(item)?)
        {
            self.report.skipped += 1;
            debug!(
                "skipped delivery {} ({}: {}): the page already shows it",
                item.id, item.component, item.state
            );
            self.spool.finish(
                c,
                &Outcome::Skipped {
                    reason: format!("the page already shows {}", item.state),
                },
            )?;
            return Ok(());
        }
        let attempt = item.attempts + 1;
        let started = std::time::Instant::now();
        let result = match if incidents {
            self.send_with_incident(c)
        } else {
            self.send(c).map_err(Failure::Page)
        } {
            Err(Failure::Spool(e)) => return Err(e),
            Err(Failure::Page(e)) => Err(e),
            Ok(state) => Ok(state),
        };
        let outcome = match result {
            Ok(state) => {
                self.report.sent += 1;
                self.report.sent_micros += started.elapsed().as_micros();
                info!(
                    "sent {}: {} (delivery {}, attempt {attempt})",
                    item.component, state, item.id
                );
                Outcome::Delivered {
                    backend: self.identity.clone(),
                    state,
                }
            }
            Err(e) => {
                if e.outcome_unknown() {
                    // The server may still carry the write out, late and over a newer one.
                    let at =
                        self.spool.now() + self.config.delivery.verify_after.as_millis() as i64;
                    self.spool
                        .verify_later(&self.identity, &item.component, at)?;
                }
                let (retry, reason) = e.retry_decision();
                let verdict = if retry {
                    next_attempt(
                        &self.policy,
                        attempt,
                        item.queued_at,
                        self.spool.now(),
                        e.retry_after(),
                        self.jitter.next(),
                    )
                } else {
                    Verdict::GiveUp(reason.clone())
                };
                match verdict {
                    Verdict::RetryAt(at) => {
                        self.report.retried += 1;
                        let wait = Duration::from_millis((at - self.spool.now()).max(0) as u64);
                        warn!(
                            "retry delivery {} ({}: {}) in {}: {reason}: {e}",
                            item.id,
                            item.component,
                            item.state,
                            duration::format(wait)
                        );
                        Outcome::Retry {
                            at,
                            error: e.to_string(),
                        }
                    }
                    Verdict::GiveUp(why) => {
                        self.report.dead += 1;
                        let error = if retry {
                            format!("{why}; last error: {e}")
                        } else {
                            e.to_string()
                        };
                        error!(
                            "dead-lettered delivery {} ({}: {}): {why}: {e}. Fix the cause, then `statusrelay replay --dead`",
                            item.id, item.component, item.state
                        );
                        Outcome::Dead { error }
                    }
                }
            }
        };
        self.spool.finish(c, &outcome)?;
        Ok(())
    }
}
