//! The nodes' credentials as the aggregator checks them before anything else: read on a
//! connection of their own, so a request is authenticated without the spool's lock, and
//! reloaded only when `credentials_version` moves (schema 8's triggers bump it on every
//! change of a node's secret or components, whatever process makes it).
//!
//! Invariants:
//! - Read-only: this connection never writes, and a read in WAL mode never waits for a
//!   writer; its busy timeout is short, so a spool being created or migrated is "not now",
//!   never a stall.
//! - Only digests are read (see `statusrelay_app::credentials`): no secret is ever here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::*;

pub use statusrelay_core::store::Credential;

/// The number that moves with every change of a credential (schema 8's triggers).
const VERSION_SQL: &str = "SELECT v FROM credentials_version WHERE id = 1";

/// A read-only view of the nodes' credentials.
pub struct CredentialReader {
    conn: Connection,
    path: PathBuf,
}

impl CredentialReader {
    /// Open the spool at `path` read-only (it must exist and be migrated: `Spool::open` first).
    pub fn open(path: &Path) -> Result<CredentialReader> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| sqlite_error(path, None, source))?;
        conn.busy_timeout(Duration::from_millis(200))
            .map_err(|source| sqlite_error(path, None, source))?;
        Ok(CredentialReader {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The number that moves with every change of a credential.
    pub fn version(&self) -> Result<i64> {
        self.conn
            .prepare_cached(VERSION_SQL)
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .map_err(|source| sqlite_error(&self.path, None, source))
    }

    /// Every node's credential, with the version they are as of (one read transaction).
    pub fn load(&self) -> Result<(i64, HashMap<String, Credential>)> {
        read_credentials(&self.conn, &self.path)
    }
}

/// The credentials and their version, in one read transaction on `conn`.
pub(crate) fn read_credentials(
    conn: &Connection,
    path: &Path,
) -> Result<(i64, HashMap<String, Credential>)> {
    let e = |source| sqlite_error(path, None, source);
    let tx = conn.unchecked_transaction().map_err(e)?;
    let version: i64 = tx.query_row(VERSION_SQL, [], |r| r.get(0)).map_err(e)?;
    let mut st = tx
        .prepare("SELECT name, secret_sha256, components FROM nodes")
        .map_err(e)?;
    let rows = st
        .query_map([], |r| {
            let components: Option<String> = r.get(2)?;
            Ok((
                r.get::<_, String>(0)?,
                Credential {
                    secret_sha256: r.get(1)?,
                    components: components.and_then(|c| serde_json::from_str(&c).ok()),
                },
            ))
        })
        .map_err(e)?
        .collect::<std::result::Result<HashMap<_, _>, _>>()
        .map_err(e)?;
    drop(st);
    tx.finish().map_err(e)?;
    Ok((version, rows))
}

/// The gate's reader, as the seam's read side.
impl statusrelay_core::store::CredentialReads for CredentialReader {
    type Error = SpoolError;

    fn credentials_version(&mut self) -> Result<i64> {
        self.version()
    }

    fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>)> {
        self.load()
    }
}

/// The SQLite spool as the store of the nodes' credentials (the seam's conformance suite
/// holds it to the PostgreSQL store's behaviour).
impl statusrelay_core::store::CredentialReads for Spool {
    type Error = SpoolError;

    fn credentials_version(&mut self) -> Result<i64> {
        self.scalar(VERSION_SQL)
    }

    fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>)> {
        read_credentials(&self.conn, &self.path)
    }
}

impl statusrelay_core::store::NodeCredentials for Spool {
    fn add_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool> {
        Spool::add_node(self, name, secret_sha256, components)
    }

    fn put_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool> {
        Spool::put_node(self, name, secret_sha256, components)
    }
}
