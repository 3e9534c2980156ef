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
    Apply, Claimed, EventContext, FailingTest, Forgotten, Incident, IncidentStatus, Item, Marks,
    NewEvent, Node, NodeReport, Outcome, Pruned, Recorded, RejectedEvent, Reported, Silence, Spool,
    SpoolError, StaleChange, Touch, Window,
};

pub use crate::replay::Replay;

/// One report as it is recorded: the node's report, its event, its test changes.
pub type ReportIn<'a, 'r> = (&'a NodeReport<'r>, &'a NewEvent, &'a [Apply]);

/// Recording an event of a local source (a maintenance window shown, an operator's manual
/// event): its test changes applied and the components they touch computed, in one
/// transaction.
pub trait Record: Reports {
    fn record(&mut self, ev: &NewEvent, applies: &[Apply]) -> Result<Recorded, Self::Error>;

    /// Keep an event that could not be mapped, with why: it waits for `replay --rejected`.
    fn record_rejected(&mut self, ev: &NewEvent, error: &str) -> Result<i64, Self::Error>;
}

impl Record for Spool {
    fn record(&mut self, ev: &NewEvent, applies: &[Apply]) -> Result<Recorded, SpoolError> {
        Spool::record(self, ev, applies, None)
    }

    fn record_rejected(&mut self, ev: &NewEvent, error: &str) -> Result<i64, SpoolError> {
        Spool::record_rejected(self, ev, error)
    }
}

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

/// What `queue` lists: deliveries pending, in flight or dead, and events waiting for
/// `replay --rejected`, oldest first.
pub trait Queue: Reports {
    fn open_items(&mut self) -> Result<Vec<Item>, Self::Error>;
    fn rejected_events(&mut self) -> Result<Vec<RejectedEvent>, Self::Error>;
}

impl Queue for Spool {
    fn open_items(&mut self) -> Result<Vec<Item>, SpoolError> {
        Spool::open_items(self)
    }
    fn rejected_events(&mut self) -> Result<Vec<RejectedEvent>, SpoolError> {
        Spool::rejected_events(self)
    }
}

/// Retention: what is finished and past the limits, pruned in bounded batches.
pub trait Retention: Reports {
    /// At most `batch` finished deliveries finished before `max_age` ago, and at most `batch`
    /// events older than that or beyond the newest `max_events`, in one short transaction.
    /// An event a delivery or a test row still points at, or a rejected one waiting for
    /// `replay --rejected`, is kept whatever its age.
    fn prune_batch(
        &mut self,
        max_age: std::time::Duration,
        max_events: u64,
        batch: u32,
    ) -> Result<Pruned, Self::Error>;
}

impl Retention for Spool {
    fn prune_batch(
        &mut self,
        max_age: std::time::Duration,
        max_events: u64,
        batch: u32,
    ) -> Result<Pruned, SpoolError> {
        Spool::prune_batch(self, max_age, max_events, batch)
    }
}

/// The queue of deliveries, worked by the one writer. On PostgreSQL every write here is fenced
/// by the writer's term (`PgStore::writing_as`): a deposed writer's claim or finish is refused
/// and changes nothing.
pub trait Deliveries: Reports {
    /// Deliveries left in flight by a writer that stopped go back to pending, and the page is
    /// read back at `verify_at` (a request in flight may still land). How many.
    fn recover_claims(&mut self, verify_at: i64) -> Result<usize, Self::Error>;

    /// Supersede every pending delivery a newer one of its component replaces, then claim the
    /// next due one under `claim`. The claimed delivery and the superseded ones (by id).
    fn claim_next(&mut self, claim: &str) -> Result<(Option<Claimed>, Vec<Item>), Self::Error>;

    /// Record how a claimed delivery ended; a claim no longer valid is an error
    /// ([`Deliveries::is_stale_claim`]) and records nothing.
    fn finish(&mut self, claimed: &Claimed, outcome: &Outcome) -> Result<(), Self::Error>;

    /// When the next pending delivery is due (None: nothing pending).
    fn next_due_at(&mut self) -> Result<Option<i64>, Self::Error>;

    /// Is this error a claim that was no longer valid?
    fn is_stale_claim(e: &Self::Error) -> bool;
}

/// What the page was confirmed to show, its ids, and its read-backs.
pub trait PageState: Reports {
    fn page_state(&mut self, backend: &str, component: &str) -> Result<Option<State>, Self::Error>;
    fn verify_later(&mut self, backend: &str, component: &str, at: i64) -> Result<(), Self::Error>;
    fn verifications_due(&mut self, backend: &str) -> Result<Vec<(String, State)>, Self::Error>;
    fn next_verify_at(&mut self, backend: &str) -> Result<Option<i64>, Self::Error>;
    fn verified(
        &mut self,
        backend: &str,
        component: &str,
        shows: Option<State>,
    ) -> Result<(), Self::Error>;
    fn enqueue_repair(
        &mut self,
        component: &str,
        message: &str,
    ) -> Result<Option<i64>, Self::Error>;
    fn remote_id(&mut self, backend: &str, component: &str) -> Result<Option<String>, Self::Error>;
    fn set_remote_id(
        &mut self,
        backend: &str,
        component: &str,
        id: Option<&str>,
    ) -> Result<(), Self::Error>;
}

