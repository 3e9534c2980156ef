//! The store's seam (`statusrelay_core::store`) held to one behaviour: every check runs on the
//! SQLite spool and on the PostgreSQL store (a real server, a cluster of the test's own), and
//! a difference between them is a failure. Without a PostgreSQL server the PostgreSQL half is
//! skipped with a message, except under `CI=true`, where that is a failure.

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
    Deliveries, Holds, Incidents, Nodes, PageState, Queue, Record, Reports, Staleness,
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

/// The nodes' credentials: add, add again, put unchanged, put changed, components kept in
/// order, and the version moving with each change and with nothing else.
fn credentials<S: NodeCredentials>(s: &mut S) -> Trace
where
    S::Error: Debug,
{
    let mut trace = Trace::new();
    let mut note = |what: &str, v: String| trace.push(format!("{what}: {v}"));
    let comps = vec!["payments".to_string(), "backend".to_string()];
    let v0 = s.credentials_version().unwrap();
    let (v, all) = s.credentials().unwrap();
    assert_eq!(v, v0);
    note("empty", format!("{}", all.len()));
    note(
        "add db1",
        format!("{:?}", s.add_node("db1", "h1", None).unwrap()),
    );
    let v1 = s.credentials_version().unwrap();
    note("version moved", format!("{}", v1 > v0));
    note(
        "add db1 again",
        format!("{:?}", s.add_node("db1", "other", None).unwrap()),
    );
    note(
        "unchanged",
        format!("{}", s.credentials_version().unwrap() == v1),
    );
    note(
        "put db1 unchanged",
        format!("{:?}", s.put_node("db1", "h1", None).unwrap()),
    );
    note(
        "unchanged",
        format!("{}", s.credentials_version().unwrap() == v1),
    );
    note(
        "put db1 with components",
        format!("{:?}", s.put_node("db1", "h1", Some(&comps)).unwrap()),
    );
    let v2 = s.credentials_version().unwrap();
    note("version moved", format!("{}", v2 > v1));
    note(
        "put web1 (new)",
        format!("{:?}", s.put_node("web1", "h2", Some(&[])).unwrap()),
    );
    note(
        "put web1 new secret",
        format!("{:?}", s.put_node("web1", "h3", Some(&[])).unwrap()),
    );
    let (v3, all) = s.credentials().unwrap();
    note("version moved", format!("{}", v3 > v2));
    assert_eq!(v3, s.credentials_version().unwrap());
    let mut names: Vec<_> = all.keys().cloned().collect();
    names.sort();
    note("nodes", names.join(","));
    let want: HashMap<String, Credential> = HashMap::from([
        (
            "db1".to_string(),
            Credential {
                secret_sha256: "h1".into(),
                components: Some(comps.clone()),
            },
        ),
        (
            "web1".to_string(),
            Credential {
                secret_sha256: "h3".into(),
                components: Some(vec![]),
            },
        ),
    ]);
    note("credentials as put", format!("{}", all == want));
    trace
}

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

