//! What every request shares: the config, the one spool connection and what the aggregator
//! keeps in memory about its nodes; and the one step that takes a planned report into the
//! spool, whichever way it came in.
//!
//! Invariants:
//! - Both ways in (`relay`, `collector`) end in `Ingest::report`: the node looked up, the
//!   body planned, the mark checked against the aggregator's clock, the announced period
//!   clamped; then the report is only noted when it changes nothing (`coalesce`), or queued
//!   and recorded with the others waiting at that moment in one transaction (`group`), the
//!   flusher's doorbell rung when a component changed, and the verdict said (`verdict`). The
//!   answer is sent only after the commit.
//! - A node is who its credential says, checked on the headers (`auth`); here it is only
//!   looked up again, since it may have been forgotten in between (401).
//! - One connection to the spool serves every request, one at a time, on the worker that took
//!   the request, marked as blocking (`block_in_place`, so the runtime moves its other tasks):
//!   SQLite has one writer anyway, and requests queue on a mutex (`timed`) instead of sleeping
//!   in SQLite's busy handler. A request waits for it, and SQLite for another process's lock,
//!   at most half its `request_timeout`: then 503 with `Retry-After`. `/ready` never waits for
//!   it. It is reopened after a spool error ([`Refusal::drops_spool`]) or when the file at the
//!   path was replaced.
//! - Silence is judged in memory on the monotonic clock (`statusrelay_core::liveness`), from
//!   this process's start at the earliest.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use statusrelay_core::Config;
use statusrelay_core::config::ServeConfig;
use statusrelay_core::liveness::Liveness;
use statusrelay_core::nodes::{NodeRule, Via};
use statusrelay_core::time::Clock;
use statusrelay_spool::store::Nodes;
use statusrelay_spool::{
    Apply, Doorbell, Identity, NewEvent, NodeReport, Reported, Snapshot, Spool,
};

use crate::coalesce::{self, Pending};
use crate::group::{Group, Job};
use crate::http::Refusal;
use crate::store::{Store, StoreFailure};
use crate::{ServeError, auth, error, timed, warn};

/// The page cache of the aggregator's connection, in KiB (SQLite's default is 2 MiB).
const SPOOL_CACHE_KIB: u32 = 16 * 1024;

/// What every request needs.
pub struct Ingest {
    pub config: Config,
    /// `[serve]`, as `serve` resolved it.
    pub serve: ServeConfig,
    pub clock: Arc<dyn Clock>,
    /// Authentication and limits, on the headers (see `auth`).
    pub gate: auth::Gate,
    /// Rung after a commit that changed a component: the flusher sends it at once.
    pub doorbell: Arc<Doorbell>,
    /// Taken by one request at a time; a request waits for it at most half its
    /// `request_timeout` (then 503 with `Retry-After`).
    pub(crate) shared: timed::TimedMutex<Shared>,
    /// Reports waiting for the group's commit (see `group`).
    pub(crate) group: Group,
    /// The monotonic origin silence is measured from (see `statusrelay_core::liveness`).
    started: Instant,
    /// The PostgreSQL store (`[store]`), resolved; None: the SQLite spool.
    pub(crate) target: Option<statusrelay_pg::Target>,
}

/// The one connection, and what the aggregator keeps in memory about its nodes.
#[derive(Default)]
pub(crate) struct Shared {
    spool: Option<Store>,
    memory: Memory,
}

/// What the aggregator keeps in memory about its nodes (one process writes the spool).
#[derive(Default)]
pub(crate) struct Memory {
    /// What unchanged reports left to write (see `coalesce`).
    pub(crate) pending: Pending,
    /// The nodes' silence on the monotonic clock; loaded from the spool at the first open.
    pub(crate) liveness: Option<Liveness>,
    /// Outdated answers in a row, per node (a warning at the third).
    pub(crate) outdated_runs: HashMap<String, u32>,
    /// Nodes whose refusal (a conflict, a mark far ahead) was logged: once per episode.
    pub(crate) refused_logged: HashSet<String>,
    /// Nodes whose announced period was clamped (logged once).
    pub(crate) period_warned: HashSet<String>,
    /// Each node's failing services that no component takes, as last written.
    pub(crate) unrouted: HashMap<String, Vec<(String, String)>>,
}

