//! A relaying node's side of the fleet (`[backend] kind = "relay"`): its flusher run (the
//! epoch its reports are ordered under) and the snapshots it owes the aggregator.
//!
//! Invariants:
//! - The epoch grows at every flusher start, even if the clock went back or the spool was
//!   restored from a backup: it is the larger of the wall clock and the last epoch plus one.
//! - The spool has a reporter id, random, made once and sent with every batch: the aggregator
//!   orders a node's reports within one reporter's sequence, so a reinstalled node (a fresh
//!   spool, a new id) is heard at once whatever the old spool's marks were.
//! - An epoch far ahead of the clock (the clock was once set to 2099, then corrected) would
//!   be refused by the aggregator forever: the sequence starts anew instead, under a new
//!   reporter id, with the epoch back on the clock (said by [`RelayStart::restarted`]).
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

/// A relaying flusher's run: what its reports are ordered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayStart {
    pub epoch: i64,
    /// The spool's reporter id.
    pub reporter: String,
    /// The last epoch was far ahead of the clock: this run starts a new sequence under a new
    /// reporter id (the old epoch, for the warning).
    pub restarted: Option<i64>,
}

impl Spool {
    /// A flusher starts relaying: its epoch and reporter (see the invariants), and a snapshot
    /// is owed.
    pub fn relay_start(&mut self) -> Result<RelayStart> {
        let now = self.now();
        self.write(|tx, e| {
            let last: Option<(i64, Option<String>)> = tx
                .query_row("SELECT epoch, reporter FROM relay WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(e)?;
            let ahead = last
                .as_ref()
                .map(|l| l.0)
                .filter(|l| *l > now.saturating_add(statusrelay_core::relay::MAX_AHEAD_MS));
            let (epoch, reporter) = match (&last, ahead) {
                (Some((_, Some(r))), None) => (
                    now.max(last.as_ref().map_or(i64::MIN, |l| l.0.saturating_add(1))),
                    r.clone(),
                ),
                _ => {
                    let r: String = tx
                        .query_row("SELECT lower(hex(randomblob(16)))", [], |r| r.get(0))
                        .map_err(e)?;
                    let epoch = match (&last, ahead) {
                        (Some(l), None) => now.max(l.0.saturating_add(1)),
                        _ => now,
                    };
                    (epoch, r)
                }
            };
            tx.execute(
                "INSERT INTO relay (id, epoch, snapshot_due, reporter) VALUES (1, ?1, 1, ?2)
                 ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, reporter = excluded.reporter,
                   snapshot_due = relay.snapshot_due + 1",
                params![epoch, reporter],
            )
            .map_err(e)?;
            Ok(RelayStart {
                epoch,
                reporter,
                restarted: ahead,
            })
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
