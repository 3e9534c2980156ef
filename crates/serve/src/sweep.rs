//! The aggregator's sweep, a task in its runtime: every second, what unchanged reports left
//! is written, the gate's refusals are said and counted, and nodes silent too long are judged
//! stale.
//!
//! Invariants:
//! - A node is stale after `[serve] stale_after` of its periods without a report, on the
//!   monotonic clock and never before that many periods since the aggregator started; each
//!   is logged once and recomputes the components it feeds (see `Spool::apply_silence`).
//!   On PostgreSQL, where each instance hears only its own reports, who is silent is judged
//!   by the database instead, from every instance's reports (`PgStore::silent_nodes`).
//! - The spool's work runs on the blocking pool, never on a worker: a sweep waiting for the
//!   spool holds up no request.
//! - A failing sweep is said once until it succeeds again; at shutdown, what unchanged reports
//!   left is written before the task ends, and how many requests the group commit took in how
//!   many transactions is said.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statusrelay_spool::store::{Nodes, Staleness};

use crate::store::Store;
use crate::{Ingest, ServeError, coalesce, warn};

/// How often the sweep runs (periods are a second at least).
const EVERY: Duration = Duration::from_secs(1);

/// Sweep every second until `stop` is set, then write what is left.
pub async fn run(ingest: Arc<Ingest>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::listen::stopped(&stop) => break,
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let i = ingest.clone();
        match tokio::task::spawn_blocking(move || i.sweep()).await {
            Ok(Ok(())) => failing = false,
            Ok(Err(e)) if !failing => {
                warn!("could not check for stale nodes: {e}; trying again");
                failing = true;
            }
            Ok(Err(_)) => {}
            Err(e) => warn!("the sweep stopped short: {e}; trying again"),
        }
    }
    let (commits, jobs) = ingest.group.counts();
    if jobs > 0 {
        crate::info!(
            "{jobs} request(s) with changes committed in {commits} transaction(s) (group commit)"
        );
    }
    let i = ingest.clone();
    match tokio::task::spawn_blocking(move || i.flush_touches()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("could not write when nodes were last seen: {e}"),
        Err(e) => warn!("could not write when nodes were last seen: {e}"),
    }
}

impl Ingest {
    /// One pass (see the module's invariants).
    pub fn sweep(&self) -> Result<(), ServeError> {
        // Refusals counted in a minute now over are said first (no spool needed).
        self.gate.flush_log();
        let stale_after = self.stale_after();
        let rule_of = |c: &str| self.config.node_rule(c);
        let now = self.mono_ms();
        let swept = self.with_spool(|spool, memory| {
            // The nodes' last-seen times first, as `nodes` shows them, and what the gate
            // refused them.
            coalesce::write_touches(spool, memory)?;
            let refused = self.gate.take_refusals();
            if !refused.is_empty() {
                spool.note_refusals(&refused)?;
            }
            let Some(live) = memory.liveness.as_mut() else {
                return Ok(Vec::new());
            };
            // Several instances each hear only their own reports: on PostgreSQL, who is silent
            // is the database's word (every instance's reports, one clock).
            let due = match spool {
                Store::Postgres(p) => p.silent_nodes(stale_after)?,
                Store::Sqlite(_) => live.due(now),
            };
            let swept = spool.apply_silence(&due, &rule_of)?;
            // Settled whether or not the spool had the node (one forgotten meanwhile is
            // passed over there), so a verdict is never made twice.
            for d in &due {
                live.settle(&d.node);
            }
            Ok(swept)
        })?;
        if swept.iter().any(|c| !c.recorded.changes.is_empty()) {
            self.doorbell.ring();
        }
        for c in &swept {
            let changed: Vec<String> = c
                .recorded
                .changes
                .iter()
                .map(|x| format!("{} now {}", x.component, x.to))
                .collect();
            let ms = |v: u64| statusrelay_core::duration::format(Duration::from_millis(v));
            warn!(
                "node {} is stale: not heard from for {}, over {stale_after} periods of {}{}{}",
                c.node,
                ms(c.silent_ms as u64),
                ms(c.period_ms as u64),
                if changed.is_empty() { "" } else { "; " },
                changed.join(", ")
            );
        }
        Ok(())
    }
}
