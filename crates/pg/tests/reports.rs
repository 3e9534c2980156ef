//! Several instances recording reports at once on a real PostgreSQL (a cluster of the test's
//! own): the ordering per node holds across connections, every component ends as its nodes'
//! newest reports say, and its deliveries are queued in the order they were decided. Without a
//! PostgreSQL server the test is skipped with a message, except under `CI=true`, where that is
//! a failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use statusrelay_core::State;
use statusrelay_core::nodes::{NodeRule, Via};
use statusrelay_core::store::NodeCredentials;
use statusrelay_core::time::SystemClock;
use statusrelay_pg::{PgStore, migrate};
use statusrelay_spool::store::{Reports, Staleness};
use statusrelay_spool::{Apply, NewEvent, NodeReport, Reported, Snapshot, TestChange};
use statusrelay_testkit::postgres::Postgres;

const NODES: usize = 3;
const COMPONENTS: [&str; 4] = ["c0", "c1", "c2", "c3"];
const ROUNDS: usize = 150;

/// What one node's report says: per component, failing (major outage) or not.
type Says = [bool; 4];

fn store(pg: &Postgres) -> PgStore {
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    PgStore::new(c, Arc::new(SystemClock))
}

fn applies(node: &str, says: Says) -> Vec<Apply> {
    COMPONENTS
        .iter()
        .zip(says)
        .filter(|(_, failing)| *failing)
        .map(|(c, _)| Apply {
            component: c.to_string(),
            host: node.to_string(),
            service: "svc".into(),
            test: "connection".into(),
            change: TestChange::Fail(State::MajorOutage),
            rule: NodeRule::default(),
            description: None,
        })
        .collect()
}

#[test]
fn two_instances_recording_at_once_keep_each_nodes_order_and_each_components_truth() {
    let Some(pg) = Postgres::for_test("reports-at-once") else {
        return;
    };
    let mut setup = store(&pg);
    for n in 0..NODES {
        setup.add_node(&format!("n{n}"), "h", None).unwrap();
    }
    // Sequence numbers are taken before the transaction, so a report may reach the database
    // after a newer one of its node: it must then be judged outdated there.
    let seq = Arc::new(AtomicI64::new(1));
    let sent: Arc<Mutex<BTreeMap<String, (i64, Says)>>> = Arc::default();
    let start = Arc::new(Barrier::new(2));
    let instances: Vec<_> = (0..2u64)
        .map(|i| {
            let (mut s, seq, sent, start) = (store(&pg), seq.clone(), sent.clone(), start.clone());
            std::thread::spawn(move || {
                let scope: Vec<String> = COMPONENTS.iter().map(|c| c.to_string()).collect();
                let rule = |_: &str| NodeRule::default();
                let ev = NewEvent::new(statusrelay_core::EventSource::Monit {
                    monit: statusrelay_core::RawEvent::default(),
                    component: None,
                });
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i;
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let mut outdated = 0;
                let mut held_back = None;
                start.wait();
                for round in 0..ROUNDS {
                    // Two nodes in one transaction (a group commit), in either order.
                    let picks = [next() as usize % NODES, next() as usize % NODES];
                    let group: Vec<(String, i64, Says, Vec<Apply>)> = picks
                        .iter()
                        .map(|n| {
                            let node = format!("n{n}");
                            let bits = next();
                            let says = [0, 1, 2, 3].map(|b| bits >> b & 1 == 1);
                            let order = seq.fetch_add(1, Ordering::SeqCst);
                            let a = applies(&node, says);
                            (node, order, says, a)
                        })
                        .collect();
                    // Every third batch is held back and sent after the next one: older
                    // reports arriving late, as a retried request does.
                    let batches = match (round % 3, held_back.take()) {
                        (0, None) => {
                            held_back = Some(group);
                            continue;
                        }
                        (_, Some(old)) => vec![group, old],
                        (_, None) => vec![group],
                    };
                    for group in batches {
                        let reports: Vec<NodeReport<'_>> = group
                            .iter()
                            .map(|(node, order, _, _)| NodeReport {
                                node,
                                order: (1, *order),
                                snapshot: Snapshot::Node(&scope),
                                via: Via::Relay,
                                period_ms: Some(30_000),
                                rule_of: &rule,
                                keep: &[],
                                identity: None,
                            })
                            .collect();
                        let batch: Vec<_> = reports
                            .iter()
                            .zip(&group)
                            .map(|(r, (_, _, _, a))| (r, &ev, a.as_slice()))
                            .collect();
                        for r in s.record_reports(&batch).unwrap() {
                            match r {
                                Reported::Applied(_) => {}
                                Reported::Outdated { .. } => outdated += 1,
                                other => panic!("unexpected: {other:?}"),
                            }
                        }
                        let mut sent = sent.lock().unwrap();
                        for (node, order, says, _) in group {
                            let e = sent.entry(node).or_insert((0, [false; 4]));
                            if order > e.0 {
                                *e = (order, says);
                            }
                        }
                    }
                }
                (outdated, s.contention_retries())
            })
        })
        .collect();
    let (mut retries, mut outdated_all) = (0, 0);
    for h in instances {
        let (outdated, r) = h.join().unwrap();
        retries += r;
        outdated_all += outdated;
        eprintln!("instance: {outdated} reports outdated, {r} transactions run again");
    }
    eprintln!("{retries} transactions run again after a deadlock, in all");
    assert_eq!(
        retries, 0,
        "the locks are taken in one order: no transaction waits in a cycle"
    );
    assert!(
        outdated_all > 0,
        "no report arrived after a newer one: the test tested no ordering"
    );
    let sent = sent.lock().unwrap().clone();
    // Every node's newest report is what the store holds of it, whichever instance took it.
    for (node, (order, says)) in &sent {
        let marks = setup.marks(node).unwrap().unwrap();
        assert_eq!(marks.whole, Some((1, *order)), "{node}'s mark");
        for (c, failing) in COMPONENTS.iter().zip(says) {
            let held = setup
                .failing_tests(c)
                .unwrap()
                .iter()
                .any(|t| t.host == *node);
            assert_eq!(
                held, *failing,
                "{node} on {c}: its newest report said {failing}"
            );
        }
    }
    // Every component shows what its nodes' newest reports make it, and its newest delivery
    // (the highest id) says the same.
    let desired: BTreeMap<String, State> = setup
        .desired()
        .unwrap()
        .into_iter()
        .map(|(c, s, _)| (c, s))
        .collect();
    for (i, c) in COMPONENTS.iter().enumerate() {
        let want = if sent.values().any(|(_, says)| says[i]) {
            State::MajorOutage
        } else {
            State::Operational
        };
        assert_eq!(desired.get(*c), Some(&want), "{c}");
        let newest: String = setup
            .client()
            .query_one(
                "SELECT state FROM outbox WHERE component = $1 ORDER BY id DESC LIMIT 1",
                &[c],
            )
            .unwrap()
            .get(0);
        assert_eq!(newest, want.as_str(), "{c}'s newest delivery");
    }
}

