//! The aggregator's store as a seam (issue 23): what the aggregator does to its store, one
//! trait per part, implemented by the SQLite spool (`statusrelay_spool::Spool`) and by the
//! PostgreSQL store (`statusrelay_pg::PgStore`), both held to one conformance suite
//! (`crates/pg/tests/conformance.rs`).
//!
//! Invariants:
//! - A behaviour that differs between the two implementations is a bug: every part's
//!   behaviour is pinned by the conformance suite, run against both.
//! - Parts move here one at a time. So far: the nodes' credentials, which `serve`'s gate
//!   reads through [`CredentialReads`], and the nodes' reports, whose trait is
//!   `statusrelay_spool::store::Reports` (its values, a node's report and a test change, are
//!   the spool crate's). The rest of the aggregator still calls the SQLite spool directly.

use std::collections::HashMap;

/// What authenticates a node: the SHA-256 of its secret, and the components it may feed
/// (None: any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub secret_sha256: String,
    pub components: Option<Vec<String>>,
}

/// The credentials' read side: what the gate checks before anything else, on a connection of
/// its own, reloaded only when the version moved.
pub trait CredentialReads {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A number that moves with every change of a credential, and with nothing else.
    fn credentials_version(&mut self) -> Result<i64, Self::Error>;

    /// Every node's credential, with the version they are as of (one consistent read).
    fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>), Self::Error>;
}

/// The nodes' credentials, written (`statusrelay nodes`) and read.
pub trait NodeCredentials: CredentialReads {
    /// Add a node; false when one of that name exists already (nothing changes then).
    fn add_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool, Self::Error>;

    /// Set a node's secret and components, adding it if new; false when it was already so.
    fn put_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool, Self::Error>;
}

/// A store's failure, in words: what a reader of any store reports (the gate logs it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// A credentials reader of any store.
pub type AnyReads = Box<dyn CredentialReads<Error = StoreError> + Send>;

/// `reads`, whatever its store, as an [`AnyReads`].
pub fn any_reads<R: CredentialReads + Send + 'static>(reads: R) -> AnyReads {
    Box::new(Erased(reads))
}

/// A reader whose errors are said in words.
struct Erased<R>(R);

impl<R: CredentialReads> CredentialReads for Erased<R> {
    type Error = StoreError;

    fn credentials_version(&mut self) -> Result<i64, StoreError> {
        self.0
            .credentials_version()
            .map_err(|e| StoreError(e.to_string()))
    }

    fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>), StoreError> {
        self.0.credentials().map_err(|e| StoreError(e.to_string()))
    }
}
