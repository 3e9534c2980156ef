//! `statusrelay store migrate [--from SPOOL]`: an aggregator's SQLite spool copied into the
//! PostgreSQL store of `[store]`, so a single aggregator becomes the first of several
//! instances (docs/ha.md).
//!
//! Invariants: the copy is one transaction into an empty store (`statusrelay_pg::import`);
//! the spool is only read, and the flusher lock is taken first, so no `serve` or `flush`
//! writes it meanwhile.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use statusrelay_core::Config;
use statusrelay_core::time::Clock;

use crate::AppError;
use crate::cli::{StoreAction, StoreArgs};

pub fn run(
    a: &StoreArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    match &a.action {
        StoreAction::Migrate(m) => migrate(&config, m.from.as_deref(), clock),
    }
}

fn migrate(
    config: &Config,
    from: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let no_store = || {
        AppError::Usage(
            "store migrate copies into the PostgreSQL store: add a [store] table (url = \"postgresql://USER@HOST/DB\", see docs/ha.md) first".into(),
        )
    };
    if config.store.is_none() {
        return Err(no_store());
    }
    let spool = from.unwrap_or(&config.spool);
    if !spool.is_file() {
        return Err(AppError::Usage(format!(
            "{}: no spool there to copy (--from SPOOL names another)",
            spool.display()
        )));
    }
    // Nothing delivers the spool while it is copied: a running serve or flush holds this.
    let _lock = crate::flusher::take_lock(&Config {
        spool: spool.to_path_buf(),
        ..config.clone()
    })?;
    // The spool at this statusrelay's schema first, as every command opens it.
    drop(statusrelay_spool::Spool::open(spool, clock.clone())?);
    let target = statusrelay_pg::Target::of(config)?.ok_or_else(no_store)?;
    let mut client = target.connect()?;
    statusrelay_pg::migrate(&mut client)?;
    let copied = statusrelay_pg::import::import_spool(&mut client, spool)?;
    let mut out = format!("copied {} into the PostgreSQL store:\n", spool.display());
    for (table, n) in copied {
        let _ = writeln!(out, "  {table}: {n}");
    }
    out.push_str(
        "start `serve` with this config on each instance; the spool is left as it was (keep it until the page shows what it showed)\n",
    );
    Ok(out)
}
