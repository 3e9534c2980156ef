//! The spool crate's one error type, and the questions callers ask of it: is it lock
//! contention, temporary, corruption, out of memory, a stale claim; and what to tell the
//! operator.

use std::path::PathBuf;

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
    /// caller moves it aside with [`move_aside`](crate::move_aside) (given the file's inode, so a spool somebody
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
    /// Another process held the spool locked while it was being opened (created, migrated)
    /// for longer than the busy timeout.
    #[error(
        "spool {path}: another process held it locked for {} s while it was being opened (created or upgraded), the most statusrelay waits",
        waited.as_secs()
    )]
    Locked {
        path: PathBuf,
        waited: std::time::Duration,
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

/// What to do about a spool another process holds locked, whichever command met it.
const LOCKED_HINT: &str = "another process holds the spool locked (an sqlite3 shell left open? a stuck process?): find it with `fuser` on the spool file, let it finish or stop it, then run the command again";

impl SpoolError {
    /// Is it lock contention (another writer, a checkpoint, a WAL-index rebuild)?
    pub fn is_busy(&self) -> bool {
        matches!(self, SpoolError::Locked { .. })
            || matches!(self, SpoolError::Sqlite { source, .. } if matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked)
            ))
    }

    /// Is the failure likely to pass by itself (lock contention, a full disk being cleaned)?
    /// A spool that cannot be written (a read-only file system, permissions, a directory at
    /// the path, an I/O error) needs a person: it is not temporary.
    pub fn is_temporary(&self) -> bool {
        match self {
            SpoolError::Locked { .. } => true,
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
        if let SpoolError::Locked { .. } = self {
            return Some(LOCKED_HINT);
        }
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
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => LOCKED_HINT,
            _ => return None,
        })
    }

    /// Is the spool file damaged (move it aside with [`move_aside`](crate::move_aside) and start afresh)?
    pub fn is_corrupt(&self) -> bool {
        matches!(self, SpoolError::CorruptFile { .. })
    }

    /// Did SQLite run out of memory (on a fixed heap, see [`heap`](crate::heap))?
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, SpoolError::Sqlite { source, .. }
            if source.sqlite_error_code() == Some(rusqlite::ErrorCode::OutOfMemory))
    }

    /// Is this a lost claim (a stale worker)?
    pub fn is_stale_claim(&self) -> bool {
        matches!(self, SpoolError::StaleClaim { .. })
    }
}
