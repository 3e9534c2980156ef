//! One file per command: each `run` takes its parsed arguments, the config path and the clock,
//! and returns what goes to stdout. `crate::run` only picks the file.

pub mod check;
pub mod event;
pub mod flush;
pub mod maintenance;
pub mod monit;
pub mod monit_config;
pub mod nodes;
pub mod queue;
pub mod replay;
pub mod resync;
pub mod serve;
pub mod status;
pub mod store;
mod view;

/// A flag SIGTERM and SIGINT set: the long-running commands (`flush`, `serve`) stop on it.
pub(crate) fn stop_on_signals()
-> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, crate::AppError> {
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, shutdown.clone()).map_err(|source| {
            crate::AppError::Io {
                path: "signal handler".into(),
                source,
            }
        })?;
    }
    Ok(shutdown)
}

/// The aggregator's store as the config says: PostgreSQL with `[store]`, else the SQLite
/// spool at `spool`.
pub(crate) fn open_store(
    config: &statusrelay_core::Config,
    clock: std::sync::Arc<dyn statusrelay_core::time::Clock>,
) -> Result<statusrelay_serve::store::Store, crate::AppError> {
    use statusrelay_serve::store::Store;
    Ok(match statusrelay_pg::Target::of(config)? {
        Some(t) => Store::Postgres(Box::new(t.open(clock)?)),
        None => Store::Sqlite(statusrelay_spool::Spool::open(&config.spool, clock)?),
    })
}
