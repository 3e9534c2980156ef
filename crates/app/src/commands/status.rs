//! `statusrelay status`: counts, flusher liveness, last delivery and error, and per component
//! the desired state, what the page was confirmed to show and the failing tests behind it (on
//! an aggregator: on which node, and each node that reports on it, stale ones marked with what
//! they count as).

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::json;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_core::{Config, State};

use super::view::{LIVE_WITHIN_MS, open_existing, rel};
use crate::AppError;
use crate::flusher::build_backend;
use statusrelay_serve::store::Store;
use statusrelay_spool::store::{Holds, Incidents, Nodes, PageState, Reports};
use std::time::Duration;

/// `statusrelay status [--json]`.
pub fn run(
    a: &crate::cli::StatusArgs,
    config: Option<&std::path::Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    statusrelay_spool::retry_corrupt(&*clock, || status(&config, a.json, clock.clone()))
}

/// `statusrelay status`.
pub fn status(config: &Config, json_out: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let now = clock.now_ms();
    let opened = match &config.store {
        Some(_) => Some(super::open_store(config, clock)?),
        None => open_existing(config, clock)?.map(Store::Sqlite),
    };
    let Some(mut spool) = opened else {
        return Ok(if json_out {
            json!({"spool": config.spool, "exists": false}).to_string() + "\n"
        } else {
            format!(
                "no spool at {} yet: nothing recorded\n",
                config.spool.display()
            )
        });
    };
    let s = spool.stats()?;
    let fleet = Fleet::of(&mut spool)?;
    let alive = match &fleet {
        Some(f) => f.writer.as_ref().is_some_and(|w| w.expires_in_s > 0.0),
        None => {
            s.flusher_pid.is_some()
                && s.flusher_heartbeat_at
                    .is_some_and(|t| now - t < LIVE_WITHIN_MS)
        }
    };
    let backend = build_backend(config, Arc::new(statusrelay_core::time::SystemClock), None)
        .map(|b| b.identity())
        .ok();
    let comps: Vec<Shown> = spool
        .desired()?
        .into_iter()
        .map(|(c, st, t)| {
            let page = backend
                .as_deref()
                .and_then(|b| spool.page_state(b, &c).ok().flatten());
            (c, st, page, t)
        })
        .collect();
    if json_out {
        return Ok(as_json(
            config,
            &mut spool,
            &s,
            alive,
            fleet.as_ref(),
            &comps,
            now,
        ));
    }
    let mut out = summary(config, &s, alive, fleet.as_ref(), now);
    if !comps.is_empty() {
        let _ = writeln!(out, "components:");
        for c in &comps {
            component(&mut out, config, &mut spool, backend.as_deref(), c, now)?;
        }
    }
    // What the aggregator does not take from its nodes (see `nodes`): never silent.
    for n in spool.nodes()? {
        let troubles = super::nodes::node_troubles(&mut spool, &n, now)?;
        if !troubles.is_empty() {
            let _ = write!(out, "node {}:\n{troubles}", n.name);
        }
    }
    Ok(out)
}

/// The aggregator's instances on PostgreSQL, and which one writes (`status` and `nodes`).
pub(super) struct Fleet {
    pub(super) instances: Vec<statusrelay_pg::upkeep::Instance>,
    pub(super) writer: Option<statusrelay_pg::WriterRow>,
}

impl Fleet {
    /// The instances and the writer, when the store is PostgreSQL.
    pub(super) fn of(store: &mut Store) -> Result<Option<Fleet>, AppError> {
        let Store::Postgres(p) = store else {
            return Ok(None);
        };
        Ok(Some(Fleet {
            instances: p.instances()?,
            writer: p.writer()?,
        }))
    }
}

/// Every instance in one line each: which writes (its term, since when, its lease), when each
/// was last seen.
pub(super) fn fleet_lines(out: &mut String, f: &Fleet) {
    let secs = |s: f64| statusrelay_core::duration::format(Duration::from_secs_f64(s.max(0.0)));
    for i in &f.instances {
        let writes = f
            .writer
            .as_ref()
            .filter(|w| w.holder == i.name && w.expires_in_s > 0.0)
            .map(|w| {
                format!(
                    "WRITES the page (term {}, for {}, lease {} left); ",
                    w.term,
                    secs(w.held_for_s),
                    secs(w.expires_in_s)
                )
            })
            .unwrap_or_default();
        let alive = if i.seen_s < 30.0 { "" } else { "NOT SEEN " };
        let _ = writeln!(
            out,
            "instance:  {} {writes}{alive}seen {} ago, up {}",
            i.name,
            secs(i.seen_s),
            secs(i.up_s)
        );
    }
}

/// A component as `status` lists it: its desired state, what the page was confirmed to show,
/// when it changed.
type Shown = (String, State, Option<State>, i64);

