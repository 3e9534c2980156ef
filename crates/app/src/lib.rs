//! statusrelay's commands as library code; the binary only parses arguments and maps the
//! result to an exit code.
//!
//! Invariant: every command returns `Result<String, AppError>`, where the string is what goes
//! to stdout and [`AppError::exit_code`] is the one place exit codes are decided.

pub mod cli;
pub mod error;
pub mod flusher;
pub mod handler;
mod incident;
pub mod log;
pub mod maintenance;
pub mod metrics;
pub mod monit_config;
pub mod monit_http;
pub mod ops;
pub mod resync;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use cli::{Cli, Command};
pub use error::AppError;
use statusrelay_core::Config;
use statusrelay_core::time::{Clock, SystemClock};

/// Run a parsed command line; returns the exit code for a success.
pub fn run(cli: Cli) -> Result<i32, AppError> {
    log::init(&cli.log_level).map_err(AppError::Usage)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let path = cli.config.as_deref();
    let out = match &cli.command {
        Command::Monit { component } => {
            let out = handler::monit(path, std::env::vars_os(), component.as_deref(), clock)?;
            // Monit discards stdout; a person trying it by hand wants to see what happened.
            if std::io::stdout().is_terminal() {
                out + "\n"
            } else {
                String::new()
            }
        }
        Command::Event {
            component,
            status,
            message,
            source,
        } => {
            let config = Config::load(path)?;
            handler::event(
                &config,
                component,
                *status,
                message.as_deref(),
                source,
                clock,
            )? + "\n"
        }
        Command::Flush { once, metrics_file } => {
            let config = Config::load(path)?;
            let shutdown = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, shutdown.clone()).map_err(|source| {
                    AppError::Io {
                        path: "signal handler".into(),
                        source,
                    }
                })?;
            }
            let backend = flusher::build_backend(&config, clock.clone())?;
            let opts = flusher::FlushOptions {
                metrics_file: metrics_file.clone(),
                once: *once,
                poll: Duration::from_millis(200),
                shutdown,
                clock,
            };
            let r = flusher::flush(&config, backend, opts)?;
            if *once {
                format!(
                    "{} sent, {} already shown, {} coalesced, {} to retry, {} dead-lettered\n",
                    r.sent, r.skipped, r.superseded, r.retried, r.dead
                )
            } else {
                String::new()
            }
        }
        Command::Queue { json } => ops::queue(&Config::load(path)?, *json, clock)?,
        Command::Status { json } => ops::status(&Config::load(path)?, *json, clock)?,
        Command::Replay {
            ids,
            dead,
            rejected,
            component,
            since,
            dry_run,
        } => {
            let args = ops::ReplayArgs {
                ids,
                dead: *dead,
                rejected: *rejected,
                component: component.as_deref(),
                since: since.as_deref(),
                dry_run: *dry_run,
            };
            ops::replay(&Config::load(path)?, &args, clock)?
        }
        Command::Check { online } => ops::check(&Config::load(path)?, *online, clock)?,
        Command::MonitConfig {
            dir,
            bin,
            flusher_unit,
            check,
        } => {
            let opts = monit_config::Options { bin, flusher_unit };
            let config = Config::load(path)?;
            if *check {
                let dir = dir.as_deref().expect("clap requires --dir with --check");
                let stale = monit_config::differences(&config, dir, &opts)?;
                if !stale.is_empty() {
                    print!("{}", stale.join("\n") + "\n");
                    return Ok(error::EX_DIFFERS);
                }
                "in sync\n".to_string()
            } else {
                monit_config::command(&config, dir.as_deref(), &opts)?
            }
        }
        Command::Maintenance { action } => {
            maintenance::command(&Config::load(path)?, action, clock)?
        }
        Command::Resync { dry_run } => resync::command(&Config::load(path)?, *dry_run, clock)?,
    };
    print!("{out}");
    Ok(error::EX_OK)
}

/// Open the spool; a corrupt spool file moved aside is said loudly, whatever the command.
pub fn open_spool(
    path: &std::path::Path,
    clock: Arc<dyn Clock>,
) -> Result<statusrelay_spool::Spool, AppError> {
    let spool = statusrelay_spool::Spool::open(path, clock)?;
    if let Some(aside) = spool.moved_aside() {
        error!(
            "the spool {} was corrupt: it was moved to {} (kept for inspection, never deleted) and a fresh spool started",
            path.display(),
            aside.display()
        );
    }
    Ok(spool)
}

/// Print an error the way every command does.
pub fn report(err: &AppError) {
    if err.is_pending_only() {
        warn!("{err}");
    } else {
        error!("{err}");
    }
    if let AppError::Spool(e) = err
        && let Some(hint) = e.hint()
    {
        error!("hint: {hint}");
    }
}
