//! `statusrelay flush [--once]`: deliver the spool to the status page (`crate::flusher`) until
//! SIGTERM or SIGINT, or once.
//!
//! Invariant: the signals only set the shutdown flag; the flusher and its HTTP client stop
//! within about a second whatever is in flight.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use statusrelay_core::Config;
use statusrelay_core::time::Clock;

use crate::AppError;
use crate::cli::FlushArgs;
use crate::flusher::{self, FlushOptions};
use statusrelay_spool::retry_corrupt;

pub fn run(
    a: &FlushArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    let shutdown = super::stop_on_signals()?;
    let opts = FlushOptions {
        metrics_file: a.metrics_file.clone(),
        once: a.once,
        poll: Duration::from_millis(200),
        shutdown,
        clock: clock.clone(),
        // Events come from other processes (the handler): their commits are polled for.
        doorbell: None,
        postgres: None,
    };
    let r = retry_corrupt(&*clock, || {
        let backend = flusher::build_backend(&config, clock.clone(), Some(opts.shutdown.clone()))?;
        flusher::flush(&config, backend, opts.clone())
    })?;
    Ok(if a.once {
        format!(
            "{} sent, {} already shown, {} coalesced, {} to retry, {} dead-lettered\n",
            r.sent, r.skipped, r.superseded, r.retried, r.dead
        )
    } else {
        String::new()
    })
}