/// The nodes' reports, step by step: a relay's whole report, the same again, one that drops a
/// component, a collector's report on one component, a sub-test's recovery, a new reporter, two
/// reporters alternating, a node nobody added, and a component whose rule counts nodes. After
/// each step: what was answered, what every component should show, the failing tests and the
/// nodes' marks.
fn reports<S: NodeCredentials + Reports>(s: &mut S, clock: &TestClock) -> Trace {
    let count = NodeRule {
        rule: RuleKind::Count,
        partial_at: 1,
        major_at: MajorAt::Nodes(2),
        ..NodeRule::default()
    };
    let rule_of = move |c: &str| {
        if c == "api" {
            count
        } else {
            NodeRule::default()
        }
    };
    let fail =
        |c: &str, h: &str, t: &str, st: State| change(c, h, t, TestChange::Fail(st), rule_of(c));
    let recover = |c: &str, h: &str, t: &str| {
        change(
            c,
            h,
            t,
            TestChange::Recover {
                one_shot_families: vec![],
            },
            rule_of(c),
        )
    };
    let (web_db, web, api) = (
        vec!["web".to_string(), "db".to_string()],
        vec!["web".to_string()],
        vec!["api".to_string()],
    );
    let relay = |reporter: &'static str, peer: &'static str| Identity {
        reporter,
        peer,
        window_ms: 60_000,
    };
    let report = |node: &'static str,
                  order: (i64, i64),
                  snapshot: Snapshot<'static>,
                  via: Via,
                  identity: Option<Identity<'static>>| NodeReport {
        node,
        order,
        snapshot,
        via,
        period_ms: Some(30_000),
        rule_of: &rule_of,
        keep: &[],
        identity,
    };
    // 'static scopes for the reports above.
    let web_db: &'static [String] = Box::leak(web_db.into_boxed_slice());
    let web: &'static [String] = Box::leak(web.into_boxed_slice());
    let api: &'static [String] = Box::leak(api.into_boxed_slice());
    let a = relay("relay:a", "192.0.2.1");
    let b = relay("relay:b", "192.0.2.2");
    let ev = event("nginx", "connection failed");

    let mut trace = Trace::new();
    for n in ["db1", "web1", "api1", "api2"] {
        s.add_node(n, "h", None).unwrap();
    }
    let steps: Vec<(&str, NodeReport<'_>, Vec<Apply>)> = vec![
        (
            "db1 whole, web and db failing",
            report("db1", (1, 1), Snapshot::Node(web_db), Via::Relay, Some(a)),
            vec![
                fail("web", "db1", "connection", State::MajorOutage),
                fail("db", "db1", "resource:cpu", State::PerformanceIssues),
            ],
        ),
        (
            "the same again",
            report("db1", (1, 1), Snapshot::Node(web_db), Via::Relay, Some(a)),
            vec![fail("web", "db1", "connection", State::MajorOutage)],
        ),
        (
            "db1's cpu recovers by its family",
            report(
                "db1",
                (1, 2),
                Snapshot::Components(web_db),
                Via::Relay,
                Some(a),
            ),
            vec![
                fail("web", "db1", "connection", State::MajorOutage),
                recover("db", "db1", "resource"),
            ],
        ),
        (
            "web1 by the collector, one component",
            report(
                "web1",
                (7, 1),
                Snapshot::Components(web),
                Via::Collector,
                None,
            ),
            vec![fail("web", "web1", "http", State::PartialOutage)],
        ),
        (
            "db1 whole, no longer naming db, web passing",
            report("db1", (1, 3), Snapshot::Node(web), Via::Relay, Some(a)),
            vec![],
        ),
        (
            "an older report of db1",
            report("db1", (1, 2), Snapshot::Node(web_db), Via::Relay, Some(a)),
            vec![fail("db", "db1", "connection", State::MajorOutage)],
        ),
        (
            "db1 reinstalled: a new reporter, its sequence anew",
            report("db1", (1, 1), Snapshot::Node(web_db), Via::Relay, Some(b)),
            vec![fail("db", "db1", "connection", State::MajorOutage)],
        ),
        (
            "the old reporter again, while the new one is live",
            report("db1", (1, 4), Snapshot::Node(web_db), Via::Relay, Some(a)),
            vec![],
        ),
        (
            "the new reporter, refused while they alternate",
            report("db1", (1, 2), Snapshot::Node(web_db), Via::Relay, Some(b)),
            vec![],
        ),
        (
            "a node nobody added",
            report("ghost", (1, 1), Snapshot::Node(web), Via::Relay, None),
            vec![fail("web", "ghost", "http", State::MajorOutage)],
        ),
        (
            "api1 down: one node of two counted",
            report("api1", (1, 1), Snapshot::Node(api), Via::Relay, None),
            vec![fail("api", "api1", "http", State::MajorOutage)],
        ),
        (
            "api2 down too",
            report("api2", (1, 1), Snapshot::Node(api), Via::Relay, None),
            vec![fail("api", "api2", "http", State::MajorOutage)],
        ),
        (
            "api1 and api2 in one transaction, both passing",
            report("api1", (1, 2), Snapshot::Node(api), Via::Relay, None),
            vec![],
        ),
    ];
    for (what, r, applies) in &steps {
        clock.0.fetch_add(1_000, Ordering::SeqCst);
        let got = if what.starts_with("api1 and api2") {
            let r2 = report("api2", (1, 2), Snapshot::Node(api), Via::Relay, None);
            s.record_reports(&[(r, &ev, applies), (&r2, &ev, &[])])
                .unwrap()
        } else {
            s.record_reports(&[(r, &ev, applies)]).unwrap()
        };
        trace.push(format!("{what}: {got:?}"));
        trace.push(format!("  desired: {:?}", s.desired().unwrap()));
        for c in ["api", "db", "web"] {
            trace.push(format!("  {c} failing: {:?}", s.failing_tests(c).unwrap()));
        }
        for n in ["api1", "api2", "db1", "web1"] {
            trace.push(format!("  {n}: {:?}", s.marks(n).unwrap()));
        }
    }
    // The steady state: which reports change nothing, and what their touches move.
    let web_http = [fail("web", "web1", "http", State::PartialOutage)];
    let web_worse = [fail("web", "web1", "http", State::MajorOutage)];
    let noops: Vec<(&str, NodeReport<'_>, &[Apply])> = vec![
        (
            "web1 says the same, newer",
            report(
                "web1",
                (7, 2),
                Snapshot::Components(web),
                Via::Collector,
                None,
            ),
            &web_http,
        ),
        (
            "web1 says worse",
            report(
                "web1",
                (7, 2),
                Snapshot::Components(web),
                Via::Collector,
                None,
            ),
            &web_worse,
        ),
        (
            "web1 says the same, not newer",
            report(
                "web1",
                (7, 1),
                Snapshot::Components(web),
                Via::Collector,
                None,
            ),
            &web_http,
        ),
        (
            "api1 whole, all passing, newer",
            report("api1", (1, 3), Snapshot::Node(api), Via::Relay, None),
            &[],
        ),
        (
            "db1 while its reporters alternate",
            report("db1", (1, 9), Snapshot::Node(web_db), Via::Relay, Some(b)),
            &[],
        ),
        (
            "a node nobody added",
            report("ghost", (1, 1), Snapshot::Node(web), Via::Relay, None),
            &[],
        ),
    ];
    for (what, r, applies) in &noops {
        trace.push(format!(
            "no-op? {what}: {:?}",
            s.report_is_noop(r, applies).unwrap()
        ));
    }
    let touch = |node: &str, whole, components: &[(&str, (i64, i64))]| Touch {
        node: node.into(),
        at: clock.now_ms() + 500,
        via: Via::Collector,
        period_ms: Some(60_000),
        whole,
        components: components
            .iter()
            .map(|(c, m)| (c.to_string(), *m))
            .collect(),
    };
    s.touch_nodes(&[
        touch("web1", None, &[("web", (7, 2))]),
        touch("api1", Some((1, 3)), &[("api", (1, 3))]),
    ])
    .unwrap();
    trace.push(format!("touched: web1 {:?}", s.marks("web1").unwrap()));
    trace.push(format!("touched: api1 {:?}", s.marks("api1").unwrap()));
    s.touch_nodes(&[
        touch("api1", Some((1, 2)), &[("api", (1, 1))]),
        touch("web1", None, &[("web", (6, 9))]),
    ])
    .unwrap();
    trace.push(format!(
        "older touches: web1 {:?}",
        s.marks("web1").unwrap()
    ));
    trace.push(format!(
        "older touches: api1 {:?}",
        s.marks("api1").unwrap()
    ));
    trace.push(format!(
        "no-op? api1 again at its touched mark: {:?}",
        s.report_is_noop(
            &report("api1", (1, 3), Snapshot::Node(api), Via::Relay, None),
            &[]
        )
        .unwrap()
    ));
    trace
}

