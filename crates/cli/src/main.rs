//! The `statusrelay` binary: install the allocator, parse arguments, run, map the error to an
//! exit code. Nothing else.

use clap::Parser;

#[global_allocator]
static ALLOC: statusrelay::alloc::Global = statusrelay::alloc::Global;

fn main() {
    let cli = match statusrelay::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                statusrelay::error::EX_USAGE
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match statusrelay::run(cli) {
        Ok(code) => code,
        Err(err) => {
            statusrelay::report(&err);
            err.exit_code()
        }
    };
    std::process::exit(code);
}
