//! statusrelay's commands as library code; the binary only parses arguments and maps the
//! result to an exit code.
//!
//! Invariants:
//! - This file only dispatches: each command lives in its own file under `commands/`.
//! - Every command returns `Result<String, AppError>`, where the string is what goes to stdout
//!   and [`AppError::exit_code`] is the one place exit codes are decided.

pub mod cli;
pub mod commands;
pub mod error;
pub mod flusher;
pub mod metrics;
pub mod monit_http;
pub mod resync;
pub mod walwatch;

use std::sync::Arc;

pub use cli::{Cli, Command};
// The handler's crate, under the names the commands (and the binary's allocator) use.
pub use statusrelay_handler::{self as handler, alloc};
// One logger for every crate: `crate::warn!` here is the core's.
pub use error::{AppError, report};
pub use statusrelay_core::log;
pub use statusrelay_core::log::{debug, error, info, warn};
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
    use commands as c;
    let (out, code) = match &cli.command {
        Command::Monit(a) => (c::monit::run(a, path, clock)?, error::EX_OK),
        Command::Event(a) => (c::event::run(a, path, clock)?, error::EX_OK),
        Command::Flush(a) => (c::flush::run(a, path, clock)?, error::EX_OK),
        Command::Queue(a) => (c::queue::run(a, path, clock)?, error::EX_OK),
        Command::Status(a) => (c::status::run(a, path, clock)?, error::EX_OK),
        Command::Replay(a) => (c::replay::run(a, path, clock)?, error::EX_OK),
        Command::Check(a) => (c::check::run(a, path, clock)?, error::EX_OK),
        Command::MonitConfig(a) => c::monit_config::run(a, path)?,
        Command::Maintenance(a) => (c::maintenance::run(a, path, clock)?, error::EX_OK),
        Command::Resync(a) => (c::resync::run(a, path, clock)?, error::EX_OK),
        Command::Nodes(a) => (c::nodes::run(a, path, clock)?, error::EX_OK),
        Command::Store(a) => (c::store::run(a, path, clock)?, error::EX_OK),
        Command::Serve(a) => (c::serve::run(a, path, clock)?, error::EX_OK),
    };
    print!("{out}");
    Ok(code)
}
