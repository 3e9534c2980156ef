//! The durable local spool: every event, the per-test state, the desired state of each
//! component, and the delivery queue (outbox), in one SQLite file.
//!
//! Invariants:
//! - WAL mode, `synchronous=FULL` (a commit survives power loss), a busy timeout: many handler
//!   processes may write at once while the flusher reads and writes.
//! - Every public operation is one transaction; writers take the lock up front (IMMEDIATE) so
//!   two writers never deadlock upgrading a read lock.
//! - Ordering is the spool's own sequence (`events.id`), never a timestamp: a test's state is
//!   only changed by an event newer than the one that last changed it.
//! - A delivery is claimed with a random token; finishing it with a token that no longer owns
//!   the row is [`SpoolError::StaleClaim`], never a silent overwrite.
//! - Nothing is deleted before it is finished: pruning only touches finished deliveries and
//!   events no open delivery refers to.

pub mod heap;
pub mod incidents;
pub mod retry;

pub use incidents::{EventContext, Incident, Window};

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
];

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

/// The one error type of the spool crate.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// SQLite failed (I/O, full disk, corrupt file, lock timeout...).
    #[error("spool {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite found the file damaged in the middle of an operation (a bad b-tree page): the
    /// caller moves it aside with [`move_aside`] (given the file's inode, so a spool somebody
    /// already replaced is left alone) and starts a fresh one.
    #[error("spool {path} is corrupt: {source}")]
    CorruptFile {
        path: PathBuf,
        /// (device, inode) of the file found corrupt.
        file: Option<(u64, u64)>,
        #[source]
        source: rusqlite::Error,
    },
    /// The spool's directory could not be created.
    #[error("cannot create spool directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A corrupt spool file could not be moved aside.
    #[error("spool {path} is corrupt and could not be moved aside: {source}")]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The spool was written by a newer statusrelay.
    #[error(
        "spool {path} has schema {found}, newer than this statusrelay understands ({known}): upgrade statusrelay"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    /// A delivery was finished by a worker whose claim is no longer valid.
    #[error(
        "delivery {id}: claim {claim} is stale (another worker or a replay took the row); result not recorded"
    )]
    StaleClaim { id: i64, claim: String },
    /// A stored value does not parse (hand-edited or corrupt spool).
    #[error("spool {path}: corrupt value {value:?} in {column}")]
    Corrupt {
        path: PathBuf,
        column: &'static str,
        value: String,
    },
}

impl SpoolError {
    /// Is it lock contention (another writer, a checkpoint, a WAL-index rebuild)?
    pub fn is_busy(&self) -> bool {
        matches!(self, SpoolError::Sqlite { source, .. } if matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
        ))
    }

    /// Is the failure likely to pass by itself (lock contention, a full disk being cleaned)?
    /// A spool that cannot be written (a read-only file system, permissions, a directory at
    /// the path, an I/O error) needs a person: it is not temporary.
    pub fn is_temporary(&self) -> bool {
        match self {
            SpoolError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy)
                    | Some(rusqlite::ErrorCode::DatabaseLocked)
                    | Some(rusqlite::ErrorCode::DiskFull)
            ),
            _ => false,
        }
    }

    /// What the operator should do about it, where that is clear.
    pub fn hint(&self) -> Option<&'static str> {
        let SpoolError::Sqlite { source, .. } = self else {
            return None;
        };
        Some(match source.sqlite_error_code()? {
            rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::PermissionDenied => {
                "the spool's directory must exist and be writable by this user (Monit runs the handler as root, the flusher runs as statusrelay), on a writable file system, and the spool path must be a file; events Monit sent meanwhile are not resent, so run `statusrelay resync` once it is fixed"
            }
            rusqlite::ErrorCode::DiskFull => {
                "free space on the spool's filesystem; events Monit sent meanwhile are not resent, so run `statusrelay resync` once it has room"
            }
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                "another process holds the spool locked (an sqlite3 shell left open? a stuck process?); the handler gave up after the busy timeout"
            }
            _ => return None,
        })
    }

    /// Is the spool file damaged (move it aside with [`move_aside`] and start afresh)?
    pub fn is_corrupt(&self) -> bool {
        matches!(self, SpoolError::CorruptFile { .. })
    }

    /// Did SQLite run out of memory (on a fixed heap, see [`heap`])?
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, SpoolError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::OutOfMemory))
    }

    /// Is this a lost claim (a stale worker)?
    pub fn is_stale_claim(&self) -> bool {
        matches!(self, SpoolError::StaleClaim { .. })
    }
}

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
    pub test: String,
    pub change: TestChange,
}

/// An event as it is recorded.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub origin: String,
    pub host: Option<String>,
    pub service: Option<String>,
    pub event: Option<String>,
    pub description: Option<String>,
    pub monit_date: Option<String>,
    pub raw: String,
    pub test: Option<String>,
    pub effect: Option<String>,
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
    pub status: String,
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
    pub test: String,
    pub state: State,
    pub since: i64,
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

