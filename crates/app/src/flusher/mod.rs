//! The flusher: delivers the spool to the status page, or, on a relaying node, the node's
//! failing tests to the aggregator (the `Sink` it is given says which).
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
//! - Only the page's path asks for the page (`Flusher::page`), only the relay's for the
//!   aggregator; asking for the other is an error, never a panic.
//!
//! The module's files: the loop and its timers (`run`), delivery (`deliver`), incidents and
//! holds (`incidents`, `holds`), the relay to an aggregator (`relay`), what an aggregator's page
//! says (`words`), and the upkeep between deliveries (`upkeep`: metrics, resync, pruning,
//! reading the page back).

mod deliver;
mod holds;
mod incidents;
mod run;
mod upkeep;
mod words;

use run::Run;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statusrelay_backend::{Backend, BackendError, Sink};
use statusrelay_core::Config;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_serve::store::Store;
use statusrelay_spool::SpoolCause;
use statusrelay_spool::retry::RetryPolicy;
use statusrelay_spool::store::Deliveries;

use crate::{AppError, info, warn};

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
    /// Rung by a producer in this process (the aggregator's ingest) after a commit: the pause
    /// between steps ends at once instead of at the next poll.
    pub doorbell: Option<Arc<statusrelay_spool::Doorbell>>,
    /// Deliver from the PostgreSQL store (`serve` on `[store]`) instead of the SQLite spool,
    /// and only while `election` says this instance writes.
    pub postgres: Option<Arc<statusrelay_pg::Election>>,
}

pub use crate::metrics::FlushReport;

/// Build the configured backend (reads the token; never logs it); what is weak about how the
/// page is reached is logged as a warning.
pub fn build_backend(
    config: &Config,
    clock: Arc<dyn Clock>,
    shutdown: Option<Arc<AtomicBool>>,
) -> Result<Sink, AppError> {
    Ok(statusrelay_backend::build::from_config(
        config,
        clock,
        shutdown,
        &mut |w| warn!("{w}"),
    )?)
}

fn lock_path(config: &Config) -> PathBuf {
    let mut p = config.spool.clone().into_os_string();
    p.push(".flush.lock");
    PathBuf::from(p)
}

/// Take the one-flusher-per-spool lock; held until the returned file is dropped.
pub(crate) fn take_lock(config: &Config) -> Result<File, AppError> {
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
    pub(crate) spool: Store,
    /// The election this instance writes by (on PostgreSQL); None: the only flusher of a
    /// SQLite spool, which its lock file makes so.
    pub(crate) election: Option<Arc<statusrelay_pg::Election>>,
    /// The page, or the aggregator (see `statusrelay_backend::Sink`).
    pub(crate) sink: Sink,
    pub(crate) identity: String,
    policy: RetryPolicy,
    jitter: Jitter,
    claim: String,
    report: FlushReport,
    /// The page's maintenance schedule, as last read (see `holds::PageSchedule`).
    pub(crate) schedule: holds::PageSchedule,
    /// Relaying to an aggregator: this run's epoch and snapshot timer.
    pub(crate) relay: Option<relay::RelayRun>,
    /// The term this flusher last wrote under (on PostgreSQL).
    pub(crate) term: Option<statusrelay_pg::Term>,
}

impl Flusher<'_> {
    /// The status page. Only the page's delivery path asks: a relaying node's run relays
    /// instead (`Run::step`), so an aggregator here is a bug, said as an error, never a panic.
    pub(crate) fn page(&mut self) -> Result<&mut (dyn Backend + 'static), BackendError> {
        // Immediately before each page request: the lease must outlast it, so no request of
        // a deposed writer is in flight when another instance takes over.
        if let Some(e) = &self.election {
            let takes = self
                .config
                .backend
                .remote()
                .map_or(Duration::ZERO, |r| r.timeout);
            if e.may_send(takes).is_none() {
                return Err(BackendError::Transport(
                    "not sent: this instance's lease to write the page is ending (another instance takes over, or the database is unreachable)".into(),
                ));
            }
        }
        self.sink.page().ok_or_else(|| {
            BackendError::Protocol(
                "an aggregator takes a node's failing tests, not a state: this delivery belongs to a status page".into(),
            )
        })
    }
}

/// The store the flusher delivers: the SQLite spool, or the PostgreSQL store of `serve`'s
/// election.
pub(crate) fn open_store(config: &Config, opts: &FlushOptions) -> Result<Store, AppError> {
    Ok(match &opts.postgres {
        Some(e) => Store::Postgres(Box::new(e.target.open(opts.clock.clone())?)),
        None => Store::Sqlite(statusrelay_spool::Spool::open(
            &config.spool,
            opts.clock.clone(),
        )?),
    })
}

/// Run the flusher until shutdown (or, with `once`, until nothing is due).
pub fn flush(config: &Config, sink: Sink, opts: FlushOptions) -> Result<FlushReport, AppError> {
    // On PostgreSQL the election makes one writer; on SQLite the lock file does.
    let lock = match &opts.postgres {
        Some(_) => None,
        None => Some(take_lock(config)?),
    };
    let spool = open_store(config, &opts)?;
    let started = opts.clock.now_ms();
    let pid = std::process::id();
    let d = &config.delivery;
    let identity = sink.identity();
    match &opts.postgres {
        Some(e) => info!(
            "delivering the PostgreSQL store to {identity} while instance {} writes",
            e.target.lease.instance
        ),
        None => info!("flushing {} to {identity}", config.spool.display()),
    }
    let mut f = Flusher {
        config,
        spool,
        sink,
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
        schedule: holds::PageSchedule::default(),
        relay: None,
        election: opts.postgres.clone(),
        term: None,
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
        following: false,
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
            Err(e) if e.is_spool_busy() && !opts.once => {
                warn!(
                    "{e}: another process has held the spool locked for over {}s (an sqlite3 shell? a backup?); waiting for it and carrying on",
                    statusrelay_spool::BUSY_TIMEOUT.as_secs()
                );
                // A delivery may have been left 'sending' by the failed write: take it back.
                run.reclaim = true;
                run.pause(
                    &mut f,
                    &opts,
                    opts.clock.now_ms() + opts.poll.as_millis() as i64,
                );
            }
            // Deposed (another instance took the lease over) or the database unreachable:
            // this instance follows until the election says it writes again; nothing it
            // began is recorded (fenced), and its claims are the next writer's to take back.
            Err(e) if f.election.is_some() && (e.is_deposed() || e.is_pg_retryable()) => {
                warn!("{e}; delivering stops until this instance writes again");
                f.term = None;
                if e.is_pg_retryable()
                    && let Ok(s) = open_store(config, &opts)
                {
                    f.spool = s;
                }
                run.pause(
                    &mut f,
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

mod relay;

#[cfg(test)]
mod tests;
