//! The burst's physical limit, measured in the same run: the same rows committed to the same
//! spool file, one transaction per request, by one SQLite connection with the spool's
//! durability and no HTTP. The burst's ratio is against it.

use std::path::Path;
use std::time::{Duration, Instant};

use super::jobs::batch;

/// The physical limit: `batches` transactions, each committing `per` event rows and their
/// test rows into the spool file, one connection, the spool's durability, no HTTP.
pub(crate) fn baseline(db: &Path, batches: usize, per: usize) -> Duration {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let _: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    let raw = String::from_utf8(batch(9, 1, 1, false, 30_000, |_| true)).unwrap();
    let t = Instant::now();
    for b in 0..batches {
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        for k in 0..per {
            c.execute(
                "INSERT INTO events (received_at, origin, host, description, raw, effect, status)
                 VALUES (?1, 'baseline', ?2, 'n reports 1 failing test(s)', ?3, 'fail', 'applied')",
                rusqlite::params![b as i64, format!("b{}", b % 1000), raw],
            )
            .unwrap();
            c.execute(
                "INSERT INTO tests (component, host, service, test, state, event_id, since)
                 VALUES ('baseline', ?1, 'backend', ?2, 'major_outage', ?3, 0)
                 ON CONFLICT (component, host, service, test) DO UPDATE SET
                   state = excluded.state, event_id = excluded.event_id",
                rusqlite::params![
                    format!("b{}", b % 1000),
                    format!("t{k}"),
                    c.last_insert_rowid()
                ],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }
    t.elapsed()
}
