//! Integration tests: the real `statusrelay` binary, real SQLite files, a strict fake Cachet
//! on 127.0.0.1, each test in its own temp dir with the host's environment cleared.

mod backends;
mod delivery;
mod faults;
mod fleet;
mod fleet_faults;
mod fleet_hosts;
mod fleet_truth;
mod ha;
mod ha_operator;
mod ha_patroni;
mod ha_truth;
mod ha_upkeep;
mod handler;
mod hardening;
mod hostile;
mod incidents;
mod nodes;
mod operator;
mod real_monit;
mod support;
