//! What `queue` and `status` share: opening a spool only if it exists, times relative to now,
//! a delivery as JSON. Nothing here writes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_core::{Config, duration};
use statusrelay_spool::{DeliveryStatus, Item, Spool};

use crate::AppError;

/// Flusher heartbeats are written every 5 s; three missed beats means it is not running.
pub(super) const LIVE_WITHIN_MS: i64 = 15_000;

pub(super) fn rel(now: i64, t: i64) -> String {
    let d = Duration::from_millis((t - now).unsigned_abs());
    if (t - now).abs() < 1000 {
        "now".into()
    } else if t > now {
        format!("in {}", duration::format(d))
    } else {
        format!("{} ago", duration::format(d))
    }
}

pub(super) fn open_existing(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Option<Spool>, AppError> {
    if !config.spool.exists() {
        return Ok(None);
    }
    Ok(Some(statusrelay_spool::Spool::open(&config.spool, clock)?))
}

pub(super) fn item_json(i: &Item) -> Value {
    json!({
        "id": i.id, "component": i.component, "state": i.state, "status": i.status,
        "attempts": i.attempts, "created_at": rfc3339(i.created_at), "queued_at": rfc3339(i.queued_at),
        "next_attempt_at": (i.status == DeliveryStatus::Pending).then(|| rfc3339(i.next_attempt_at)),
        "last_error": i.last_error, "forced": i.force, "held": i.held,
    })
}