/// What a report (a relayed batch, a Monit document) asks to record, planned without the
/// spool: `relay::plan` and `collector::plan` make it, `Ingest::report` takes it in.
#[derive(Debug, Clone)]
pub struct Plan {
    pub via: Via,
    /// The node's run the reports' sequences belong to (0 where the reporter is the run).
    pub epoch: i64,
    /// A mark that may not be far ahead of the aggregator's clock.
    pub ahead: Option<Ahead>,
    /// `relay:<spool id>` or `monit:<id>:<incarnation>`; None from a node too old to say.
    pub reporter: Option<String>,
    /// The period the node announced, before it is clamped.
    pub period_ms: Option<i64>,
    /// Services the node has no word on now: their rows are kept.
    pub keep: Vec<String>,
    /// The node's failing services no component takes, when the report says all of them.
    pub unrouted: Option<Vec<(String, String)>>,
    /// How many of the node's reports one recorded report acknowledges (a snapshot's all).
    pub each: usize,
    pub reports: Vec<Planned>,
}

/// A mark checked against the aggregator's clock, and what to say when it is far ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ahead {
    pub mark_ms: i64,
    pub what: &'static str,
    pub fix: &'static str,
}

/// One report to record: its sequence, what it is the whole truth about, its event and its
/// failing tests.
#[derive(Debug, Clone)]
pub struct Planned {
    pub seq: i64,
    pub scope: Scope,
    pub event: NewEvent,
    pub applies: Vec<Apply>,
}

/// What a planned report is the whole truth about (see `statusrelay_spool::Snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every component the node feeds.
    Node(Vec<String>),
    /// These components only.
    Components(Vec<String>),
}

impl Scope {
    pub(crate) fn snapshot(&self) -> Snapshot<'_> {
        match self {
            Scope::Node(cs) => Snapshot::Node(cs),
            Scope::Components(cs) => Snapshot::Components(cs),
        }
    }
}

impl Ingest {
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Ingest {
        let serve = config.serve.clone().unwrap_or_default();
        Ingest {
            gate: auth::Gate::new(config.spool.clone(), &serve),
            doorbell: Arc::new(Doorbell::default()),
            serve,
            config,
            clock,
            shared: timed::TimedMutex::new(Shared::default()),
            group: Group::default(),
            started: Instant::now(),
            target: None,
        }
    }

    /// This aggregator on the PostgreSQL store `target` (one of several instances): its
    /// reports recorded there, its gate reading the nodes' credentials there, each on a
    /// connection of its own.
    pub fn on_postgres(mut self, target: statusrelay_pg::Target) -> Ingest {
        let (reads, clock) = (target.clone(), self.clock.clone());
        self.gate = auth::Gate::with_reads(
            Box::new(move || {
                reads
                    .open(clock.clone())
                    .map(statusrelay_core::store::any_reads)
                    .map_err(|e| e.to_string())
            }),
            &self.serve,
        );
        self.target = Some(target);
        self
    }

    /// Milliseconds on the monotonic clock since this aggregator started.
    pub(crate) fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn stale_after(&self) -> u32 {
        self.serve.stale_after
    }

    /// Run `f` on the shared connection from outside a request (the sweep), waiting as long
    /// as it takes; a spool error drops the connection.
    pub(crate) fn with_spool<T>(
        &self,
        f: impl FnOnce(&mut Store, &mut Memory) -> Result<T, StoreFailure>,
    ) -> Result<T, ServeError> {
        let mut guard = self.shared.lock();
        let shared = &mut *guard;
        let r = self
            .ready(shared)
            .and_then(|(spool, memory)| f(spool, memory));
        if r.is_err() {
            shared.spool = None;
        }
        Ok(r?)
    }

    /// Run `f` on the shared connection for a request: it waits for the connection at most
    /// half the request's time (503 after), and SQLite waits for another process's lock at
    /// most as long (the connection's busy timeout), so a held spool is a prompt 503, never a
    /// hung request.
    pub(crate) fn with_spool_within<T>(
        &self,
        f: impl FnOnce(&mut Store, &mut Memory) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let wait = self.serve.request_timeout / 2;
        // Waited for where it is used, on a thread marked blocking (the runtime moves its
        // other tasks): a release wakes the next request directly.
        tokio::task::block_in_place(|| {
            let Some(mut guard) = self.shared.lock_for(wait) else {
                return Err(Refusal::busy());
            };
            self.on_shared(&mut guard, f)
        })
    }

