//! The durable local spool: every event, the per-test state, the desired state of each
//! component, and the delivery queue (outbox), in one SQLite file.
//!
//! Invariants:
//! - WAL mode, `synchronous=FULL` (a commit survives power loss), a busy timeout: many handler
//!   processes may write at once while the flusher reads and writes.
//! - Every public operation is one transaction; every write goes through `Spool::write`, which
//!   takes the lock up front (IMMEDIATE, so two writers never deadlock upgrading a read lock),
//!   maps SQLite's errors, and commits only when the whole operation succeeded.
//! - Statuses are typed ([`DeliveryStatus`], [`IncidentStatus`], [`EventStatus`]); a word the
//!   schema does not know is an error when read, never a silent mismatch.
//! - Ordering is the spool's own sequence (`events.id`), never a timestamp: a test's state is
//!   only changed by an event newer than the one that last changed it.
//! - A delivery is claimed with a random token; finishing it with a token that no longer owns
//!   the row is [`SpoolError::StaleClaim`], never a silent overwrite.
//! - Nothing is deleted before it is finished: pruning only touches finished deliveries and
//!   events no open delivery refers to.
//!
//! One file per operation: `open` (create, migrate, move a corrupt file aside), `record`
//! (events, tests, desired state, and `enqueue`, the one place a delivery is queued), `deliver`
//! (claim and finish), `page` (what the page was confirmed to show, ids, read-backs), `replay`,
//! `upkeep` (heartbeat, pruning, stats), `incidents` (incidents and maintenance windows),
//! `corrupt` (a command run again on a fresh spool), `doorbell` (a commit said to the flusher
//! in the same process), and the fleet's: `report` (a node's report recorded) with `judge`
//! (the one decision on it), `nodes`, `credentials`, `liveness` (reports that change
//! nothing), `relay` (a relaying node's side).

pub mod corrupt;
pub mod doorbell;
pub mod heap;
pub mod incidents;
pub mod retry;
pub mod store;
mod words;

pub use corrupt::{SpoolCause, retry_corrupt};
pub use credentials::{Credential, CredentialReader};
pub use doorbell::Doorbell;
pub use incidents::{EventContext, Incident, Window};
pub use liveness::{FailingRow, Touch, names_what_is_recorded};
pub use nodes::{Forgotten, Node, Silence, StaleChange, stale_event};
pub use relay::{RelayStart, RelayView};
pub use words::{DeliveryStatus, EventStatus, IncidentStatus};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use statusrelay_core::State;
use statusrelay_core::time::Clock;

/// The numbered schema migrations, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (
        2,
        include_str!("../migrations/0002_incidents_maintenance.sql"),
    ),
    (3, include_str!("../migrations/0003_verify.sql")),
    (4, include_str!("../migrations/0004_nodes.sql")),
    (5, include_str!("../migrations/0005_feeds_stale.sql")),
    (6, include_str!("../migrations/0006_fleet_truth.sql")),
    (7, include_str!("../migrations/0007_descriptions.sql")),
    (
        8,
        include_str!("../migrations/0008_credentials_version.sql"),
    ),
    (9, include_str!("../migrations/0009_failing_by_state.sql")),
    (10, include_str!("../migrations/0010_no_in_lists.sql")),
];

/// The host under which local maintenance windows are recorded: a source of its own, never a
/// node that counts toward a component's outage. Local sources start with [`LOCAL_MARK`],
/// which no node's name may hold, so a node can never speak for one.
pub const MAINTENANCE_SOURCE: &str = "@maintenance";

/// What a local source's host starts with (maintenance, `statusrelay event --source`).
pub const LOCAL_MARK: char = '@';

/// The host a local source (`statusrelay event --source NAME`) is recorded under.
pub fn local_source(name: &str) -> String {
    if name.starts_with(LOCAL_MARK) {
        name.to_string()
    } else {
        format!("{LOCAL_MARK}{name}")
    }
}

/// Rows one pruning transaction removes at most, per table.
pub const PRUNE_BATCH: u32 = 2000;

/// What one pruning transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub deliveries: usize,
    pub events: usize,
    /// A batch was full: there may be more to prune.
    pub more: bool,
    /// How long the transaction held the write lock.
    pub held: Duration,
}