/// Staleness: a failing node goes stale (its word no longer counts, what a stale node counts
/// as does), a verdict again or on a node nobody added is passed over, every node silent makes
/// a component unknown, and a report brings a node back.
fn staleness<S: NodeCredentials + Staleness>(s: &mut S, clock: &TestClock) -> Trace {
    let count = NodeRule {
        rule: RuleKind::Count,
        partial_at: 1,
        major_at: MajorAt::Nodes(2),
        stale: StalePolicy::Failing,
    };
    let rule_of = move |c: &str| {
        if c == "counted" {
            count
        } else {
            NodeRule::default()
        }
    };
    let both: &'static [String] =
        Box::leak(vec!["db".to_string(), "counted".to_string()].into_boxed_slice());
    let ev = event("mysql", "connection failed");
    let report = |node: &'static str, seq: i64| NodeReport {
        node,
        order: (1, seq),
        snapshot: Snapshot::Node(both),
        via: Via::Collector,
        period_ms: Some(30_000),
        rule_of: &rule_of,
        keep: &[],
        identity: None,
    };
    let silent = |node: &str| statusrelay_spool::Silence {
        node: node.into(),
        silent_ms: 100_000,
        period_ms: 30_000,
    };
    let mut trace = Trace::new();
    for n in ["s1", "s2"] {
        s.add_node(n, "h", None).unwrap();
    }
    let down = [change(
        "db",
        "s1",
        "connection",
        TestChange::Fail(State::MajorOutage),
        NodeRule::default(),
    )];
    trace.push(format!(
        "{:?}",
        s.record_reports(&[(&report("s1", 1), &ev, &down)]).unwrap()
    ));
    trace.push(format!(
        "{:?}",
        s.record_reports(&[(&report("s2", 1), &ev, &[])]).unwrap()
    ));
    let steps: Vec<(&str, Vec<statusrelay_spool::Silence>)> = vec![
        ("s1 stale", vec![silent("s1")]),
        (
            "s1 again, and a node nobody added",
            vec![silent("s1"), silent("ghost")],
        ),
        ("s2 stale: every node silent", vec![silent("s2")]),
    ];
    for (what, silences) in steps {
        clock.0.fetch_add(1_000, Ordering::SeqCst);
        let got = s.apply_silence(&silences, &rule_of).unwrap();
        trace.push(format!("{what}: {got:?}"));
        trace.push(format!("  desired: {:?}", s.desired().unwrap()));
        for n in ["s1", "s2"] {
            trace.push(format!("  {n}: {:?}", s.marks(n).unwrap()));
        }
    }
    clock.0.fetch_add(1_000, Ordering::SeqCst);
    let back = s.record_reports(&[(&report("s2", 2), &ev, &[])]).unwrap();
    trace.push(format!("s2 reports again: {back:?}"));
    trace.push(format!("  desired: {:?}", s.desired().unwrap()));
    trace.push(format!("  s2: {:?}", s.marks("s2").unwrap()));
    trace
}