impl Spool {
    /// Open (creating if needed) the spool at `path`, apply pending migrations. A file SQLite
    /// finds corrupt while opening is moved aside and a fresh spool started.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Spool> {
        match Spool::open_once(path, clock.clone()) {
            Err(e @ SpoolError::CorruptFile { .. }) => {
                let aside = move_aside(&e, clock.now_ms())?;
                let mut spool = Spool::open_once(path, clock)?;
                spool.moved_aside = aside;
                Ok(spool)
            }
            other => other,
        }
    }

    /// (device, inode) of the file this spool has open. The flusher compares it with what is
    /// at the path now, to notice a spool removed or replaced under it.
    pub fn file_id(&self) -> Option<(u64, u64)> {
        self.file
    }

    /// Where a corrupt spool file was moved when this spool was opened (log it loudly).
    pub fn moved_aside(&self) -> Option<&Path> {
        self.moved_aside.as_deref()
    }

    fn open_once(path: &Path, clock: Arc<dyn Clock>) -> Result<Spool> {
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::create_dir_all(dir).map_err(|source| SpoolError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let created = !path.exists();
        let conn = Connection::open(path).map_err(|source| sqlite_error(path, None, source))?;
        if created {
            share_with_directory(path);
        }
        let mut spool = Spool {
            conn,
            file: file_id(path),
            path: path.to_path_buf(),
            clock,
            moved_aside: None,
        };
        spool.configure()?;
        spool.migrate()?;
        Ok(spool)
    }

    /// The error mapper for this spool's SQLite calls. It owns a copy of the path, so it can be
    /// used while a transaction holds the connection.
    /// Corruption, wherever it surfaces, becomes [`SpoolError::CorruptFile`].
    fn err(&self) -> impl Fn(rusqlite::Error) -> SpoolError + use<> {
        let (path, file) = (self.path.clone(), self.file);
        move |source| sqlite_error(&path, file, source)
    }

    fn configure(&mut self) -> Result<()> {
        let e = self.err();
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(&e)?;
        // journal_mode is persistent in the file; asking again on an existing WAL file is a read.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(&e)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(e(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode stayed {mode}"
            ))));
        }
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(&e)?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        let current: u32 = self.scalar("PRAGMA user_version")?;
        if current == known {
            return Ok(());
        }
        if current > known {
            return Err(SpoolError::TooNew {
                path: self.path.clone(),
                found: current,
                known,
            });
        }
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        // Another process may have migrated while we waited for the lock.
        let current: u32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(&e)?;
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.execute_batch(sql).map_err(&e)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Read a pragma (for tests and `status`).
    pub fn pragma(&self, name: &str) -> Result<String> {
        self.conn
            .query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .map_err(self.err())
    }

    /// Record an event that could not be mapped or routed; it waits for `replay --rejected`.
    pub fn record_rejected(&mut self, ev: &NewEvent, error: &str) -> Result<i64> {
        let now = self.now();
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let id = insert_event(&tx, ev, now, "rejected", Some(error)).map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(id)
    }

    /// Record an event and apply its test changes, in one transaction. With `replay_of`, the
    /// changes are applied under that (older) event's sequence number and it is marked replayed.
    pub fn record(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        replay_of: Option<i64>,
    ) -> Result<Recorded> {
        self.record_inner(ev, applies, replay_of, None)
    }

    /// Record what `resync` learnt from Monit at sequence `snapshot` (the newest event id when
    /// Monit was asked). Tests changed by a newer event since then are left alone: an exec
    /// event that arrived while Monit was being read is fresher than the snapshot.
    pub fn record_resync(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        snapshot: i64,
    ) -> Result<Recorded> {
        self.record_inner(ev, applies, None, Some(snapshot))
    }

    /// The newest event sequence number (0 for an empty spool).
    pub fn max_event_id(&self) -> Result<i64> {
        self.scalar("SELECT coalesce(max(id), 0) FROM events")
    }

    fn record_inner(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        replay_of: Option<i64>,
        snapshot: Option<i64>,
    ) -> Result<Recorded> {
        let now = self.now();
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let status = if applies.is_empty() {
            "info"
        } else {
            "applied"
        };
        let event_id = match replay_of {
            Some(old) => {
                tx.execute(
                    "UPDATE events SET status = ?2, test = ?3, effect = ?4, error = NULL WHERE id = ?1",
                    params![old, status, ev.test, ev.effect],
                )
                .map_err(&e)?;
                old
            }
            None => insert_event(&tx, ev, now, status, None).map_err(&e)?,
        };
        let mut touched: Vec<&str> = Vec::new();
        for a in applies {
            apply_test(&tx, a, event_id, now, snapshot).map_err(&e)?;
            if !touched.contains(&a.component.as_str()) {
                touched.push(&a.component);
            }
        }
        let mut changes = Vec::new();
        for comp in touched {
            let message = ev.description.as_deref();
            if let Some(c) =
                refresh_desired(&tx, &self.path, self.file, comp, event_id, message, now)?
            {
                changes.push(c);
            }
        }
        tx.commit().map_err(&e)?;
        Ok(Recorded { event_id, changes })
    }

    /// The failing tests of a component, to say why it shows what it shows.
    pub fn failing_tests(&self, component: &str) -> Result<Vec<FailingTest>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT host, service, test, state, since FROM tests
                 WHERE component = ?1 AND state IS NOT NULL ORDER BY host, service, test",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([component], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, String>(3)?,
                    r.get(4)?,
                ))
            })
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(host, service, test, state, since)| {
                Ok(FailingTest {
                    host,
                    service,
                    test,
                    state: parse_state(&self.path, &state)?,
                    since,
                })
            })
            .collect()
    }

    /// The desired state of every component: (component, state, changed_at).
    pub fn desired(&self) -> Result<Vec<(String, State, i64)>> {
        let mut st = self
            .conn
            .prepare("SELECT component, state, changed_at FROM desired ORDER BY component")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(c, s, t)| Ok((c, parse_state(&self.path, &s)?, t)))
            .collect()
    }

    // ---- flusher side -------------------------------------------------------------------

    /// At flusher start: deliveries left 'sending' by a crashed flusher go back to pending.
    /// Delivery is idempotent (a PUT of a state), so sending again is safe. The request in
    /// flight may still land late, so the page is read back at `verify_at`.
    pub fn recover_claims(&mut self, verify_at: i64) -> Result<usize> {
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        // The request in flight may have reached the page: what the page shows is unknown.
        tx.execute(
            "UPDATE page SET state = NULL, confirmed_at = NULL, verify_at = min(coalesce(verify_at, ?1), ?1)
             WHERE component IN (SELECT component FROM outbox WHERE status = 'sending')",
            [verify_at],
        )
        .map_err(&e)?;
        let n = tx
            .execute(
                "UPDATE outbox SET status = 'pending', claim = NULL, claimed_at = NULL,
                 last_error = coalesce(last_error, 'flusher stopped mid-delivery; sending again')
                 WHERE status = 'sending'",
                [],
            )
            .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(n)
    }

    /// Coalesce (a pending delivery with a newer one of its component, whatever that one's
    /// status, is superseded: only the newest state may reach the page), then claim the next due
    /// delivery (oldest due first), if any.
    /// Returns the claimed item and the ids superseded on the way (for the decision log).
    pub fn claim_next(&mut self, claim: &str) -> Result<(Option<Claimed>, Vec<Item>)> {
        let now = self.now();
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let superseded = {
            let mut st = tx
                .prepare(&format!(
                    "UPDATE outbox SET status = 'superseded', finished_at = ?1
                     WHERE status = 'pending' AND EXISTS (
                        SELECT 1 FROM outbox n WHERE n.component = outbox.component
                        AND n.id > outbox.id)
                     RETURNING {ITEM_COLS}"
                ))
                .map_err(&e)?;
            let rows = st.query_map([now], row_item).map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&e)?
        };
        // The newest row inherits the backoff of what it replaced: a flood of events must not
        // turn into a flood of requests against an API that is down.
        for s in &superseded {
            tx.execute(
                "UPDATE outbox SET attempts = max(attempts, ?2), next_attempt_at = max(next_attempt_at, ?3)
                 WHERE component = ?1 AND status = 'pending' AND ?2 > 0",
                params![s.component, s.attempts, s.next_attempt_at],
            )
            .map_err(&e)?;
        }
        let item = tx
            .query_row(
                &format!(
                    "SELECT {ITEM_COLS} FROM outbox o WHERE status = 'pending' AND next_attempt_at <= ?1
                     AND NOT EXISTS (SELECT 1 FROM outbox s WHERE s.component = o.component AND s.status = 'sending')
                     ORDER BY next_attempt_at, id LIMIT 1"
                ),
                [now],
                row_item,
            )
            .optional()
            .map_err(&e)?;
        let claimed = match item {
            Some(mut item) => {
                tx.execute(
                    "UPDATE outbox SET status = 'sending', claim = ?2, claimed_at = ?3 WHERE id = ?1 AND status = 'pending'",
                    params![item.id, claim, now],
                )
                .map_err(&e)?;
                item.status = "sending".into();
                Some(Claimed {
                    item,
                    claim: claim.to_string(),
                })
            }
            None => None,
        };
        tx.commit().map_err(&e)?;
        let superseded = superseded
            .into_iter()
            .map(|i| Item {
                status: "superseded".into(),
                ..i
            })
            .collect();
        Ok((claimed, superseded))
    }

    /// Record how a claimed delivery ended. Fails loudly if the claim is no longer valid.
    pub fn finish(&mut self, claimed: &Claimed, outcome: &Outcome) -> Result<()> {
        let now = self.now();
        let id = claimed.item.id;
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let guard = "WHERE id = ?1 AND status = 'sending' AND claim = ?2";
        let n = match outcome {
            Outcome::Delivered { backend, state } => {
                let n = tx
                    .execute(
                        &format!("UPDATE outbox SET status = 'done', finished_at = ?3, attempts = attempts + 1, last_error = NULL, claim = NULL {guard}"),
                        params![id, claimed.claim, now],
                    )
                    .map_err(&e)?;
                if n == 1 {
                    tx.execute(
                        "INSERT INTO page (backend, component, state, confirmed_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (backend, component) DO UPDATE SET state = excluded.state, confirmed_at = excluded.confirmed_at",
                        params![backend, claimed.item.component, state.as_str(), now],
                    )
                    .map_err(&e)?;
                    tx.execute(
                        "INSERT INTO flusher (id, last_success_at) VALUES (1, ?1)
                         ON CONFLICT (id) DO UPDATE SET last_success_at = excluded.last_success_at",
                        [now],
                    )
                    .map_err(&e)?;
                }
                n
            }
            Outcome::Skipped { reason } => tx
                .execute(
                    &format!("UPDATE outbox SET status = 'skipped', finished_at = ?3, last_error = ?4, claim = NULL {guard}"),
                    params![id, claimed.claim, now, reason],
                )
                .map_err(&e)?,
            Outcome::Retry { at, error } => {
                let n = tx
                    .execute(
                        &format!("UPDATE outbox SET status = 'pending', attempts = attempts + 1, next_attempt_at = ?3, last_error = ?4, claim = NULL, claimed_at = NULL {guard}"),
                        params![id, claimed.claim, at, error],
                    )
                    .map_err(&e)?;
                // A timeout or lost answer may hide a request the page applied: stop trusting
                // the last confirmation, so a later state is never skipped as "already shown".
                tx.execute(
                    "UPDATE page SET state = NULL, confirmed_at = NULL WHERE component = ?1",
                    [&claimed.item.component],
                )
                .map_err(&e)?;
                note_error(&tx, error, now).map_err(&e)?;
                n
            }
            Outcome::Dead { error } => {
                let n = tx
                    .execute(
                        &format!("UPDATE outbox SET status = 'dead', attempts = attempts + 1, finished_at = ?3, last_error = ?4, claim = NULL {guard}"),
                        params![id, claimed.claim, now, error],
                    )
                    .map_err(&e)?;
                note_error(&tx, error, now).map_err(&e)?;
                n
            }
            Outcome::Held { until, reason } => tx
                .execute(
                    &format!("UPDATE outbox SET status = 'pending', next_attempt_at = ?3, held = ?4, claim = NULL, claimed_at = NULL {guard}"),
                    params![id, claimed.claim, until, reason],
                )
                .map_err(&e)?,
        };
        if n == 1 && !matches!(outcome, Outcome::Held { .. }) {
            tx.execute("UPDATE outbox SET held = NULL WHERE id = ?1", [id])
                .map_err(&e)?;
        }
        if n != 1 {
            // Dropping the transaction rolls back the page/flusher notes too.
            return Err(SpoolError::StaleClaim {
                id,
                claim: claimed.claim.clone(),
            });
        }
        tx.commit().map_err(&e)
    }

    /// The page's state for a component as last confirmed by `backend`'s API.
    pub fn page_state(&self, backend: &str, component: &str) -> Result<Option<State>> {
        let s: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT state FROM page WHERE backend = ?1 AND component = ?2",
                params![backend, component],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        s.flatten().map(|s| parse_state(&self.path, &s)).transpose()
    }

    /// Read the component's state back from `backend`'s page at `at`: a write's outcome is
    /// unknown (no answer, or a server error), and the server may still carry it out late.
    /// An earlier verification already due is kept.
    pub fn verify_later(&mut self, backend: &str, component: &str, at: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO page (backend, component, verify_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (backend, component) DO UPDATE SET verify_at = min(coalesce(verify_at, excluded.verify_at), excluded.verify_at)",
                params![backend, component, at],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Components whose page state is due to be read back now, with the state they should
    /// show. Components with a delivery pending or in flight wait: that delivery comes first.
    pub fn verifications_due(&self, backend: &str) -> Result<Vec<(String, State)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT p.component, d.state FROM page p JOIN desired d ON d.component = p.component
                 WHERE p.backend = ?1 AND p.verify_at <= ?2
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.component = p.component
                                   AND o.status IN ('pending', 'sending'))
                 ORDER BY p.component",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![backend, self.now()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())?;
        rows.into_iter()
            .map(|(c, s)| Ok((c, parse_state(&self.path, &s)?)))
            .collect()
    }

    /// When the next read-back is due on `backend` (None: nothing in doubt).
    pub fn next_verify_at(&self, backend: &str) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT min(verify_at) FROM page WHERE backend = ?1",
                [backend],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// The page was read back: record what it shows (None: the page cannot be read back, or
    /// it showed something else, so nothing is confirmed), and nothing is in doubt any more.
    pub fn verified(&mut self, backend: &str, component: &str, shows: Option<State>) -> Result<()> {
        let now = self.now();
        self.conn
            .execute(
                "UPDATE page SET verify_at = NULL, state = ?3,
                   confirmed_at = CASE WHEN ?3 IS NULL THEN NULL ELSE ?4 END
                 WHERE backend = ?1 AND component = ?2",
                params![backend, component, shows.map(|s| s.as_str()), now],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Queue the component's desired state again, forced past the "already shown" check: the
    /// page was read back showing something else (a late write landed over a newer one).
    pub fn enqueue_repair(&mut self, component: &str, message: &str) -> Result<Option<i64>> {
        let now = self.now();
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let n = tx
            .execute(
                "INSERT INTO outbox (component, state, event_id, message, created_at, queued_at, status, force, next_attempt_at)
                 SELECT component, state, event_id, ?2, ?3, ?3, 'pending', 1, ?3 FROM desired WHERE component = ?1",
                params![component, message, now],
            )
            .map_err(&e)?;
        let id = (n == 1).then(|| tx.last_insert_rowid());
        tx.commit().map_err(&e)?;
        Ok(id)
    }

    /// Cached remote id of a component on `backend`.
    pub fn remote_id(&self, backend: &str, component: &str) -> Result<Option<String>> {
        let s: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT remote_id FROM page WHERE backend = ?1 AND component = ?2",
                params![backend, component],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        Ok(s.flatten())
    }

    /// Cache (or, with None, forget) the remote id of a component on `backend`. Forgetting also
    /// forgets the confirmed state: a re-created component starts from nothing.
    pub fn set_remote_id(
        &mut self,
        backend: &str,
        component: &str,
        id: Option<&str>,
    ) -> Result<()> {
        let r = match id {
            Some(id) => self.conn.execute(
                "INSERT INTO page (backend, component, remote_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (backend, component) DO UPDATE SET remote_id = excluded.remote_id",
                params![backend, component, id],
            ),
            None => self.conn.execute(
                "UPDATE page SET remote_id = NULL, state = NULL, confirmed_at = NULL WHERE backend = ?1 AND component = ?2",
                params![backend, component],
            ),
        };
        r.map(|_| ()).map_err(self.err())
    }

    /// Mark the flusher alive.
    pub fn heartbeat(&mut self, pid: u32, started_at: i64) -> Result<()> {
        let now = self.now();
        self.conn
            .execute(
                "INSERT INTO flusher (id, pid, started_at, heartbeat_at) VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
                params![pid, started_at, now],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Mark the flusher stopped (a clean exit), so `status` does not report it alive.
    pub fn flusher_stopped(&mut self) -> Result<()> {
        self.conn
            .execute("UPDATE flusher SET pid = NULL WHERE id = 1", [])
            .map(|_| ())
            .map_err(self.err())
    }

    /// When the next pending delivery is due (None: nothing pending).
    pub fn next_due_at(&self) -> Result<Option<i64>> {
        self.scalar("SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'")
    }

    /// Changes whenever another connection commits: the flusher's cheap "anything new?" probe.
    pub fn data_version(&self) -> Result<i64> {
        self.scalar("PRAGMA data_version")
    }

    /// Prune at most `batch` finished deliveries and `batch` events past the retention limits,
    /// in one short transaction: handlers wait for the write lock, so pruning never holds it
    /// for long (the flusher calls this again, with its poll interval between calls, while
    /// [`Pruned::more`] says there is more to do).
    pub fn prune_batch(
        &mut self,
        max_age: Duration,
        max_events: u64,
        batch: u32,
    ) -> Result<Pruned> {
        let cutoff = self.now() - max_age.as_millis() as i64;
        let e = self.err();
        let started = std::time::Instant::now();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let deliveries = tx
            .execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
                   WHERE status IN ('done', 'superseded', 'skipped') AND finished_at < ?1 LIMIT ?2)",
                params![cutoff, batch],
            )
            .map_err(&e)?;
        // Keep events that an open delivery, a test row or a desired state still points at.
        let keep = "id NOT IN (SELECT event_id FROM outbox WHERE event_id IS NOT NULL)
                    AND id NOT IN (SELECT event_id FROM tests) AND status != 'rejected'";
        let mut events = tx
            .execute(
                &format!(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events
                       WHERE received_at < ?1 AND {keep} ORDER BY received_at LIMIT ?2)"
                ),
                params![cutoff, batch],
            )
            .map_err(&e)?;
        let count: i64 = tx
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .map_err(&e)?;
        let excess = (count - max_events as i64).clamp(0, i64::from(batch) - events as i64);
        if excess > 0 {
            events += tx
                .execute(
                    &format!("DELETE FROM events WHERE id IN (SELECT id FROM events WHERE {keep} ORDER BY id LIMIT ?1)"),
                    [excess],
                )
                .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(Pruned {
            deliveries,
            events,
            more: deliveries == batch as usize || events == batch as usize,
            held: started.elapsed(),
        })
    }

    /// Prune everything past retention, batch after batch (tests and tools; the flusher spreads
    /// the batches out with [`Spool::prune_batch`]). Returns (deliveries, events) removed.
    pub fn prune(&mut self, max_age: Duration, max_events: u64) -> Result<(usize, usize)> {
        let (mut d, mut ev) = (0, 0);
        loop {
            let p = self.prune_batch(max_age, max_events, PRUNE_BATCH)?;
            (d, ev) = (d + p.deliveries, ev + p.events);
            if !p.more {
                return Ok((d, ev));
            }
        }
    }

    // ---- operator side ------------------------------------------------------------------

    /// Deliveries that are pending, in flight or dead, oldest first.
    pub fn open_items(&self) -> Result<Vec<Item>> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {ITEM_COLS} FROM outbox WHERE status IN ('pending', 'sending', 'dead') ORDER BY id"
            ))
            .map_err(self.err())?;
        let rows = st.query_map([], row_item).map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// One delivery by id, whatever its status.
    pub fn item(&self, id: i64) -> Result<Option<Item>> {
        self.conn
            .query_row(
                &format!("SELECT {ITEM_COLS} FROM outbox WHERE id = ?1"),
                [id],
                row_item,
            )
            .optional()
            .map_err(self.err())
    }

    /// Events waiting for `replay --rejected`, oldest first.
    pub fn rejected_events(&self) -> Result<Vec<RejectedEvent>> {
        let mut st = self
            .conn
            .prepare("SELECT id, received_at, origin, service, event, raw, error FROM events WHERE status = 'rejected' ORDER BY id")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok(RejectedEvent {
                    id: r.get(0)?,
                    received_at: r.get(1)?,
                    origin: r.get(2)?,
                    service: r.get(3)?,
                    event: r.get(4)?,
                    raw: r.get(5)?,
                    error: r.get(6)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(self.err())
    }

    /// The newest event id received at or before `ms` (0 if none): what an event recorded
    /// elsewhere at `ms` is newer than, when it is moved into this spool.
    pub fn last_event_at_or_before(&self, ms: i64) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT coalesce(max(id), 0) FROM events WHERE received_at <= ?1",
                [ms],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Mark a rejected event as moved into another spool (`replay --rejected --from`).
    pub fn mark_moved(&mut self, id: i64, note: &str) -> Result<()> {
        self.note_rejected(id, "replayed", note)
    }

    /// Update the error of a rejected event that still cannot be applied.
    pub fn set_rejected_error(&mut self, id: i64, error: &str) -> Result<()> {
        self.note_rejected(id, "rejected", error)
    }

    fn note_rejected(&mut self, id: i64, status: &str, note: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE events SET status = ?2, error = ?3 WHERE id = ?1 AND status = 'rejected'",
                params![id, status, note],
            )
            .map(|_| ())
            .map_err(self.err())
    }

    /// Make deliveries due now: the given ids (pending or dead), or all pending (and, with
    /// `dead`, all dead) ones, optionally of one component. Dead items start a fresh retry
    /// budget; a dead item whose component has a newer delivery is never made due (it is
    /// returned as superseded, with that delivery). Returns the items as they were before;
    /// `dry_run` changes nothing.
    pub fn replay_items(
        &mut self,
        ids: &[i64],
        dead: bool,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Replayed> {
        let mut superseded = Vec::new();
        let now = self.now();
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let items: Vec<Item> = {
            let mut st = tx
                .prepare(&format!(
                    "SELECT {ITEM_COLS} FROM outbox WHERE status IN ('pending', 'dead') ORDER BY id"
                ))
                .map_err(&e)?;
            let rows = st.query_map([], row_item).map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&e)?
        };
        let chosen: Vec<Item> = items
            .into_iter()
            .filter(|i| {
                if ids.is_empty() {
                    i.status == "pending" || dead
                } else {
                    ids.contains(&i.id)
                }
            })
            .filter(|i| component.is_none_or(|c| c == i.component))
            .collect();
        // A dead letter whose component has a newer delivery is history: the page has moved on
        // (or will), and sending the old state again would show an outage that ended.
        let mut chosen_now = Vec::new();
        for i in chosen {
            let newer = if i.status == "dead" {
                tx.query_row(
                    &format!(
                        "SELECT {ITEM_COLS} FROM outbox WHERE component = ?1 AND id > ?2 ORDER BY id DESC LIMIT 1"
                    ),
                    params![i.component, i.id],
                    row_item,
                )
                .optional()
                .map_err(&e)?
            } else {
                None
            };
            match newer {
                Some(n) => superseded.push((i, n)),
                None => chosen_now.push(i),
            }
        }
        let chosen = chosen_now;
        if !dry_run {
            for i in &chosen {
                tx.execute(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = ?2,
                       attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END,
                       queued_at = CASE WHEN status = 'dead' THEN ?2 ELSE queued_at END
                     WHERE id = ?1 AND status IN ('pending', 'dead')",
                    params![i.id, now],
                )
                .map_err(&e)?;
            }
            tx.commit().map_err(&e)?;
        }
        Ok(Replayed {
            due: chosen,
            superseded,
        })
    }

    /// Queue the current desired state of every component whose state changed, or that had a
    /// delivery queued, since `since_ms`, forced past the "page already shows it" check (for a
    /// page restored from a backup). Returns the queued (component, state).
    pub fn replay_since(
        &mut self,
        since_ms: i64,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<(String, State)>> {
        let now = self.now();
        let e = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        let rows: Vec<(String, String, Option<i64>)> = {
            let mut st = tx
                .prepare(
                    "SELECT component, state, event_id FROM desired WHERE (changed_at >= ?1
                       OR component IN (SELECT component FROM outbox WHERE created_at >= ?1))
                       AND (?2 IS NULL OR component = ?2) ORDER BY component",
                )
                .map_err(&e)?;
            let rows = st
                .query_map(params![since_ms, component], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(&e)?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(&e)?
        };
        let mut out = Vec::new();
        for (comp, state, event_id) in rows {
            let st = parse_state(&self.path, &state)?;
            if !dry_run {
                tx.execute(
                    "INSERT INTO outbox (component, state, event_id, message, created_at, queued_at, status, force, next_attempt_at)
                     VALUES (?1, ?2, ?3, 'replayed from history', ?4, ?4, 'pending', 1, ?4)",
                    params![comp, state, event_id, now],
                )
                .map_err(&e)?;
            }
            out.push((comp, st));
        }
        if !dry_run {
            tx.commit().map_err(&e)?;
        }
        Ok(out)
    }

    /// One value from a query that takes no parameters.
    fn scalar<T: rusqlite::types::FromSql>(&self, sql: &str) -> Result<T> {
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(self.err())
    }

    /// Counts and times for `status`.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        let mut st = self.conn.prepare("SELECT status, count(*) FROM outbox WHERE status IN ('pending', 'sending', 'dead') GROUP BY status").map_err(self.err())?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(self.err())?;
        for row in rows {
            let (k, n) = row.map_err(self.err())?;
            match k.as_str() {
                "pending" => s.pending = n,
                "sending" => s.sending = n,
                _ => s.dead = n,
            }
        }
        s.held = self
            .scalar("SELECT count(*) FROM outbox WHERE status = 'pending' AND held IS NOT NULL")?;
        s.oldest_pending_at = self
            .scalar("SELECT min(queued_at) FROM outbox WHERE status IN ('pending', 'sending')")?;
        s.rejected_events = self.scalar("SELECT count(*) FROM events WHERE status = 'rejected'")?;
        s.events = self.scalar("SELECT count(*) FROM events")?;
        let f = self
            .conn
            .query_row(
                "SELECT pid, heartbeat_at, last_success_at, last_error, last_error_at FROM flusher WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(self.err())?;
        if let Some((pid, hb, ok, err, err_at)) = f {
            (
                s.flusher_pid,
                s.flusher_heartbeat_at,
                s.last_success_at,
                s.last_error,
                s.last_error_at,
            ) = (pid, hb, ok, err, err_at);
        }
        Ok(s)
    }
}

/// Is this SQLite error the file's fault (not a lock, not the disk)?
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

fn sqlite_error(path: &Path, file: Option<(u64, u64)>, source: rusqlite::Error) -> SpoolError {
    if is_corruption(&source) {
        SpoolError::CorruptFile {
            path: path.to_path_buf(),
            file,
            source,
        }
    } else {
        SpoolError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// (device, inode) of the file at `path` now, if there is one.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Move a spool found corrupt to `<spool>.corrupt-<now_ms>` (with its -wal and -shm): a corrupt
/// file is evidence, kept and never deleted. Returns where it went, or None when the file at the
/// path is no longer the one found corrupt (another process moved it aside first, or it was
/// replaced): that file is left alone.
pub fn move_aside(err: &SpoolError, now_ms: i64) -> Result<Option<PathBuf>> {
    let SpoolError::CorruptFile { path, file, .. } = err else {
        return Ok(None);
    };
    if file.is_some() && file_id(path) != *file {
        return Ok(None);
    }
    let aside = PathBuf::from(format!("{}.corrupt-{now_ms}", path.display()));
    std::fs::rename(path, &aside).map_err(|source| SpoolError::MoveAside {
        path: path.clone(),
        source,
    })?;
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", path.display()));
        if side.exists() {
            let _ = std::fs::rename(&side, format!("{}{ext}", aside.display()));
        }
    }
    Ok(Some(aside))
}

/// Give a new spool file its directory's owner and group, mode 0660: Monit runs the handler as
/// root and the flusher runs as `statusrelay`, and both must write it. SQLite gives the -wal and
/// -shm files the database file's mode (and, as root, its owner). Best effort: a spool in a
/// directory of one's own needs none of it.
fn share_with_directory(path: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    if let Some(dir) = path.parent().and_then(|d| {
        std::fs::metadata(if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        })
        .ok()
    }) {
        let _ = std::os::unix::fs::chown(path, Some(dir.uid()), Some(dir.gid()));
    }
}

fn row_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let state: String = r.get(2)?;
    Ok(Item {
        id: r.get(0)?,
        component: r.get(1)?,
        state: state.parse().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("bad state {state:?}").into(),
            )
        })?,
        status: r.get(3)?,
        attempts: r.get(4)?,
        created_at: r.get(5)?,
        queued_at: r.get(6)?,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        message: r.get(9)?,
        force: r.get::<_, i64>(10)? != 0,
        event_id: r.get(11)?,
        held: r.get(12)?,
    })
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    ev: &NewEvent,
    now: i64,
    status: &str,
    error: Option<&str>,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO events (received_at, origin, host, service, event, description, monit_date, raw, test, effect, status, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![now, ev.origin, ev.host, ev.service, ev.event, ev.description, ev.monit_date, ev.raw, ev.test, ev.effect, status, error],
    )?;
    Ok(tx.last_insert_rowid())
}

