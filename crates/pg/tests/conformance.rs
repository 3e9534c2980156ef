//! The store's seam (`statusrelay_core::store`) held to one behaviour: every check runs on the
//! SQLite spool and on the PostgreSQL store (a real server, a cluster of the test's own), and
//! a difference between them is a failure. Without a PostgreSQL server the PostgreSQL half is
//! skipped with a message, except under `CI=true`, where that is a failure.
//!
//! The traces, one function per part, each generic over the store, are in
//! `conformance/`: `reports.rs` (reports, staleness), `writer.rs` (deliveries and the page's
//! state, incidents and windows), `nodes.rs` (credentials, the nodes as shown); the SQLite
//! traces pinned beside them.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use std::sync::atomic::{AtomicI64, Ordering};

use statusrelay_core::State;
use statusrelay_core::nodes::{MajorAt, NodeRule, RuleKind, StalePolicy, Via};
use statusrelay_core::store::{Credential, CredentialReads, NodeCredentials, any_reads};
use statusrelay_core::time::Clock;
use statusrelay_pg::{PgStore, migrate};
use statusrelay_spool::store::{
    Deliveries, Holds, Incidents, Nodes, PageState, Queue, Record, Replay, Reports, Retention,
    Staleness,
};
use statusrelay_spool::{
    Apply, Identity, IncidentStatus, NewEvent, NodeReport, Outcome, Snapshot, TestChange, Touch,
};
use statusrelay_testkit::postgres::Postgres;

/// A clock the test moves, shared by both stores so their times can be compared.
struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a store did, step by step, so the two can be compared whole.
type Trace = Vec<String>;

#[path = "conformance/nodes.rs"]
mod nodes;
#[path = "conformance/reports.rs"]
mod reports;
#[path = "conformance/writer.rs"]
mod writer;

fn event(service: &str, description: &str) -> NewEvent {
    NewEvent {
        service: Some(service.into()),
        description: Some(description.into()),
        ..NewEvent::new(statusrelay_core::EventSource::Monit {
            monit: statusrelay_core::RawEvent::default(),
            component: None,
        })
    }
}

fn change(component: &str, host: &str, test: &str, change: TestChange, rule: NodeRule) -> Apply {
    Apply {
        component: component.into(),
        host: host.into(),
        service: "nginx".into(),
        test: test.into(),
        change,
        rule,
        description: Some(format!("{test} failed on {host}")),
    }
}

/// A fresh SQLite spool in a directory of its own.
fn sqlite(name: &str) -> (statusrelay_spool::Spool, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sr-conformance-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let clock: Arc<dyn statusrelay_core::time::Clock> =
        Arc::new(statusrelay_core::time::SystemClock);
    let spool = statusrelay_spool::Spool::open(&dir.join("spool.db"), clock).unwrap();
    (spool, dir)
}

/// A fresh PostgreSQL store, or None (a skip) where this machine has no server.
fn postgres(name: &str, clock: Arc<dyn Clock>) -> Option<(PgStore, Postgres)> {
    let pg = Postgres::for_test(name)?;
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    // The writer: deliveries and page state are fenced by its term.
    let lease = statusrelay_pg::Lease {
        instance: "conformance".into(),
        duration: std::time::Duration::from_secs(600),
    };
    let statusrelay_pg::Held::Writer { term, .. } = lease.acquire(&mut c).unwrap() else {
        panic!("the only instance did not get the lease");
    };
    let mut store = PgStore::new(c, clock);
    store.writing_as("conformance", term);
    Some((store, pg))
}

