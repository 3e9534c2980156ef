//! The store's seam, the parts whose values are the spool's (a node's report, an event, a
//! test change): the traits beside `statusrelay_core::store`'s, implemented by the SQLite
//! spool here and by the PostgreSQL store (`statusrelay_pg::PgStore`), both held to one
//! behaviour by `crates/pg/tests/conformance.rs`.
//!
//! Invariants:
//! - The decisions are this crate's pure functions (`judge`, `judge_reporter`,
//!   `desired_state`), shared by both stores: a store only reads the facts and writes back
//!   what was decided, in one transaction per call.
//! - A node's marks are a row that a report's transaction locks: two reports of one node,
//!   on one connection or two, are recorded one after the other, never interleaved.

use statusrelay_core::State;
use statusrelay_core::nodes::NodeRule;

use crate::{
    Apply, FailingTest, Marks, NewEvent, NodeReport, Reported, Silence, Spool, SpoolError,
    StaleChange, Touch,
};

/// One report as it is recorded: the node's report, its event, its test changes.
pub type ReportIn<'a, 'r> = (&'a NodeReport<'r>, &'a NewEvent, &'a [Apply]);

/// Recording the nodes' reports, and reading what they made the components show.
pub trait Reports {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Several reports (one request, or a group commit of several) in one transaction, in
    /// order, each judged against its node's marks and recorded where it is newer.
    fn record_reports(
        &mut self,
        reports: &[ReportIn<'_, '_>],
    ) -> Result<Vec<Reported>, Self::Error>;

    /// Would recording this report change nothing but the node's liveness and marks? Only
    /// when `judge` calls it routine and it names exactly the failing tests the node has where
    /// it speaks (see `liveness`). A read.
    fn report_is_noop(
        &mut self,
        report: &NodeReport<'_>,
        applies: &[Apply],
    ) -> Result<bool, Self::Error>;

    /// Write what unchanged reports left, in one transaction; marks only move forward.
    fn touch_nodes(&mut self, touches: &[Touch]) -> Result<(), Self::Error>;

    /// The marks held of a node, its feeds included; None for a node the store does not know.
    fn marks(&mut self, node: &str) -> Result<Option<Marks>, Self::Error>;

    /// The state every component should show: (component, state, changed_at).
    fn desired(&mut self) -> Result<Vec<(String, State, i64)>, Self::Error>;

    /// A component's failing tests, by host, service and test.
    fn failing_tests(&mut self, component: &str) -> Result<Vec<FailingTest>, Self::Error>;
}

/// Nodes found silent too long, recorded: each is an event that recomputes every component
/// the node touches, so the page follows without any report arriving. Who finds them silent
/// is the caller's (a single aggregator's memory, on a monotonic clock; on PostgreSQL, the
/// writer, from the database: `PgStore::silent_nodes`).
pub trait Staleness: Reports {
    /// Mark the nodes stale; one already stale, or gone, is passed over. The changes made.
    fn apply_silence(
        &mut self,
        silences: &[Silence],
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Vec<StaleChange>, Self::Error>;
}

impl Staleness for Spool {
    fn apply_silence(
        &mut self,
        silences: &[Silence],
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Vec<StaleChange>, SpoolError> {
        Spool::apply_silence(self, silences, rule_of)
    }
}

impl Reports for Spool {
    type Error = SpoolError;

    fn record_reports(
        &mut self,
        reports: &[ReportIn<'_, '_>],
    ) -> Result<Vec<Reported>, SpoolError> {
        Spool::record_reports(self, reports)
    }

    fn report_is_noop(
        &mut self,
        report: &NodeReport<'_>,
        applies: &[Apply],
    ) -> Result<bool, SpoolError> {
        Spool::report_is_noop(self, report, applies)
    }

    fn touch_nodes(&mut self, touches: &[Touch]) -> Result<(), SpoolError> {
        Spool::touch_nodes(self, touches)
    }

    fn marks(&mut self, node: &str) -> Result<Option<Marks>, SpoolError> {
        let e = self.err();
        let Some(mut marks) = crate::report::read_marks(&self.conn, node).map_err(&e)? else {
            return Ok(None);
        };
        marks.feeds = crate::report::read_feeds(&self.conn, node).map_err(&e)?;
        Ok(Some(marks))
    }

    fn desired(&mut self) -> Result<Vec<(String, State, i64)>, SpoolError> {
        Spool::desired(self)
    }

    fn failing_tests(&mut self, component: &str) -> Result<Vec<FailingTest>, SpoolError> {
        Spool::failing_tests(self, component)
    }
}
