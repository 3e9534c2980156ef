//! `statusrelay resync [--dry-run]`: read Monit's own status and record every real difference
//! (the work is `crate::resync`, which the flusher runs too).

use std::path::Path;
use std::sync::Arc;

use statusrelay_core::Config;
use statusrelay_core::time::Clock;

use crate::cli::ResyncArgs;
use crate::{AppError, resync};
use statusrelay_spool::retry_corrupt;

pub fn run(
    a: &ResyncArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    retry_corrupt(&*clock, || {
        resync::command(&config, a.dry_run, clock.clone())
    })
}