/// Wait (with a deadline) until a backend waits on a lock: the report's transaction is
/// blocked behind the test's.
fn until_waiting_on_a_lock(c: &mut postgres::Client) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "no report waited for the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The two locks a report's transaction takes, shown one at a time: another instance's
/// transaction holds one, and the report waits for it, then decides on what it committed.
#[test]
fn a_report_waits_for_its_nodes_marks_and_its_components_and_decides_on_what_was_committed() {
    let Some(pg) = Postgres::for_test("reports-locks") else {
        return;
    };
    let mut other = store(&pg);
    for n in ["n0", "n1"] {
        other.add_node(n, "h", None).unwrap();
    }
    let record = |pg: &Postgres, node: &'static str, order: i64, says: Says| {
        let mut s = store(pg);
        std::thread::spawn(move || {
            let scope: Vec<String> = COMPONENTS.iter().map(|c| c.to_string()).collect();
            let rule = |_: &str| NodeRule::default();
            let ev = NewEvent::new(statusrelay_core::EventSource::Monit {
                monit: statusrelay_core::RawEvent::default(),
                component: None,
            });
            let r = NodeReport {
                node,
                order: (1, order),
                snapshot: Snapshot::Node(&scope),
                via: Via::Relay,
                period_ms: None,
                rule_of: &rule,
                keep: &[],
                identity: None,
            };
            let a = applies(node, says);
            s.record_reports(&[(&r, &ev, &a)]).unwrap().remove(0)
        })
    };
    let mut watch = pg.connect();

    // The node's marks: another instance holds n0's row and records a newer report (seq 9).
    let mut tx = other.client().transaction().unwrap();
    tx.execute("SELECT 1 FROM nodes WHERE name = 'n0' FOR UPDATE", &[])
        .unwrap();
    let older = record(&pg, "n0", 5, [true, false, false, false]);
    until_waiting_on_a_lock(&mut watch);
    tx.execute(
        "UPDATE nodes SET epoch = 1, last_seq = 9 WHERE name = 'n0'",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(
        older.join().unwrap(),
        Reported::Outdated {
            mark: (1, 9),
            repeat: false
        },
        "judged against the marks committed while it waited"
    );

    // A component: another instance holds c0 and commits n1's failing test there. n0's
    // report (c0 passing) computes c0 only after, and sees it.
    let mut tx = other.client().transaction().unwrap();
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext('c0'))",
        &[&statusrelay_pg::locks::COMPONENT_LOCK],
    )
    .unwrap();
    let newer = record(&pg, "n0", 10, [false; 4]);
    until_waiting_on_a_lock(&mut watch);
    tx.execute(
        "INSERT INTO tests (component, host, service, test, state, event_id, since)
         VALUES ('c0', 'n1', 'svc', 'connection', 'major_outage', 0, 0)",
        &[],
    )
    .unwrap();
    tx.commit().unwrap();
    assert!(matches!(newer.join().unwrap(), Reported::Applied(_)));
    let c0 = other
        .desired()
        .unwrap()
        .into_iter()
        .find(|(c, _, _)| c == "c0")
        .map(|(_, s, _)| s);
    assert_eq!(
        c0,
        Some(State::MajorOutage),
        "c0 computed after the other transaction committed n1's failure"
    );
}

