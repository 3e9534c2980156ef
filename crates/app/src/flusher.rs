//! The flusher: delivers the spool to the status page.
//!
//! Invariants:
//! - One flusher per spool, enforced by an exclusive lock on `<spool>.flush.lock`; deliveries a
//!   killed flusher left in flight are sent again at start (at-least-once; a PUT of a state is
//!   idempotent).
//! - Per component only the newest desired state is sent (the spool coalesces on claim), and a
//!   state the page already shows (as last confirmed by its API) is not sent again unless forced.
//! - Whether to retry is the error's decision (with a reason); when, the pure retry policy's.
//!   Every give-up is logged with its reason and stored on the dead letter.
//! - Clock, shutdown flag and poll interval are injected; the loop sleeps in short steps so a
//!   new event or SIGTERM is noticed within a poll interval.
//! - The daemon never exits because the spool stays locked (an operator's sqlite3 shell, a
//!   backup): it says so and waits. A spool file removed or replaced under it is noticed within
//!   a poll interval, said at error level, and reopened (the lock taken again on the new path).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statusrelay_backend::{
    Backend, BackendError, ComponentRef, ReadBack,
    cachet::Cachet,
    cachet3::Cachet3,
    html::{Html, PageGroup},
    http::{OverHttp, transport_warnings},
    read_token,
    statusio::Statusio,
    statuspage::Statuspage,
};
use statusrelay_core::Config;
use statusrelay_core::config::BackendConfig;
use statusrelay_core::duration;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_spool::retry::{RetryPolicy, Verdict, next_attempt};
use statusrelay_spool::{Claimed, Outcome, Spool};

use crate::{AppError, debug, error, info, warn};

/// How the flusher runs; tests inject all of it.
#[derive(Clone)]
pub struct FlushOptions {
    /// Drain what is due, then return.
    pub once: bool,
    /// How often to look for new events while idle.
    pub poll: Duration,
    pub shutdown: Arc<AtomicBool>,
    pub clock: Arc<dyn Clock>,
    /// Write Prometheus text-format metrics here (for node_exporter's textfile collector).
    pub metrics_file: Option<PathBuf>,
}

/// What a flush run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    pub skipped: usize,
    pub superseded: usize,
    pub retried: usize,
    pub dead: usize,
    /// Time spent on deliveries that reached the page, for the latency metric.
    pub sent_micros: u128,
}

/// Build the configured backend (reads the token; never logs it).
/// With `shutdown`, pacing and a request in flight are abandoned as soon as it is set.
pub fn build_backend(
    config: &Config,
    clock: Arc<dyn Clock>,
    shutdown: Option<Arc<AtomicBool>>,
) -> Result<Box<dyn Backend>, AppError> {
    let kind = config.backend.kind();
    let Some(r) = config.backend.remote() else {
        let BackendConfig::Html {
            dir,
            title,
            groups,
            history_days,
        } = &config.backend
        else {
            unreachable!("every kind but html has API settings")
        };
        let names = config.components.iter().map(|c| c.name.clone()).collect();
        let groups = groups
            .iter()
            .map(|g| PageGroup {
                name: g.name.clone(),
                components: g.components.clone(),
            })
            .collect();
        return Ok(Box::new(
            Html::new(dir, title, names, clock).with_layout(groups, *history_days),
        ));
    };
    let url = r.url_for(kind);
    let token = read_token(r.token_file.as_deref(), r.token_env.as_deref())?;
    for w in transport_warnings(&url, r.token_file.as_deref()) {
        warn!("{w}");
    }
    let pem = r
        .ca_file
        .as_ref()
        .map(|ca| {
            std::fs::read(ca).map_err(|e| {
                BackendError::Config(format!("cannot read ca_file {}: {e}", ca.display()))
            })
        })
        .transpose()?;
    let pem = pem.as_deref();
    let pace = r.min_interval_for(kind);
    let page = r.page_id.as_deref().unwrap_or_default();
    Ok(match &config.backend {
        BackendConfig::Cachet(_) => {
            let c = Cachet::new(&url, token, r.timeout).with_version(r.version);
            Box::new(client(c, pace, pem, shutdown)?)
        }
        BackendConfig::Cachet3(_) => {
            let c = Cachet3::new(&url, &r.api_prefix(), token, r.timeout);
            Box::new(client(c, pace, pem, shutdown)?)
        }
        BackendConfig::Statuspage(_) => {
            let c = Statuspage::new(&url, page, token, r.timeout);
            Box::new(client(c, pace, pem, shutdown)?)
        }
        BackendConfig::Statusio(_) => {
            let api_id = r.api_id.as_deref().unwrap_or_default();
            let c = Statusio::new(&url, page, api_id, token, r.timeout);
            Box::new(client(c, pace, pem, shutdown)?)
        }
        BackendConfig::Html { .. } => unreachable!("handled above"),
    })
}