/// Deliveries and the page's state: supersede, claim, every way a delivery ends, a stale
/// claim, claims recovered after a writer stopped, read-backs, remote ids, a repair.
fn deliveries<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
    let mut trace = Trace::new();
    let mut note = |what: &str, v: String| trace.push(format!("{what}: {v}"));
    let tick = |ms: i64| clock.0.fetch_add(ms, Ordering::SeqCst);
    let rule_of = |_: &str| NodeRule::default();
    let scope: &'static [String] =
        Box::leak(vec!["web".to_string(), "db".to_string()].into_boxed_slice());
    let report = |seq: i64| NodeReport {
        node: "d1",
        order: (1, seq),
        snapshot: Snapshot::Node(scope),
        via: Via::Relay,
        period_ms: None,
        rule_of: &rule_of,
        keep: &[],
        identity: None,
    };
    let ev = event("nginx", "down");
    let web_down = [change(
        "web",
        "d1",
        "connection",
        TestChange::Fail(State::MajorOutage),
        NodeRule::default(),
    )];
    s.add_node("d1", "h", None).unwrap();
    s.record_reports(&[(&report(1), &ev, &web_down)]).unwrap();
    tick(100);
    s.record_reports(&[(&report(2), &ev, &[])]).unwrap();
    let ended = |r: Result<(), <S as Reports>::Error>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) if S::is_stale_claim(&e) => "stale claim".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let backend = "cachet";

    let (c1, gone) = s.claim_next("c1").unwrap();
    note("claim c1", format!("{c1:?}, superseded {gone:?}"));
    let c1 = c1.unwrap();
    let delivered = Outcome::Delivered {
        backend: backend.into(),
        state: c1.item.state,
    };
    note("finish c1", ended(s.finish(&c1, &delivered)));
    note("finish c1 again", ended(s.finish(&c1, &delivered)));
    let component = c1.item.component.clone();
    note(
        "page",
        format!("{:?}", s.page_state(backend, &component).unwrap()),
    );

    let (c2, _) = s.claim_next("c2").unwrap();
    note("claim c2", format!("{c2:?}"));
    let c2 = c2.unwrap();
    let retry_at = clock.now_ms() + 5_000;
    let retry = Outcome::Retry {
        at: retry_at,
        error: "HTTP 503".into(),
    };
    note("finish c2: retry", ended(s.finish(&c2, &retry)));
    note("next due", format!("{:?}", s.next_due_at().unwrap()));
    note(
        "claim before due",
        format!("{:?}", s.claim_next("c3").unwrap()),
    );
    tick(5_000);
    let (c3, _) = s.claim_next("c3").unwrap();
    let c3 = c3.unwrap();
    note("claim c3", format!("{c3:?}"));
    let held = Outcome::Held {
        until: clock.now_ms() + 1_000,
        reason: "maintenance".into(),
    };
    note("finish c3: held", ended(s.finish(&c3, &held)));
    tick(1_000);
    let (c4, _) = s.claim_next("c4").unwrap();
    let c4 = c4.unwrap();
    note("claim c4", format!("{c4:?}"));
    let dead = Outcome::Dead {
        error: "HTTP 404".into(),
    };
    note("finish c4: dead", ended(s.finish(&c4, &dead)));

    // A repair, claimed, and the writer stopping with it in flight.
    note(
        "remote id set",
        ended(s.set_remote_id(backend, &component, Some("7"))),
    );
    note(
        "remote id",
        format!("{:?}", s.remote_id(backend, &component).unwrap()),
    );
    note(
        "repair",
        format!(
            "{:?}",
            s.enqueue_repair(&component, "read back wrong").unwrap()
        ),
    );
    note(
        "repair of a component never computed",
        format!("{:?}", s.enqueue_repair("nothing", "x").unwrap()),
    );
    let (c5, _) = s.claim_next("c5").unwrap();
    note("claim c5", format!("{c5:?}"));
    let verify_at = clock.now_ms() + 2_000;
    note(
        "claims recovered",
        format!("{:?}", s.recover_claims(verify_at).unwrap()),
    );
    note(
        "page after",
        format!("{:?}", s.page_state(backend, &component).unwrap()),
    );
    note(
        "next verify",
        format!("{:?}", s.next_verify_at(backend).unwrap()),
    );
    note(
        "finish c5 after recovery",
        ended(s.finish(&c5.unwrap(), &delivered)),
    );
    // The recovered delivery is sent again; then the read-back is due.
    let (c6, _) = s.claim_next("c6").unwrap();
    let c6 = c6.unwrap();
    note("claim c6", format!("{c6:?}"));
    note("finish c6", ended(s.finish(&c6, &delivered)));
    tick(2_000);
    note(
        "verifications due",
        format!("{:?}", s.verifications_due(backend).unwrap()),
    );
    note(
        "verified",
        ended(s.verified(backend, &component, Some(State::Operational))),
    );
    note(
        "page verified",
        format!("{:?}", s.page_state(backend, &component).unwrap()),
    );
    note(
        "verify later",
        ended(s.verify_later(backend, "db", clock.now_ms() + 10)),
    );
    note(
        "next verify",
        format!("{:?}", s.next_verify_at(backend).unwrap()),
    );
    note(
        "remote id forgotten",
        ended(s.set_remote_id(backend, &component, None)),
    );
    note(
        "page forgotten",
        format!("{:?}", s.page_state(backend, &component).unwrap()),
    );
    note("nothing due", format!("{:?}", s.next_due_at().unwrap()));
    note("queue: open", format!("{:?}", s.open_items().unwrap()));
    note(
        "queue: rejected",
        format!("{:?}", s.rejected_events().unwrap()),
    );
    trace
}

