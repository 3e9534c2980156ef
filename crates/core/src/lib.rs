//! statusrelay's model: what a component state is, how a Monit event maps onto one, and the
//! configuration that routes services to components.
//!
//! Invariants:
//! - Nothing here touches the network, the spool or the clock; every function is pure or reads
//!   only the file it is handed, so the handler's hot path stays cheap and fully testable. The
//!   one exception is [`log`]: a line per decision on stderr, shared by every crate.
//! - Every Monit event string is either in the documented table ([`mapping::EVENT_TABLE`]),
//!   matched by the documented pairing rule, or reported as unmapped: never guessed silently.

pub mod config;
pub mod duration;
pub mod error;
pub mod fsutil;
pub mod glob;
pub mod liveness;
pub mod log;
pub mod mapping;
pub mod monit;
pub mod monit_status;
pub mod nodes;
pub mod relay;
pub mod source;
pub mod state;
pub mod store;
pub mod template;
pub mod time;
pub mod words;

pub use config::{BackendConfig, ComponentConfig, Config, DeliveryConfig};
pub use error::CoreError;
pub use mapping::{Classified, Effect};
pub use monit::{MonitEvent, RawEvent};
pub use source::EventSource;
pub use state::State;
