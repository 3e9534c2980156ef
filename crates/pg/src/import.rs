//! `statusrelay store migrate`: an aggregator's SQLite spool copied into an empty PostgreSQL
//! store, so a single aggregator becomes the first of several instances and nothing it knew
//! is lost: its nodes (credentials, marks, reporters, refusals), what they feed and report
//! failing, every event, the desired states, the queue, what the page was confirmed to
//! show, incidents and maintenance windows.
//!
//! Invariants:
//! - One transaction: the store holds the whole spool or nothing of it.
//! - Only into an empty store (no node, no event): a store some instance already writes is
//!   never merged into.
//! - Ids are kept (events, deliveries, incidents, windows), and the sequences set past them:
//!   a test is changed only by an event newer than the one that last changed it, so the
//!   event ids the tests carry must keep their order.
//! - Deliveries left in flight ('sending') become pending: the spool's flusher is stopped, and
//!   the writer sends them again (a PUT of a state is idempotent).
//! - Nodes count as heard at the copy: their silence is measured from then, as a restarted
//!   aggregator measures it from its start.

use std::path::Path;

use postgres::types::ToSql;

use crate::PgError;

/// How a SQLite column becomes a PostgreSQL one.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    /// SQLite's 0/1.
    Bool,
    /// A JSON list of strings (a node's components) into `text[]`.
    List,
    /// Milliseconds since the epoch into `timestamptz`.
    Stamp,
}

use Kind::*;