/// Incidents and maintenance windows: an intent, a second one refused while it is open, the
/// page's id, a change of state, resolving and resolved, a change an incident is not ready
/// for; windows started, listed, held deliveries released, expired and stopped.
fn incidents<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
    let mut trace = Trace::new();
    let mut note = |what: &str, v: String| trace.push(format!("{what}: {v}"));
    let tick = |ms: i64| clock.0.fetch_add(ms, Ordering::SeqCst);
    let ok = |r: Result<(), <S as Reports>::Error>| match r {
        Ok(()) => "ok".to_string(),
        Err(_) => "refused".to_string(),
    };
    let b = "cachet";
    let i = s
        .incident_intent(b, "web", "Web is down", State::MajorOutage)
        .unwrap();
    note("intent", format!("{i:?}"));
    note(
        "a second intent while it is open",
        format!(
            "{}",
            s.incident_intent(b, "web", "again", State::MajorOutage)
                .is_err()
        ),
    );
    note("open", format!("{:?}", s.open_incident(b, "web").unwrap()));
    tick(10);
    note(
        "opened",
        ok(s.incident_opened(i.id, "42", State::MajorOutage)),
    );
    note("state", ok(s.incident_state(i.id, State::PartialOutage)));
    note(
        "resolving",
        ok(s.incident_status(i.id, IncidentStatus::Resolving, None)),
    );
    note(
        "opened while resolving",
        ok(s.incident_opened(i.id, "42", State::MajorOutage)),
    );
    tick(10);
    note(
        "resolved",
        ok(s.incident_status(i.id, IncidentStatus::Resolved, Some("recovered"))),
    );
    note(
        "open after",
        format!("{:?}", s.open_incident(b, "web").unwrap()),
    );
    note(
        "state of none",
        ok(s.incident_state(999, State::Operational)),
    );
    let j = s
        .incident_intent(b, "web", "Web again", State::PartialOutage)
        .unwrap();
    note(
        "lost",
        ok(s.incident_status(j.id, IncidentStatus::Lost, Some("deleted by a person"))),
    );
    // Ids are each store's own: a PostgreSQL sequence never gives back the number a refused
    // insert took (the second intent above), SQLite's AUTOINCREMENT does. Only their order
    // is the behaviour.
    let all = s.incidents(b).unwrap();
    note(
        "all, oldest first",
        format!(
            "{} {:?}",
            all.windows(2).all(|w| w[0].id < w[1].id),
            all.iter()
                .map(|x| statusrelay_spool::Incident { id: 0, ..x.clone() })
                .collect::<Vec<_>>()
        ),
    );
    note(
        "other page",
        format!("{:?}", s.incidents("statuspage").unwrap()),
    );
    note("no event", format!("{:?}", s.event_context(12345).unwrap()));

    let now = clock.now_ms();
    let w1 = s
        .maintenance_start("web", now + 1_000, Some("kernel"), true)
        .unwrap();
    let w2 = s.maintenance_start("db", now + 5_000, None, false).unwrap();
    note("windows", format!("{w1:?} {w2:?}"));
    note(
        "active web",
        format!("{:?}", s.maintenance_active("web").unwrap()),
    );
    note(
        "active api",
        format!("{:?}", s.maintenance_active("api").unwrap()),
    );
    note("list", format!("{:?}", s.maintenance_list(false).unwrap()));
    note("released", format!("{:?}", s.release_held(None).unwrap()));
    tick(1_000);
    note("expired", format!("{:?}", s.expire_maintenance().unwrap()));
    note(
        "active web after",
        format!("{:?}", s.maintenance_active("web").unwrap()),
    );
    note(
        "stopped",
        format!("{:?}", s.maintenance_stop(None).unwrap()),
    );
    note(
        "list all",
        format!("{:?}", s.maintenance_list(true).unwrap()),
    );
    // A shown window's event (a local source, no node): the component under maintenance,
    // then back.
    let window = |change: TestChange| Apply {
        component: "web".into(),
        host: statusrelay_spool::MAINTENANCE_SOURCE.into(),
        service: "-".into(),
        test: "maintenance".into(),
        change,
        rule: NodeRule::default(),
        description: Some("kernel".into()),
    };
    let ev = event("-", "kernel");
    let shown = s
        .record(&ev, &[window(TestChange::Fail(State::UnderMaintenance))])
        .unwrap();
    note("window shown", format!("{shown:?}"));
    note("failing", format!("{:?}", s.failing_tests("web").unwrap()));
    tick(10);
    let over = s
        .record(
            &ev,
            &[window(TestChange::Recover {
                one_shot_families: vec![],
            })],
        )
        .unwrap();
    note("window over", format!("{over:?}"));
    let nothing = s.record(&ev, &[]).unwrap();
    note("an event that changes nothing", format!("{nothing:?}"));
    let rejected = s
        .record_rejected(
            &event("ghost", "no component takes it"),
            "unknown component",
        )
        .unwrap();
    note(
        "a rejected event, kept with why",
        format!("{rejected} {:?}", s.event_context(rejected).unwrap()),
    );
    note("desired", format!("{:?}", s.desired().unwrap()));
    trace
}