fn note_error(tx: &rusqlite::Transaction<'_>, error: &str, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO flusher (id, last_error, last_error_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at",
        params![error, now],
    )
    .map(|_| ())
}

/// Apply one test change under `event_id`; rows changed by a newer event are left alone.
fn apply_test(
    tx: &rusqlite::Transaction<'_>,
    a: &Apply,
    event_id: i64,
    now: i64,
    snapshot: Option<i64>,
) -> rusqlite::Result<()> {
    let upsert = "INSERT INTO tests (component, host, service, test, state, event_id, since) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                  ON CONFLICT (component, host, service, test) DO UPDATE SET
                    state = excluded.state, event_id = excluded.event_id,
                    since = CASE WHEN tests.state IS excluded.state THEN tests.since ELSE excluded.since END
                  WHERE excluded.event_id > tests.event_id AND (?8 IS NULL OR tests.event_id <= ?8)";
    let (state, one_shot_families) = match &a.change {
        TestChange::Fail(state) => (Some(state.as_str()), None),
        TestChange::Recover { one_shot_families } => (None, Some(one_shot_families)),
    };
    tx.execute(
        upsert,
        params![
            a.component,
            a.host,
            a.service,
            a.test,
            state,
            event_id,
            now,
            snapshot
        ],
    )?;
    if let Some(one_shot_families) = one_shot_families {
        // One fixed statement clears every row this recovery covers: a handler process
        // compiles each statement afresh, and compiling SQL is most of its CPU time (an OR
        // of LIKEs cost four times as much to compile as this).
        // A sub-test recovery (`resource:cpu`) clears the bare family key (`resource`); a
        // bare recovery clears the whole family; a one-shot family is cleared whole by any.
        let family = a.test.split(':').next().unwrap_or(&a.test);
        let bare_key = a.test.contains(':').then_some(family);
        let mut families = String::from(",");
        if bare_key.is_none() {
            families.push_str(family);
            families.push(',');
        }
        for f in one_shot_families {
            families.push_str(f);
            families.push(',');
        }
        tx.execute(
                "UPDATE tests SET state = NULL, event_id = ?4, since = ?5
                 WHERE component = ?1 AND host = ?2 AND service = ?3 AND state IS NOT NULL AND event_id < ?4
                   AND (?6 IS NULL OR event_id <= ?6)
                   AND (test = ?7 OR instr(?8, ',' || substr(test, 1, instr(test || ':', ':') - 1) || ',') > 0)",
                params![a.component, a.host, a.service, event_id, now, snapshot, bare_key, families],
            )?;
    }
    Ok(())
}