    /// Is the spool open? Never waits: a request holding the connection proves it is.
    pub fn spool_open(&self) -> bool {
        match self.shared.try_lock() {
            Some(g) => g.spool.is_some(),
            None => true,
        }
    }

    /// Open the spool now (at start, before listening), so `/ready` says so at once; the
    /// spool's own error (locked, corrupt, unwritable) for the caller to judge.
    pub fn open_now(&self) -> Result<(), ServeError> {
        self.ready(&mut self.shared.lock())?;
        Ok(())
    }

    /// The spool with its busy wait bounded by the request's deadline.
    fn bounded(&self, mut spool: Spool) -> Spool {
        if let Err(e) = spool.set_busy_timeout(self.serve.request_timeout / 2) {
            warn!("could not bound the spool's busy wait: {e}");
        }
        if let Err(e) = spool.set_cache_kib(SPOOL_CACHE_KIB) {
            warn!("could not size the spool's page cache: {e}");
        }
        spool
    }

    /// Open the configured store: the SQLite spool, its busy wait bounded by the request's
    /// deadline.
    fn open_store(&self) -> Result<Store, StoreFailure> {
        if let Some(target) = &self.target {
            return Ok(Store::Postgres(Box::new(target.open(self.clock.clone())?)));
        }
        let spool = Spool::open(&self.config.spool, self.clock.clone())?;
        Ok(Store::Sqlite(self.bounded(spool)))
    }

    /// Run `f` on the shared connection, (re)opened as needed; a refusal that
    /// [drops the spool](Refusal::drops_spool) drops it, so the next request opens it afresh.
    pub(crate) fn on_shared<T>(
        &self,
        shared: &mut Shared,
        f: impl FnOnce(&mut Store, &mut Memory) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let (spool, memory) = match self.ready(shared) {
            Ok(s) => s,
            Err(e) => {
                error!("cannot open the spool: {e}");
                shared.spool = None;
                return Err(Refusal::spool(
                    "the aggregator's spool is unavailable; try again",
                ));
            }
        };
        let r = f(spool, memory);
        if r.as_ref().is_err_and(Refusal::drops_spool) {
            shared.spool = None;
        }
        r
    }