/// `status --json`.
fn as_json(
    config: &Config,
    spool: &mut Store,
    s: &statusrelay_spool::Stats,
    alive: bool,
    fleet: Option<&Fleet>,
    comps: &[Shown],
    now: i64,
) -> String {
    // What the aggregator does not take from its nodes: never silent.
    let mut troubled = Vec::new();
    for n in spool.nodes().unwrap_or_default() {
        if super::nodes::node_troubles(spool, &n, now).is_ok_and(|t| !t.is_empty()) {
            troubled.push(super::nodes::node_json(spool, &n));
        }
    }
    json!({
        "spool": if fleet.is_some() { None } else { Some(&config.spool) },
        "store": if fleet.is_some() { "postgresql" } else { "sqlite" },
        "instances": fleet.map(|f| &f.instances),
        "writer": fleet.and_then(|f| f.writer.as_ref()),
        "events": s.events, "rejected_events": s.rejected_events,
        "pending": s.pending, "held": s.held, "in_flight": s.sending, "dead": s.dead,
        "oldest_pending_age_seconds": s.oldest_pending_at.map(|t| (now - t) / 1000),
        "flusher": {"alive": alive, "pid": s.flusher_pid, "heartbeat_at": s.flusher_heartbeat_at.map(rfc3339)},
        "last_success_at": s.last_success_at.map(rfc3339),
        "last_error": s.last_error, "last_error_at": s.last_error_at.map(rfc3339),
        "components": comps.iter().map(|(c, st, page, t)| {
            let failing: Vec<_> = spool.failing_tests(c).unwrap_or_default().into_iter().map(|f| json!({
                "host": f.host, "service": f.service, "test": f.test, "state": f.state,
                "since": rfc3339(f.since),
            })).collect();
            let nodes: Vec<_> = spool.component_nodes(c).unwrap_or_default().into_iter()
                .map(|(n, stale)| json!({"name": n, "stale": stale})).collect();
            json!({"name": c, "desired": st, "page": page, "changed_at": rfc3339(*t),
                   "failing": failing, "nodes": nodes})
        }).collect::<Vec<_>>(),
        "node_troubles": troubled,
    })
    .to_string()
        + "\n"
}

/// The spool, the flusher, the queue, the last delivery and error, in lines.
fn summary(
    config: &Config,
    s: &statusrelay_spool::Stats,
    alive: bool,
    fleet: Option<&Fleet>,
    now: i64,
) -> String {
    let mut out = String::new();
    if let Some(f) = fleet {
        let _ = writeln!(
            out,
            "store:     PostgreSQL ({} events, {} rejected)",
            s.events, s.rejected_events
        );
        fleet_lines(&mut out, f);
    } else {
        let _ = writeln!(
            out,
            "spool:     {} ({} events, {} rejected)",
            config.spool.display(),
            s.events,
            s.rejected_events
        );
    }
    let _ = writeln!(
        out,
        "flusher:   {}",
        match (alive, s.flusher_heartbeat_at) {
            (true, _) if fleet.is_some() => "the writing instance delivers".to_string(),
            (false, _) if fleet.is_some() => "NO INSTANCE WRITES the page now".to_string(),
            (true, _) => format!(
                "running (pid {}, heartbeat {})",
                s.flusher_pid.unwrap_or(0),
                rel(now, s.flusher_heartbeat_at.unwrap_or(now))
            ),
            (false, Some(t)) => format!("NOT RUNNING (last seen {})", rel(now, t)),
            (false, None) => "never ran on this spool".into(),
        }
    );
    let oldest = s
        .oldest_pending_at
        .map(|t| format!(", oldest queued {}", rel(now, t)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "queue:     {} pending, {} in flight, {} dead{oldest}",
        s.pending, s.sending, s.dead
    );
    let _ = writeln!(
        out,
        "delivered: {}",
        s.last_success_at
            .map(|t| format!("last {}", rel(now, t)))
            .unwrap_or_else(|| "never".into())
    );
    if let (Some(e), Some(t)) = (&s.last_error, s.last_error_at) {
        let _ = writeln!(out, "error:     {} ({})", e, rel(now, t));
    }
    out
}

/// One component's lines: its state, its failing tests, its nodes, its incident and
/// maintenance.
fn component(
    out: &mut String,
    config: &Config,
    spool: &mut Store,
    backend: Option<&str>,
    (c, st, page, t): &Shown,
    now: i64,
) -> Result<(), AppError> {
    let page = match page {
        Some(p) if p == st => "shown on the page".to_string(),
        Some(p) => format!("page shows {p}"),
        None => "not confirmed on the page yet".to_string(),
    };
    let _ = writeln!(out, "  {c}: {st} since {} ({page})", rel(now, *t));
    for f in spool.failing_tests(c)? {
        let _ = writeln!(
            out,
            "    {} on {}: {} failing since {} -> {}",
            f.service,
            f.host,
            f.test,
            rel(now, f.since),
            f.state
        );
    }
    let nodes = spool.component_nodes(c)?;
    if !nodes.is_empty() {
        let rule = config.node_rule(c);
        let stale_as = match rule.stale.state() {
            Some(s) => format!("counts as {s}"),
            None => "left out".into(),
        };
        let list: Vec<String> = nodes
            .iter()
            .map(|(n, stale)| {
                if *stale {
                    format!("{n} (STALE, {stale_as})")
                } else {
                    n.clone()
                }
            })
            .collect();
        let how = if rule.counts() {
            "nodes counted"
        } else {
            "worst of"
        };
        let _ = writeln!(out, "    nodes ({how}): {}", list.join(", "));
    }
    if let Some(b) = backend
        && let Some(i) = spool.open_incident(b, c)?
    {
        let id = i
            .remote_id
            .as_deref()
            .map(|r| format!("#{r}"))
            .unwrap_or_else(|| "(being opened)".into());
        let _ = writeln!(
            out,
            "    incident {id} {:?} {} since {}",
            i.name,
            i.status,
            rel(now, i.opened_at.unwrap_or(i.intent_at))
        );
    }
    if let Some(w) = spool.maintenance_active(c)? {
        let why = w
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    maintenance until {}{why}: updates are held",
            rfc3339(w.ends_at)
        );
    }
    Ok(())
}
