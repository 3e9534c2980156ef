//! Group commit: the reports of concurrent requests recorded in one transaction, each request
//! answered only after the commit that holds it.
//!
//! Invariants:
//! - A request's report is planned and checked alone (under the spool's lock, `Ingest::prepare`),
//!   then queued here as a `Job`. One waiting request at a time is the committer: it takes
//!   the spool's lock, then the queued jobs in order (at most [`MAX_GROUP`] jobs or about
//!   [`MAX_FAILING_PER_REQUEST`] failing tests), records them in one transaction, settles each,
//!   and hands every job its answer before it lets the lock go. Every other request waits for
//!   its answer, or becomes the next committer.
//! - Order holds: jobs are queued in the order their requests were checked, which is the
//!   spool lock's order, and recorded in that order; a node with a job queued or being
//!   committed never takes the no-op fast path (its word is about to change).
//! - Nothing acknowledged is lost, nothing refused is recorded: a job still queued at its
//!   request's deadline is withdrawn (503, `Retry-After`); one being committed is answered by
//!   that commit; a failed commit answers every job in it with a refusal.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use statusrelay_core::nodes::Via;
use statusrelay_core::relay::MAX_FAILING_PER_REQUEST;
use statusrelay_spool::store::Reports;
use statusrelay_spool::{Identity, NodeReport, Reported};

use crate::store::Store;

use crate::http::Refusal;
use crate::ingest::{Memory, Plan, node_reports};
use crate::{Ingest, coalesce, error};

/// The most jobs one transaction records.
pub const MAX_GROUP: usize = 256;

/// What became of a report: each recorded report's verdict and why the last outdated one was,
/// or the refusal.
pub(crate) type Taken = Result<(Vec<Reported>, Option<String>), Refusal>;

/// One request's planned report, waiting to be committed.
pub(crate) struct Job {
    pub node: String,
    pub plan: Plan,
    pub peer: SocketAddr,
    /// The node's period, clamped.
    pub period_ms: Option<i64>,
    answer: Mutex<Option<Taken>>,
}

impl Job {
    pub fn new(node: String, plan: Plan, peer: SocketAddr, period_ms: Option<i64>) -> Job {
        Job {
            node,
            plan,
            peer,
            period_ms,
            answer: Mutex::new(None),
        }
    }

    fn answer(&self, t: Taken) {
        *self.answer.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }

    /// The job's answer, once its commit has given it (it stays given).
    fn answered(&self) -> Option<Taken> {
        self.answer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failing(&self) -> usize {
        self.plan.reports.iter().map(|r| r.applies.len()).sum()
    }
}

/// The queue, and who commits it.
#[derive(Default)]
pub(crate) struct Group {
    state: Mutex<Queue>,
    /// Notified when a commit ends (its jobs answered) or a committer gives up.
    turn: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Arc<Job>>,
    committing: bool,
    /// Jobs queued or being committed, per node.
    nodes: HashMap<String, usize>,
    /// Transactions committed, and jobs in them (for the tests and the log).
    commits: u64,
    grouped: u64,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Does `node` have a report queued or being committed?
    pub fn has(&self, node: &str) -> bool {
        self.lock().nodes.contains_key(node)
    }

    /// Queue a job; its answer comes from [`Ingest::commit`].
    pub fn push(&self, job: Arc<Job>) {
        let mut q = self.lock();
        *q.nodes.entry(job.node.clone()).or_default() += 1;
        q.jobs.push_back(job);
    }

    /// Transactions committed so far, and the jobs they held.
    pub fn counts(&self) -> (u64, u64) {
        let q = self.lock();
        (q.commits, q.grouped)
    }

    /// Take the jobs one transaction records, from the front.
    fn take_batch(&self) -> Vec<Arc<Job>> {
        let mut q = self.lock();
        let mut batch = Vec::new();
        let mut failing = 0;
        while let Some(job) = q.jobs.front() {
            let f = job.failing();
            if !batch.is_empty()
                && (batch.len() >= MAX_GROUP || failing + f > MAX_FAILING_PER_REQUEST)
            {
                break;
            }
            failing += f;
            batch.push(q.jobs.pop_front().expect("looked at above"));
        }
        batch
    }

    /// A committer is done (or gave up): its jobs, answered, leave the node counts.
    fn finish(&self, batch: &[Arc<Job>]) {
        let mut q = self.lock();
        for job in batch {
            if let Some(n) = q.nodes.get_mut(&job.node) {
                *n -= 1;
                if *n == 0 {
                    q.nodes.remove(&job.node);
                }
            }
        }
        if !batch.is_empty() {
            q.commits += 1;
            q.grouped += batch.len() as u64;
        }
        q.committing = false;
        self.turn.notify_all();
    }

