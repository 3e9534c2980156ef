//! The PostgreSQL store's parts of the seam (`statusrelay_core::store`), one impl per part,
//! each held to the SQLite spool's behaviour by `tests/conformance.rs`.
//!
//! Invariants:
//! - Reads that must agree with each other (the credentials and their version) are one
//!   REPEATABLE READ transaction.
//! - A write that changes nothing reports false and moves no version (row triggers, not
//!   statement triggers: an upsert that touches no row fires none).

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use statusrelay_core::time::Clock;

use statusrelay_core::store::{Credential, CredentialReads, NodeCredentials};

use crate::PgError;

/// The aggregator's store on PostgreSQL.
pub struct PgStore {
    /// Dropped on a thread of its own (see `Drop`).
    pub(crate) client: ManuallyDrop<postgres::Client>,
    /// The instance's clock: the times a report writes (last seen, since) are the recording
    /// instance's, in milliseconds, as the SQLite spool's are.
    clock: Arc<dyn Clock>,
    /// Transactions run again after PostgreSQL aborted them for waiting on another
    /// (see `reports`): counted, so contention is visible.
    pub(crate) contention_retries: u64,
    /// The instance and term this store writes deliveries and page state as (`writing_as`);
    /// None: it writes none.
    pub(crate) writer: Option<(String, crate::Term)>,
    /// This instance's name (its heartbeat's row), when it is one of `serve`'s.
    pub(crate) instance: Option<String>,
    /// The statements this connection prepared (see [`Stmts`]).
    pub(crate) stmts: Stmts,
}

impl PgStore {
    /// A store on a connection already made (and migrated: [`crate::migrate`]).
    pub fn new(client: postgres::Client, clock: Arc<dyn Clock>) -> PgStore {
        PgStore {
            client: ManuallyDrop::new(client),
            clock,
            contention_retries: 0,
            writer: None,
            instance: None,
            stmts: Stmts::default(),
        }
    }

    /// The store as instance `name` uses it (its heartbeat names it).
    pub fn for_instance(mut self, name: &str) -> PgStore {
        self.instance = Some(name.to_string());
        self
    }

    /// Now, on the instance's clock, as the store writes it.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// How many transactions were run again after a deadlock with another.
    pub fn contention_retries(&self) -> u64 {
        self.contention_retries
    }

    /// The connection, for what the seam does not cover yet (the lease).
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }

    fn upsert(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
        on_conflict: &str,
    ) -> Result<bool, PgError> {
        let components: Option<Vec<String>> = components.map(<[String]>::to_vec);
        // Added at the instance's clock, as every time a node's row holds.
        let now = self.now();
        let n = self.client.execute(
            &format!(
                "INSERT INTO nodes (name, secret_sha256, components, added_at)
                 VALUES ($1, $2, $3, to_timestamp($4::bigint / 1000.0))
                 ON CONFLICT (name) {on_conflict}"
            ),
            &[&name, &secret_sha256, &components, &now],
        )?;
        Ok(n == 1)
    }
}

impl Drop for PgStore {
    /// The synchronous client closes its connection on a runtime of its own, which cannot be
    /// started on a thread that drives an async runtime (`serve`'s workers, where a store may
    /// be let go): so the client is closed on a short-lived thread of its own.
    fn drop(&mut self) {
        // SAFETY: the client is taken once, here, and never used again.
        let client = unsafe { ManuallyDrop::take(&mut self.client) };
        let _ = std::thread::spawn(move || drop(client)).join();
    }
}

impl NodeCredentials for PgStore {
    fn add_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool, PgError> {
        self.upsert(name, secret_sha256, components, "DO NOTHING")
    }

    fn put_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool, PgError> {
        self.upsert(
            name,
            secret_sha256,
            components,
            "DO UPDATE SET secret_sha256 = excluded.secret_sha256, components = excluded.components
             WHERE nodes.secret_sha256 IS DISTINCT FROM excluded.secret_sha256
                OR nodes.components IS DISTINCT FROM excluded.components",
        )
    }
}

impl CredentialReads for PgStore {
    type Error = PgError;

    fn credentials_version(&mut self) -> Result<i64, PgError> {
        Ok(self
            .client
            .query_one("SELECT v FROM credentials_version WHERE id = 1", &[])?
            .get(0))
    }

    fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>), PgError> {
        let mut tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let version: i64 = tx
            .query_one("SELECT v FROM credentials_version WHERE id = 1", &[])?
            .get(0);
        let rows = tx
            .query("SELECT name, secret_sha256, components FROM nodes", &[])?
            .into_iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    Credential {
                        secret_sha256: r.get(1),
                        components: r.get(2),
                    },
                )
            })
            .collect();
        tx.commit()?;
        Ok((version, rows))
    }
}

/// The statements a connection has prepared, by their text: each is parsed and planned once
/// per connection, then only bound and run (one round trip instead of two, no planning).
#[derive(Default)]
pub(crate) struct Stmts(HashMap<&'static str, postgres::Statement>);

/// A transaction that runs each statement from the connection's prepared ones.
pub(crate) struct Tx<'t, 's> {
    pub(crate) tx: postgres::Transaction<'t>,
    stmts: &'s mut Stmts,
}

type Params<'p> = &'p [&'p (dyn postgres::types::ToSql + Sync)];

impl<'t, 's> Tx<'t, 's> {
    pub(crate) fn new(tx: postgres::Transaction<'t>, stmts: &'s mut Stmts) -> Tx<'t, 's> {
        Tx { tx, stmts }
    }

    fn st(&mut self, sql: &'static str) -> Result<postgres::Statement, PgError> {
        if let Some(s) = self.stmts.0.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.stmts.0.insert(sql, s.clone());
        Ok(s)
    }

    pub(crate) fn execute(&mut self, sql: &'static str, p: Params<'_>) -> Result<u64, PgError> {
        let st = self.st(sql)?;
        Ok(self.tx.execute(&st, p)?)
    }

    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Vec<postgres::Row>, PgError> {
        let st = self.st(sql)?;
        Ok(self.tx.query(&st, p)?)
    }

    pub(crate) fn query_one(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<postgres::Row, PgError> {
        let st = self.st(sql)?;
        Ok(self.tx.query_one(&st, p)?)
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        p: Params<'_>,
    ) -> Result<Option<postgres::Row>, PgError> {
        let st = self.st(sql)?;
        Ok(self.tx.query_opt(&st, p)?)
    }

    pub(crate) fn commit(self) -> Result<(), PgError> {
        Ok(self.tx.commit()?)
    }
}

/// A stored word read back as what it names; a word this statusrelay does not know is an
/// error naming it.
pub(crate) fn word<T: std::str::FromStr>(
    column: &'static str,
    value: String,
) -> Result<T, PgError> {
    value
        .parse()
        .map_err(|_| PgError::Corrupt { column, value })
}
