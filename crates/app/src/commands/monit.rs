//! `statusrelay monit`: record the event Monit passed in `MONIT_*` (see `crate::handler`), on a
//! fixed SQLite heap, and say what happened only to a person at a terminal (Monit discards
//! stdout).
//!
//! Invariant: the event is recorded, or kept as rejected, whatever the config or the arguments
//! (see `crate::handler`'s invariants); this file only wires the process around it.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use statusrelay_core::time::Clock;

use statusrelay_spool::SpoolCause;

use crate::cli::MonitArgs;
use crate::{AppError, debug, handler, warn};

pub fn run(
    a: &MonitArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let raw = statusrelay_core::RawEvent::from_env(std::env::vars_os());
    let out = on_fixed_heap(raw.bytes(), || {
        Ok(handler::monit(
            config,
            raw,
            a.component.as_deref(),
            &a.stray,
            clock,
        )?)
    })?;
    // Monit discards stdout; a person trying it by hand wants to see what happened.
    Ok(if std::io::stdout().is_terminal() {
        out + "\n"
    } else {
        String::new()
    })
}

/// Record one event with SQLite on a fixed heap (see `statusrelay_spool::heap`), this process
/// recording one event and exiting. Should the heap still run out, nothing was committed: the
/// process runs itself again on the system allocator, so the event is not lost.
pub(super) fn on_fixed_heap(
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
        Err(e)
            if e.spool_error().is_some_and(|e| e.is_out_of_memory())
                && matches!(sqlite, heap::Allocator::Fixed(_)) =>
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