/// Run a trace on a fresh SQLite spool and on a fresh PostgreSQL store with one clock (the
/// same generic function, given once for each store), the SQLite trace pinned in
/// `tests/conformance/<name>.trace` (`STATUSRELAY_PIN=1` writes it), and compare them line
/// by line.
fn on_both(
    name: &str,
    pinned: &str,
    on_sqlite: fn(&mut statusrelay_spool::Spool, &TestClock) -> Trace,
    on_pg: fn(&mut PgStore, &TestClock) -> Trace,
) {
    let clock = Arc::new(TestClock(AtomicI64::new(1_000_000)));
    let dir = std::env::temp_dir().join(format!("sr-conformance-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut spool = statusrelay_spool::Spool::open(&dir.join("spool.db"), clock.clone()).unwrap();
    let on_sqlite = on_sqlite(&mut spool, &clock);
    let _ = std::fs::remove_dir_all(&dir);
    if std::env::var_os("STATUSRELAY_PIN").is_some() {
        std::fs::write(
            format!(
                "{}/tests/conformance/{name}.trace",
                env!("CARGO_MANIFEST_DIR")
            ),
            on_sqlite.join("\n") + "\n",
        )
        .unwrap();
    }
    assert_eq!(
        on_sqlite.join("\n") + "\n",
        pinned,
        "the SQLite spool's behaviour moved: read the difference, then pin it again with STATUSRELAY_PIN=1"
    );
    clock.0.store(1_000_000, Ordering::SeqCst);
    let Some((mut store, _pg)) = postgres(name, clock.clone()) else {
        return;
    };
    let on_postgres = on_pg(&mut store, &clock);
    for (i, (p, q)) in on_sqlite.iter().zip(&on_postgres).enumerate() {
        assert_eq!(p, q, "line {i} differs: SQLite, then PostgreSQL");
    }
    assert_eq!(on_sqlite.len(), on_postgres.len());
}

/// Every part of the seam a store implements.
trait Store:
    NodeCredentials
    + Staleness
    + Deliveries
    + PageState
    + Incidents
    + Holds
    + Nodes
    + Record
    + Queue
    + Retention
    + Replay
{
}
impl<S> Store for S where
    S: NodeCredentials
        + Staleness
        + Deliveries
        + PageState
        + Incidents
        + Holds
        + Nodes
        + Record
        + Queue
        + Retention
        + Replay
{
}

#[test]
fn node_reports_behave_the_same_on_both_stores() {
    let pinned = include_str!("conformance/reports.trace");
    on_both("reports", pinned, reports::reports, reports::reports);
}

#[test]
fn staleness_behaves_the_same_on_both_stores() {
    let pinned = include_str!("conformance/staleness.trace");
    on_both("staleness", pinned, reports::staleness, reports::staleness);
}

#[test]
fn deliveries_and_the_page_state_behave_the_same_on_both_stores() {
    let pinned = include_str!("conformance/deliveries.trace");
    on_both("deliveries", pinned, writer::deliveries, writer::deliveries);
}

#[test]
fn incidents_and_maintenance_windows_behave_the_same_on_both_stores() {
    let pinned = include_str!("conformance/incidents.trace");
    on_both("incidents", pinned, writer::incidents, writer::incidents);
}

#[test]
fn the_nodes_as_shown_and_forgotten_behave_the_same_on_both_stores() {
    let pinned = include_str!("conformance/nodes.trace");
    on_both("nodes", pinned, nodes::nodes, nodes::nodes);
}

#[test]
fn node_credentials_behave_the_same_on_both_stores() {
    let (mut spool, dir) = sqlite("credentials");
    let on_sqlite = nodes::credentials(&mut spool);
    // The gate's reader (a connection of its own, through the seam) reads what was written.
    let mut gate =
        any_reads(statusrelay_spool::CredentialReader::open(&dir.join("spool.db")).unwrap());
    assert_eq!(
        gate.credentials().unwrap(),
        CredentialReads::credentials(&mut spool).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
    // The SQLite spool's own behaviour, pinned: the PostgreSQL store must match it.
    assert_eq!(
        on_sqlite,
        [
            "empty: 0",
            "add db1: true",
            "version moved: true",
            "add db1 again: false",
            "unchanged: true",
            "put db1 unchanged: false",
            "unchanged: true",
            "put db1 with components: true",
            "version moved: true",
            "put web1 (new): true",
            "put web1 new secret: true",
            "version moved: true",
            "nodes: db1,web1",
            "credentials as put: true",
        ]
    );
    let clock: Arc<dyn Clock> = Arc::new(statusrelay_core::time::SystemClock);
    let Some((mut store, _pg)) = postgres("credentials", clock) else {
        return;
    };
    assert_eq!(nodes::credentials(&mut store), on_sqlite);
    let written = CredentialReads::credentials(&mut store).unwrap();
    assert_eq!(any_reads(store).credentials().unwrap(), written);
}
