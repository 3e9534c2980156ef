//! A relaying node's side of the fleet (`[backend] kind = "relay"`): its flusher run (the
//! epoch its reports are ordered under) and the snapshots it owes the aggregator.
//!
//! Invariants:
//! - The epoch grows at every flusher start, even if the clock went back or the spool was
//!   restored from a backup: it is the larger of the wall clock and the last epoch plus one.
//! - A view is read in one read transaction: its `seq` (the newest event id) and its tests
//!   are the same instant's, so the same `seq` always means the same truth.
//! - A snapshot request (`resync`, a flusher start) is a counter; a snapshot sent clears only
//!   the requests it saw, so one made while it was in flight is still owed.

use rusqlite::{OptionalExtension, params};

use super::*;

/// A node's failing tests as of one instant of its spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayView {
    /// The newest event id at that instant.
    pub seq: i64,
    /// (component, its failing tests) for each component asked about.
    pub components: Vec<(String, Vec<FailingTest>)>,
}

impl Spool {
    /// A flusher starts relaying: its epoch (see the invariants), and a snapshot is owed.
    pub fn relay_start(&mut self) -> Result<i64> {
        let now = self.now();
        self.write(|tx, e| {
            let last: Option<i64> = tx
                .query_row("SELECT epoch FROM relay WHERE id = 1", [], |r| r.get(0))
                .optional()
                .map_err(e)?;
            let epoch = now.max(last.map_or(i64::MIN, |l| l + 1));
            tx.execute(
                "INSERT INTO relay (id, epoch, snapshot_due) VALUES (1, ?1, 1)
                 ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch,
                   snapshot_due = relay.snapshot_due + 1",
                params![epoch],
            )
            .map_err(e)?;
            Ok(epoch)
        })
    }

    /// Ask the flusher for a snapshot soon (`resync` changed what the node knows).
    pub fn request_snapshot(&mut self) -> Result<()> {
        let now = self.now();
        self.write(|tx, e| {
            tx.execute(
                "INSERT INTO relay (id, epoch, snapshot_due) VALUES (1, ?1, 1)
                 ON CONFLICT (id) DO UPDATE SET snapshot_due = relay.snapshot_due + 1",
                params![now],
            )
            .map_err(e)?;
            Ok(())
        })
    }

    /// The snapshot requests outstanding (0: none).
    pub fn snapshot_due(&self) -> Result<i64> {
        self.scalar("SELECT coalesce((SELECT snapshot_due FROM relay WHERE id = 1), 0)")
    }

    /// A snapshot that saw `due` requests was delivered.
    pub fn snapshot_sent(&mut self, due: i64) -> Result<()> {
        self.write(|tx, e| {
            tx.execute(
                "UPDATE relay SET snapshot_due = max(0, snapshot_due - ?1) WHERE id = 1",
                params![due],
            )
            .map_err(e)?;
            Ok(())
        })
    }

    /// The failing tests of `components` and the newest event id, as of one instant.
    pub fn relay_view(&self, components: &[&str]) -> Result<RelayView> {
        let tx = self.conn.unchecked_transaction().map_err(self.err())?;
        let seq: i64 = tx
            .query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))
            .map_err(self.err())?;
        let mut out = Vec::with_capacity(components.len());
        for c in components {
            out.push((c.to_string(), self.failing_tests(c)?));
        }
        tx.finish().map_err(self.err())?;
        Ok(RelayView {
            seq,
            components: out,
        })
    }
}