/// Pace a client and narrow its trusted roots to the configured CA, when there is one.
fn client<B: OverHttp>(
    c: B,
    pace: Duration,
    pem: Option<&[u8]>,
    shutdown: Option<Arc<AtomicBool>>,
) -> Result<B, BackendError> {
    let mut c = c.paced(pace);
    if let Some(flag) = shutdown {
        c = c.stopped_by(flag);
    }
    match pem {
        Some(p) => c.with_ca_pem(p),
        None => Ok(c),
    }
}

fn lock_path(config: &Config) -> PathBuf {
    let mut p = config.spool.clone().into_os_string();
    p.push(".flush.lock");
    PathBuf::from(p)
}

/// Take the one-flusher-per-spool lock; held until the returned file is dropped.
fn take_lock(config: &Config) -> Result<File, AppError> {
    let lock = lock_path(config);
    if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AppError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| AppError::Io {
            path: lock.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(AppError::FlusherRunning {
            spool: config.spool.clone(),
            lock,
        }),
        Err(TryLockError::Error(source)) => Err(AppError::Io { path: lock, source }),
    }
}

/// A small PRNG for retry jitter (splitmix64); quality needs are modest.
struct Jitter(u64);
impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

pub(crate) struct Flusher<'a> {
    pub(crate) config: &'a Config,
    pub(crate) spool: Spool,
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) identity: String,
    policy: RetryPolicy,
    jitter: Jitter,
    claim: String,
    report: FlushReport,
    /// Page maintenance in progress, and when it was asked (unix ms).
    pub(crate) page_maintenance: Option<(i64, Vec<statusrelay_backend::PageMaintenance>)>,
}

/// Run the flusher until shutdown (or, with `once`, until nothing is due).
pub fn flush(
    config: &Config,
    backend: Box<dyn Backend>,
    opts: FlushOptions,
) -> Result<FlushReport, AppError> {
    let lock = take_lock(config)?;
    let spool = crate::open_spool(&config.spool, opts.clock.clone())?;
    let started = opts.clock.now_ms();
    let pid = std::process::id();
    let d = &config.delivery;
    let identity = backend.identity();
    info!("flushing {} to {identity}", config.spool.display());
    let mut f = Flusher {
        config,
        spool,
        backend,
        identity,
        policy: RetryPolicy {
            base: d.backoff_base,
            cap: d.backoff_cap,
            max_attempts: d.max_attempts,
            max_age: d.max_age,
        },
        jitter: Jitter(started as u64 ^ ((pid as u64) << 32)),
        claim: format!("{pid}-{started}"),
        report: FlushReport::default(),
        page_maintenance: None,
    };
    let mut run = Run {
        lock,
        pid,
        started,
        heartbeat_every: 5_000,
        prune_every: 3_600_000,
        resync_every: config
            .monit
            .as_ref()
            .and_then(|m| m.resync_interval)
            .map(|d| d.as_millis() as i64),
        last_beat: started,
        last_prune: started,
        last_resync: started,
        prune_more: false,
        reclaim: true,
    };
    run.start(&mut f)?;
    loop {
        if opts.shutdown.load(Ordering::SeqCst) {
            break;
        }
        match run.step(&mut f, &opts) {
            Ok(true) => {}
            Ok(false) => break,
            // A daemon waits out a spool held locked past the busy timeout (an operator's
            // sqlite3 shell, a backup): only the handler has Monit waiting on it.
            Err(AppError::Spool(e)) if e.is_busy() && !opts.once => {
                warn!(
                    "{e}: another process has held the spool locked for over {}s (an sqlite3 shell? a backup?); waiting for it and carrying on",
                    statusrelay_spool::BUSY_TIMEOUT.as_secs()
                );
                // A delivery may have been left 'sending' by the failed write: take it back.
                run.reclaim = true;
                run.pause(
                    &f,
                    &opts,
                    opts.clock.now_ms() + opts.poll.as_millis() as i64,
                );
            }
            Err(e) => return Err(e),
        }
    }
    if opts.shutdown.load(Ordering::SeqCst) {
        info!(
            "shutting down: {} sent, {} retried, {} dead-lettered this run",
            f.report.sent, f.report.retried, f.report.dead
        );
    }
    f.spool.flusher_stopped()?;
    f.write_metrics(opts.metrics_file.as_deref(), false);
    let stats = f.spool.stats()?;
    if opts.once && (stats.pending + stats.sending) > 0 {
        let next = f
            .spool
            .next_due_at()?
            .map(rfc3339)
            .unwrap_or_else(|| "unknown".into());
        return Err(AppError::StillPending {
            count: (stats.pending + stats.sending) as usize,
            next,
        });
    }
    Ok(f.report)
}

/// The flusher loop's timers and the lock it holds.
struct Run {
    /// The one-flusher lock; taken again when the spool (and its directory) is replaced.
    lock: File,
    pid: u32,
    started: i64,
    heartbeat_every: i64,
    prune_every: i64,
    resync_every: Option<i64>,
    last_beat: i64,
    last_prune: i64,
    last_resync: i64,
    /// A prune batch was full: the next one is due after a poll interval.
    prune_more: bool,
    /// Deliveries left 'sending' (by a killed flusher, or a write that failed) go back to pending.
    reclaim: bool,
}

