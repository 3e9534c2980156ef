//! `statusrelay replay`: make pending or dead deliveries due now (never a dead letter a newer
//! delivery superseded), re-apply rejected events with the current config (from this spool or,
//! with `--from`, another), or re-send recent states to a page restored from a backup.

use std::fmt::Write as _;
use std::sync::Arc;

use statusrelay_core::time::Clock;
use statusrelay_core::{Config, EventSource, duration};
use statusrelay_serve::store::Store;
use statusrelay_spool::store::{Queue, Record, Replay};

use crate::AppError;
use crate::handler::{plan, plan_manual};

/// `statusrelay replay ...`.
pub fn run(
    a: &crate::cli::ReplayArgs,
    config: Option<&std::path::Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let args = ReplayArgs {
        ids: &a.ids,
        dead: a.dead,
        rejected: a.rejected,
        from: a.from.as_deref(),
        component: a.component.as_deref(),
        since: a.since.as_deref(),
        dry_run: a.dry_run,
    };
    let config = Config::load(config)?;
    statusrelay_spool::retry_corrupt(&*clock, || replay(&config, &args, clock.clone()))
}

/// An id on the replay command line.
enum ReplayId {
    Delivery(i64),
    Event(i64),
}

fn parse_id(s: &str) -> Result<ReplayId, AppError> {
    let bad = || {
        AppError::Usage(format!(
            "{s:?} is not a delivery id (12) or rejected event id (e7)"
        ))
    };
    match s.strip_prefix('e') {
        Some(n) => n.parse().map(ReplayId::Event).map_err(|_| bad()),
        None => s.parse().map(ReplayId::Delivery).map_err(|_| bad()),
    }
}

/// Options of `statusrelay replay`.
pub struct ReplayArgs<'a> {
    pub ids: &'a [String],
    pub dead: bool,
    pub rejected: bool,
    /// Another spool to take rejected events from (`--from`).
    pub from: Option<&'a std::path::Path>,
    pub component: Option<&'a str>,
    pub since: Option<&'a str>,
    pub dry_run: bool,
}