    /// Withdraw a job no committer has taken; false if one has.
    fn withdraw(&self, job: &Arc<Job>) -> bool {
        let mut q = self.lock();
        let Some(i) = q.jobs.iter().position(|j| Arc::ptr_eq(j, job)) else {
            return false;
        };
        q.jobs.remove(i);
        if let Some(n) = q.nodes.get_mut(&job.node) {
            *n -= 1;
            if *n == 0 {
                q.nodes.remove(&job.node);
            }
        }
        true
    }
}

impl Ingest {
    /// Wait for `job`'s answer, committing a group when no one else is (see the module's
    /// invariants); on a thread marked blocking.
    pub(crate) fn commit(&self, job: Arc<Job>, deadline: Instant) -> Taken {
        tokio::task::block_in_place(|| {
            loop {
                if let Some(t) = job.answered() {
                    return t;
                }
                let mut q = self.group.lock();
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    drop(q);
                    if self.group.withdraw(&job) {
                        return Err(Refusal::busy());
                    }
                    // Being committed now: that commit answers it.
                    self.wait_answered(&job);
                    continue;
                };
                if !q.committing {
                    q.committing = true;
                    drop(q);
                    self.commit_once(deadline);
                    continue;
                }
                drop(
                    self.group
                        .turn
                        .wait_timeout(q, left)
                        .unwrap_or_else(|p| p.into_inner()),
                );
            }
        })
    }

