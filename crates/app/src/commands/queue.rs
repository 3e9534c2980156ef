//! `statusrelay queue`: pending, in-flight and dead-lettered deliveries with attempts, next try
//! and last error, and rejected events. Like postqueue, it shows; it sends nothing.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Value, json};
use statusrelay_core::Config;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_spool::DeliveryStatus;

use super::view::{item_json, open_existing, rel};
use crate::AppError;
use statusrelay_serve::store::Store;
use statusrelay_spool::store::Queue;

/// `statusrelay queue [--json]`.
pub fn run(
    a: &crate::cli::QueueArgs,
    config: Option<&std::path::Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    statusrelay_spool::retry_corrupt(&*clock, || queue(&config, a.json, clock.clone()))
}

/// `statusrelay queue`.
pub fn queue(config: &Config, json_out: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let now = clock.now_ms();
    let opened = match &config.store {
        Some(_) => Some(super::open_store(config, clock)?),
        None => open_existing(config, clock)?.map(Store::Sqlite),
    };
    let Some(mut spool) = opened else {
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
