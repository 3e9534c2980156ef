//! Deliveries fenced by the writer's term, on a real PostgreSQL (a cluster of the test's own):
//! a writer deposed while a delivery was in flight records nothing of it, claims nothing more
//! and writes no page state; the new writer recovers the delivery and sends it. Without a
//! PostgreSQL server the test is skipped with a message, except under `CI=true`, where that
//! is a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use statusrelay_core::State;
use statusrelay_core::nodes::{NodeRule, Via};
use statusrelay_core::store::NodeCredentials;
use statusrelay_core::time::SystemClock;
use statusrelay_pg::{Held, Lease, PgError, PgStore, migrate};
use statusrelay_spool::store::{Deliveries, Incidents, PageState, Reports, Retention};
use statusrelay_spool::{
    Apply, IncidentStatus, NewEvent, NodeReport, Outcome, Snapshot, TestChange,
};
use statusrelay_testkit::postgres::Postgres;

fn instance(pg: &Postgres, name: &str, lease_ms: u64) -> (PgStore, Lease) {
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    let lease = Lease {
        instance: name.into(),
        duration: Duration::from_millis(lease_ms),
    };
    (PgStore::new(c, Arc::new(SystemClock)), lease)
}

/// Ask for the lease until this instance holds it (deadline 10 s); its term.
fn until_writer(s: &mut PgStore, lease: &Lease) -> i64 {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Held::Writer { term, .. } = lease.acquire(s.client()).unwrap() {
            s.writing_as(&lease.instance, term);
            return term;
        }
        assert!(
            Instant::now() < end,
            "{} never took the lease",
            lease.instance
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_deposed_writer_records_nothing_of_its_delivery_and_the_new_one_sends_it() {
    let Some(pg) = Postgres::for_test("deliveries-fenced") else {
        return;
    };
    let (mut a, lease_a) = instance(&pg, "a", 500);
    let (mut b, lease_b) = instance(&pg, "b", 500);
    a.add_node("n1", "h", None).unwrap();
    // Not made the writer: it writes no delivery and no page state, and prunes nothing.
    assert!(matches!(b.claim_next("early"), Err(PgError::NotWriter)));
    assert!(matches!(
        b.prune_batch(Duration::ZERO, 0, 100),
        Err(PgError::NotWriter)
    ));

    let rule = |_: &str| NodeRule::default();
    let scope = vec!["web".to_string()];
    let r = NodeReport {
        node: "n1",
        order: (1, 1),
        snapshot: Snapshot::Node(&scope),
        via: Via::Relay,
        period_ms: None,
        rule_of: &rule,
        keep: &[],
        identity: None,
    };
    let down = [Apply {
        component: "web".into(),
        host: "n1".into(),
        service: "nginx".into(),
        test: "connection".into(),
        change: TestChange::Fail(State::MajorOutage),
        rule: NodeRule::default(),
        description: None,
    }];
    let ev = NewEvent::new(statusrelay_core::EventSource::Monit {
        monit: statusrelay_core::RawEvent::default(),
        component: None,
    });
    // Any instance records reports, writer or not.
    b.record_reports(&[(&r, &ev, &down)]).unwrap();

    let term_a = until_writer(&mut a, &lease_a);
    let (claimed, _) = a.claim_next("a-1").unwrap();
    let claimed = claimed.expect("the delivery is due");
    // a freezes with its request in flight; its lease runs out and b takes over.
    let term_b = until_writer(&mut b, &lease_b);
    assert!(term_b > term_a, "a new holder, a new term");

    let delivered = Outcome::Delivered {
        backend: "cachet".into(),
        state: State::MajorOutage,
    };
    let refused =
        |r: Result<(), PgError>| matches!(r, Err(PgError::Deposed { term }) if term == term_a);
    assert!(
        refused(a.finish(&claimed, &delivered)),
        "a's finish is fenced"
    );
    assert!(refused(a.verified(
        "cachet",
        "web",
        Some(State::MajorOutage)
    )));
    assert!(refused(a.set_remote_id("cachet", "web", Some("9"))));
    assert!(matches!(a.claim_next("a-2"), Err(PgError::Deposed { .. })));
    // Nor does it prune: only the writer does.
    let prune = |s: &mut PgStore| s.prune_batch(Duration::ZERO, 0, 100);
    assert!(matches!(prune(&mut a), Err(PgError::Deposed { .. })));
    assert_eq!(
        b.page_state("cachet", "web").unwrap(),
        None,
        "nothing of a's delivery was recorded"
    );
    assert_eq!(b.remote_id("cachet", "web").unwrap(), None);

    // b finds the delivery a left in flight, sends it again, and records it.
    assert_eq!(b.recover_claims(0).unwrap(), 1);
    let (again, _) = b.claim_next("b-1").unwrap();
    let again = again.expect("the recovered delivery");
    assert_eq!(again.item.id, claimed.item.id);
    b.finish(&again, &delivered).unwrap();
    assert_eq!(
        b.page_state("cachet", "web").unwrap(),
        Some(State::MajorOutage)
    );
    let term_of: Option<i64> = b
        .client()
        .query_one("SELECT term FROM outbox WHERE id = $1", &[&claimed.item.id])
        .unwrap()
        .get(0);
    assert_eq!(
        term_of,
        Some(term_b),
        "the row says under which term it was claimed"
    );
}

/// One incident per outage across a takeover: the intent the old writer committed before its
/// request is what the new writer finds (and looks up on the page before creating another);
/// the old writer, woken, can neither confirm it nor open another.
#[test]
fn an_incident_opening_when_its_writer_died_is_found_by_the_next_and_the_old_one_is_fenced() {
    let Some(pg) = Postgres::for_test("incidents-fenced") else {
        return;
    };
    let (mut a, lease_a) = instance(&pg, "a", 500);
    let (mut b, lease_b) = instance(&pg, "b", 500);
    until_writer(&mut a, &lease_a);
    let intent = a
        .incident_intent("cachet", "web", "Web is down", State::MajorOutage)
        .unwrap();
    // a's POST reaches the page, the answer never reaches a: it freezes, b takes over.
    until_writer(&mut b, &lease_b);
    let found = b
        .open_incident("cachet", "web")
        .unwrap()
        .expect("the intent");
    assert_eq!(found.id, intent.id);
    assert_eq!(found.status, IncidentStatus::Opening);
    b.incident_opened(found.id, "42", State::MajorOutage)
        .unwrap();
    assert!(matches!(
        a.incident_opened(intent.id, "43", State::MajorOutage),
        Err(PgError::Deposed { .. })
    ));
    assert!(matches!(
        a.incident_intent("cachet", "web", "again", State::MajorOutage),
        Err(PgError::Deposed { .. })
    ));
    let all = b.incidents("cachet").unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].remote_id.as_deref(), Some("42"));
}
