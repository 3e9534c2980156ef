//! The aggregator's store, whichever it is: its SQLite spool (one aggregator) or PostgreSQL
//! (several instances, one elected writer). One enum, every part of the seam dispatched to the
//! store behind it, one error type.
//!
//! Invariants:
//! - Nothing here decides: each call is the store's own (held to one behaviour by
//!   `crates/pg/tests/conformance.rs`). What only one store has (SQLite's busy timeout and
//!   page cache, the file replaced under it) is asked of that store only.

use std::collections::HashMap;

use statusrelay_core::State;
use statusrelay_core::nodes::NodeRule;
use statusrelay_core::store::{Credential, CredentialReads, NodeCredentials};
use statusrelay_pg::{PgError, PgStore};
use statusrelay_spool::store::{
    Deliveries, Holds, Incidents, Nodes, PageState, Queue, Record, Replay, ReportIn, Reports,
    Retention, Staleness,
};
use statusrelay_spool::{
    Apply, Claimed, EventContext, FailingTest, Forgotten, Incident, IncidentStatus, Item, Marks,
    NewEvent, Node, NodeReport, Outcome, Recorded, RejectedEvent, Reported, Silence, Spool,
    SpoolError, StaleChange, Stats, Touch, Window,
};

/// The aggregator's store.
pub enum Store {
    /// One aggregator's SQLite spool.
    Sqlite(Spool),
    /// A PostgreSQL database shared by several instances.
    Postgres(Box<PgStore>),
}

/// What a store failed with.
#[derive(Debug, thiserror::Error)]
pub enum StoreFailure {
    /// The SQLite spool's error.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The PostgreSQL store's error.
    #[error(transparent)]
    Pg(#[from] PgError),
}

impl StoreFailure {
    /// Would the same call succeed later on its own (a spool another process holds, a
    /// database restarting or failing over)?
    pub fn is_temporary(&self) -> bool {
        match self {
            StoreFailure::Spool(e) => e.is_temporary(),
            StoreFailure::Pg(e) => e.is_retryable(),
        }
    }

    /// Was a delivery's claim no longer valid?
    pub fn is_stale_claim(&self) -> bool {
        match self {
            StoreFailure::Spool(e) => e.is_stale_claim(),
            StoreFailure::Pg(e) => matches!(e, PgError::StaleClaim { .. }),
        }
    }

    /// Does another instance write the page now (this one was deposed, or never elected)?
    pub fn is_deposed(&self) -> bool {
        matches!(self, StoreFailure::Pg(e) if e.is_deposed())
    }
}

/// The same call on whichever store this is, its error made a [`StoreFailure`].
macro_rules! both {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call.map_err(StoreFailure::from),
            Store::Postgres($s) => {
                let $s: &mut PgStore = $s;
                $call.map_err(StoreFailure::from)
            }
        }
    };
}

impl Store {
    /// The SQLite spool, when this is one.
    pub fn sqlite(&mut self) -> Option<&mut Spool> {
        match self {
            Store::Sqlite(s) => Some(s),
            Store::Postgres(_) => None,
        }
    }

    /// Write deliveries and page state as `instance` under `term` (PostgreSQL; the SQLite
    /// spool has one writer by its lock file).
    pub fn write_as(&mut self, instance: &str, term: statusrelay_pg::Term) {
        if let Store::Postgres(p) = self {
            p.writing_as(instance, term);
        }
    }

    /// Write no delivery and no page state (PostgreSQL: another instance writes).
    pub fn follow(&mut self) {
        if let Store::Postgres(p) = self {
            p.following();
        }
    }

    /// The SQLite spool, when this is one, to read.
    pub fn as_sqlite(&self) -> Option<&Spool> {
        match self {
            Store::Sqlite(s) => Some(s),
            Store::Postgres(_) => None,
        }
    }

    /// Now, on the store's clock (the instance's).
    pub fn now(&self) -> i64 {
        match self {
            Store::Sqlite(s) => s.now(),
            Store::Postgres(p) => p.now(),
        }
    }

