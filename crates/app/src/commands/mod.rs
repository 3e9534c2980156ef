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
mod view;
