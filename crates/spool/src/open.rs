//! Opening the spool: creating and migrating it, its pragmas, and a corrupt file moved aside
//! (said at error level, whatever the command).
//!
//! Invariants:
//! - WAL mode, `synchronous=FULL` (a commit survives power loss), a busy timeout: many handler
//!   processes may write at once while the flusher reads and writes. Temporary storage
//!   (statement journals) in memory.
//! - Migrations are numbered `.sql` files applied in order in one transaction; a spool from a
//!   newer statusrelay is refused, never downgraded.
//! - SQLite's corruption errors, wherever they surface, become [`SpoolError::CorruptFile`]
//!   with the inode of the file found corrupt: [`move_aside`] never moves a file that replaced it.

use super::*;

impl Spool {
    /// Open (creating if needed) the spool at `path`, apply pending migrations. A file SQLite
    /// finds corrupt while opening is moved aside and a fresh spool started.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Spool> {
        match Spool::open_waiting(path, clock.clone()) {
            Err(e @ SpoolError::CorruptFile { .. }) => {
                let aside = move_aside(&e, clock.now_ms())?;
                let mut spool = Spool::open_once(path, clock)?;
                if let Some(aside) = &aside {
                    // Whatever the command, said loudly where the operator looks.
                    statusrelay_core::log::error!(
                        "the spool {} was corrupt: it was moved to {} (kept for inspection, never deleted) and a fresh spool started",
                        path.display(),
                        aside.display()
                    );
                }
                spool.moved_aside = aside;
                Ok(spool)
            }
            other => other,
        }
    }

    /// Open, waiting out another process's lock for up to [`BUSY_TIMEOUT`]: making a fresh
    /// file WAL, or migrating it, meets a lock SQLite's busy handler does not wait for (a
    /// second process creating the same new spool), so it is retried here.
    fn open_waiting(path: &Path, clock: Arc<dyn Clock>) -> Result<Spool> {
        let started = std::time::Instant::now();
        loop {
            match Spool::open_once(path, clock.clone()) {
                Err(e) if e.is_busy() => {
                    let waited = started.elapsed();
                    if waited >= BUSY_TIMEOUT {
                        return Err(SpoolError::Locked {
                            path: path.to_path_buf(),
                            waited,
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
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

    pub(crate) fn open_once(path: &Path, clock: Arc<dyn Clock>) -> Result<Spool> {
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
    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> SpoolError + use<> {
        let (path, file) = (self.path.clone(), self.file);
        move |source| sqlite_error(&path, file, source)
    }

    /// The one way to write: an IMMEDIATE transaction (the write lock taken up front, so two
    /// writers never deadlock upgrading a read lock), `f` given the transaction and the error
    /// mapper, committed when `f` returns Ok and rolled back (dropped) when it fails.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &dyn Fn(rusqlite::Error) -> SpoolError) -> Result<T>,
    ) -> Result<T> {
        let map = self.err();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&map)?;
        let out = f(&tx, &map)?;
        tx.commit().map_err(&map)?;
        Ok(out)
    }

    /// Wait at most `d` for another process's lock (the default is [`BUSY_TIMEOUT`]): a
    /// server answering within a deadline waits no longer than it.
    pub fn set_busy_timeout(&mut self, d: Duration) -> Result<()> {
        let e = self.err();
        self.conn.busy_timeout(d).map_err(e)
    }

    /// Let SQLite cache up to `kib` KiB of the file's pages (its default is 2 MiB): a
    /// long-running aggregator reads the same nodes, feeds and tests rows at every report.
    pub fn set_cache_kib(&mut self, kib: u32) -> Result<()> {
        let e = self.err();
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .map_err(e)
    }

    pub(crate) fn configure(&mut self) -> Result<()> {
        let e = self.err();
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(&e)?;
        // Room for every statement of the aggregator's report path (see record.rs `exec`).
        self.conn.set_prepared_statement_cache_capacity(64);
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
        // Statement journals (a statement that may change several rows keeps its pages to
        // undo itself) in memory, in small pieces: left to a temporary file, SQLite buffers the
        // first 64 KiB in one allocation per statement, which musl's allocator maps and unmaps
        // every time (the aggregator's burst made thousands a second).
        self.conn
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(&e)?;
        Ok(())
    }

    pub(crate) fn migrate(&mut self) -> Result<()> {
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
        self.write(|tx, e| {
            // Another process may have migrated while we waited for the lock.
            let current: u32 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(&e)?;
            for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
                tx.execute_batch(sql).map_err(&e)?;
                tx.pragma_update(None, "user_version", version)
                    .map_err(&e)?;
            }
            Ok(())
        })
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

    /// One value from a query that takes no parameters.
    pub(crate) fn scalar<T: rusqlite::types::FromSql>(&self, sql: &str) -> Result<T> {
        self.conn
            .query_row(sql, [], |r| r.get(0))
            .map_err(self.err())
    }
}

/// Is this SQLite error the file's fault (not a lock, not the disk)?
pub(crate) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

pub(crate) fn sqlite_error(
    path: &Path,
    file: Option<(u64, u64)>,
    source: rusqlite::Error,
) -> SpoolError {
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
pub(crate) fn share_with_directory(path: &Path) {
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