    /// The flusher (the writer) is alive: the spool's flusher row, or this instance's row.
    pub fn heartbeat(&mut self, pid: u32, started_at: i64) -> Result<(), StoreFailure> {
        match self {
            Store::Sqlite(s) => Ok(s.heartbeat(pid, started_at)?),
            Store::Postgres(p) => Ok(p.heartbeat(started_at)?),
        }
    }

    /// The flusher stopped cleanly (an instance's row stays: `status` shows when it was seen).
    pub fn flusher_stopped(&mut self) -> Result<(), StoreFailure> {
        match self {
            Store::Sqlite(s) => Ok(s.flusher_stopped()?),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// The queue's figures and the flusher's last results.
    pub fn stats(&mut self) -> Result<Stats, StoreFailure> {
        match self {
            Store::Sqlite(s) => Ok(s.stats()?),
            Store::Postgres(p) => Ok(p.stats()?),
        }
    }

    /// Moves when something was committed that the flusher may have to act on.
    pub fn data_version(&mut self) -> Result<i64, StoreFailure> {
        match self {
            Store::Sqlite(s) => Ok(s.data_version()?),
            Store::Postgres(p) => Ok(p.data_version()?),
        }
    }
}

impl CredentialReads for Store {
    type Error = StoreFailure;

    fn credentials_version(&mut self) -> Result<i64, StoreFailure> {
        both!(self, s => CredentialReads::credentials_version(s))
    }
    fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>), StoreFailure> {
        both!(self, s => CredentialReads::credentials(s))
    }
}

impl NodeCredentials for Store {
    fn add_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool, StoreFailure> {
        both!(self, s => NodeCredentials::add_node(s, name, secret_sha256, components))
    }
    fn put_node(
        &mut self,
        name: &str,
        secret_sha256: &str,
        components: Option<&[String]>,
    ) -> Result<bool, StoreFailure> {
        both!(self, s => NodeCredentials::put_node(s, name, secret_sha256, components))
    }
}

impl Record for Store {
    fn record(&mut self, ev: &NewEvent, applies: &[Apply]) -> Result<Recorded, StoreFailure> {
        both!(self, s => Record::record(s, ev, applies))
    }
    fn record_rejected(&mut self, ev: &NewEvent, error: &str) -> Result<i64, StoreFailure> {
        both!(self, s => Record::record_rejected(s, ev, error))
    }
}

impl Reports for Store {
    type Error = StoreFailure;