/// How long a writer waits for the lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

mod error;

pub use error::SpoolError;

type Result<T> = std::result::Result<T, SpoolError>;

/// What a failing or recovering test means for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestChange {
    /// The test failed; the component shows this state while it stays failed.
    Fail(State),
    /// The test passes again. Clears the test (and, for a bare family key, all its sub-tests;
    /// for a sub-test, the bare family key too), plus the listed one-shot families of the same
    /// service, which Monit never recovers on their own.
    Recover { one_shot_families: Vec<String> },
}

/// One test state change for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    pub component: String,
    pub host: String,
    pub service: String,
    pub test: statusrelay_core::mapping::TestKey,
    pub change: TestChange,
    /// How the component's nodes (hosts) make its one state.
    pub rule: statusrelay_core::nodes::NodeRule,
    /// The failure's own words (Monit's description, the operator's message), if any: kept
    /// with the failing test, for the page of an aggregator. Ignored on a recovery.
    pub description: Option<String>,
}

/// An event as it is recorded.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub host: Option<String>,
    pub service: Option<String>,
    pub event: Option<String>,
    pub description: Option<String>,
    pub monit_date: Option<String>,
    /// Where it came from, as it arrived (stored as its JSON).
    pub raw: statusrelay_core::EventSource,
    pub test: Option<statusrelay_core::mapping::TestKey>,
    pub effect: Option<statusrelay_core::Effect>,
}

impl NewEvent {
    /// An event with nothing known yet but its source (which also says its origin, see
    /// `EventSource::origin`).
    pub fn new(raw: statusrelay_core::EventSource) -> NewEvent {
        NewEvent {
            host: None,
            service: None,
            event: None,
            description: None,
            monit_date: None,
            raw,
            test: None,
            effect: None,
        }
    }
}

/// A node's report, as `record_report` needs it.
pub struct NodeReport<'a> {
    /// The node, as its credential says (never as the report says).
    pub node: &'a str,
    /// The node's own order, (epoch, seq): a report not newer than the last one applied to a
    /// component changes nothing there.
    pub order: (i64, i64),
    /// What the report says all of: a test in its scope that it does not report is passing.
    pub snapshot: Snapshot<'a>,
    /// How it reported: relay | collector.
    pub via: statusrelay_core::nodes::Via,
    /// Its reporting period, when the report says.
    pub period_ms: Option<i64>,
    /// The rule of a component, for the recoveries a snapshot implies.
    pub rule_of: &'a dyn Fn(&str) -> statusrelay_core::nodes::NodeRule,
    /// Services the node has no word on now (Monit initialising or not monitoring them):
    /// their rows are kept as they are, whatever the report's scope.
    pub keep: &'a [String],
    /// Who sent it; None for a relaying node too old to say (its marks then go on as before).
    pub identity: Option<Identity<'a>>,
}

/// The reporter behind a node's report (see `record::judge_reporter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity<'a> {
    /// `relay:<spool id>` or `monit:<id>:<incarnation>`: a new one starts a new sequence.
    pub reporter: &'a str,
    /// The peer's address, for the operator.
    pub peer: &'a str,
    /// How long a reporter counts as live after it was last heard (its node's stale window).
    pub window_ms: i64,
}

/// What a node's report is the whole truth about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot<'a> {
    /// These components: the node's rows for them are replaced (a relay's report of a
    /// component's failing tests).
    Components(&'a [String]),
    /// The whole node, which feeds exactly these components now (Monit's status document, a
    /// relay's snapshot): a component it fed before and is not listed is no longer fed.
    Node(&'a [String]),
}

/// What a node's report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    /// Recorded, with what changed.
    Applied(Recorded),
    /// Not newer than the last report applied from the node to any component it speaks
    /// for: nothing changed. The mark it was not newer than; `repeat`: the mark is the
    /// report's own (the same truth sent again, as an idle node's heartbeat is), not a sign
    /// that anything is wrong.
    Outdated { mark: (i64, i64), repeat: bool },
    /// No such node (forgotten meanwhile): nothing changed.
    UnknownNode,
    /// Two live reporters alternate on the node's credential: refused, nothing changed.
    Conflict(Conflict),
}

