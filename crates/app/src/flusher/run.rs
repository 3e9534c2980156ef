//! The flusher's loop: one step delivers what is due and keeps the timers, then waits for work.
//!
//! Invariants: the loop waits out a locked spool (a daemon never exits for it), notices a spool
//! replaced under it within a poll interval, and sleeps in poll steps so SIGTERM is seen soon.

use statusrelay_spool::store::{Deliveries, PageState};
use std::fs::File;
use std::sync::atomic::Ordering;

use super::{FlushOptions, Flusher, take_lock};
use crate::{AppError, error, warn};

/// The flusher loop's timers and the lock it holds.
pub(super) struct Run {
    /// The one-flusher lock; taken again when the spool (and its directory) is replaced.
    /// None on PostgreSQL, where the election makes one writer.
    pub(super) lock: Option<File>,
    pub(super) pid: u32,
    pub(super) started: i64,
    pub(super) heartbeat_every: i64,
    pub(super) prune_every: i64,
    pub(super) resync_every: Option<i64>,
    pub(super) last_beat: i64,
    pub(super) last_prune: i64,
    pub(super) last_resync: i64,
    /// A prune batch was full: the next one is due after a poll interval.
    pub(super) prune_more: bool,
    /// Deliveries left 'sending' (by a killed flusher, or a write that failed) go back to pending.
    pub(super) reclaim: bool,
    /// On PostgreSQL: this instance follows (another writes), as of the last step.
    pub(super) following: bool,
}

impl Run {
    /// What a flusher does once per spool it opens.
    pub(super) fn start(&mut self, f: &mut Flusher<'_>) -> Result<(), AppError> {
        // On PostgreSQL claims are taken back when this instance is elected (`step`).
        if f.election.is_none() {
            self.reclaim_claims(f)?;
        }
        f.spool.heartbeat(self.pid, self.started)?;
        if matches!(f.sink, statusrelay_backend::Sink::Aggregator(_)) {
            // A new run (or a new spool): a new epoch, and a snapshot is owed.
            let start = f.relay_spool()?.relay_start()?;
            if let Some(old) = start.restarted {
                crate::warn!(
                    "the spool's relay epoch {old} is far ahead of this clock (it was set ahead once): reports start a new sequence under a new reporter id, so the aggregator hears this node again"
                );
            }
            let heartbeat = f
                .config
                .backend
                .remote()
                .map_or(statusrelay_core::config::DEFAULT_HEARTBEAT, |r| r.heartbeat);
            f.relay = Some(super::relay::RelayRun::new(
                start.epoch,
                start.reporter,
                heartbeat.as_millis() as i64,
                f.spool.now(),
            ));
        }
        self.prune_more = f.prune();
        if self.resync_every.is_some() {
            f.resync();
        }
        Ok(())
    }

    pub(super) fn reclaim_claims(&mut self, f: &mut Flusher<'_>) -> Result<(), AppError> {
        if self.reclaim {
            let verify_at = f.spool.now() + f.config.delivery.verify_after.as_millis() as i64;
            let recovered = f.spool.recover_claims(verify_at)?;
            if recovered > 0 {
                warn!(
                    "{recovered} deliveries were in flight when the last flusher stopped (or a spool write failed); sending them again"
                );
            }
            self.reclaim = false;
        }
        Ok(())
    }

    /// Has the spool file been removed or replaced under us (another file at the path now)?
    pub(super) fn spool_replaced(&self, f: &Flusher<'_>) -> bool {
        f.spool
            .as_sqlite()
            .is_some_and(|s| statusrelay_spool::file_id(&f.config.spool) != s.file_id())
    }

    /// Reopen a spool that was removed or replaced: deliveries recorded in the new file would
    /// otherwise never be sent. The lock is taken again, on the new path's lock file.
    pub(super) fn reopen(
        &mut self,
        f: &mut Flusher<'_>,
        opts: &FlushOptions,
    ) -> Result<(), AppError> {
        error!(
            "the spool {} was removed or replaced while the flusher ran (the file it had open is no longer at that path); reopening it",
            f.config.spool.display()
        );
        self.lock = Some(take_lock(f.config)?);
        f.spool = super::open_store(f.config, opts)?;
        self.reclaim = true;
        self.start(f)
    }