    fn record_reports(
        &mut self,
        reports: &[ReportIn<'_, '_>],
    ) -> Result<Vec<Reported>, StoreFailure> {
        both!(self, s => Reports::record_reports(s, reports))
    }
    fn report_is_noop(
        &mut self,
        report: &NodeReport<'_>,
        applies: &[Apply],
    ) -> Result<bool, StoreFailure> {
        both!(self, s => Reports::report_is_noop(s, report, applies))
    }
    fn touch_nodes(&mut self, touches: &[Touch]) -> Result<(), StoreFailure> {
        both!(self, s => Reports::touch_nodes(s, touches))
    }
    fn marks(&mut self, node: &str) -> Result<Option<Marks>, StoreFailure> {
        both!(self, s => Reports::marks(s, node))
    }
    fn desired(&mut self) -> Result<Vec<(String, State, i64)>, StoreFailure> {
        both!(self, s => Reports::desired(s))
    }
    fn failing_tests(&mut self, component: &str) -> Result<Vec<FailingTest>, StoreFailure> {
        both!(self, s => Reports::failing_tests(s, component))
    }
}

impl Staleness for Store {
    fn apply_silence(
        &mut self,
        silences: &[Silence],
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Vec<StaleChange>, StoreFailure> {
        both!(self, s => Staleness::apply_silence(s, silences, rule_of))
    }
}

impl Nodes for Store {
    fn nodes(&mut self) -> Result<Vec<Node>, StoreFailure> {
        both!(self, s => Nodes::nodes(s))
    }
    fn node(&mut self, name: &str) -> Result<Option<Node>, StoreFailure> {
        both!(self, s => Nodes::node(s, name))
    }
    fn node_failing(&mut self, name: &str) -> Result<Vec<(String, String, String)>, StoreFailure> {
        both!(self, s => Nodes::node_failing(s, name))
    }
    fn component_nodes(&mut self, component: &str) -> Result<Vec<(String, bool)>, StoreFailure> {
        both!(self, s => Nodes::component_nodes(s, component))
    }
    fn forget_node(
        &mut self,
        name: &str,
        ev: &NewEvent,
        rule_of: &dyn Fn(&str) -> NodeRule,
    ) -> Result<Option<Forgotten>, StoreFailure> {
        both!(self, s => Nodes::forget_node(s, name, ev, rule_of))
    }
    fn note_refusals(&mut self, counted: &[(String, String, u64)]) -> Result<(), StoreFailure> {
        both!(self, s => Nodes::note_refusals(s, counted))
    }
    fn set_unrouted(
        &mut self,
        name: &str,
        services: &[(String, String)],
    ) -> Result<(), StoreFailure> {
        both!(self, s => Nodes::set_unrouted(s, name, services))
    }
    fn unrouted(&mut self, name: &str) -> Result<Vec<(String, String, i64)>, StoreFailure> {
        both!(self, s => Nodes::unrouted(s, name))
    }
}

impl Replay for Store {
    fn replay_items(
        &mut self,
        ids: &[i64],
        dead: bool,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<statusrelay_spool::Replayed, StoreFailure> {
        both!(self, s => Replay::replay_items(s, ids, dead, component, dry_run))
    }
    fn replay_since(
        &mut self,
        since_ms: i64,
        component: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<(String, State)>, StoreFailure> {
        both!(self, s => Replay::replay_since(s, since_ms, component, dry_run))
    }
    fn replay_rejected(
        &mut self,
        id: i64,
        ev: &NewEvent,
        applies: &[Apply],
    ) -> Result<Recorded, StoreFailure> {
        both!(self, s => Replay::replay_rejected(s, id, ev, applies))
    }
    fn set_rejected_error(&mut self, id: i64, error: &str) -> Result<(), StoreFailure> {
        both!(self, s => Replay::set_rejected_error(s, id, error))
    }
    fn last_event_at_or_before(&mut self, ms: i64) -> Result<i64, StoreFailure> {
        both!(self, s => Replay::last_event_at_or_before(s, ms))
    }
    fn record_moved(
        &mut self,
        ev: &NewEvent,
        applies: &[Apply],
        snapshot: i64,
    ) -> Result<Recorded, StoreFailure> {
        both!(self, s => Replay::record_moved(s, ev, applies, snapshot))
    }
}

impl Retention for Store {
    fn prune_batch(
        &mut self,
        max_age: std::time::Duration,
        max_events: u64,
        batch: u32,
    ) -> Result<statusrelay_spool::Pruned, StoreFailure> {
        both!(self, s => Retention::prune_batch(s, max_age, max_events, batch))
    }
}

impl Queue for Store {
    fn open_items(&mut self) -> Result<Vec<Item>, StoreFailure> {
        both!(self, s => Queue::open_items(s))
    }
    fn rejected_events(&mut self) -> Result<Vec<RejectedEvent>, StoreFailure> {
        both!(self, s => Queue::rejected_events(s))
    }
}

impl Deliveries for Store {
    fn recover_claims(&mut self, verify_at: i64) -> Result<usize, StoreFailure> {
        both!(self, s => Deliveries::recover_claims(s, verify_at))
    }
    fn claim_next(&mut self, claim: &str) -> Result<(Option<Claimed>, Vec<Item>), StoreFailure> {
        both!(self, s => Deliveries::claim_next(s, claim))
    }
    fn finish(&mut self, claimed: &Claimed, outcome: &Outcome) -> Result<(), StoreFailure> {
        both!(self, s => Deliveries::finish(s, claimed, outcome))
    }
    fn next_due_at(&mut self) -> Result<Option<i64>, StoreFailure> {
        both!(self, s => Deliveries::next_due_at(s))
    }
    fn is_stale_claim(e: &StoreFailure) -> bool {
        e.is_stale_claim()
    }
}

impl PageState for Store {
    fn page_state(
        &mut self,
        backend: &str,
        component: &str,
    ) -> Result<Option<State>, StoreFailure> {
        both!(self, s => PageState::page_state(s, backend, component))
    }
    fn verify_later(
        &mut self,
        backend: &str,
        component: &str,
        at: i64,
    ) -> Result<(), StoreFailure> {
        both!(self, s => PageState::verify_later(s, backend, component, at))
    }
    fn verifications_due(&mut self, backend: &str) -> Result<Vec<(String, State)>, StoreFailure> {
        both!(self, s => PageState::verifications_due(s, backend))
    }
    fn next_verify_at(&mut self, backend: &str) -> Result<Option<i64>, StoreFailure> {
        both!(self, s => PageState::next_verify_at(s, backend))
    }
    fn verified(
        &mut self,
        backend: &str,
        component: &str,
        shows: Option<State>,
    ) -> Result<(), StoreFailure> {
        both!(self, s => PageState::verified(s, backend, component, shows))
    }
    fn enqueue_repair(
        &mut self,
        component: &str,
        message: &str,
    ) -> Result<Option<i64>, StoreFailure> {
        both!(self, s => PageState::enqueue_repair(s, component, message))
    }
    fn remote_id(
        &mut self,
        backend: &str,
        component: &str,
    ) -> Result<Option<String>, StoreFailure> {
        both!(self, s => PageState::remote_id(s, backend, component))
    }
    fn set_remote_id(
        &mut self,
        backend: &str,
        component: &str,
        id: Option<&str>,
    ) -> Result<(), StoreFailure> {
        both!(self, s => PageState::set_remote_id(s, backend, component, id))
    }
}

impl Incidents for Store {
    fn open_incident(
        &mut self,
        backend: &str,
        component: &str,
    ) -> Result<Option<Incident>, StoreFailure> {
        both!(self, s => Incidents::open_incident(s, backend, component))
    }
    fn incidents(&mut self, backend: &str) -> Result<Vec<Incident>, StoreFailure> {
        both!(self, s => Incidents::incidents(s, backend))
    }
    fn incident_intent(
        &mut self,
        backend: &str,
        component: &str,
        name: &str,
        state: State,
    ) -> Result<Incident, StoreFailure> {
        both!(self, s => Incidents::incident_intent(s, backend, component, name, state))
    }
    fn incident_opened(
        &mut self,
        id: i64,
        remote_id: &str,
        state: State,
    ) -> Result<(), StoreFailure> {
        both!(self, s => Incidents::incident_opened(s, id, remote_id, state))
    }
    fn incident_state(&mut self, id: i64, state: State) -> Result<(), StoreFailure> {
        both!(self, s => Incidents::incident_state(s, id, state))
    }
    fn incident_status(
        &mut self,
        id: i64,
        status: IncidentStatus,
        note: Option<&str>,
    ) -> Result<(), StoreFailure> {
        both!(self, s => Incidents::incident_status(s, id, status, note))
    }
    fn event_context(&mut self, event_id: i64) -> Result<EventContext, StoreFailure> {
        both!(self, s => Incidents::event_context(s, event_id))
    }
}

impl Holds for Store {
    fn maintenance_start(
        &mut self,
        component: &str,
        ends_at: i64,
        reason: Option<&str>,
        show: bool,
    ) -> Result<Window, StoreFailure> {
        both!(self, s => Holds::maintenance_start(s, component, ends_at, reason, show))
    }
    fn maintenance_stop(&mut self, component: Option<&str>) -> Result<Vec<Window>, StoreFailure> {
        both!(self, s => Holds::maintenance_stop(s, component))
    }
    fn expire_maintenance(&mut self) -> Result<Vec<Window>, StoreFailure> {
        both!(self, s => Holds::expire_maintenance(s))
    }
    fn maintenance_active(&mut self, component: &str) -> Result<Option<Window>, StoreFailure> {
        both!(self, s => Holds::maintenance_active(s, component))
    }
    fn release_held(&mut self, component: Option<&str>) -> Result<usize, StoreFailure> {
        both!(self, s => Holds::release_held(s, component))
    }
    fn maintenance_list(&mut self, all: bool) -> Result<Vec<Window>, StoreFailure> {
        both!(self, s => Holds::maintenance_list(s, all))
    }
}