/// The nodes as `nodes` and `status` show them: listed, one by one, their failing tests, the
/// nodes of a component, refusals counted, unrouted services replaced, and a node forgotten
/// (its components recomputed, a report of it afterwards finds no node).
fn nodes<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
    let mut trace = Trace::new();
    let tick = |ms: i64| clock.0.fetch_add(ms, Ordering::SeqCst);
    let rule_of = |_: &str| NodeRule::default();
    let web: &'static [String] = Box::leak(vec!["web".to_string()].into_boxed_slice());
    let report = |node: &'static str, seq: i64| NodeReport {
        node,
        order: (1, seq),
        snapshot: Snapshot::Node(web),
        via: Via::Collector,
        period_ms: Some(60_000),
        rule_of: &rule_of,
        keep: &[],
        identity: None,
    };
    let ev = event("nginx", "down");
    let down = |n: &str| {
        [change(
            "web",
            n,
            "http",
            TestChange::Fail(State::MajorOutage),
            NodeRule::default(),
        )]
    };
    s.add_node("n1", "h1", Some(&["web".to_string()])).unwrap();
    tick(5);
    s.add_node("n2", "h2", None).unwrap();
    s.record_reports(&[(&report("n1", 1), &ev, &down("n1"))])
        .unwrap();
    tick(5);
    s.record_reports(&[(&report("n2", 1), &ev, &down("n2"))])
        .unwrap();
    s.note_refusals(&[
        ("n2".into(), "outdated".into(), 3),
        ("n1".into(), "conflict".into(), 1),
    ])
    .unwrap();
    tick(5);
    s.note_refusals(&[("n2".into(), "too far ahead".into(), 2)])
        .unwrap();
    s.set_unrouted(
        "n1",
        &[
            ("cron".into(), "exist".into()),
            ("ntp".into(), "time".into()),
        ],
    )
    .unwrap();
    tick(5);
    s.set_unrouted("n1", &[("ntp".into(), "time,exist".into())])
        .unwrap();
    trace.push(format!("unrouted n1: {:?}", s.unrouted("n1").unwrap()));
    trace.push(format!("nodes: {:?}", s.nodes().unwrap()));
    trace.push(format!("n2: {:?}", s.node("n2").unwrap()));
    trace.push(format!("ghost: {:?}", s.node("ghost").unwrap()));
    trace.push(format!("n1 failing: {:?}", s.node_failing("n1").unwrap()));
    trace.push(format!(
        "web's nodes: {:?}",
        s.component_nodes("web").unwrap()
    ));
    let forget = NewEvent {
        host: Some("n1".into()),
        description: Some("node n1 forgotten".into()),
        ..NewEvent::new(statusrelay_core::EventSource::Forget {
            forget: statusrelay_core::source::ForgetNode { node: "n1".into() },
        })
    };
    tick(5);
    trace.push(format!(
        "forget n1: {:?}",
        s.forget_node("n1", &forget, &rule_of).unwrap()
    ));
    trace.push(format!("desired: {:?}", s.desired().unwrap()));
    trace.push(format!(
        "forget n1 again: {:?}",
        s.forget_node("n1", &forget, &rule_of).unwrap()
    ));
    trace.push(format!(
        "web's nodes: {:?}",
        s.component_nodes("web").unwrap()
    ));
    trace.push(format!("unrouted n1: {:?}", s.unrouted("n1").unwrap()));
    trace.push(format!(
        "a report of n1 after: {:?}",
        s.record_reports(&[(&report("n1", 2), &ev, &[])]).unwrap()
    ));
    let clear = |n: &str| {
        [change(
            "web",
            n,
            "http",
            TestChange::Recover {
                one_shot_families: vec![],
            },
            NodeRule::default(),
        )]
    };
    trace.push(format!(
        "n2 recovers: {:?}",
        s.record_reports(&[(&report("n2", 2), &ev, &clear("n2"))])
            .unwrap()
    ));
    trace.push(format!("nodes: {:?}", s.nodes().unwrap()));
    trace
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