    /// One pass: deliver what is due, keep the timers, then wait for work. Returns false when
    /// a `once` run is done.
    pub(super) fn step(
        &mut self,
        f: &mut Flusher<'_>,
        opts: &FlushOptions,
    ) -> Result<bool, AppError> {
        if self.spool_replaced(f) {
            self.reopen(f, opts)?;
        }
        // On PostgreSQL only the elected instance delivers, under its term; a new term means
        // another writer may have left deliveries in flight: they are taken back first.
        if let Some(e) = f.election.clone() {
            match e.writes() {
                None => {
                    // A follower is alive too (`status` lists every instance), and its
                    // metrics say it follows: written when it begins to follow and with its
                    // heartbeat, not at every poll. It has nothing to deliver, so it asks the
                    // store nothing more until the election says it writes.
                    let now = opts.clock.now_ms();
                    let began = !self.following;
                    if began || now - self.last_beat >= self.heartbeat_every {
                        f.spool.heartbeat(self.pid, self.started)?;
                        self.last_beat = now;
                        f.write_metrics(opts.metrics_file.as_deref(), true);
                    }
                    self.following = true;
                    f.spool.follow();
                    f.term = None;
                    std::thread::sleep(opts.poll);
                    return Ok(!opts.once);
                }
                Some(term) if f.term != Some(term) => {
                    self.following = false;
                    f.spool.write_as(&e.target.lease.instance, term);
                    f.term = Some(term);
                    self.reclaim = true;
                    // The writer prunes; one newly elected begins with a batch.
                    self.prune_more = true;
                }
                Some(_) => {}
            }
        }
        // What the spool held before this step looked at it: a commit from here on (a
        // handler's, while this step delivers) ends the pause below at once.
        let seen = f.spool.data_version().ok();
        self.reclaim_claims(f)?;
        f.expire_maintenance()?;
        f.drain(&opts.shutdown)?;
        f.relay_snapshot_if_due(opts.clock.now_ms(), opts.poll.as_millis() as i64)?;
        f.verify_due()?;
        f.write_metrics(opts.metrics_file.as_deref(), true);
        if opts.once {
            return Ok(false);
        }
        let now = opts.clock.now_ms();
        if now - self.last_beat >= self.heartbeat_every {
            f.spool.heartbeat(self.pid, self.started)?;
            self.last_beat = now;
        }
        if self.prune_more || now - self.last_prune >= self.prune_every {
            self.prune_more = f.prune();
            self.last_prune = now;
        }
        if self
            .resync_every
            .is_some_and(|every| now - self.last_resync >= every)
        {
            f.resync();
            self.last_resync = now;
        }
        // Sleep until the next retry is due, a heartbeat is owed, or another process commits.
        let due = f.spool.next_due_at()?.unwrap_or(i64::MAX);
        let mut until = due.min(self.last_beat + self.heartbeat_every);
        if let Some(every) = self.resync_every {
            until = until.min(self.last_resync + every);
        }
        if let Some(at) = f.spool.next_verify_at(&f.identity)? {
            until = until.min(at);
        }
        if let Some(r) = &f.relay {
            until = until.min(r.next_snapshot);
        }
        if self.prune_more {
            // The next batch after one poll interval: the lock stays free meanwhile.
            until = until.min(now + opts.poll.as_millis() as i64);
        }
        self.pause_since(f, opts, until, seen);
        Ok(true)
    }

    /// Sleep in poll steps until `until`, shutdown, a commit by another process (seen at once
    /// through the WAL's inotify watch, else at the next poll), the doorbell (a commit in this
    /// process), or the spool file being replaced. A failed probe
    /// ends the pause; the next step says why.
    pub(super) fn pause(&self, f: &mut Flusher<'_>, opts: &FlushOptions, until: i64) {
        let version = f.spool.data_version().ok();
        self.pause_since(f, opts, until, version);
    }

    /// The same, from the spool's `version` as the caller last saw it: a commit since then
    /// (even one made before the pause began) ends it at once.
    fn pause_since(
        &self,
        f: &mut Flusher<'_>,
        opts: &FlushOptions,
        until: i64,
        version: Option<i64>,
    ) {
        if version.is_some() && f.spool.data_version().ok() != version {
            return;
        }
        let mut rung = opts.doorbell.as_ref().map(|d| d.count());
        // Another process's commit (a handler's event) writes the WAL: watched, it wakes the
        // pause at once; the poll is the fallback.
        let wal = match &opts.doorbell {
            None => crate::walwatch::WalWatch::new(&f.config.spool),
            Some(_) => None,
        };
        while opts.clock.now_ms() < until && !opts.shutdown.load(Ordering::SeqCst) {
            match (&opts.doorbell, rung, &wal) {
                (Some(d), Some(seen), _) => {
                    let now = d.wait(seen, opts.poll);
                    if now != seen {
                        break;
                    }
                    rung = Some(now);
                }
                // A write to the WAL may come just before its commit is visible (the WAL
                // index is updated after the frames): step anyway. A step that finds nothing
                // pauses again, from the version it saw at its start.
                (_, _, Some(w)) => {
                    if w.wait(opts.poll) {
                        break;
                    }
                }
                _ => std::thread::sleep(opts.poll),
            }
            if version.is_none() || f.spool.data_version().ok() != version || self.spool_replaced(f)
            {
                break;
            }
        }
    }
}
