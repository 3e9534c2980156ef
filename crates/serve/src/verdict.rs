//! What the aggregator says of an authenticated node's report, apart from recording it: a
//! mark far ahead of its clock refused, an announced period clamped, the verdict of the spool
//! (applied, outdated, in conflict) turned into liveness, warnings and the node's answer, and
//! the failing services no component takes noted.
//!
//! Invariants:
//! - Every refusal (a conflict, a mark far ahead) is logged once per episode, counted in the
//!   spool for `nodes` and `status`, and told to the node in words that say what to do.
//! - A node is heard (alive, for staleness) only when its report was taken: applied, or
//!   outdated (a retried or repeated one); a refused one does not keep it alive.
//! - Only reports older than the node's mark count toward the warning about outdated answers;
//!   the same truth sent again (an idle heartbeat) is not a sign of anything.
//! - Memory is this process's only: what it keeps is rebuilt from the spool, or starts empty,
//!   at every start (one aggregator writes the spool).

use statusrelay_core::liveness::clamp_period;
use statusrelay_core::relay::MAX_AHEAD_MS;
use statusrelay_spool::Reported;

use crate::http::Refusal;
use crate::ingest::Memory;
use crate::store::Store;
use crate::{Ingest, warn};
use statusrelay_spool::store::Nodes;

impl Ingest {
    /// What became of an authenticated node's report(s): the node is alive when its report was
    /// taken (applied or outdated), a run of outdated answers is a warning, a conflict is
    /// refused (409) and logged once with both peers.
    pub(crate) fn settle(
        &self,
        spool: &mut Store,
        memory: &mut Memory,
        node: &str,
        period_ms: Option<i64>,
        done: &[Reported],
    ) -> Result<Option<String>, Refusal> {
        let mut outdated_why = None;
        for d in done {
            match d {
                Reported::Conflict(c) => {
                    let told = format!(
                        "two reporters use node {node}'s credential: {} from {} and {} from {} (since {}); neither is taken until one of them stops. Find the second machine (a copied config, an old VM still running) and stop it, or give it a node of its own (`statusrelay nodes add`)",
                        c.reporter,
                        c.peer,
                        c.rival,
                        c.rival_peer,
                        statusrelay_core::time::rfc3339(c.since)
                    );
                    if memory.refused_logged.insert(node.to_string()) {
                        warn!("{told} (409)");
                    }
                    let _ = spool.note_refusals(&[(node.to_string(), told.clone(), 1)]);
                    return Err(Refusal::Conflict(told));
                }
                Reported::UnknownNode => {
                    return Err(Refusal::Unauthenticated {
                        error: "unknown node".into(),
                        fix: crate::auth::WRONG_SECRET_FIX,
                    });
                }
                Reported::Applied(_) => {
                    memory.outdated_runs.remove(node);
                }
                // The same truth again (an idle node's heartbeat): nothing to say.
                Reported::Outdated { repeat: true, .. } => {}
                Reported::Outdated { mark, .. } => {
                    let run = memory.outdated_runs.entry(node.to_string()).or_default();
                    *run += 1;
                    let why = format!(
                        "not newer than the report already applied (epoch {}, seq {}); a retried or delayed report changes nothing",
                        mark.0, mark.1
                    );
                    if *run == statusrelay_core::relay::OUTDATED_WARN_AFTER {
                        warn!(
                            "node {node}: {run} reports in a row were outdated: {why}. If its reports keep being outdated, its marks are not moving: see `statusrelay nodes`"
                        );
                    }
                    outdated_why = Some(why);
                }
            }
        }
        if memory.refused_logged.remove(node) {
            crate::info!("node {node}: its reports are taken again");
        }
        if let Some(live) = memory.liveness.as_mut() {
            live.heard(node, period_ms, self.mono_ms());
        }
        Ok(outdated_why)
    }

    /// Refuse a report whose mark is far ahead of the aggregator's clock (422): taken, it would
    /// make every later report of the node look outdated. Logged once, counted for `nodes`.
    pub(crate) fn refuse_ahead(
        &self,
        spool: &mut Store,
        memory: &mut Memory,
        node: &str,
        mark_ms: i64,
        what: &str,
        fix: &str,
    ) -> Result<(), Refusal> {
        let now = self.clock.now_ms();
        if mark_ms <= now.saturating_add(MAX_AHEAD_MS) {
            return Ok(());
        }
        let told = format!(
            "node {node}'s {what} is {} s ahead of the aggregator's clock ({}, the aggregator has {}); more than {} s ahead is refused, since it would make every later report look outdated: {fix}",
            mark_ms.saturating_sub(now) / 1000,
            statusrelay_core::time::rfc3339(mark_ms),
            statusrelay_core::time::rfc3339(now),
            MAX_AHEAD_MS / 1000
        );
        if memory.refused_logged.insert(node.to_string()) {
            warn!("{told} (422)");
        }
        let _ = spool.note_refusals(&[(node.to_string(), told.clone(), 1)]);
        Err(Refusal::Unprocessable(told))
    }

    /// The node's announced period, clamped to a second .. an hour (warned once per node).
    pub(crate) fn period(
        &self,
        memory: &mut Memory,
        node: &str,
        announced: Option<i64>,
    ) -> Option<i64> {
        let (p, clamped) = clamp_period(announced?);
        if clamped && memory.period_warned.insert(node.to_string()) {
            warn!(
                "node {node} announces a period of {} ms; taken as {p} ms (periods are 1 s to 1 h)",
                announced.unwrap_or_default()
            );
        }
        Some(p)
    }

    /// How long a reporter of the node counts as live after it was last heard.
    pub(crate) fn window_ms(&self, period_ms: Option<i64>) -> i64 {
        period_ms
            .unwrap_or(statusrelay_core::config::DEFAULT_HEARTBEAT.as_millis() as i64)
            .saturating_mul(i64::from(self.stale_after()))
    }

    /// A node's failing services that no component takes: written when they change, each
    /// logged once, and shown by `nodes` ("no component takes it"); never dropped unsaid.
    pub(crate) fn note_unrouted(
        &self,
        spool: &mut Store,
        memory: &mut Memory,
        node: &str,
        now: Vec<(String, String)>,
    ) {
        let before = memory.unrouted.get(node);
        if before.is_some_and(|b| *b == now) || (before.is_none() && now.is_empty()) {
            return;
        }
        for (service, tests) in &now {
            if !before.is_some_and(|b| b.iter().any(|x| &x.0 == service)) {
                warn!(
                    "node {node} reports {service:?} failing ({tests}), and no component on this aggregator takes it: add it to a component's `services` (or a pattern) in the aggregator's config, or leave it off the page on purpose; `statusrelay nodes` lists it meanwhile"
                );
            }
        }
        match spool.set_unrouted(node, &now) {
            Ok(()) => {
                memory.unrouted.insert(node.to_string(), now);
            }
            Err(e) => warn!("could not note node {node}'s unrouted services: {e}"),
        }
    }
}