/// Run `trace` on a fresh SQLite spool and a fresh PostgreSQL store with one clock, the
/// SQLite trace pinned in `tests/conformance/<name>.trace` (`STATUSRELAY_PIN=1` writes it), and
/// compare them line by line.
fn on_both<C: Check>(name: &str, pinned: &str) {
    let clock = Arc::new(TestClock(AtomicI64::new(1_000_000)));
    let dir = std::env::temp_dir().join(format!("sr-conformance-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut spool = statusrelay_spool::Spool::open(&dir.join("spool.db"), clock.clone()).unwrap();
    let on_sqlite = C::run(&mut spool, &clock);
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
    let on_postgres = C::run(&mut store, &clock);
    for (i, (p, q)) in on_sqlite.iter().zip(&on_postgres).enumerate() {
        assert_eq!(p, q, "line {i} differs: SQLite, then PostgreSQL");
    }
    assert_eq!(on_sqlite.len(), on_postgres.len());
}

/// Every part of the seam a store implements.
trait Store:
    NodeCredentials + Staleness + Deliveries + PageState + Incidents + Holds + Nodes + Record + Queue
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
{
}

/// A sequence run on both stores.
trait Check {
    fn run<S: Store>(s: &mut S, clock: &TestClock) -> Trace;
}

struct ReportsCheck;
impl Check for ReportsCheck {
    fn run<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
        reports(s, clock)
    }
}

struct StalenessCheck;
impl Check for StalenessCheck {
    fn run<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
        staleness(s, clock)
    }
}

