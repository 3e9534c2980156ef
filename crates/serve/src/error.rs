//! The aggregator's one error type, for what stops or troubles it as a whole; a request's
//! refusal is an answer, not an error (see `http::Refusal`).

/// What `serve` can fail with outside a request.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The spool could not be opened, read or written.
    #[error(transparent)]
    Spool(#[from] statusrelay_spool::SpoolError),
    /// The PostgreSQL store could not be reached, read or written.
    #[error(transparent)]
    Pg(#[from] statusrelay_pg::PgError),
    /// The async runtime could not be started (threads, file descriptors).
    #[error("cannot start the aggregator's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The listener failed after it was bound.
    #[error("listen {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The system's random number generator failed (a new node secret).
    #[error("the system's random number generator failed")]
    Random,
}

impl ServeError {
    /// Would the same call succeed later on its own (a spool another process holds)?
    pub fn is_temporary(&self) -> bool {
        match self {
            ServeError::Spool(e) => e.is_temporary(),
            ServeError::Pg(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl From<crate::store::StoreFailure> for ServeError {
    fn from(e: crate::store::StoreFailure) -> ServeError {
        match e {
            crate::store::StoreFailure::Spool(e) => ServeError::Spool(e),
            crate::store::StoreFailure::Pg(e) => ServeError::Pg(e),
        }
    }
}