/// The incidents statusrelay opens: the intent committed before the request, the page's id
/// after it, resolving and resolved. On PostgreSQL every write is fenced by the writer's term.
pub trait Incidents: Reports {
    /// The unresolved incident of a component on `backend`, if any.
    fn open_incident(
        &mut self,
        backend: &str,
        component: &str,
    ) -> Result<Option<Incident>, Self::Error>;
    /// Every incident on `backend`, oldest first.
    fn incidents(&mut self, backend: &str) -> Result<Vec<Incident>, Self::Error>;
    /// Record the intent to open an incident, before the request.
    fn incident_intent(
        &mut self,
        backend: &str,
        component: &str,
        name: &str,
        state: State,
    ) -> Result<Incident, Self::Error>;
    /// The page confirmed (or a lookup found) the incident.
    fn incident_opened(
        &mut self,
        id: i64,
        remote_id: &str,
        state: State,
    ) -> Result<(), Self::Error>;
    /// The incident now describes `state`.
    fn incident_state(&mut self, id: i64, state: State) -> Result<(), Self::Error>;
    /// Resolving (before the request), resolved (after), or lost.
    fn incident_status(
        &mut self,
        id: i64,
        status: IncidentStatus,
        note: Option<&str>,
    ) -> Result<(), Self::Error>;
    /// The event behind a delivery, for incident texts.
    fn event_context(&mut self, event_id: i64) -> Result<EventContext, Self::Error>;
}

/// Local maintenance windows, and the deliveries they hold. Starting and stopping a window,
/// and releasing what it held, is the operator's (any instance); expiring windows is the
/// writer's (fenced on PostgreSQL).
pub trait Holds: Reports {
    fn maintenance_start(
        &mut self,
        component: &str,
        ends_at: i64,
        reason: Option<&str>,
        show: bool,
    ) -> Result<Window, Self::Error>;
    fn maintenance_stop(&mut self, component: Option<&str>) -> Result<Vec<Window>, Self::Error>;
    fn expire_maintenance(&mut self) -> Result<Vec<Window>, Self::Error>;
    fn maintenance_active(&mut self, component: &str) -> Result<Option<Window>, Self::Error>;
    fn release_held(&mut self, component: Option<&str>) -> Result<usize, Self::Error>;
    fn maintenance_list(&mut self, all: bool) -> Result<Vec<Window>, Self::Error>;
}