struct DeliveriesCheck;
impl Check for DeliveriesCheck {
    fn run<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
        deliveries(s, clock)
    }
}

#[test]
fn deliveries_and_the_page_state_behave_the_same_on_both_stores() {
    on_both::<DeliveriesCheck>("deliveries", include_str!("conformance/deliveries.trace"));
}

struct IncidentsCheck;
impl Check for IncidentsCheck {
    fn run<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
        incidents(s, clock)
    }
}

#[test]
fn incidents_and_maintenance_windows_behave_the_same_on_both_stores() {
    on_both::<IncidentsCheck>("incidents", include_str!("conformance/incidents.trace"));
}

struct NodesCheck;
impl Check for NodesCheck {
    fn run<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
        nodes(s, clock)
    }
}

#[test]
fn the_nodes_as_shown_and_forgotten_behave_the_same_on_both_stores() {
    on_both::<NodesCheck>("nodes", include_str!("conformance/nodes.trace"));
}

#[test]
fn staleness_behaves_the_same_on_both_stores() {
    on_both::<StalenessCheck>("staleness", include_str!("conformance/staleness.trace"));
}

#[test]
fn node_reports_behave_the_same_on_both_stores() {
    on_both::<ReportsCheck>("reports", include_str!("conformance/reports.trace"));
}

#[test]
fn node_credentials_behave_the_same_on_both_stores() {
    let (mut spool, dir) = sqlite("credentials");
    let on_sqlite = credentials(&mut spool);
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
    assert_eq!(credentials(&mut store), on_sqlite);
    let written = CredentialReads::credentials(&mut store).unwrap();
    assert_eq!(any_reads(store).credentials().unwrap(), written);
}
