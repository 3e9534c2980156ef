//! The traces of the nodes' reports and of staleness (see `conformance.rs`).

use super::*;

/// One transaction's reports, each with its test changes.
type Group<'a> = Vec<(NodeReport<'a>, Vec<Apply>)>;

/// The nodes' reports, step by step: a relay's whole report, the same again, one that drops a
/// component, a collector's report on one component, a sub-test's recovery, a new reporter, two
/// reporters alternating, a node nobody added, and a component whose rule counts nodes. After
/// each step: what was answered, what every component should show, the failing tests and the
/// nodes' marks.
pub(super) fn reports<S: NodeCredentials + Reports>(s: &mut S, clock: &TestClock) -> Trace {
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
    // One node's reports in one transaction (a group commit): each judged against what the
    // one before it left. In order; the newer first (the older is then outdated); a new
    // reporter, then its next report; a whole report naming a component again, then an older
    // one.
    let (c, d) = (relay("relay:c", "192.0.2.3"), relay("relay:d", "192.0.2.4"));
    let http = |st: State| vec![fail("web", "web1", "http", st)];
    let db_down = |st: State| vec![fail("db", "web1", "connection", st)];
    let groups: Vec<(&str, Group<'_>)> = vec![
        (
            "web1 twice in one transaction, in order",
            vec![
                (
                    report("web1", (8, 1), Snapshot::Node(web), Via::Relay, None),
                    http(State::MajorOutage),
                ),
                (
                    report("web1", (8, 2), Snapshot::Node(web), Via::Relay, None),
                    vec![],
                ),
            ],
        ),
        (
            "web1 twice in one transaction, the newer first",
            vec![
                (
                    report("web1", (8, 4), Snapshot::Node(web), Via::Relay, None),
                    http(State::PartialOutage),
                ),
                (
                    report("web1", (8, 3), Snapshot::Node(web), Via::Relay, None),
                    vec![],
                ),
            ],
        ),
        (
            "web1 by a new reporter, then again, in one transaction",
            vec![
                (
                    report("web1", (1, 1), Snapshot::Node(web_db), Via::Relay, Some(c)),
                    db_down(State::MajorOutage),
                ),
                (
                    report("web1", (1, 2), Snapshot::Node(web), Via::Relay, Some(c)),
                    vec![],
                ),
            ],
        ),
        (
            "web1 naming db again, then an older report, in one transaction",
            vec![
                (
                    report("web1", (1, 4), Snapshot::Node(web_db), Via::Relay, Some(c)),
                    db_down(State::PartialOutage),
                ),
                (
                    report("web1", (1, 3), Snapshot::Node(web), Via::Relay, Some(c)),
                    vec![],
                ),
            ],
        ),
        (
            "web1 by another reporter",
            vec![(
                report("web1", (1, 9), Snapshot::Node(web), Via::Relay, Some(d)),
                vec![],
            )],
        ),
        (
            "web1's reporter after a long silence, outdated, then its rival, in one transaction",
            vec![
                (
                    report("web1", (1, 5), Snapshot::Node(web), Via::Relay, Some(d)),
                    vec![],
                ),
                (
                    report("web1", (1, 10), Snapshot::Node(web), Via::Relay, Some(c)),
                    vec![],
                ),
            ],
        ),
    ];
    for (what, group) in &groups {
        // Two minutes of silence before the last group: its reporter is heard again by an
        // outdated report, which the second reporter of the group must see as live.
        let silence = if what.contains("long silence") {
            120_000
        } else {
            1_000
        };
        clock.0.fetch_add(silence, Ordering::SeqCst);
        let batch: Vec<_> = group.iter().map(|(r, a)| (r, &ev, a.as_slice())).collect();
        let got = s.record_reports(&batch).unwrap();
        trace.push(format!("{what}: {got:?}"));
        trace.push(format!("  desired: {:?}", s.desired().unwrap()));
        for c in ["db", "web"] {
            trace.push(format!("  {c} failing: {:?}", s.failing_tests(c).unwrap()));
        }
        trace.push(format!("  web1: {:?}", s.marks("web1").unwrap()));
    }
    trace
}

/// Staleness: a failing node goes stale (its word no longer counts, what a stale node counts
/// as does), a verdict again or on a node nobody added is passed over, every node silent makes
/// a component unknown, and a report brings a node back.
pub(super) fn staleness<S: NodeCredentials + Staleness>(s: &mut S, clock: &TestClock) -> Trace {
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