impl Run {
    /// What a flusher does once per spool it opens.
    fn start(&mut self, f: &mut Flusher<'_>) -> Result<(), AppError> {
        self.reclaim_claims(f)?;
        f.spool.heartbeat(self.pid, self.started)?;
        self.prune_more = f.prune();
        if self.resync_every.is_some() {
            f.resync();
        }
        Ok(())
    }

    fn reclaim_claims(&mut self, f: &mut Flusher<'_>) -> Result<(), AppError> {
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
    fn spool_replaced(&self, f: &Flusher<'_>) -> bool {
        statusrelay_spool::file_id(&f.config.spool) != f.spool.file_id()
    }

    /// Reopen a spool that was removed or replaced: deliveries recorded in the new file would
    /// otherwise never be sent. The lock is taken again, on the new path's lock file.
    fn reopen(&mut self, f: &mut Flusher<'_>, opts: &FlushOptions) -> Result<(), AppError> {
        error!(
            "the spool {} was removed or replaced while the flusher ran (the file it had open is no longer at that path); reopening it",
            f.config.spool.display()
        );
        self.lock = take_lock(f.config)?;
        f.spool = crate::open_spool(&f.config.spool, opts.clock.clone())?;
        self.reclaim = true;
        self.start(f)
    }

    /// One pass: deliver what is due, keep the timers, then wait for work. Returns false when
    /// a `once` run is done.
    fn step(&mut self, f: &mut Flusher<'_>, opts: &FlushOptions) -> Result<bool, AppError> {
        if self.spool_replaced(f) {
            self.reopen(f, opts)?;
        }
        self.reclaim_claims(f)?;
        f.expire_maintenance()?;
        f.drain(&opts.shutdown)?;
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
        if self.prune_more {
            // The next batch after one poll interval: the lock stays free meanwhile.
            until = until.min(now + opts.poll.as_millis() as i64);
        }
        self.pause(f, opts, until);
        Ok(true)
    }

    /// Sleep in poll steps until `until`, shutdown, a commit by another process, or the spool
    /// file being replaced. A failed probe ends the pause; the next step says why.
    fn pause(&self, f: &Flusher<'_>, opts: &FlushOptions, until: i64) {
        let version = f.spool.data_version().ok();
        while opts.clock.now_ms() < until && !opts.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(opts.poll);
            if version.is_none() || f.spool.data_version().ok() != version || self.spool_replaced(f)
            {
                break;
            }
        }
    }
}

impl Flusher<'_> {
    /// Write the metrics file atomically; a failure is a warning, never a reason to stop.
    fn write_metrics(&self, path: Option<&std::path::Path>, up: bool) {
        let Some(path) = path else { return };
        let text = match self.spool.stats() {
            Ok(s) => crate::metrics::render(&s, &self.report, up, self.spool.now()),
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
    fn resync(&mut self) {
        match crate::resync::run(self.config, &mut self.spool, false) {
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
    fn prune(&mut self) -> bool {
        let r = &self.config.retention;
        match self
            .spool
            .prune_batch(r.events, r.max_events, statusrelay_spool::PRUNE_BATCH)
        {
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
    fn verify_due(&mut self) -> Result<(), AppError> {
        for (component, want) in self.spool.verifications_due(&self.identity)? {
            let comp = self.component_ref(&component);
            let read = self
                .resolve(&comp, false)
                .and_then(|id| self.backend.read_back(&id, want));
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

    /// Deliver everything due now, one component at a time.
    fn drain(&mut self, shutdown: &AtomicBool) -> Result<(), AppError> {
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
        let id = self.backend.resolve(comp)?;
        if let Err(e) = self
            .spool
            .set_remote_id(&self.identity, &comp.name, Some(&id))
        {
            warn!("could not cache the id of {:?}: {e}", comp.name);
        }
        Ok(id)
    }

    pub(crate) fn send(&mut self, c: &Claimed) -> Result<statusrelay_core::State, BackendError> {
        let comp = self.component_ref(&c.item.component);
        self.send_state(&comp, c.item.state, c.item.message.as_deref())
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
        match self.backend.set_state(&id, &comp, state, msg) {
            // A cached id may point at a component deleted and re-created on the page.
            Err(e) if e.is_not_found() && comp.id.is_none() => {
                warn!(
                    "{:?}: id {id} is gone from the page; looking the name up again",
                    comp.name
                );
                let _ = self.spool.set_remote_id(&self.identity, &comp.name, None);
                let id = self.resolve(&comp, true)?;
                self.backend.set_state(&id, &comp, state, msg)
            }
            other => other,
        }
    }

    fn deliver(&mut self, c: &Claimed) -> Result<(), AppError> {
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
        let result = if incidents {
            self.send_with_incident(c)?
        } else {
            self.send(c)
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