    /// The shared connection, (re)opened when it is closed or the file at the path was
    /// replaced; the nodes' liveness loaded at the first open.
    fn ready<'s>(
        &self,
        shared: &'s mut Shared,
    ) -> Result<(&'s mut Store, &'s mut Memory), StoreFailure> {
        let replaced = shared
            .spool
            .as_mut()
            .and_then(Store::sqlite)
            .is_some_and(|s| statusrelay_spool::file_id(&self.config.spool) != s.file_id());
        if shared.spool.is_none() || replaced {
            shared.spool = None;
            shared.spool = Some(self.open_store()?);
        }
        let spool = shared.spool.as_mut().expect("opened above");
        if shared.memory.liveness.is_none() {
            // Every node the spool knows counts as heard now: silence while the aggregator
            // itself was down is not the nodes'.
            let mut l = Liveness::new(self.stale_after());
            let now = self.mono_ms();
            for n in spool.nodes()?.iter().filter(|n| n.last_seen_at.is_some()) {
                l.known(&n.name, n.period_ms, n.stale_since.is_some(), now);
            }
            shared.memory.liveness = Some(l);
        }
        Ok((spool, &mut shared.memory))
    }

    /// Write what unchanged reports left (the sweep does, every second, and at shutdown).
    pub fn flush_touches(&self) -> Result<(), ServeError> {
        self.with_spool(coalesce::write_touches)
    }

    /// The node the gate let in (its credential checked there, before the body), as the
    /// spool has it now; 401 if it was forgotten in between. A stale node is back with any
    /// report it makes (the report clears the mark): said here, once for both ways in.
    pub(crate) fn authenticate(
        &self,
        spool: &mut Store,
        name: &str,
        peer: SocketAddr,
    ) -> Result<statusrelay_spool::Node, Refusal> {
        let node = spool.node(name).map_err(|e| {
            error!("cannot read the nodes for a report from {peer}: {e}");
            Refusal::spool("the aggregator's spool is unavailable; try again")
        })?;
        let Some(node) = node else {
            warn!("{peer}: a report as node {name} refused (401): forgotten meanwhile");
            return Err(Refusal::Unauthenticated {
                error: "unknown node or wrong secret".into(),
                fix: auth::WRONG_SECRET_FIX,
            });
        };
        if node.stale_since.is_some() {
            crate::info!("node {} reports again: no longer stale", node.name);
        }
        Ok(node)
    }

    /// A node's report, whichever way it came in: authenticated and planned (`plan`) under the
    /// spool's lock, then prepared; a report that changes nothing is answered at once, any
    /// other committed with the group (`group`). The node, each recorded report's verdict, and
    /// why the last outdated one was.
    pub(crate) fn report(
        &self,
        name: &str,
        peer: SocketAddr,
        plan: impl FnOnce(&statusrelay_spool::Node) -> Result<Plan, Refusal>,
    ) -> Result<(String, Vec<Reported>, Option<String>), Refusal> {
        let deadline = Instant::now() + self.serve.request_timeout / 2;
        let (node, prepared) = self.with_spool_within(|spool, memory| {
            let node = self.authenticate(spool, name, peer)?;
            let plan = plan(&node)?;
            let prepared = self.prepare(spool, memory, &node.name, plan, peer)?;
            Ok((node.name, prepared))
        })?;
        let (done, why) = match prepared {
            Prepared::Done(taken) => taken,
            Prepared::Queued(job) => self.commit(job, deadline)?,
        };
        Ok((node, done, why))
    }

    /// Everything about a planned report of `node` that is its own (see the module's
    /// invariants): the mark checked against the clock, the period clamped; then either noted
    /// in memory (it changes nothing) or queued for the group's commit.
    pub(crate) fn prepare(
        &self,
        spool: &mut Store,
        memory: &mut Memory,
        node: &str,
        plan: Plan,
        peer: SocketAddr,
    ) -> Result<Prepared, Refusal> {
        if let Some(a) = &plan.ahead {
            self.refuse_ahead(spool, memory, node, a.mark_ms, a.what, a.fix)?;
        }
        let period_ms = self.period(memory, node, plan.period_ms);
        // A node whose report is queued is about to change: its next one is judged after it.
        if !self.group.has(node) {
            let rule_of = |c: &str| self.config.node_rule(c);
            let peer_ip = peer.ip().to_string();
            let identity = plan.reporter.as_deref().map(|reporter| Identity {
                reporter,
                peer: &peer_ip,
                window_ms: self.window_ms(period_ms),
            });
            let reports = node_reports(node, &plan, period_ms, identity, &rule_of);
            let refs: Vec<_> = reports
                .iter()
                .zip(&plan.reports)
                .map(|(r, p)| (r, &p.event, p.applies.as_slice()))
                .collect();
            let unchanged = coalesce::unchanged(spool, memory, &refs).map_err(|e| {
                error!("cannot read node {node}'s marks ({peer}): {e}");
                Refusal::spool("the aggregator's spool is unavailable; try again")
            })?;
            if unchanged {
                coalesce::note(memory, self.clock.now_ms(), &refs);
                let done: Vec<Reported> = refs
                    .iter()
                    .map(|_| Reported::Applied(statusrelay_spool::Recorded::default()))
                    .collect();
                let why = self.settle(spool, memory, node, period_ms, &done)?;
                if let Some(unrouted) = plan.unrouted {
                    self.note_unrouted(spool, memory, node, unrouted);
                }
                return Ok(Prepared::Done((done, why)));
            }
        }
        let job = Arc::new(Job::new(node.to_string(), plan, peer, period_ms));
        self.group.push(job.clone());
        Ok(Prepared::Queued(job))
    }
}

/// What preparing a report left: its answer, or its place in the group's queue.
pub(crate) enum Prepared {
    Done((Vec<Reported>, Option<String>)),
    Queued(Arc<Job>),
}

/// A plan's reports as the spool records them.
pub(crate) fn node_reports<'a>(
    node: &'a str,
    plan: &'a Plan,
    period_ms: Option<i64>,
    identity: Option<Identity<'a>>,
    rule_of: &'a dyn Fn(&str) -> NodeRule,
) -> Vec<NodeReport<'a>> {
    plan.reports
        .iter()
        .map(|p| NodeReport {
            node,
            order: (plan.epoch, p.seq),
            snapshot: p.scope.snapshot(),
            via: plan.via,
            period_ms,
            rule_of,
            keep: &plan.keep,
            identity,
        })
        .collect()
}
