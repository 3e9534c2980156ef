//! Opening the spool the way every command does: a corrupt file moved aside is said loudly,
//! and a command that meets corruption in the middle of its work runs again on a fresh spool.
//!
//! Invariant: a corrupt file is moved aside at most [`MAX_QUARANTINES`] times per command, and
//! only the file found corrupt (never a fresh spool another process just started).

use statusrelay_core::time::Clock;

use crate::{AppError, error, warn};

/// How many times one command moves a corrupt spool aside before it gives up (a disk that
/// corrupts every fresh file needs a person, not a loop).
const MAX_QUARANTINES: usize = 3;

/// Run a command that opens the spool; should SQLite find the spool corrupt in the middle of
/// it (a damaged page the open did not touch), the file is moved aside loudly and the command
/// runs again on a fresh spool, so recording goes on.
pub fn retry_corrupt<T>(
    clock: &dyn Clock,
    mut op: impl FnMut() -> Result<T, AppError>,
) -> Result<T, AppError> {
    let mut left = MAX_QUARANTINES;
    loop {
        match op() {
            Err(AppError::Spool(e)) if e.is_corrupt() && left > 0 => {
                left -= 1;
                quarantine(&e, clock)?;
            }
            other => return other,
        }
    }
}

/// Move a spool found corrupt aside and say so at error level.
pub fn quarantine(e: &statusrelay_spool::SpoolError, clock: &dyn Clock) -> Result<(), AppError> {
    match statusrelay_spool::move_aside(e, clock.now_ms())? {
        Some(aside) => error!(
            "{e}: moved to {} (kept for inspection, never deleted) and a fresh spool started; run `statusrelay resync` to record Monit's current view",
            aside.display()
        ),
        None => warn!("{e}: another process has already moved it aside; using the fresh spool"),
    }
    Ok(())
}
