//! Test support: strict fakes of every status page API on 127.0.0.1, all on one core
//! ([`FakeServer`]), real Monit daemons, and a sandbox that runs the real `statusrelay` binary
//! with a cleared environment in a temp dir.
//!
//! The fakes follow docs/status-page-apis.md and reject what the real servers reject. Where the
//! contract marks a behaviour uncertain (?), a fake implements the assumption statusrelay makes,
//! and says so in a comment, so a test pins it.

pub mod cachet;
pub mod cachet3;
pub mod certs;
pub mod election;
pub mod http;
pub mod monit;
pub mod patroni;
pub mod postgres;
pub mod sandbox;
pub mod statusio;
pub mod statuspage;

pub use cachet::{FakeCachet, FakeComponent, FakeIncident};
pub use http::{FakeServer, Fault, Reply, Req, Seen};
