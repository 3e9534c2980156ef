//! `statusrelay maintenance start|stop|list`: local maintenance windows, so a deploy tool can wrap
//! a restart and Monit's restart events page nobody.
//!
//! Invariant: a window only holds deliveries; events are still recorded, so when it ends the page
//! gets the newest real state (coalescing drops what the window superseded).

use std::sync::Arc;

use serde_json::json;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_core::{Config, duration};

use crate::AppError;
use crate::cli::MaintenanceAction;
use crate::handler::maintenance_event;
use statusrelay_spool::store::{Holds, Record};

/// `statusrelay maintenance start|stop|list`.
pub fn run(
    a: &crate::cli::MaintenanceArgs,
    config: Option<&std::path::Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    statusrelay_spool::retry_corrupt(&*clock, || command(&config, &a.action, clock.clone()))
}

/// The longest maintenance window `--for` accepts.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

pub fn command(
    config: &Config,
    action: &MaintenanceAction,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let now = clock.now_ms();
    // The aggregator's store: its spool, or PostgreSQL on any of its instances.
    let mut spool = super::open_store(config, clock)?;
    match action {
        MaintenanceAction::Start(a) => {
            let (component, d, reason, show) = (&a.component, &a.duration, &a.reason, &a.show);
            let comp = config.component(component)?;
            let d = duration::parse(d)?;
            if d.is_zero() {
                return Err(AppError::Usage("--for must be longer than 0s".into()));
            }
            // A window is for a deploy, not forever: a huge --for overflowed the end date.
            if d > MAX_WINDOW {
                return Err(AppError::Usage(format!(
                    "--for {}: at most {} days; for a component that is gone for good, remove it from the config",
                    duration::format(d),
                    MAX_WINDOW.as_secs() / 86_400
                )));
            }
            let w = spool.maintenance_start(
                &comp.name,
                now + d.as_millis() as i64,
                reason.as_deref(),
                *show,
            )?;
            if *show {
                let (ev, apply) = maintenance_event(
                    config,
                    &comp.name,
                    true,
                    reason.as_deref().unwrap_or("maintenance"),
                );
                spool.record(&ev, &[apply])?;
            }
            Ok(format!(
                "maintenance {} of {} until {}{}: updates are held{}\n",
                w.id,
                comp.name,
                rfc3339(w.ends_at),
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                if *show {
                    "; the page shows under_maintenance"
                } else {
                    ""
                }
            ))
        }
        MaintenanceAction::Stop(a) => {
            let component = &a.component;
            if let Some(c) = component {
                config.component(c)?;
            }
            let ended = spool.maintenance_stop(component.as_deref())?;
            if ended.is_empty() {
                return Ok("no active maintenance window\n".into());
            }
            let mut out = String::new();
            for w in &ended {
                if w.show {
                    let (ev, apply) =
                        maintenance_event(config, &w.component, false, "maintenance stopped");
                    spool.record(&ev, &[apply])?;
                }
                let n = spool.release_held(Some(&w.component))?;
                out.push_str(&format!(
                    "ended maintenance {} of {}; {n} held deliveries released\n",
                    w.id, w.component
                ));
            }
            Ok(out)
        }
        MaintenanceAction::List(a) => {
            let (all, as_json) = (&a.all, &a.json);
            let list = spool.maintenance_list(*all)?;
            if *as_json {
                let v: Vec<_> = list
                    .iter()
                    .map(|w| json!({"id": w.id, "component": w.component, "starts_at": rfc3339(w.starts_at), "ends_at": rfc3339(w.ends_at), "reason": w.reason, "show": w.show, "ended_at": w.ended_at.map(rfc3339), "active": w.ended_at.is_none() && w.ends_at > now}))
                    .collect();
                return Ok(serde_json::to_string(&v).unwrap_or_default() + "\n");
            }
            if list.is_empty() {
                return Ok("no maintenance windows\n".into());
            }
            Ok(list
                .iter()
                .map(|w| {
                    let state = match w.ended_at {
                        Some(t) => format!("ended {}", rfc3339(t)),
                        None if w.ends_at <= now => "over (the flusher will close it)".into(),
                        None => format!("active until {}", rfc3339(w.ends_at)),
                    };
                    format!(
                        "{:<4} {:<20} {state}{}{}\n",
                        w.id,
                        w.component,
                        w.reason
                            .as_deref()
                            .map(|r| format!(" - {r}"))
                            .unwrap_or_default(),
                        if w.show { " [shown]" } else { "" }
                    )
                })
                .collect())
        }
    }
}
