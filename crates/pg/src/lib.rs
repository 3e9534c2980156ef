//! The aggregator's PostgreSQL store (issue 23), for several `serve` instances on one
//! database: its numbered migrations, the election of the one instance that writes the page
//! (`lease`), and the parts of the store's seam built so far (`store`). SQLite stays the store
//! of a single aggregator and of every node.
//!
//! Invariants:
//! - Migrations are numbered `.sql` files applied in order, each recorded in
//!   `schema_version`, in one transaction under an advisory lock: two instances starting at
//!   once apply each migration exactly once; a database from a newer statusrelay is refused.
//! - Every time that decides who writes is the database server's (`now()`), one clock for
//!   every instance; an instance's own check of its lease is on its monotonic clock.

pub mod connect;
pub mod deliver;
pub mod election;
pub mod import;
pub mod incidents;
pub mod lease;
pub mod locks;
mod marks;
pub mod nodes;
pub mod record;
pub mod replay;
pub mod reports;
pub mod retention;
pub mod stale;
pub mod store;
pub mod upkeep;

pub use connect::Target;
pub use election::{Election, Turn};
pub use lease::{Held, Lease, Term, WriterRow};
pub use store::PgStore;

/// The numbered migrations; `schema_version` records each one applied.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_writer.sql")),
    (2, include_str!("../migrations/0002_nodes.sql")),
    (3, include_str!("../migrations/0003_reports.sql")),
    (4, include_str!("../migrations/0004_heard.sql")),
    (5, include_str!("../migrations/0005_deliveries.sql")),
    (6, include_str!("../migrations/0006_incidents_holds.sql")),
    (7, include_str!("../migrations/0007_nodes_words.sql")),
];

/// The schema version this statusrelay migrates to: the last migration's.
pub const SCHEMA: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock every migration takes (any number: one for this purpose only).
const MIGRATE_LOCK: i64 = 0x5354_5245_4c41_5901;

/// What can go wrong with the PostgreSQL store.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The database could not be reached, or refused a statement.
    #[error("PostgreSQL: {}", describe(.0))]
    Db(#[from] postgres::Error),
    /// The database was migrated by a newer statusrelay.
    #[error(
        "the PostgreSQL store is at schema {found}, newer than this statusrelay's {known}: upgrade statusrelay on every instance"
    )]
    TooNew { found: i32, known: i32 },
    /// An aggregator's spool could not be copied into the store (`store migrate`).
    #[error("store migrate: {0}")]
    Import(String),
    /// `[store]` cannot be used as written (the connection string, the password file).
    #[error("[store] {0}")]
    Config(String),
    /// The store holds a word this statusrelay does not know (a state, a status).
    #[error(
        "the PostgreSQL store holds {value:?} in {column}, which this statusrelay does not know: was it written by a newer one?"
    )]
    Corrupt { column: &'static str, value: String },
    /// A delivery's claim no longer owns its row (another worker or a replay took it): its
    /// result is not recorded.
    #[error(
        "delivery {id}: claim {claim} is stale (another worker or a replay took the row); result not recorded"
    )]
    StaleClaim { id: i64, claim: String },
    /// This instance was never made the writer (`PgStore::writing_as`): it writes no delivery
    /// and no page state.
    #[error(
        "this instance does not write the page (it holds no writer's lease); nothing was written"
    )]
    NotWriter,
    /// This instance no longer holds the writer's lease under the term it acted on.
    #[error("no longer the writer (term {term}): another instance took over; nothing was written")]
    Deposed { term: i64 },
}

/// A database error in full: the server's own message and code (the client's `Display` says
/// only "db error"), or the client's words for a connection that failed.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => {
            use std::error::Error;
            match e.source() {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            }
        }
    }
}

impl PgError {
    /// Worth trying again later: the connection, not the statement, failed (the database
    /// restarting, failing over, unreachable).
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Db(e) => e.is_closed() || e.code().is_none_or(is_transient),
            PgError::TooNew { .. }
            | PgError::Deposed { .. }
            | PgError::NotWriter
            | PgError::Config(_)
            | PgError::Import(_)
            | PgError::Corrupt { .. }
            | PgError::StaleClaim { .. } => false,
        }
    }

    /// Another instance writes now: stop writing, follow.
    pub fn is_deposed(&self) -> bool {
        matches!(self, PgError::Deposed { .. } | PgError::NotWriter)
    }
}

/// A server's error that says the session, not the statement, is the trouble, and that
/// passes with a new connection: the connection lost (class 08); the server shutting down,
/// crashed or its postmaster gone under a running statement (57P01 to 57P03: a primary dying
/// in a failover says 57P01 to every backend); the session ended for idling, inside a
/// transaction (25P03: an instance frozen mid-transaction past a quarter of its lease, see
/// `Lease::prepare_session`) or not (57P05); a server no longer the primary (25006,
/// read-only); no connection slot free (53300).
pub fn is_transient(code: &postgres::error::SqlState) -> bool {
    let c = code.code();
    c.starts_with("08")
        || matches!(
            c,
            "57P01" | "57P02" | "57P03" | "57P05" | "25P03" | "25006" | "53300"
        )
}

/// Bring the database's schema up to date (see the module's invariants); the version it is at.
pub fn migrate(client: &mut postgres::Client) -> Result<i32, PgError> {
    let known = SCHEMA;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)")?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
        .get(0);
    if current > known {
        return Err(PgError::TooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )?;
    }
    tx.commit()?;
    Ok(known)
}

#[cfg(test)]
mod tests {
    use postgres::error::SqlState;

    use super::is_transient;

    /// What a failover, a restart or a full server say passes; what a statement did wrong
    /// never does (it would be sent again and again).
    #[test]
    fn a_server_going_away_is_transient_and_a_bad_statement_is_not() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            SqlState::IDLE_SESSION_TIMEOUT,
        ] {
            assert!(is_transient(&code), "{}", code.code());
        }
        for code in [
            SqlState::SYNTAX_ERROR,
            SqlState::UNIQUE_VIOLATION,
            SqlState::UNDEFINED_TABLE,
            SqlState::INSUFFICIENT_PRIVILEGE,
            SqlState::INVALID_PASSWORD,
            SqlState::T_R_DEADLOCK_DETECTED,
        ] {
            assert!(!is_transient(&code), "{}", code.code());
        }
    }
}
