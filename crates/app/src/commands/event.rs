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
