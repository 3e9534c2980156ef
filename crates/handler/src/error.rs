//! The handler's one error type.

use std::path::PathBuf;

use statusrelay_core::CoreError;
use statusrelay_spool::{SpoolCause, SpoolError};

/// What recording one event can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Bad config, or an event that cannot be read.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The spool could not be opened or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// An event was recorded but could not be applied; it waits for `replay --rejected`.
    #[error("event e{event_id} recorded but not applied: {reason}")]
    Rejected { event_id: i64, reason: CoreError },
    /// The config is broken and the raw event went to the spool named by the fallback lookup.
    #[error(
        "{reason}\n(the raw event was kept as e{event_id} in {spool}; fix the config, then `statusrelay replay --rejected --from {spool}`)",
        spool = spool.display()
    )]
    RejectedByConfig {
        event_id: i64,
        spool: PathBuf,
        reason: CoreError,
    },
}

impl SpoolCause for HandlerError {
    fn spool_error(&self) -> Option<&SpoolError> {
        match self {
            HandlerError::Spool(e) => Some(e),
            _ => None,
        }
    }
}
