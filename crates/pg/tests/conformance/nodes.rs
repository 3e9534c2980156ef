//! The traces of the nodes' credentials and of the nodes as shown and forgotten (see
//! `conformance.rs`).

use super::*;

/// The nodes' credentials: add, add again, put unchanged, put changed, components kept in
/// order, and the version moving with each change and with nothing else.
pub(super) fn credentials<S: NodeCredentials>(s: &mut S) -> Trace
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

/// The nodes as `nodes` and `status` show them: listed, one by one, their failing tests, the
/// nodes of a component, refusals counted, unrouted services replaced, and a node forgotten
/// (its components recomputed, a report of it afterwards finds no node).
pub(super) fn nodes<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
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
