//! The traces of the writer's parts: deliveries and the page's state, incidents and
//! maintenance windows (see `conformance.rs`).

use super::*;

/// Deliveries and the page's state: supersede, claim, every way a delivery ends, a stale
/// claim, claims recovered after a writer stopped, read-backs, remote ids, a repair.
pub(super) fn deliveries<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
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
    // Retention: finished deliveries and the events nothing needs, by age in batches, then
    // by count; a rejected event and those the tests point at are kept.
    s.record_rejected(&event("x", "unmapped"), "no component")
        .unwrap();
    tick(10_000);
    let pruned = |p: statusrelay_spool::Pruned| {
        format!(
            "{} deliveries, {} events, more: {}",
            p.deliveries, p.events, p.more
        )
    };
    let age = std::time::Duration::from_millis(5_000);
    note(
        "prune by age, a batch of one",
        pruned(s.prune_batch(age, 1_000, 1).unwrap()),
    );
    note(
        "prune by age",
        pruned(s.prune_batch(age, 1_000, 100).unwrap()),
    );
    s.record_reports(&[(&report(3), &ev, &web_down)]).unwrap();
    s.record_reports(&[(&report(4), &ev, &[])]).unwrap();
    // Two events nothing points at: the count's to prune.
    for n in ["first", "second"] {
        s.record(&event("y", n), &[]).unwrap();
    }
    let year = std::time::Duration::from_secs(365 * 86_400);
    note(
        "prune to one event",
        pruned(s.prune_batch(year, 1, 100).unwrap()),
    );
    note("prune again", pruned(s.prune_batch(year, 1, 100).unwrap()));
    note(
        "queue after pruning: open",
        format!("{:?}", s.open_items().unwrap()),
    );
    note(
        "queue after pruning: rejected",
        format!("{:?}", s.rejected_events().unwrap()),
    );
    // Replay: the dead letter is superseded by newer deliveries of its component; pending
    // ones made due (a dry run first); the states of the last minute queued again, forced;
    // a rejected event applied under its own id, another still rejected with a new reason.
    let replayed = |r: statusrelay_spool::Replayed| {
        let due: Vec<i64> = r.due.iter().map(|i| i.id).collect();
        let gone: Vec<(i64, i64)> = r.superseded.iter().map(|(i, n)| (i.id, n.id)).collect();
        format!("due {due:?}, superseded {gone:?}")
    };
    note(
        "replay dead, dry run",
        replayed(s.replay_items(&[], true, None, true).unwrap()),
    );
    note(
        "replay web",
        replayed(s.replay_items(&[], false, Some("web"), false).unwrap()),
    );
    note(
        "replay since, dry run",
        format!(
            "{:?}",
            s.replay_since(clock.now_ms() - 60_000, None, true).unwrap()
        ),
    );
    note(
        "replay since",
        format!(
            "{:?}",
            s.replay_since(clock.now_ms() - 60_000, Some("web"), false)
                .unwrap()
        ),
    );
    let db_down = [change(
        "db",
        "d1",
        "connection",
        TestChange::Fail(State::PartialOutage),
        NodeRule::default(),
    )];
    let rejected = s.rejected_events().unwrap();
    let first = rejected.first().map(|r| r.id).unwrap();
    note(
        "replay rejected",
        format!(
            "{:?}",
            s.replay_rejected(first, &event("x", "unmapped"), &db_down)
                .unwrap()
        ),
    );
    let again = s
        .record_rejected(&event("z", "unmapped"), "no component")
        .unwrap();
    note(
        "still rejected",
        ended(s.set_rejected_error(again, "still no component")),
    );
    note(
        "queue after replay: open",
        format!("{:?}", s.open_items().unwrap()),
    );
    note(
        "queue after replay: rejected",
        format!("{:?}", s.rejected_events().unwrap()),
    );
    note(
        "desired after replay",
        format!("{:?}", s.desired().unwrap()),
    );
    // Every due delivery dead-lettered, then the dead ones replayed: the newest of each
    // component is due again with a fresh budget; the older ones stay history.
    let mut n = 0;
    while let (Some(c), _) = s.claim_next(&format!("d{n}")).unwrap() {
        note("dead-lettered", ended(s.finish(&c, &dead)));
        n += 1;
    }
    note(
        "replay dead",
        replayed(s.replay_items(&[], true, None, false).unwrap()),
    );
    note(
        "queue after the dead replayed",
        format!("{:?}", s.open_items().unwrap()),
    );
    // An event moved in from another spool, received before the newest changes here: it
    // changes a test nothing newer changed, and leaves those a newer event changed.
    let snapshot = s.last_event_at_or_before(1_000_050).unwrap();
    note("last event at or before", format!("{snapshot}"));
    let moved = [
        change(
            "web",
            "d1",
            "connection",
            TestChange::Fail(State::MajorOutage),
            NodeRule::default(),
        ),
        change(
            "db",
            "d1",
            "resource:cpu",
            TestChange::Fail(State::PerformanceIssues),
            NodeRule::default(),
        ),
    ];
    note(
        "record moved",
        format!(
            "{:?}",
            s.record_moved(&event("m", "moved"), &moved, snapshot)
                .unwrap()
        ),
    );
    for c in ["web", "db"] {
        note(
            &format!("{c} failing after the move"),
            format!("{:?}", s.failing_tests(c).unwrap()),
        );
    }
    trace
}

/// Incidents and maintenance windows: an intent, a second one refused while it is open, the
/// page's id, a change of state, resolving and resolved, a change an incident is not ready
/// for; windows started, listed, held deliveries released, expired and stopped.
pub(super) fn incidents<S: Store>(s: &mut S, clock: &TestClock) -> Trace {
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
