//! statusrelay's commands as library code; the binary only parses arguments and maps the
//! result to an exit code.
//!
//! Invariant: every command returns `Result<String, AppError>`, where the string is what goes
//! to stdout and [`AppError::exit_code`] is the one place exit codes are decided.

pub mod alloc;
pub mod cli;
pub mod error;
pub mod flusher;
pub mod handler;
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
    if !matches!(cli.command, Command::Monit(_) | Command::Event(_)) {
        // Only the handler records one event and exits; everything else may run for long.
        alloc::stop_bumping();
    }
    log::init(&cli.log_level()).map_err(AppError::Usage)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config_path = cli.config();
    let path = config_path.as_deref();
    let out = match &cli.command {
        Command::Monit(a) => {
            let raw = statusrelay_core::RawEvent::from_env(std::env::vars_os());
            let out = on_fixed_heap(raw.bytes(), || {
                handler::monit(path, raw, a.component.as_deref(), &a.stray, clock)
            })?;
            // Monit discards stdout; a person trying it by hand wants to see what happened.
            if std::io::stdout().is_terminal() {
                out + "\n"
            } else {
                String::new()
            }
        }
        Command::Event(a) => {
            let config = Config::load(path)?;
            let bytes = [Some(&a.component), a.message.as_ref(), Some(&a.source)]
                .into_iter()
                .flatten()
                .map(String::len)
                .sum();
            on_fixed_heap(bytes, || {
                handler::event(
                    &config,
                    &a.component,
                    a.status,
                    a.message.as_deref(),
                    &a.source,
                    clock,
                )
            })? + "\n"
        }
        Command::Flush(a) => {
            let (once, metrics_file) = (a.once, &a.metrics_file);
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
            let opts = flusher::FlushOptions {
                metrics_file: metrics_file.clone(),
                once,
                poll: Duration::from_millis(200),
                shutdown,
                clock: clock.clone(),
            };
            let r = retry_corrupt(&*clock, || {
                let backend =
                    flusher::build_backend(&config, clock.clone(), Some(opts.shutdown.clone()))?;
                flusher::flush(&config, backend, opts.clone())
            })?;
            if once {
                format!(
                    "{} sent, {} already shown, {} coalesced, {} to retry, {} dead-lettered\n",
                    r.sent, r.skipped, r.superseded, r.retried, r.dead
                )
            } else {
                String::new()
            }
        }
        Command::Queue(a) => {
            let config = Config::load(path)?;
            retry_corrupt(&*clock, || ops::queue(&config, a.json, clock.clone()))?
        }
        Command::Status(a) => {
            let config = Config::load(path)?;
            retry_corrupt(&*clock, || ops::status(&config, a.json, clock.clone()))?
        }
        Command::Replay(a) => {
            let args = ops::ReplayArgs {
                ids: &a.ids,
                dead: a.dead,
                rejected: a.rejected,
                from: a.from.as_deref(),
                component: a.component.as_deref(),
                since: a.since.as_deref(),
                dry_run: a.dry_run,
            };
            let config = Config::load(path)?;
            retry_corrupt(&*clock, || ops::replay(&config, &args, clock.clone()))?
        }
        Command::Check(a) => ops::check(&Config::load(path)?, a.online, clock)?,
        Command::MonitConfig(a) => {
            let opts = monit_config::Options {
                bin: &a.bin,
                flusher_unit: &a.flusher_unit,
            };
            let config = Config::load(path)?;
            if a.check {
                let dir = a.dir.as_deref().expect("clap requires --dir with --check");
                let stale = monit_config::differences(&config, dir, &opts)?;
                if !stale.is_empty() {
                    print!("{}", stale.join("\n") + "\n");
                    return Ok(error::EX_DIFFERS);
                }
                "in sync\n".to_string()
            } else {
                monit_config::command(&config, a.dir.as_deref(), &opts)?
            }
        }
        Command::Maintenance(a) => {
            let config = Config::load(path)?;
            retry_corrupt(&*clock, || {
                maintenance::command(&config, &a.action, clock.clone())
            })?
        }
        Command::Resync(a) => {
            let config = Config::load(path)?;
            retry_corrupt(&*clock, || {
                resync::command(&config, a.dry_run, clock.clone())
            })?
        }
    };
    print!("{out}");
    Ok(error::EX_OK)
}

/// Record one event with SQLite on a fixed heap (see `statusrelay_spool::heap`), this process
/// recording one event and exiting. Should the heap still run out, nothing was committed: the
/// process runs itself again on the system allocator, so the event is not lost.
fn on_fixed_heap(
    event_bytes: usize,
    record: impl FnOnce() -> Result<String, AppError>,
) -> Result<String, AppError> {
    use statusrelay_spool::heap;
    let setting = std::env::var_os(heap::SETTING).map(|v| v.to_string_lossy().into_owned());
    let sqlite = heap::for_one_event(event_bytes, setting.as_deref());
    if let heap::Allocator::BadSetting(_) = sqlite {
        warn!("sqlite: {sqlite}");
    } else {
        debug!("sqlite: {sqlite}");
    }
    match record() {
        Err(AppError::Spool(e))
            if e.is_out_of_memory() && matches!(sqlite, heap::Allocator::Fixed(_)) =>
        {
            warn!(
                "sqlite ran out of {sqlite} ({e}); nothing was recorded, so recording again on the system allocator"
            );
            let exe = std::env::current_exe().map_err(|source| AppError::Io {
                path: "/proc/self/exe".into(),
                source,
            })?;
            let source = std::os::unix::process::CommandExt::exec(
                std::process::Command::new(&exe)
                    .args(std::env::args_os().skip(1))
                    .env(heap::SETTING, "system"),
            );
            Err(AppError::Io { path: exe, source })
        }
        other => other,
    }
}

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
