//! A relaying node's flusher (`[backend] kind = "relay"`): what it sends the aggregator.
//!
//! Invariants:
//! - Every report is read from the spool at send time, in one read transaction, with the
//!   newest event id as its `seq` and the flusher run's epoch: the aggregator orders by that,
//!   so a retried delivery carries the node's present truth and never an old one.
//! - A full snapshot (every configured component) goes at start, after `resync`, and every
//!   heartbeat: a restarted or restored aggregator converges on its own, and the aggregator
//!   learns the node's period from it. A failed snapshot is tried again after a poll interval
//!   or five seconds, whichever is longer; the first failure of a run of them is a warning,
//!   the rest are debug lines until one succeeds.

use statusrelay_backend::BackendError;
use statusrelay_core::relay::{OUTDATED_WARN_AFTER, RelayAck, RelayBatch, RelayReport, RelayTest};
use statusrelay_spool::FailingTest;

use super::Flusher;
use crate::{AppError, debug, info, warn};

/// The relay's state in one flusher run.
pub(crate) struct RelayRun {
    pub(crate) epoch: i64,
    /// The spool's reporter id, sent with every batch.
    pub(crate) reporter: String,
    pub(crate) heartbeat_ms: i64,
    pub(crate) next_snapshot: i64,
    /// The last snapshot failed (its warning was logged).
    failing: bool,
    /// Reports the aggregator answered outdated in a row (a warning at the third).
    outdated_run: u32,
}

impl RelayRun {
    pub(crate) fn new(epoch: i64, reporter: String, heartbeat_ms: i64, now: i64) -> RelayRun {
        RelayRun {
            epoch,
            reporter,
            heartbeat_ms,
            next_snapshot: now,
            failing: false,
            outdated_run: 0,
        }
    }

    /// Note an acknowledgement: a run of outdated answers is a warning, once, with the
    /// aggregator's reason; the first applied report after it says so.
    fn acknowledged(&mut self, ack: &RelayAck) {
        // An outdated answer with no reason is the same truth sent again (an idle heartbeat).
        if let Some(why) = ack.outdated_why.as_deref().filter(|_| ack.applied == 0) {
            self.outdated_run += 1;
            if self.outdated_run == OUTDATED_WARN_AFTER {
                warn!(
                    "the aggregator answered {} reports in a row as outdated: {why}; if this goes on, the aggregator is not taking this node's word (see `statusrelay nodes` there)",
                    self.outdated_run
                );
            } else {
                debug!("report outdated: {why}");
            }
        } else if ack.applied > 0 {
            if self.outdated_run >= OUTDATED_WARN_AFTER {
                info!("the aggregator takes this node's reports again");
            }
            self.outdated_run = 0;
        }
    }
}

/// One report per (service, test), the worst state where several sources of the node report
/// the same test.
fn report(component: &str, seq: i64, mut tests: Vec<FailingTest>) -> RelayReport {
    // Worst first, so the words sent are the worst source's (the first of them that has any).
    tests.sort_by_key(|t| std::cmp::Reverse(t.state.severity()));
    let mut failing: Vec<RelayTest> = Vec::new();
    for t in tests {
        match failing
            .iter_mut()
            .find(|o| o.service == t.service && o.test == t.test)
        {
            Some(o) => {
                o.state = o.state.worst(t.state);
                o.description = o.description.take().or(t.description);
            }
            None => failing.push(RelayTest {
                service: t.service,
                test: t.test,
                state: t.state,
                description: t.description,
            }),
        }
    }
    RelayReport {
        seq,
        component: component.to_string(),
        failing,
    }
}

/// A spool read that failed mid-delivery: retried as the page's failure would be.
/// A node relays its own SQLite spool; the PostgreSQL store is an aggregator's.
const RELAY_NEEDS_SPOOL: &str = "relaying to an aggregator reads this node's SQLite spool: [store] is for an aggregator's instances (`serve`), not a relaying node";

impl Flusher<'_> {
    /// The node's SQLite spool, which relaying reads and marks.
    pub(crate) fn relay_spool(&mut self) -> Result<&mut statusrelay_spool::Spool, AppError> {
        self.spool
            .sqlite()
            .ok_or_else(|| AppError::Usage(RELAY_NEEDS_SPOOL.into()))
    }
}

