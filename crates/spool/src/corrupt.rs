//! A spool SQLite finds corrupt in the middle of a command's work (a damaged page the open
//! did not touch): the file is moved aside loudly and the command runs again on a fresh spool,
//! so recording goes on.
//!
//! Invariant: a corrupt file is moved aside at most [`MAX_QUARANTINES`] times per command, and
//! only the file found corrupt (never a fresh spool another process just started).

use statusrelay_core::log::{error, warn};
use statusrelay_core::time::Clock;

use crate::{SpoolError, move_aside};

/// How many times one command moves a corrupt spool aside before it gives up (a disk that
/// corrupts every fresh file needs a person, not a loop).
pub const MAX_QUARANTINES: usize = 3;

/// An error that may be the spool's (each crate's error enum wraps [`SpoolError`]).
pub trait SpoolCause: From<SpoolError> {
    /// The spool's error inside, if this is one.
    fn spool_error(&self) -> Option<&SpoolError>;

    /// Is this the spool held by another process past the busy timeout?
    fn is_spool_busy(&self) -> bool {
        self.spool_error().is_some_and(SpoolError::is_busy)
    }
}

impl SpoolCause for SpoolError {
    fn spool_error(&self) -> Option<&SpoolError> {
        Some(self)
    }
}

/// Run a command that opens the spool; should SQLite find the spool corrupt in the middle of
/// it, the file is moved aside loudly and the command runs again on a fresh spool.
pub fn retry_corrupt<T, E: SpoolCause>(
    clock: &dyn Clock,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut left = MAX_QUARANTINES;
    loop {
        match op() {
            Err(e) if left > 0 && e.spool_error().is_some_and(SpoolError::is_corrupt) => {
                left -= 1;
                quarantine(e.spool_error().expect("checked above"), clock)?;
            }
            other => return other,
        }
    }
}

/// Move a spool found corrupt aside and say so at error level.
pub fn quarantine(e: &SpoolError, clock: &dyn Clock) -> Result<(), SpoolError> {
    match move_aside(e, clock.now_ms())? {
        Some(aside) => error!(
            "{e}: moved to {} (kept for inspection, never deleted) and a fresh spool started; run `statusrelay resync` to record Monit's current view",
            aside.display()
        ),
        None => warn!("{e}: another process has already moved it aside; using the fresh spool"),
    }
    Ok(())
}