impl Reported {
    /// Outdated against `mark`: a repeat when the mark is the report's own order.
    pub fn outdated(mark: (i64, i64), order: (i64, i64)) -> Reported {
        Reported::Outdated {
            mark,
            repeat: mark == order,
        }
    }
}

/// Two reporters speaking for one node (a copied config, an old VM still running).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    pub reporter: String,
    pub peer: String,
    pub rival: String,
    pub rival_peer: String,
    pub since: i64,
}

/// What recording an event did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub event_id: i64,
    /// (component, previous desired state, new desired state, outbox id) for each change.
    pub changes: Vec<Change>,
}

/// A change of a component's desired state and the delivery queued for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub component: String,
    pub from: Option<State>,
    pub to: State,
    pub outbox_id: i64,
}

/// A delivery, as listed by `queue` and handed to the flusher.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub id: i64,
    pub component: String,
    pub state: State,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at: i64,
    pub queued_at: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub message: Option<String>,
    pub force: bool,
    pub event_id: Option<i64>,
    /// Why it is held back, while it is.
    pub held: Option<String>,
}

/// What `replay_items` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replayed {
    /// Made due now (as they were before).
    pub due: Vec<Item>,
    /// Dead letters left alone: (the dead item, the component's newest delivery).
    pub superseded: Vec<(Item, Item)>,
}

/// A claimed delivery; only its claim token can finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub item: Item,
    pub claim: String,
}

/// How a delivery ended, as recorded on its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The API accepted it; the page now shows `state`.
    Delivered { backend: String, state: State },
    /// Not sent because the page already shows it (as last confirmed).
    Skipped { reason: String },
    /// Failed, try again at `at`.
    Retry { at: i64, error: String },
    /// Failed for good.
    Dead { error: String },
    /// Not sent now on purpose (maintenance, a human's incident): look again at `until`.
    Held { until: i64, reason: String },
}

/// A test that is failing, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailingTest {
    pub host: String,
    pub service: String,
    pub test: statusrelay_core::mapping::TestKey,
    pub state: State,
    pub since: i64,
    /// The failure's own words, if any were said (see [`Apply::description`]).
    pub description: Option<String>,
}

/// A rejected event awaiting replay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedEvent {
    pub id: i64,
    pub received_at: i64,
    pub origin: String,
    pub service: Option<String>,
    pub event: Option<String>,
    pub raw: String,
    pub error: Option<String>,
}

/// Counts and times for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub pending: i64,
    /// Of the pending, those held back on purpose (maintenance, a human's incident).
    pub held: i64,
    pub sending: i64,
    pub dead: i64,
    pub rejected_events: i64,
    pub events: i64,
    pub oldest_pending_at: Option<i64>,
    pub flusher_pid: Option<i64>,
    pub flusher_heartbeat_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

/// The spool. One per process; not shared across threads.
pub struct Spool {
    conn: Connection,
    path: PathBuf,
    /// (device, inode) of the file opened, to tell it from a file put at `path` since.
    file: Option<(u64, u64)>,
    clock: Arc<dyn Clock>,
    /// Where a corrupt spool file was moved when this one was opened, if it was.
    moved_aside: Option<PathBuf>,
}

fn parse_state(path: &Path, s: &str) -> Result<State> {
    s.parse().map_err(|_| SpoolError::Corrupt {
        path: path.to_path_buf(),
        column: "state",
        value: s.to_string(),
    })
}

const ITEM_COLS: &str = "id, component, state, status, attempts, created_at, queued_at, next_attempt_at, last_error, message, force, event_id, held";

mod credentials;
mod deliver;
mod group;
mod judge;
mod liveness;
mod nodes;
mod open;
mod page;
mod record;
mod relay;
mod replay;
mod report;
mod upkeep;

use deliver::row_item;
pub use group::{Group, GroupCompute, Written, group_computes};
pub use judge::{
    Judged, Marks, Reporters, Seen, Verdict, assert_worst_first, desired_state, judge,
    judge_reporter,
};
use open::sqlite_error;
pub use open::{file_id, move_aside};
use page::forget_page_state;
use record::enqueue;
pub use replay::chosen_for_replay;

#[cfg(test)]
mod tests;
