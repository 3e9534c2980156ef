//! The app's one error type and the single mapping from errors to exit codes (sysexits).

use std::path::PathBuf;

use statusrelay_backend::BackendError;
use statusrelay_core::CoreError;
use statusrelay_handler::HandlerError;
use statusrelay_serve::ServeError;
use statusrelay_spool::{SpoolCause, SpoolError};

use crate::{error, warn};

pub const EX_OK: i32 = 0;
/// `monit-config --check`: the directory does not match the config (as diff(1) exits 1).
pub const EX_DIFFERS: i32 = 1;
pub const EX_USAGE: i32 = 64;
pub const EX_DATAERR: i32 = 65;
pub const EX_UNAVAILABLE: i32 = 69;
pub const EX_IOERR: i32 = 74;
pub const EX_TEMPFAIL: i32 = 75;
pub const EX_CONFIG: i32 = 78;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad config, bad arguments or an event that cannot be mapped.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The spool could not be opened or written.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The status page could not be set up or reached.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The aggregator could not run (its spool, its runtime, its listener).
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The handler could not record an event, or recorded it as rejected.
    #[error(transparent)]
    Handler(#[from] HandlerError),
    /// Another process delivers this spool (a `flush`, or a `serve` whose flusher it is).
    #[error(
        "another statusrelay already delivers {spool} (`statusrelay flush`, or `statusrelay serve`, which delivers its own spool; it holds {lock}): one process delivers a spool, so stop the other first (`systemctl status statusrelay statusrelay-serve`)"
    )]
    FlusherRunning { spool: PathBuf, lock: PathBuf },
    /// `serve` cannot listen where it is told to.
    #[error("cannot listen on {addr}: {why}")]
    Listen {
        addr: std::net::SocketAddr,
        why: String,
    },
    /// `flush --once` finished with deliveries still waiting for a retry.
    #[error("{count} deliveries still pending (next attempt {next}); see `statusrelay queue`")]
    StillPending { count: usize, next: String },
    /// Monit's HTTP interface could not be read.
    #[error("Monit: {0}")]
    Monit(String),
    /// `check --online` found problems.
    #[error("{0} online check(s) failed")]
    CheckFailed(usize),
    /// A replay id does not name a pending or dead delivery or a rejected event.
    #[error("{0}: no such pending or dead delivery or rejected event (see `statusrelay queue`)")]
    NoSuchItem(String),
    /// A command-line value is malformed.
    #[error("{0}")]
    Usage(String),
    /// The PostgreSQL store could not be reached, read or written (`[store]`).
    #[error(transparent)]
    Pg(#[from] statusrelay_pg::PgError),
    /// Local I/O outside the spool (lock file).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Core(e)
            | AppError::Handler(HandlerError::Core(e))
            | AppError::Handler(HandlerError::Rejected { reason: e, .. }) => core_code(e),
            AppError::Handler(HandlerError::RejectedByConfig { .. }) => EX_CONFIG,
            AppError::Spool(e)
            | AppError::Serve(ServeError::Spool(e))
            | AppError::Handler(HandlerError::Spool(e)) => spool_code(e),
            AppError::Pg(e) | AppError::Serve(ServeError::Pg(e)) => pg_code(e),
            AppError::Serve(_) => EX_UNAVAILABLE,
            AppError::Backend(BackendError::Token(_))
            | AppError::Backend(BackendError::Config(_)) => EX_CONFIG,
            AppError::Backend(e) if e.is_retryable() => EX_TEMPFAIL,
            AppError::Backend(_) => EX_UNAVAILABLE,
            AppError::FlusherRunning { .. } | AppError::StillPending { .. } => EX_TEMPFAIL,
            AppError::CheckFailed(_) | AppError::Monit(_) | AppError::Listen { .. } => {
                EX_UNAVAILABLE
            }
            AppError::NoSuchItem(_) | AppError::Usage(_) => EX_USAGE,
            AppError::Io { .. } => EX_IOERR,
        }
    }

    /// Another instance writes the page now (this one was deposed or never elected).
    pub fn is_deposed(&self) -> bool {
        matches!(self, AppError::Pg(e) | AppError::Serve(ServeError::Pg(e)) if e.is_deposed())
    }

    /// The PostgreSQL store could not be reached (restarting, failing over): worth trying
    /// again on a new connection.
    pub fn is_pg_retryable(&self) -> bool {
        matches!(self, AppError::Pg(e) | AppError::Serve(ServeError::Pg(e)) if e.is_retryable())
    }

    /// Should this be printed as a quiet note rather than an error (work still pending)?
    pub fn is_pending_only(&self) -> bool {
        matches!(self, AppError::StillPending { .. })
    }
}

impl SpoolCause for AppError {
    fn spool_error(&self) -> Option<&SpoolError> {
        match self {
            AppError::Spool(e)
            | AppError::Serve(ServeError::Spool(e))
            | AppError::Handler(HandlerError::Spool(e)) => Some(e),
            _ => None,
        }
    }
}

fn pg_code(e: &statusrelay_pg::PgError) -> i32 {
    use statusrelay_pg::PgError;
    match e {
        e if e.is_retryable() => EX_TEMPFAIL,
        PgError::TooNew { .. } | PgError::Config(_) | PgError::Import(_) => EX_CONFIG,
        _ => EX_UNAVAILABLE,
    }
}

impl From<statusrelay_serve::store::StoreFailure> for AppError {
    fn from(e: statusrelay_serve::store::StoreFailure) -> AppError {
        match e {
            statusrelay_serve::store::StoreFailure::Spool(e) => AppError::Spool(e),
            statusrelay_serve::store::StoreFailure::Pg(e) => AppError::Pg(e),
        }
    }
}

fn spool_code(e: &SpoolError) -> i32 {
    match e {
        e if e.is_temporary() => EX_TEMPFAIL,
        SpoolError::TooNew { .. } => EX_CONFIG,
        _ => EX_IOERR,
    }
}

fn core_code(e: &CoreError) -> i32 {
    if e.is_config() {
        EX_CONFIG
    } else if e.is_usage() {
        EX_USAGE
    } else {
        EX_DATAERR
    }
}

/// Print an error the way every command does.
pub fn report(err: &AppError) {
    if err.is_pending_only() {
        warn!("{err}");
    } else {
        error!("{err}");
    }
    if let Some(hint) = err.spool_error().and_then(|e| e.hint()) {
        error!("hint: {hint}");
    }
}
