//! `statusrelay serve`: the fleet's aggregator. It alone writes to the page: nodes report to it
//! (`statusrelay_serve`), and its own flusher delivers its spool, as `flush` does on a single
//! node.
//!
//! Invariants:
//! - Ingest and delivery run in one process on one spool: the flusher on a thread of its own,
//!   the HTTP side and the sweep on the serve crate's small runtime. SIGTERM stops both; the flusher within about a
//!   second whatever is in flight, the server after the requests it is answering.
//! - TLS when `[serve] tls_cert` and `tls_key` are set (reloaded when the files change, see
//!   `statusrelay_serve::tls`); plain HTTP only on loopback unless the config says so by name (and
//!   then a warning at every start): node credentials must not cross a network in the clear.
//! - A certificate that cannot be loaded stops `serve` before it listens (exit 78).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use statusrelay_core::Config;
use statusrelay_core::time::Clock;

use crate::cli::ServeArgs;
use crate::flusher::{self, FlushOptions};
use statusrelay_serve::Ingest;
use statusrelay_serve::listen::Limits;
use statusrelay_serve::tls::Tls;

use crate::{AppError, info, warn};
use statusrelay_spool::retry_corrupt;

pub fn run(
    a: &ServeArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let mut config = Config::load(config)?;
    refuse_small_address_space(address_space_limit())?;
    let source = config
        .source
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if config.backend.kind() == statusrelay_core::config::BackendKind::Relay {
        return Err(AppError::Usage(format!(
            "{source}: this is a relaying node's config ([backend] kind = \"relay\"): `serve` would start a second aggregator that relays to the first; run `statusrelay flush` here, and `serve` on the aggregator with its page in [backend]"
        )));
    }
    let Some(mut serve) = config.serve.clone() else {
        return Err(AppError::Usage(format!(
            "{source}: no [serve] table: `serve` is the fleet's aggregator and listens where [serve] says (listen = \"127.0.0.1:8731\", see docs/fleet.md); on a single node run `statusrelay flush`"
        )));
    };
    if let Some(listen) = a.listen {
        serve.listen = listen;
    }
    let tls = match (&serve.tls_cert, &serve.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key).map_err(|message| {
            AppError::Core(statusrelay_core::CoreError::ConfigInvalid {
                path: config
                    .source
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default()
                    .into(),
                key: "serve.tls_cert".into(),
                message,
            })
        })?)),
        _ => None,
    };
    if !serve.listen.ip().is_loopback() && tls.is_none() {
        if !serve.allow_plain_http {
            return Err(AppError::Usage(format!(
                "--listen {}: not loopback, and node credentials would cross the network in plain HTTP; set [serve] allow_plain_http = true to accept that (a TLS proxy in front), or listen on 127.0.0.1",
                serve.listen
            )));
        }
        warn!(
            "serving plain HTTP on {} (allow_plain_http): node credentials cross the network in the clear unless a TLS proxy is in front",
            serve.listen
        );
    }
    config.serve = Some(serve.clone());
    // On PostgreSQL: one of several instances, the writer elected through the database.
    let target = statusrelay_pg::Target::of(&config)?;
    // Before anything starts: the address (a port in use is said as such, not as a spool
    // error after the flusher started), then the spool's delivery lock (a second `serve`).
    let listener = bind(serve.listen)?;
    if target.is_none() {
        drop(flusher::take_lock(&config)?);
    }
    let shutdown = super::stop_on_signals()?;
    // One of several instances: its page requests say which (the page's access log, and the
    // tests' strict fake, tell the writers apart by it).
    if let Some(t) = &target {
        statusrelay_backend::http::set_instance(&t.lease.instance);
    }
    let election = target
        .clone()
        .map(|t| Arc::new(statusrelay_pg::Election::new(t)));
    let elector = election
        .as_ref()
        .map(|e| start_election(e.clone(), &shutdown));
    // Ingest rings it after a commit that changed a component: delivery starts at once.
    let doorbell = Arc::new(statusrelay_spool::Doorbell::default());
    let delivery = start_delivery(&config, a, &clock, &shutdown, &doorbell, election);
    let mut ingest = Ingest::new(config.clone(), clock);
    if let Some(t) = target {
        ingest = ingest.on_postgres(t);
    }
    ingest.doorbell = doorbell;
    let ingest = Arc::new(ingest);
    if let Err(e) = open_waiting(&ingest, &shutdown) {
        shutdown.store(true, Ordering::SeqCst);
        let _ = delivery.join();
        return Err(e.into());
    }
    let stop = shutdown.clone();
    let limits = Limits {
        max_connections: serve.max_connections,
        max_connections_per_peer: serve.max_connections_per_peer,
        request_timeout: serve.request_timeout,
    };
    // Until SIGTERM; the sweep writes what unchanged reports left before this returns.
    let served = statusrelay_serve::serve(listener, ingest, tls, limits, stop);
    shutdown.store(true, Ordering::SeqCst);
    let delivered = delivery
        .join()
        .map_err(|_| AppError::Usage("the aggregator's flusher thread panicked".into()))?;
    if let Some(e) = elector {
        let _ = e.join();
    }
    served?;
    let r = delivered?;
    info!(
        "aggregator stopped: {} sent, {} retried, {} dead-lettered",
        r.sent, r.retried, r.dead
    );
    Ok(String::new())
}

