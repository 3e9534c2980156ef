//! Operator commands: `queue`, `status`, `replay`, `check`. Like postqueue/postsuper, they
//! show and move what is in flight; none of them sends anything to the status page except
//! `check --online`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use statusrelay_backend::ComponentRef;
use statusrelay_core::config::BackendConfig;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_core::{Config, EventSource, State, duration};
use statusrelay_spool::{DeliveryStatus, Item, Spool};

use crate::AppError;
use crate::flusher::build_backend;
use crate::handler::{plan, plan_manual};

/// Flusher heartbeats are written every 5 s; three missed beats means it is not running.
const LIVE_WITHIN_MS: i64 = 15_000;

fn rel(now: i64, t: i64) -> String {
    let d = Duration::from_millis((t - now).unsigned_abs());
    if (t - now).abs() < 1000 {
        "now".into()
    } else if t > now {
        format!("in {}", duration::format(d))
    } else {
        format!("{} ago", duration::format(d))
    }
}

fn open_existing(config: &Config, clock: Arc<dyn Clock>) -> Result<Option<Spool>, AppError> {
    if !config.spool.exists() {
        return Ok(None);
    }
    Ok(Some(crate::open_spool(&config.spool, clock)?))
}

fn item_json(i: &Item) -> Value {
    json!({
        "id": i.id, "component": i.component, "state": i.state, "status": i.status,
        "attempts": i.attempts, "created_at": rfc3339(i.created_at), "queued_at": rfc3339(i.queued_at),
        "next_attempt_at": (i.status == DeliveryStatus::Pending).then(|| rfc3339(i.next_attempt_at)),
        "last_error": i.last_error, "forced": i.force, "held": i.held,
    })
}

