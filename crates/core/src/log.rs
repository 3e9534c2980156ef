//! One line per decision on stderr, with a level. Under systemd (JOURNAL_STREAM set) lines
//! carry the `<N>` priority prefix so journald records the level.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static JOURNAL: AtomicBool = AtomicBool::new(false);

/// Set the level from its name; unknown names are a usage error.
pub fn init(level: &str) -> Result<(), String> {
    let l = match level.to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warn" | "warning" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        other => {
            return Err(format!(
                "unknown log level {other:?}: use error, warn, info or debug"
            ));
        }
    };
    LEVEL.store(l as u8, Ordering::Relaxed);
    JOURNAL.store(
        std::env::var_os("JOURNAL_STREAM").is_some(),
        Ordering::Relaxed,
    );
    Ok(())
}

pub fn enabled(l: Level) -> bool {
    (l as u8) <= LEVEL.load(Ordering::Relaxed)
}

pub fn write(l: Level, msg: std::fmt::Arguments<'_>) {
    if !enabled(l) {
        return;
    }
    let (prio, name) = match l {
        Level::Error => (3, "error"),
        Level::Warn => (4, "warn"),
        Level::Info => (6, "info"),
        Level::Debug => (7, "debug"),
    };
    let line = if JOURNAL.load(Ordering::Relaxed) {
        format!("<{prio}>{msg}\n")
    } else {
        format!("statusrelay: {name}: {msg}\n")
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

// Exported under hidden names and re-exported here, so `use statusrelay_core::log::error`
// brings the macro alone (the crate also has an `error` module).
#[doc(hidden)]
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
#[doc(hidden)]
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
#[doc(hidden)]
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
#[doc(hidden)]
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }

pub use crate::{log_debug as debug, log_error as error, log_info as info, log_warn as warn};