/// The nodes as `nodes` and `status` show them, and a node forgotten.
pub trait Nodes: Reports {
    /// Every node, by name.
    fn nodes(&mut self) -> Result<Vec<Node>, Self::Error>;
    /// One node by name.
    fn node(&mut self, name: &str) -> Result<Option<Node>, Self::Error>;
    /// The tests a node reported that are failing now: (component, service, test).
    fn node_failing(&mut self, name: &str) -> Result<Vec<(String, String, String)>, Self::Error>;
    /// The nodes that report on a component: (name, stale), by name.
    fn component_nodes(&mut self, component: &str) -> Result<Vec<(String, bool)>, Self::Error>;
    /// Forget a node in one transaction (its row, tests, feeds), recomputing every component
    /// it fed under `ev`. None when there was no such node.
    fn forget_node(
        &mut self,
        name: &str,
        ev: &NewEvent,
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Option<Forgotten>, Self::Error>;
    /// For each node, the last thing it was refused and how many more refusals.
    fn note_refusals(&mut self, counted: &[(String, String, u64)]) -> Result<(), Self::Error>;
    /// Replace a node's failing services that no component takes: (service, test families).
    fn set_unrouted(
        &mut self,
        name: &str,
        services: &[(String, String)],
    ) -> Result<(), Self::Error>;
    /// A node's failing services that no component takes: (service, tests, since).
    fn unrouted(&mut self, name: &str) -> Result<Vec<(String, String, i64)>, Self::Error>;
}

impl Nodes for Spool {
    fn nodes(&mut self) -> Result<Vec<Node>, SpoolError> {
        Spool::nodes(self)
    }
    fn node(&mut self, name: &str) -> Result<Option<Node>, SpoolError> {
        Spool::node(self, name)
    }
    fn node_failing(&mut self, name: &str) -> Result<Vec<(String, String, String)>, SpoolError> {
        Spool::node_failing(self, name)
    }
    fn component_nodes(&mut self, component: &str) -> Result<Vec<(String, bool)>, SpoolError> {
        Spool::component_nodes(self, component)
    }
    fn forget_node(
        &mut self,
        name: &str,
        ev: &NewEvent,
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Option<Forgotten>, SpoolError> {
        Spool::forget_node(self, name, ev, rule_of)
    }
    fn note_refusals(&mut self, counted: &[(String, String, u64)]) -> Result<(), SpoolError> {
        Spool::note_refusals(self, counted)
    }
    fn set_unrouted(
        &mut self,
        name: &str,
        services: &[(String, String)],
    ) -> Result<(), SpoolError> {
        Spool::set_unrouted(self, name, services)
    }
    fn unrouted(&mut self, name: &str) -> Result<Vec<(String, String, i64)>, SpoolError> {
        Spool::unrouted(self, name)
    }
}

impl Incidents for Spool {
    fn open_incident(
        &mut self,
        backend: &str,
        component: &str,
    ) -> Result<Option<Incident>, SpoolError> {
        Spool::open_incident(self, backend, component)
    }
    fn incidents(&mut self, backend: &str) -> Result<Vec<Incident>, SpoolError> {
        Spool::incidents(self, backend)
    }
    fn incident_intent(
        &mut self,
        backend: &str,
        component: &str,
        name: &str,
        state: State,
    ) -> Result<Incident, SpoolError> {
        Spool::incident_intent(self, backend, component, name, state)
    }
    fn incident_opened(
        &mut self,
        id: i64,
        remote_id: &str,
        state: State,
    ) -> Result<(), SpoolError> {
        Spool::incident_opened(self, id, remote_id, state)
    }
    fn incident_state(&mut self, id: i64, state: State) -> Result<(), SpoolError> {
        Spool::incident_state(self, id, state)
    }
    fn incident_status(
        &mut self,
        id: i64,
        status: IncidentStatus,
        note: Option<&str>,
    ) -> Result<(), SpoolError> {
        Spool::incident_status(self, id, status, note)
    }
    fn event_context(&mut self, event_id: i64) -> Result<EventContext, SpoolError> {
        Spool::event_context(self, event_id)
    }
}

impl Holds for Spool {
    fn maintenance_start(
        &mut self,
        component: &str,
        ends_at: i64,
        reason: Option<&str>,
        show: bool,
    ) -> Result<Window, SpoolError> {
        Spool::maintenance_start(self, component, ends_at, reason, show)
    }
    fn maintenance_stop(&mut self, component: Option<&str>) -> Result<Vec<Window>, SpoolError> {
        Spool::maintenance_stop(self, component)
    }
    fn expire_maintenance(&mut self) -> Result<Vec<Window>, SpoolError> {
        Spool::expire_maintenance(self)
    }
    fn maintenance_active(&mut self, component: &str) -> Result<Option<Window>, SpoolError> {
        Spool::maintenance_active(self, component)
    }
    fn release_held(&mut self, component: Option<&str>) -> Result<usize, SpoolError> {
        Spool::release_held(self, component)
    }
    fn maintenance_list(&mut self, all: bool) -> Result<Vec<Window>, SpoolError> {
        Spool::maintenance_list(self, all)
    }
}

impl Deliveries for Spool {
    fn recover_claims(&mut self, verify_at: i64) -> Result<usize, SpoolError> {
        Spool::recover_claims(self, verify_at)
    }
    fn claim_next(&mut self, claim: &str) -> Result<(Option<Claimed>, Vec<Item>), SpoolError> {
        Spool::claim_next(self, claim)
    }
    fn finish(&mut self, claimed: &Claimed, outcome: &Outcome) -> Result<(), SpoolError> {
        Spool::finish(self, claimed, outcome)
    }
    fn next_due_at(&mut self) -> Result<Option<i64>, SpoolError> {
        Spool::next_due_at(self)
    }
    fn is_stale_claim(e: &SpoolError) -> bool {
        e.is_stale_claim()
    }
}

impl PageState for Spool {
    fn page_state(&mut self, backend: &str, component: &str) -> Result<Option<State>, SpoolError> {
        Spool::page_state(self, backend, component)
    }
    fn verify_later(&mut self, backend: &str, component: &str, at: i64) -> Result<(), SpoolError> {
        Spool::verify_later(self, backend, component, at)
    }
    fn verifications_due(&mut self, backend: &str) -> Result<Vec<(String, State)>, SpoolError> {
        Spool::verifications_due(self, backend)
    }
    fn next_verify_at(&mut self, backend: &str) -> Result<Option<i64>, SpoolError> {
        Spool::next_verify_at(self, backend)
    }
    fn verified(
        &mut self,
        backend: &str,
        component: &str,
        shows: Option<State>,
    ) -> Result<(), SpoolError> {
        Spool::verified(self, backend, component, shows)
    }
    fn enqueue_repair(
        &mut self,
        component: &str,
        message: &str,
    ) -> Result<Option<i64>, SpoolError> {
        Spool::enqueue_repair(self, component, message)
    }
    fn remote_id(&mut self, backend: &str, component: &str) -> Result<Option<String>, SpoolError> {
        Spool::remote_id(self, backend, component)
    }
    fn set_remote_id(
        &mut self,
        backend: &str,
        component: &str,
        id: Option<&str>,
    ) -> Result<(), SpoolError> {
        Spool::set_remote_id(self, backend, component, id)
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
