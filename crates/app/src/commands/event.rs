//! `statusrelay event`: record a state for a component from any other agent, cron job or
//! person, each source's state kept apart, on the handler's fixed SQLite heap.

use std::path::Path;
use std::sync::Arc;

use statusrelay_core::Config;
use statusrelay_core::time::Clock;

use super::monit::on_fixed_heap;
use crate::cli::EventArgs;
use crate::{AppError, handler};

pub fn run(
    a: &EventArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    if config.store.is_some() {
        return on_store(a, &config, clock);
    }
    let bytes = [Some(&a.component), a.message.as_ref(), Some(&a.source)]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum();
    Ok(on_fixed_heap(bytes, || {
        Ok(handler::event(
            &config,
            &a.component,
            a.status,
            a.message.as_deref(),
            &a.source,
            clock,
        )?)
    })? + "\n")
}

/// The event on an aggregator's PostgreSQL store (any instance): planned as the handler plans
/// it, recorded there, or kept there as rejected for `replay --rejected`.
fn on_store(a: &EventArgs, config: &Config, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    use statusrelay_spool::store::Record;
    let mut store = super::open_store(config, clock)?;
    let planned = handler::plan_manual(
        config,
        &a.component,
        a.status,
        a.message.as_deref(),
        &a.source,
    );
    match planned {
        Ok(p) => Ok(handler::said(&store.record(&p.event, &p.applies)?) + "\n"),
        Err(r) => {
            let event_id = store.record_rejected(&r.event, &r.reason.to_string())?;
            Err(AppError::Handler(handler::HandlerError::Rejected {
                event_id,
                reason: r.reason,
            }))
        }
    }
}