pub(super) fn spool_failure(f: &Flusher<'_>, e: impl std::fmt::Display) -> BackendError {
    BackendError::Io {
        path: f.config.spool.clone(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl Flusher<'_> {
    /// A batch of the node's present truth about `components`.
    fn relay_batch(&self, components: &[&str], snapshot: bool) -> Result<RelayBatch, BackendError> {
        let run = self
            .relay
            .as_ref()
            .ok_or_else(|| BackendError::Protocol("relaying without a relay run (a bug)".into()))?;
        let view = self
            .spool
            .as_sqlite()
            .ok_or_else(|| BackendError::Protocol(RELAY_NEEDS_SPOOL.into()))?
            .relay_view(components)
            .map_err(|e| spool_failure(self, e))?;
        Ok(RelayBatch {
            epoch: run.epoch,
            period_ms: Some(run.heartbeat_ms),
            snapshot,
            reporter: Some(run.reporter.clone()),
            reports: view
                .components
                .into_iter()
                .map(|(c, tests)| report(&c, view.seq, tests))
                .collect(),
        })
    }

    /// The aggregator this node relays to.
    fn aggregator(&mut self) -> Result<&mut statusrelay_backend::relay::Relay, BackendError> {
        match &mut self.sink {
            statusrelay_backend::Sink::Aggregator(r) => Ok(r),
            statusrelay_backend::Sink::Page(_) => Err(BackendError::Protocol(
                "a status page takes states, not a node's reports".into(),
            )),
        }
    }

    /// Deliver one component's present failing tests.
    pub(crate) fn relay_component(&mut self, component: &str) -> Result<(), BackendError> {
        let batch = self.relay_batch(&[component], false)?;
        let ack = self.aggregator()?.relay(&batch)?;
        if let Some(run) = self.relay.as_mut() {
            run.acknowledged(&ack);
        }
        Ok(())
    }

    /// Send the whole snapshot if one is owed or the heartbeat is due.
    pub(crate) fn relay_snapshot_if_due(&mut self, now: i64, poll_ms: i64) -> Result<(), AppError> {
        let Some((epoch, next_snapshot)) = self.relay.as_ref().map(|r| (r.epoch, r.next_snapshot))
        else {
            return Ok(());
        };
        if epoch > now.saturating_add(statusrelay_core::relay::MAX_AHEAD_MS) {
            // The clock was set right while this run's epoch was taken far ahead: the
            // aggregator refuses it, so a new sequence starts now, under a new reporter id.
            let start = self.relay_spool()?.relay_start()?;
            warn!(
                "this run's relay epoch {epoch} is far ahead of the clock (it was set right since): reports start a new sequence under a new reporter id"
            );
            let run = self.relay.as_mut().expect("checked above");
            run.epoch = start.epoch;
            run.reporter = start.reporter;
            run.next_snapshot = now;
            return Ok(());
        }
        let due = self.relay_spool()?.snapshot_due()?;
        if due == 0 && now < next_snapshot {
            return Ok(());
        }
        let names: Vec<&str> = self
            .config
            .components
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let sent = self
            .relay_batch(&names, true)
            .and_then(|b| self.aggregator()?.relay(&b).map(|ack| (b, ack)));
        let run = self.relay.as_mut().expect("checked above");
        match sent {
            Ok((b, ack)) => {
                if run.failing {
                    info!("the aggregator takes this node's snapshots again");
                }
                debug!(
                    "snapshot of {} components sent (seq {}): {} applied, {} outdated",
                    b.reports.len(),
                    b.reports.first().map_or(0, |r| r.seq),
                    ack.applied,
                    ack.outdated
                );
                run.failing = false;
                run.acknowledged(&ack);
                run.next_snapshot = now + run.heartbeat_ms;
                self.relay_spool()?.snapshot_sent(due)?;
            }
            Err(e) => {
                if run.failing {
                    debug!("snapshot not delivered again: {e}");
                } else {
                    warn!(
                        "the node's snapshot was not delivered to the aggregator: {e}; trying again (deliveries keep their own retries)"
                    );
                }
                run.failing = true;
                run.next_snapshot = now + poll_ms.max(5_000).min(run.heartbeat_ms);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statusrelay_core::State;

    #[test]
    fn a_test_reported_by_two_sources_is_sent_once_at_its_worst() {
        let t = |host: &str, state, said: Option<&str>| FailingTest {
            host: host.into(),
            service: "mysql".into(),
            test: "existence".into(),
            state,
            since: 0,
            description: said.map(str::to_string),
        };
        let r = report(
            "db",
            7,
            vec![
                t("a", State::PartialOutage, Some("process is not running")),
                t("b", State::MajorOutage, None),
                t("c", State::MajorOutage, Some("failed to start")),
                t("d", State::MajorOutage, Some("not this one")),
            ],
        );
        assert_eq!(r.seq, 7);
        assert_eq!(r.failing.len(), 1);
        assert_eq!(r.failing[0].state, State::MajorOutage);
        // The worst sources' words, the first of them that has any.
        assert_eq!(r.failing[0].description.as_deref(), Some("failed to start"));
    }
}
