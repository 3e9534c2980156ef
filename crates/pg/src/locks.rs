//! The locks every recording transaction on PostgreSQL takes, and the one retry.
//!
//! Invariants:
//! - The nodes' rows first, in name order (`FOR UPDATE`), then the components (advisory
//!   transaction locks), in the lock key's order: transactions that take them so never wait
//!   on each other in a cycle.
//! - Should PostgreSQL still abort a transaction as a deadlock (or not serializable), it is
//!   run again whole, at most [`ATTEMPTS`] times, each counted (`contention_retries`).

use postgres::error::SqlState;

use crate::store::{Stmts, Tx};
use crate::{PgError, PgStore};

/// How many times a transaction another one deadlocked with is run again.
pub const ATTEMPTS: u32 = 5;

/// The class of the components' transaction locks (`pg_advisory_xact_lock(class, key)`).
pub const COMPONENT_LOCK: i32 = 0x5352_0001;

impl PgStore {
    /// Run `f` (one transaction) again while PostgreSQL aborts it for waiting on another, at
    /// most [`ATTEMPTS`] times, counting each run again.
    pub(crate) fn retrying<T>(
        &mut self,
        mut f: impl FnMut(&mut postgres::Client, &mut Stmts) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let mut attempt = 1;
        loop {
            match f(&mut self.client, &mut self.stmts) {
                Err(PgError::Db(e)) if attempt < ATTEMPTS && is_contention(&e) => {
                    self.contention_retries += 1;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Lock the nodes' rows, in name order (`names` sorted): the first locks every transaction
/// of reports and staleness takes.
pub(crate) fn lock_nodes(tx: &mut Tx<'_, '_>, names: &[&str]) -> Result<(), PgError> {
    tx.execute(
        "SELECT 1 FROM nodes WHERE name = ANY($1) ORDER BY name FOR UPDATE",
        &[&names],
    )?;
    Ok(())
}

/// Lock the components named and those the nodes `fed_by` feed, in the lock key's order:
/// the second locks, after the nodes'.
pub(crate) fn lock_components(
    tx: &mut Tx<'_, '_>,
    components: &[&str],
    fed_by: &[&str],
) -> Result<(), PgError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, k) FROM (
           SELECT DISTINCT hashtext(c) AS k FROM (
             SELECT unnest($2::text[]) AS c
             UNION SELECT component FROM feeds WHERE node = ANY($3)) cs
           ORDER BY k) ks",
        &[&COMPONENT_LOCK, &components, &fed_by],
    )?;
    Ok(())
}

/// Deadlocked with another transaction, or not serializable: worth running again at once.
fn is_contention(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    })
}