/// A table copied: its name, whether its ids are an identity (kept), its columns.
type Table = (&'static str, bool, &'static [(&'static str, Kind)]);

/// The tables copied, in an order their references allow, with their columns; the ones
/// with an identity keep their ids.
const TABLES: &[Table] = &[
    (
        "nodes",
        false,
        &[
            ("name", Text),
            ("secret_sha256", Text),
            ("components", List),
            ("added_at", Stamp),
            ("via", Text),
            ("period_ms", Int),
            ("last_seen_at", Int),
            ("last_seq", Int),
            ("epoch", Int),
            ("stale_since", Int),
            ("reporter", Text),
            ("reporter_peer", Text),
            ("rival", Text),
            ("rival_peer", Text),
            ("rival_seen_at", Int),
            ("conflict_since", Int),
            ("refused", Text),
            ("refused_at", Int),
            ("refusals", Int),
        ],
    ),
    (
        "feeds",
        false,
        &[
            ("node", Text),
            ("component", Text),
            ("epoch", Int),
            ("seq", Int),
            ("since", Int),
            ("stale", Bool),
        ],
    ),
    (
        "unrouted",
        false,
        &[
            ("node", Text),
            ("service", Text),
            ("tests", Text),
            ("since", Int),
        ],
    ),
    (
        "events",
        true,
        &[
            ("id", Int),
            ("received_at", Int),
            ("origin", Text),
            ("host", Text),
            ("service", Text),
            ("event", Text),
            ("description", Text),
            ("monit_date", Text),
            ("raw", Text),
            ("test", Text),
            ("effect", Text),
            ("status", Text),
            ("error", Text),
        ],
    ),
    (
        "tests",
        false,
        &[
            ("component", Text),
            ("host", Text),
            ("service", Text),
            ("test", Text),
            ("state", Text),
            ("event_id", Int),
            ("since", Int),
            ("description", Text),
        ],
    ),
    (
        "desired",
        false,
        &[
            ("component", Text),
            ("state", Text),
            ("event_id", Int),
            ("changed_at", Int),
        ],
    ),
    (
        "outbox",
        true,
        &[
            ("id", Int),
            ("component", Text),
            ("state", Text),
            ("event_id", Int),
            ("message", Text),
            ("created_at", Int),
            ("queued_at", Int),
            ("status", Text),
            ("force", Bool),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_error", Text),
            ("finished_at", Int),
            ("held", Text),
        ],
    ),
    (
        "page",
        false,
        &[
            ("backend", Text),
            ("component", Text),
            ("remote_id", Text),
            ("state", Text),
            ("confirmed_at", Int),
            ("verify_at", Int),
        ],
    ),
    (
        "incidents",
        true,
        &[
            ("id", Int),
            ("backend", Text),
            ("component", Text),
            ("remote_id", Text),
            ("status", Text),
            ("name", Text),
            ("state", Text),
            ("intent_at", Int),
            ("opened_at", Int),
            ("resolved_at", Int),
            ("note", Text),
        ],
    ),
    (
        "maintenance",
        true,
        &[
            ("id", Int),
            ("component", Text),
            ("starts_at", Int),
            ("ends_at", Int),
            ("reason", Text),
            ("show", Bool),
            ("ended_at", Int),
        ],
    ),
];

/// What was copied: rows per table, in the order copied.
pub type Copied = Vec<(&'static str, u64)>;

/// Copy the spool at `spool` into the (migrated, empty) store on `client`, in one
/// transaction (see the module's invariants).
pub fn import_spool(client: &mut postgres::Client, spool: &Path) -> Result<Copied, PgError> {
    let sqlite = rusqlite::Connection::open_with_flags(
        spool,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| PgError::Import(format!("{}: {e}", spool.display())))?;
    let lite = |e: rusqlite::Error| PgError::Import(format!("{}: {e}", spool.display()));
    let mut tx = client.transaction()?;
    let used: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM nodes) OR EXISTS (SELECT 1 FROM events)",
            &[],
        )?
        .get(0);
    if used {
        return Err(PgError::Import(
            "the PostgreSQL store already holds nodes or events: store migrate copies a spool into an empty database only (create a new one, or drop its tables and let an instance migrate it again)".into(),
        ));
    }
    // One snapshot of the spool, however long the copy takes.
    sqlite.execute_batch("BEGIN").map_err(lite)?;
    let mut copied = Copied::new();
    for (table, identity, cols) in TABLES {
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let values: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| match kind {
                Text => format!("${}::text", i + 1),
                Int => format!("${}::bigint", i + 1),
                Bool => format!("(${}::bigint <> 0)", i + 1),
                // NULL (any component) stays NULL, never an empty list (none).
                List => format!(
                    "CASE WHEN ${0}::text IS NULL THEN NULL
                     ELSE ARRAY(SELECT json_array_elements_text(${0}::text::json)) END",
                    i + 1
                ),
                Stamp => format!("to_timestamp(${}::bigint / 1000.0)", i + 1),
            })
            .collect();
        let insert = format!(
            "INSERT INTO {table} ({}) {}VALUES ({})",
            names.join(", "),
            if *identity {
                "OVERRIDING SYSTEM VALUE "
            } else {
                ""
            },
            values.join(", ")
        );
        let insert = tx.prepare(&insert)?;
        let mut read = sqlite
            .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
            .map_err(lite)?;
        let mut rows = read.query([]).map_err(lite)?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(lite)? {
            let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(cols.len());
            for (i, (col, kind)) in cols.iter().enumerate() {
                let v: rusqlite::types::Value = row.get(i).map_err(lite)?;
                params.push(match (kind, v) {
                    (_, rusqlite::types::Value::Null) => match kind {
                        Text | List => Box::new(None::<String>),
                        _ => Box::new(None::<i64>),
                    },
                    (Text | List, rusqlite::types::Value::Text(t)) => Box::new(Some(t)),
                    (Int | Bool | Stamp, rusqlite::types::Value::Integer(x)) => Box::new(Some(x)),
                    (_, other) => {
                        return Err(PgError::Import(format!(
                            "{}: {table}.{col} holds {other:?}, not what this statusrelay's spool holds there",
                            spool.display()
                        )));
                    }
                });
            }
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
            tx.execute(&insert, &refs)?;
            n += 1;
        }
        copied.push((*table, n));
    }
    // What the spool's flusher had in flight is the writer's to send again.
    tx.execute(
        "UPDATE outbox SET status = 'pending', last_error = coalesce(last_error, 'in flight when the spool was copied; sending again') WHERE status = 'sending'",
        &[],
    )?;
    let flusher: Option<(Option<i64>, Option<String>, Option<i64>)> = sqlite
        .query_row(
            "SELECT last_success_at, last_error, last_error_at FROM flusher WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(lite)?;
    if let Some((ok, err, err_at)) = flusher {
        tx.execute(
            "INSERT INTO flusher (id, last_success_at, last_error, last_error_at)
             VALUES (1, $1, $2, $3)",
            &[&ok, &err, &err_at],
        )?;
    }
    tx.execute("UPDATE nodes SET heard_at = now()", &[])?;
    for (table, identity, _) in TABLES {
        if *identity {
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )?;
        }
    }
    tx.commit()?;
    let _ = sqlite.execute_batch("COMMIT");
    Ok(copied)
}