/// Recompute a component's desired state (worst failing test, else operational) and queue a
/// delivery if it changed.
fn refresh_desired(
    tx: &rusqlite::Transaction<'_>,
    path: &Path,
    file: Option<(u64, u64)>,
    component: &str,
    event_id: i64,
    message: Option<&str>,
    now: i64,
) -> Result<Option<Change>> {
    let e = |source| sqlite_error(path, file, source);
    // Both reads in one statement (see apply_test: compiling SQL is the handler's main cost).
    // States are plain words, so a comma-joined list is unambiguous.
    let (prev, failing): (Option<String>, Option<String>) = tx
        .query_row(
            "SELECT (SELECT state FROM desired WHERE component = ?1),
                    (SELECT group_concat(state, ',') FROM tests WHERE component = ?1 AND state IS NOT NULL)",
            [component],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(e)?;
    let mut worst = State::Operational;
    for s in failing.iter().flat_map(|f| f.split(',')) {
        worst = worst.worst(parse_state(path, s)?);
    }
    let prev = prev.map(|p| parse_state(path, &p)).transpose()?;
    if prev == Some(worst) {
        return Ok(None);
    }
    tx.execute(
        "INSERT INTO desired (component, state, event_id, changed_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (component) DO UPDATE SET state = excluded.state, event_id = excluded.event_id, changed_at = excluded.changed_at",
        params![component, worst.as_str(), event_id, now],
    )
    .map_err(e)?;
    tx.execute(
        "INSERT INTO outbox (component, state, event_id, message, created_at, queued_at, status, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'pending', ?5)",
        params![component, worst.as_str(), event_id, message, now],
    )
    .map_err(e)?;
    Ok(Some(Change {
        component: component.to_string(),
        from: prev,
        to: worst,
        outbox_id: tx.last_insert_rowid(),
    }))
}

#[cfg(test)]
mod tests;