/// Plan a rejected event again from its raw record, with the current config (None: the raw
/// record is unreadable).
fn plan_rejected(
    config: &Config,
    r: &statusrelay_spool::RejectedEvent,
) -> Option<crate::handler::Planned> {
    Some(match EventSource::parse(&r.raw)? {
        EventSource::Monit { monit, component } => plan(config, &monit, component.as_deref()),
        EventSource::Manual { event: e } => plan_manual(
            config,
            &e.component,
            e.status,
            e.message.as_deref(),
            &e.source,
        ),
        // Neither is ever rejected: they name a component the config had when recorded.
        EventSource::Maintenance { .. }
        | EventSource::Resync { .. }
        | EventSource::Forget { .. }
        | EventSource::Relay { .. }
        | EventSource::Collector { .. }
        | EventSource::Stale { .. } => return None,
    })
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (statusrelay_spool::file_id(a), statusrelay_spool::file_id(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `replay --rejected --from SPOOL`: take the rejected events another spool holds (a broken
/// config made the handler keep them there) into the configured spool, applied with the current
/// config, or kept as rejected there. A moved event never overrides a test that an event
/// received after it has changed here. The source keeps each event, marked as moved.
fn move_rejected(
    config: &Config,
    spool: &mut Store,
    from: &std::path::Path,
    a: &ReplayArgs<'_>,
    out: &mut String,
) -> Result<(), AppError> {
    if !from.exists() {
        return Err(AppError::Usage(format!(
            "--from {}: no such spool file",
            from.display()
        )));
    }
    let mut src =
        statusrelay_spool::Spool::open(from, Arc::new(statusrelay_core::time::SystemClock))?;
    let target = match &config.store {
        Some(_) => "the PostgreSQL store".to_string(),
        None => config.spool.display().to_string(),
    };
    for r in src.rejected_events()? {
        let Some(planned) = plan_rejected(config, &r) else {
            let _ = writeln!(
                out,
                "{}: e{}: raw event is unreadable; left there",
                from.display(),
                r.id
            );
            continue;
        };
        let what = match &planned {
            Ok(p)
                if a.component
                    .is_some_and(|c| !p.applies.iter().any(|x| x.component == c)) =>
            {
                continue;
            }
            Ok(p) => format!("apply ({} test change(s))", p.applies.len()),
            Err(rej) => format!("keep as rejected ({})", rej.reason),
        };
        if a.dry_run {
            let _ = writeln!(
                out,
                "{}: e{}: would move to {target} and {what}",
                from.display(),
                r.id
            );
            continue;
        }
        let moved = match planned {
            Ok(p) => {
                let newer_than = spool.last_event_at_or_before(r.received_at)?;
                spool
                    .record_moved(&p.event, &p.applies, newer_than)?
                    .event_id
            }
            Err(rej) => spool.record_rejected(&rej.event, &rej.reason.to_string())?,
        };
        src.mark_moved(r.id, &format!("moved to {target} as e{moved}"))?;
        let _ = writeln!(
            out,
            "{}: e{}: moved to {target} as e{moved}: {what}",
            from.display(),
            r.id
        );
    }
    Ok(())
}

/// `statusrelay replay`.
pub fn replay(
    config: &Config,
    a: &ReplayArgs<'_>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let mut deliveries = Vec::new();
    let mut events = Vec::new();
    for s in a.ids {
        match parse_id(s)? {
            ReplayId::Delivery(n) => deliveries.push(n),
            ReplayId::Event(n) => events.push(n),
        }
    }
    let since = a.since.map(duration::parse).transpose()?;
    let now = clock.now_ms();
    // Another spool than the config's (with [store], any spool: the database is the store).
    let elsewhere = a
        .from
        .filter(|f| config.store.is_some() || !same_file(f, &config.spool));
    // The spool, or an aggregator's PostgreSQL store (any instance: the writer sends what is
    // queued here).
    let mut spool = super::open_store(config, clock)?;
    let verb = if a.dry_run { "would" } else { "will" };
    let mut out = String::new();

    if let Some(from) = elsewhere {
        move_rejected(config, &mut spool, from, a, &mut out)?;
    } else if a.rejected || !events.is_empty() {
        replay_rejected(config, &mut spool, &events, a, &mut out)?;
    }
    if let Some(since) = since {
        let from = now - since.as_millis() as i64;
        for (c, st) in spool.replay_since(from, a.component, a.dry_run)? {
            let _ = writeln!(
                out,
                "{c}: {verb} re-send {st} (changed within {})",
                duration::format(since)
            );
        }
    }
    if !a.rejected && since.is_none() && (events.is_empty() || !deliveries.is_empty()) {
        let replayed = spool.replay_items(&deliveries, a.dead, a.component, a.dry_run)?;
        for id in &deliveries {
            if !replayed.due.iter().any(|i| i.id == *id)
                && !replayed.superseded.iter().any(|(i, _)| i.id == *id)
            {
                return Err(AppError::NoSuchItem(id.to_string()));
            }
        }
        for (i, newer) in &replayed.superseded {
            let _ = writeln!(
                out,
                "delivery {}: not sent ({}: {}, dead): superseded by delivery {} ({}, {}); the page must not go back to an older state",
                i.id, i.component, i.state, newer.id, newer.state, newer.status
            );
        }
        let items = replayed.due;
        for i in &items {
            let _ = writeln!(
                out,
                "delivery {}: {verb} be sent now ({}: {}, was {})",
                i.id, i.component, i.state, i.status
            );
        }
    }
    if out.is_empty() {
        out = "nothing to replay\n".into();
    } else if a.dry_run {
        out.push_str("dry run: nothing changed\n");
    }
    Ok(out)
}

/// Apply the rejected events asked for (`events`, or all of them) again, each as the config
/// now plans it; one still rejected keeps its new reason.
fn replay_rejected(
    config: &Config,
    spool: &mut Store,
    events: &[i64],
    a: &ReplayArgs<'_>,
    out: &mut String,
) -> Result<(), AppError> {
    let all = spool.rejected_events()?;
    for id in events {
        if !all.iter().any(|r| r.id == *id) {
            return Err(AppError::NoSuchItem(format!("e{id}")));
        }
    }
    for r in all
        .iter()
        .filter(|r| events.is_empty() || events.contains(&r.id))
    {
        let Some(planned) = plan_rejected(config, r) else {
            let _ = writeln!(out, "e{}: raw event is unreadable; left as rejected", r.id);
            continue;
        };
        match planned {
            Ok(p)
                if a.component
                    .is_some_and(|c| !p.applies.iter().any(|x| x.component == c)) => {}
            Ok(p) => {
                if a.dry_run {
                    let _ = writeln!(
                        out,
                        "e{}: would apply ({} test change(s))",
                        r.id,
                        p.applies.len()
                    );
                } else {
                    let rec = spool.replay_rejected(r.id, &p.event, &p.applies)?;
                    let changes: Vec<String> = rec
                        .changes
                        .iter()
                        .map(|c| format!("{} -> {} (delivery {})", c.component, c.to, c.outbox_id))
                        .collect();
                    let _ = writeln!(
                        out,
                        "e{}: applied{}",
                        r.id,
                        if changes.is_empty() {
                            "; no state change".into()
                        } else {
                            format!("; {}", changes.join(", "))
                        }
                    );
                }
            }
            Err(rej) => {
                if !a.dry_run {
                    spool.set_rejected_error(r.id, &rej.reason.to_string())?;
                }
                let _ = writeln!(out, "e{}: still rejected: {}", r.id, rej.reason);
            }
        }
    }
    Ok(())
}