    /// Wait until a commit in flight has answered `job`.
    fn wait_answered(&self, job: &Arc<Job>) {
        let mut q = self.group.lock();
        while q.committing
            && job
                .answer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none()
        {
            q = self.group.turn.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// As the committer: take the spool, then a batch, record it, answer every job in it.
    fn commit_once(&self, deadline: Instant) {
        let wait = deadline.saturating_duration_since(Instant::now());
        let Some(mut guard) = self.shared.lock_for(wait) else {
            // Nothing taken from the queue: the next waiter commits, or its own deadline
            // withdraws it.
            self.group.finish(&[]);
            return;
        };
        // Taken once the lock is held: what queued meanwhile rides along.
        let batch = self.group.take_batch();
        if !batch.is_empty() {
            let r = self.on_shared(&mut guard, |spool, memory| {
                self.commit_batch(spool, memory, &batch)
            });
            if let Err(refusal) = r {
                // The spool failed before anything was recorded, or the record itself.
                for job in &batch {
                    if job
                        .answer
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_none()
                    {
                        job.answer(Err(refusal.clone()));
                    }
                }
            }
        }
        drop(guard);
        self.group.finish(&batch);
    }

    /// Record a batch in one transaction, then settle each job; a failed record answers every
    /// job with the refusal (and drops the spool's connection).
    fn commit_batch(
        &self,
        spool: &mut Store,
        memory: &mut Memory,
        batch: &[Arc<Job>],
    ) -> Result<(), Refusal> {
        let rule_of = |c: &str| self.config.node_rule(c);
        let peers: Vec<String> = batch.iter().map(|j| j.peer.ip().to_string()).collect();
        let reports: Vec<NodeReport<'_>> = batch
            .iter()
            .zip(&peers)
            .flat_map(|(job, peer)| {
                let identity = job.plan.reporter.as_deref().map(|reporter| Identity {
                    reporter,
                    peer,
                    window_ms: self.window_ms(job.period_ms),
                });
                node_reports(&job.node, &job.plan, job.period_ms, identity, &rule_of)
            })
            .collect();
        let plans = batch.iter().flat_map(|j| &j.plan.reports);
        let refs: Vec<_> = reports
            .iter()
            .zip(plans)
            .map(|(r, p)| (r, &p.event, p.applies.as_slice()))
            .collect();
        let recorded = coalesce::write_touches(spool, memory)
            .and_then(|()| spool.record_reports(&refs))
            .map_err(|e| {
                let nodes: Vec<&str> = batch.iter().map(|j| j.node.as_str()).collect();
                error!(
                    "{} report(s) of {} were not recorded: {e}",
                    refs.len(),
                    nodes.join(", ")
                );
                Refusal::spool(match batch.first().map(|j| j.plan.via) {
                    Some(Via::Collector) => "not recorded; Monit sends its status again next cycle",
                    _ => "not recorded; send it again",
                })
            })?;
        drop(refs);
        drop(reports);
        let mut recorded = recorded.into_iter();
        let mut changed = false;
        for job in batch {
            let done: Vec<Reported> = recorded.by_ref().take(job.plan.reports.len()).collect();
            changed |= done
                .iter()
                .any(|r| matches!(r, Reported::Applied(x) if !x.changes.is_empty()));
            let answer = self.settle(spool, memory, &job.node, job.period_ms, &done);
            if answer.is_ok()
                && let Some(unrouted) = &job.plan.unrouted
            {
                // Only a report that was taken says what the node's unrouted services are.
                self.note_unrouted(spool, memory, &job.node, unrouted.clone());
            }
            job.answer(answer.map(|why| (done, why)));
        }
        if changed {
            self.doorbell.ring();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Prepared;
    use statusrelay_core::Config;

    fn ingest(dir: &std::path::Path) -> Arc<Ingest> {
        let config = Config::parse(
            &format!(
                "spool = \"{}\"\n[serve]\n[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n",
                dir.join("spool.db").display()
            ),
            std::path::Path::new("aggregator.toml"),
        )
        .unwrap();
        let clock: Arc<dyn statusrelay_core::time::Clock> =
            Arc::new(statusrelay_core::time::SystemClock);
        let mut spool = statusrelay_spool::Spool::open(&config.spool, clock.clone()).unwrap();
        for n in 0..5 {
            spool.add_node(&format!("n{n}"), "digest", None).unwrap();
        }
        Arc::new(Ingest::new(config, clock))
    }

    fn body(seq: i64, failing: bool) -> Vec<u8> {
        let failing = if failing {
            r#"[{"service": "nginx", "test": "exist", "state": "major_outage"}]"#
        } else {
            "[]"
        };
        format!(
            r#"{{"epoch": 1, "reports": [{{"component": "web", "seq": {seq}, "failing": {failing}}}]}}"#
        )
        .into_bytes()
    }

    /// Run `f` on a worker of a multi-threaded runtime (the spool's work is marked blocking
    /// there, as in `serve`), with an aggregator on a fresh spool in a directory of its own.
    fn on_a_spool(name: &str, f: impl FnOnce(Arc<Ingest>) + Send + 'static) {
        let dir = std::env::temp_dir().join(format!("sr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let st = ingest(&dir);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(rt.spawn(async move { f(st) })).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Queue a report of `node` the way a request does, without committing it.
    fn queue(st: &Ingest, node: &str, body: &[u8]) -> Arc<Job> {
        let peer: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let prepared = st
            .with_spool_within(|spool, memory| {
                let n = st.authenticate(spool, node, peer)?;
                let plan = crate::relay::plan(&st.config, &n, body)?;
                st.prepare(spool, memory, node, plan, peer)
            })
            .unwrap();
        match prepared {
            Prepared::Queued(job) => job,
            Prepared::Done(_) => panic!("{node}: a first report changes the page"),
        }
    }

    #[test]
    fn queued_reports_are_committed_together_in_order_and_each_answered() {
        on_a_spool("group", |s| {
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            // Five nodes' first reports, and a second report of n0 queued behind its first:
            // not judged unchanged against the spool while its first is queued.
            let mut jobs: Vec<Arc<Job>> = (0..5)
                .map(|n| queue(&s, &format!("n{n}"), &body(1, true)))
                .collect();
            assert!(s.group.has("n0"));
            jobs.push(queue(&s, "n0", &body(2, false)));
            // One commit answers them all, in one transaction.
            let (done, _) = s.commit(jobs[3].clone(), deadline).unwrap();
            assert!(matches!(done[..], [Reported::Applied(_)]));
            assert_eq!(s.group.counts(), (1, 6));
            for job in &jobs {
                let (done, _) = s.commit(job.clone(), deadline).unwrap();
                assert!(matches!(done[..], [Reported::Applied(_)]), "{}", job.node);
            }
            assert_eq!(
                s.group.counts(),
                (1, 6),
                "answered jobs commit nothing again"
            );
            assert!(!s.group.has("n0"));
            // n0's second report came after its first: it passes.
            let failing = s
                .with_spool_within(|spool, _| {
                    Ok(spool
                        .failing_tests("web")
                        .unwrap()
                        .into_iter()
                        .map(|t| t.host)
                        .collect::<Vec<_>>())
                })
                .unwrap();
            assert_eq!(failing, vec!["n1", "n2", "n3", "n4"]);
        });
    }

    #[test]
    fn a_job_no_committer_took_by_its_deadline_is_withdrawn_never_recorded() {
        on_a_spool("group-late", |s| {
            let job = queue(&s, "n1", &body(1, true));
            // Another request commits (it holds the turn) and the deadline passes meanwhile.
            s.group.lock().committing = true;
            let r = s.commit(job.clone(), Instant::now());
            assert!(
                matches!(r, Err(Refusal::Busy { retry_after: 1, .. })),
                "{r:?}"
            );
            assert!(!s.group.has("n1"));
            s.group.finish(&[]);
            assert_eq!(s.group.counts(), (0, 0));
            let failing = s
                .with_spool_within(|spool, _| Ok(spool.failing_tests("web").unwrap().len()))
                .unwrap();
            assert_eq!(failing, 0, "a refused report is not recorded");
        });
    }
}