/// Who is silent is judged from the database (every instance's reports count, one clock):
/// a node silent past `stale_after` of its periods is due, one heard within them is not, a
/// node already stale or with no period never is, and no silence counts from before the
/// writer took its lease.
#[test]
fn the_writer_finds_silent_nodes_on_the_databases_clock_from_every_instances_reports() {
    let Some(pg) = Postgres::for_test("silent-nodes") else {
        return;
    };
    let mut s = store(&pg);
    for n in ["quiet", "chatty", "stale", "unknown-period"] {
        s.add_node(n, "h", None).unwrap();
    }
    // Reports through another instance's connection: what it heard counts here too.
    let mut other = store(&pg);
    let rule = |_: &str| NodeRule::default();
    let ev = NewEvent::new(statusrelay_core::EventSource::Monit {
        monit: statusrelay_core::RawEvent::default(),
        component: None,
    });
    let scope = vec!["web".to_string()];
    for n in ["quiet", "chatty", "stale", "unknown-period"] {
        let r = NodeReport {
            node: n,
            order: (1, 1),
            snapshot: Snapshot::Node(&scope),
            via: Via::Relay,
            period_ms: (n != "unknown-period").then_some(100),
            rule_of: &rule,
            keep: &[],
            identity: None,
        };
        other.record_reports(&[(&r, &ev, &[])]).unwrap();
    }
    let set = |s: &mut PgStore, sql: &str| {
        s.client().batch_execute(sql).unwrap();
    };
    // The writer took its lease long ago; times are moved on the database's own clock.
    set(
        &mut s,
        "INSERT INTO writer (id, holder, term, since, renewed_at, expires_at)
         VALUES (1, 'a', 1, now() - interval '1 hour', now(), now() + interval '15 s');
         UPDATE nodes SET heard_at = now() - interval '1 s' WHERE name IN ('quiet', 'unknown-period');
         UPDATE nodes SET heard_at = now() - interval '100 ms' WHERE name = 'chatty';
         UPDATE nodes SET heard_at = now() - interval '1 s', stale_since = 0 WHERE name = 'stale';",
    );
    let due = s.silent_nodes(3).unwrap();
    assert_eq!(
        due.iter().map(|d| d.node.as_str()).collect::<Vec<_>>(),
        ["quiet"],
        "{due:?}"
    );
    assert_eq!(due[0].period_ms, 100);
    assert!(
        (1_000..2_000).contains(&due[0].silent_ms),
        "silent for about a second: {due:?}"
    );
    // A writer that took over 200 ms ago gives every node its stale_after periods from then.
    set(
        &mut s,
        "UPDATE writer SET since = now() - interval '200 ms' WHERE id = 1",
    );
    assert_eq!(s.silent_nodes(3).unwrap(), []);
    // No live lease (every instance stopped, or one starting before it is elected again): no
    // silence is judged, whatever the old lease's start; nor with no lease ever taken.
    set(
        &mut s,
        "UPDATE writer SET since = now() - interval '1 hour', expires_at = now() - interval '1 s'
         WHERE id = 1",
    );
    assert_eq!(s.silent_nodes(3).unwrap(), [], "an expired lease");
    set(&mut s, "DELETE FROM writer");
    assert_eq!(s.silent_nodes(3).unwrap(), [], "no lease ever");
    set(
        &mut s,
        "INSERT INTO writer (id, holder, term, since, renewed_at, expires_at)
         VALUES (1, 'a', 2, now() - interval '200 ms', now(), now() + interval '15 s')",
    );
    // Recorded stale: the writer finds it no more.
    set(
        &mut s,
        "UPDATE writer SET since = now() - interval '1 hour' WHERE id = 1",
    );
    let rule_of = |_: &str| NodeRule::default();
    let due = s.silent_nodes(3).unwrap();
    let swept = s.apply_silence(&due, &rule_of).unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(s.silent_nodes(3).unwrap(), []);
}
