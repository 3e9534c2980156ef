//! The fleet's aggregator (`statusrelay serve`): the HTTP endpoints nodes report to, and the
//! sweep that judges their silence. Its flusher, which alone writes the page, is wired next to
//! it by the `serve` command (`statusrelay_app`); this crate only fills the spool.
//!
//! Invariants:
//! - Two ways in, one model: `POST /v1/reports` (a node's statusrelay relaying its spool,
//!   `relay`) and `POST /collector` (a node's Monit pushing its status document, as to
//!   M/Monit, `collector`). Each is planned by a pure function, then taken into the spool by
//!   one step (`Ingest::report`), ordered by the node's sequence (a collector document's is the
//!   time Monit collected it, never its arrival).
//! - A node is who its credential says (HTTP basic auth: node name and secret, checked against
//!   the stored hash); nothing in a body names a node. An unknown node or a wrong secret is
//!   401, logged with the peer's address, never with the secret.
//! - Authentication and every limit run on the headers, before the body is read or the spool
//!   taken (`auth`): a stranger never costs a buffer or the lock.
//! - A batch is checked whole before anything is applied, then applied in one transaction
//!   (with the reports of other requests waiting at that moment: group commit); the answer
//!   (200) is sent only after that commit. A report older than the node's last
//!   applied one is acknowledged and changes nothing.
//! - Order within one reporter (a relaying spool's id, a Monit's id and incarnation): a new
//!   reporter starts a new sequence; two live ones alternating on one credential are refused
//!   (409) and logged once with both peers; a mark more than `MAX_AHEAD_MS` ahead of the
//!   aggregator's clock is refused (422). Every refusal is counted for `nodes` and `status`
//!   (see `verdict`).
//! - Every refusal is a typed `http::Refusal`: status, what is wrong, what to do, and
//!   `Retry-After` from its own field.
//! - Bounded: bodies over `[serve] max_body` are 413, a request taking longer than
//!   `request_timeout` is cut off with 408 (headers alone: the connection is closed, see
//!   `listen`), a node over its rate is 429 with `Retry-After` (see `limit`).
//!
//! One file per part: `http` (routes, refusals), `auth` (the gate on the headers),
//! `credentials`, `limit`, `listen` (connections, TLS from `tls`), `ingest` (the shared spool
//! and the step that prepares a plan), `relay` and `collector` (the two plans), `coalesce`
//! (reports that change nothing), `group` (the others, committed together), `verdict` (what
//! is said of a report), `sweep` (staleness), `timed` (the spool's mutex), `store` (the
//! SQLite spool or PostgreSQL behind one enum).

pub mod auth;
mod coalesce;
pub mod collector;
pub mod credentials;
mod error;
pub mod group;
pub mod http;
pub mod ingest;
pub mod limit;
pub mod listen;
pub mod relay;
pub mod store;
pub mod sweep;
mod timed;
pub mod tls;
mod verdict;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use error::ServeError;
pub use http::{Refusal, router};
pub use ingest::Ingest;
// One logger for every crate.
pub(crate) use statusrelay_core::log::{debug, error, info, warn};

/// Serve the aggregator's endpoints on `listener` (bound by the caller, so a port in use is
/// said before anything starts) until `stop` is set, with the sweep running beside them; the
/// runtime is this call's, on two workers.
pub fn serve(
    listener: std::net::TcpListener,
    ingest: Arc<Ingest>,
    tls: Option<Arc<tls::Tls>>,
    limits: listen::Limits,
    stop: Arc<AtomicBool>,
) -> Result<(), ServeError> {
    let addr: SocketAddr = listener.local_addr().map_err(ServeError::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Requests are shallow; the default 2 MiB of address space per thread is what a
        // memory limit runs out of.
        .thread_stack_size(1 << 20)
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|source| ServeError::Listen { addr, source })?;
        info!(
            "serving nodes on {}://{addr}",
            if tls.is_some() { "https" } else { "http" },
        );
        let sweep = tokio::spawn(sweep::run(ingest.clone(), stop.clone()));
        listen::serve(listener, router(ingest), tls, limits, stop.clone()).await;
        // The sweep writes what is left before it ends.
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = sweep.await;
        Ok(())
    })
}