/// `statusrelay queue`.
pub fn queue(config: &Config, json_out: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let now = clock.now_ms();
    let Some(spool) = open_existing(config, clock)? else {
        return Ok(if json_out {
            json!({"deliveries": [], "rejected_events": []}).to_string()
        } else {
            format!(
                "no spool at {} yet: nothing recorded\n",
                config.spool.display()
            )
        });
    };
    let items = spool.open_items()?;
    let rejected = spool.rejected_events()?;
    if json_out {
        let rj: Vec<Value> = rejected
            .iter()
            .map(|r| json!({"id": format!("e{}", r.id), "received_at": rfc3339(r.received_at), "origin": r.origin, "service": r.service, "event": r.event, "error": r.error}))
            .collect();
        return Ok(json!({"deliveries": items.iter().map(item_json).collect::<Vec<_>>(), "rejected_events": rj}).to_string() + "\n");
    }
    let mut out = String::new();
    if items.is_empty() && rejected.is_empty() {
        return Ok("nothing queued: every recorded state has been delivered\n".into());
    }
    if !items.is_empty() {
        let w = items
            .iter()
            .map(|i| i.component.chars().count())
            .max()
            .unwrap_or(9)
            .max(9);
        let _ = writeln!(
            out,
            "{:<6} {:<w$} {:<18} {:<8} {:>8}  {:<12} LAST ERROR",
            "ID", "COMPONENT", "STATE", "STATUS", "ATTEMPTS", "NEXT TRY"
        );
        for i in &items {
            let next = match i.status.as_str() {
                _ if i.held.is_some() => format!("recheck {}", rel(now, i.next_attempt_at)),
                "pending" => rel(now, i.next_attempt_at),
                "sending" => "in flight".into(),
                _ => "-".into(),
            };
            let status = if i.held.is_some() {
                "held"
            } else {
                i.status.as_str()
            };
            // A hold says why better than the last error does.
            let why = i.held.as_deref().or(i.last_error.as_deref()).unwrap_or("");
            let err: String = why.chars().take(100).collect();
            let _ = writeln!(
                out,
                "{:<6} {:<w$} {:<18} {:<8} {:>8}  {:<12} {}",
                i.id,
                i.component,
                i.state.as_str(),
                status,
                i.attempts,
                next,
                err
            );
        }
        if items.iter().any(|i| i.status == DeliveryStatus::Dead) {
            let _ = writeln!(
                out,
                "dead letters are kept until replayed: fix the cause, then `statusrelay replay --dead`"
            );
        }
    }
    if !rejected.is_empty() {
        let _ = writeln!(
            out,
            "\nrejected events (fix the cause, then `statusrelay replay --rejected`):"
        );
        for r in &rejected {
            let _ = writeln!(
                out,
                "e{:<5} {} service={:?} event={:?}: {}",
                r.id,
                rel(now, r.received_at),
                r.service.as_deref().unwrap_or("?"),
                r.event.as_deref().unwrap_or("?"),
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    Ok(out)
}

/// `statusrelay status`.
pub fn status(config: &Config, json_out: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let now = clock.now_ms();
    let Some(spool) = open_existing(config, clock)? else {
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
    let alive = s.flusher_pid.is_some()
        && s.flusher_heartbeat_at
            .is_some_and(|t| now - t < LIVE_WITHIN_MS);
    let backend = build_backend(config, Arc::new(statusrelay_core::time::SystemClock), None)
        .map(|b| b.identity())
        .ok();
    let comps: Vec<(String, State, Option<State>, i64)> = spool
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
        return Ok(json!({
            "spool": config.spool, "events": s.events, "rejected_events": s.rejected_events,
            "pending": s.pending, "held": s.held, "in_flight": s.sending, "dead": s.dead,
            "oldest_pending_age_seconds": s.oldest_pending_at.map(|t| (now - t) / 1000),
            "flusher": {"alive": alive, "pid": s.flusher_pid, "heartbeat_at": s.flusher_heartbeat_at.map(rfc3339)},
            "last_success_at": s.last_success_at.map(rfc3339),
            "last_error": s.last_error, "last_error_at": s.last_error_at.map(rfc3339),
            "components": comps.iter().map(|(c, st, page, t)| json!({"name": c, "desired": st, "page": page, "changed_at": rfc3339(*t)})).collect::<Vec<_>>(),
        })
        .to_string()
            + "\n");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "spool:     {} ({} events, {} rejected)",
        config.spool.display(),
        s.events,
        s.rejected_events
    );
    let _ = writeln!(
        out,
        "flusher:   {}",
        match (alive, s.flusher_heartbeat_at) {
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
    if !comps.is_empty() {
        let _ = writeln!(out, "components:");
        for (c, st, page, t) in &comps {
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
            if let Some(b) = backend.as_deref()
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
        }
    }
    Ok(out)
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
        EventSource::Maintenance { .. } | EventSource::Resync { .. } => return None,
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
    spool: &mut Spool,
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
    let mut src = crate::open_spool(from, Arc::new(statusrelay_core::time::SystemClock))?;
    let target = config.spool.display().to_string();
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
                    .record_resync(&p.event, &p.applies, newer_than)?
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
    let mut spool = crate::open_spool(&config.spool, clock)?;
    let verb = if a.dry_run { "would" } else { "will" };
    let mut out = String::new();

    let elsewhere = a.from.filter(|f| !same_file(f, &config.spool));
    if let Some(from) = elsewhere {
        move_rejected(config, &mut spool, from, a, &mut out)?;
    } else if a.rejected || !events.is_empty() {
        let all = spool.rejected_events()?;
        for id in &events {
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
                        let rec = spool.record(&p.event, &p.applies, Some(r.id))?;
                        let changes: Vec<String> = rec
                            .changes
                            .iter()
                            .map(|c| {
                                format!("{} -> {} (delivery {})", c.component, c.to, c.outbox_id)
                            })
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

/// `statusrelay check`.
pub fn check(config: &Config, online: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let mut out = String::new();
    let src = config
        .source
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    // Building the backend reads the token and the CA file and warns about weak transport,
    // exactly as the flusher will; nothing goes on the network here.
    let mut backend = build_backend(config, clock, None)?;
    let _ = writeln!(out, "config OK: {src}");
    let _ = writeln!(out, "  spool:   {}", config.spool.display());
    let kind = config.backend.kind();
    match (&config.backend, config.backend.remote()) {
        (_, Some(r)) => {
            let from = r
                .token_file
                .as_ref()
                .map(|p| p.display().to_string())
                .or(r.token_env.as_ref().map(|v| format!("${v}")))
                .unwrap_or_default();
            let what = kind.label();
            let page = r
                .page_id
                .as_ref()
                .map(|p| format!(", page {p}"))
                .unwrap_or_default();
            let pace = r.min_interval_for(kind);
            let pace = if pace.is_zero() {
                String::new()
            } else {
                format!(", one request per {}", duration::format(pace))
            };
            let _ = writeln!(
                out,
                "  backend: {what} at {}{page} (token from {from}, timeout {}{pace})",
                r.url_for(kind),
                duration::format(r.timeout),
            );
            if let Some(ca) = &r.ca_file {
                let _ = writeln!(out, "  trusted CA: {}", ca.display());
            }
        }
        (BackendConfig::Html { dir, .. }, None) => {
            let _ = writeln!(out, "  backend: static page in {}", dir.display());
        }
        _ => {}
    }
    if config.components.is_empty() {
        let _ = writeln!(
            out,
            "  components: none configured; each Monit service becomes its own component"
        );
    }
    for c in &config.components {
        let svc: Vec<&str> = c.services.iter().map(|g| g.as_str()).collect();
        let feeds = if svc.is_empty() {
            c.name.clone()
        } else {
            svc.join(", ")
        };
        let id =
            c.id.as_ref()
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default();
        let _ = writeln!(out, "  component {:?}{id} <- {feeds}", c.name);
    }
    for w in config.warnings() {
        crate::warn!("{w}");
        let _ = writeln!(out, "  warning: {w}");
    }
    if online {
        let comps: Vec<ComponentRef> = config
            .components
            .iter()
            .map(|c| ComponentRef {
                name: c.name.clone(),
                id: c.id.clone(),
                container: c.container.clone(),
            })
            .collect();
        let lines = backend.check(&comps);
        let failed = lines.iter().filter(|l| !l.ok).count();
        for l in &lines {
            let _ = writeln!(out, "  [{}] {}", if l.ok { "ok" } else { "FAIL" }, l.what);
        }
        if failed > 0 {
            print!("{out}");
            return Err(AppError::CheckFailed(failed));
        }
    }
    Ok(out)
}