/// This instance's part in the election (PostgreSQL), on a thread of its own until SIGTERM,
/// which gives the lease up; each change of who writes said once.
fn start_election(
    election: Arc<statusrelay_pg::Election>,
    shutdown: &Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let shutdown = shutdown.clone();
    std::thread::spawn(move || {
        let instance = election.target.lease.instance.clone();
        election.run(&shutdown, &mut |turn| match turn {
            statusrelay_pg::Turn::Writes(term) => {
                info!("instance {instance} writes the page now (term {term})")
            }
            statusrelay_pg::Turn::Follows(Some(w)) => {
                info!("instance {w} writes the page; {instance} takes reports and follows")
            }
            statusrelay_pg::Turn::Follows(None) => {
                info!("no instance writes the page yet; {instance} asks again")
            }
            statusrelay_pg::Turn::Unreachable(e) => warn!(
                "cannot ask the database who writes the page: {e}; {instance} writes only while the lease it holds lasts"
            ),
        });
    })
}

/// The aggregator's own flusher, on a thread of its own; its end (another one holds the
/// spool) stops the aggregator. On PostgreSQL it delivers only while `election` says this
/// instance writes.
fn start_delivery(
    config: &Config,
    a: &ServeArgs,
    clock: &Arc<dyn Clock>,
    shutdown: &Arc<std::sync::atomic::AtomicBool>,
    doorbell: &Arc<statusrelay_spool::Doorbell>,
    election: Option<Arc<statusrelay_pg::Election>>,
) -> std::thread::JoinHandle<Result<flusher::FlushReport, AppError>> {
    let (config, clock, shutdown) = (config.clone(), clock.clone(), shutdown.clone());
    let opts = FlushOptions {
        metrics_file: a.metrics_file.clone(),
        once: false,
        poll: Duration::from_millis(200),
        shutdown: shutdown.clone(),
        clock: clock.clone(),
        doorbell: Some(doorbell.clone()),
        postgres: election,
    };
    std::thread::spawn(move || {
        let r = retry_corrupt(&*clock, || {
            let sink = flusher::build_backend(&config, clock.clone(), Some(shutdown.clone()))?;
            flusher::flush(&config, sink, opts.clone())
        });
        shutdown.store(true, Ordering::SeqCst);
        r
    })
}

/// Open the spool before listening: `/ready` is true from the first request on. A spool
/// another process holds (a config manager's `nodes add` creating it) is waited out, as the
/// flusher waits; anything else is the error.
fn open_waiting(
    ingest: &Ingest,
    shutdown: &std::sync::atomic::AtomicBool,
) -> Result<(), statusrelay_serve::ServeError> {
    let mut said = false;
    loop {
        match ingest.open_now() {
            Ok(()) => return Ok(()),
            Err(statusrelay_serve::ServeError::Spool(e))
                if e.is_busy() && !shutdown.load(Ordering::SeqCst) =>
            {
                if !said {
                    warn!("{e}; waiting for it");
                    said = true;
                }
            }
            // The database restarting or failing over: waited out, as a held spool is.
            Err(statusrelay_serve::ServeError::Pg(e))
                if e.is_retryable() && !shutdown.load(Ordering::SeqCst) =>
            {
                if !said {
                    warn!("{e}; waiting for the database");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Listen on `addr`, or say why not and what to do.
fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, AppError> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| AppError::Listen {
        addr,
        why: match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another process listens there (a second `statusrelay serve`? `ss -ltnp 'sport = :{}'` names it): stop it, or set [serve] listen to a free port",
                addr.port()
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "permission denied (ports below 1024 need privileges): use a port above 1024, e.g. {}:8731",
                addr.ip()
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface of this machine has that address: use one of its addresses, or 0.0.0.0".into()
            }
            _ => e.to_string(),
        },
    })?;
    l.set_nonblocking(true).map_err(|e| AppError::Listen {
        addr,
        why: e.to_string(),
    })?;
    Ok(l)
}

/// The least address space `serve` works in: its runtime's threads, a request thread per
/// page write, SQLite's page cache, and the bodies of `[serve] body_budget` in flight.
const MIN_ADDRESS_SPACE: u64 = 64 << 20;

/// The process's address-space limit (`ulimit -v`), if it has one.
fn address_space_limit() -> Option<u64> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut l) };
    (r == 0 && l.rlim_cur != libc::RLIM_INFINITY).then_some(l.rlim_cur)
}

/// Refuse to start under a limit too small to serve in: better said at start than an
/// allocation failing under load.
fn refuse_small_address_space(limit: Option<u64>) -> Result<(), AppError> {
    match limit {
        Some(l) if l < MIN_ADDRESS_SPACE => Err(AppError::Usage(format!(
            "serve needs at least {} MiB of address space, and this process is limited to {} KiB (ulimit -v): raise or remove the limit (a unit's MemoryMax= bounds memory without starving the address space)",
            MIN_ADDRESS_SPACE >> 20,
            l / 1024
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_too_small_address_space_is_refused_by_name() {
        assert!(refuse_small_address_space(None).is_ok());
        assert!(refuse_small_address_space(Some(1 << 30)).is_ok());
        let e = refuse_small_address_space(Some(30_000 * 1024)).unwrap_err();
        assert!(
            e.to_string().contains("limited to 30000 KiB (ulimit -v)"),
            "{e}"
        );
    }
}
