//! Spool unit tests on real SQLite files in a temp dir, with a clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};

use super::*;

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

struct Fixture {
    dir: PathBuf,
    clock: Arc<TestClock>,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("sr-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fixture {
            dir,
            clock: Arc::new(TestClock(AtomicI64::new(1_000_000))),
        }
    }
    fn open(&self) -> Spool {
        Spool::open(&self.dir.join("spool.db"), self.clock.clone()).unwrap()
    }
    fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ev(service: &str) -> NewEvent {
    NewEvent {
        service: Some(service.into()),
        ..NewEvent::new(statusrelay_core::EventSource::Monit {
            monit: statusrelay_core::RawEvent::default(),
            component: None,
        })
    }
}

fn fail(comp: &str, host: &str, test: &str, st: State) -> Apply {
    Apply {
        rule: statusrelay_core::nodes::NodeRule::default(),
        component: comp.into(),
        host: host.into(),
        service: "svc".into(),
        test: test.into(),
        change: TestChange::Fail(st),
        description: None,
    }
}

fn recover(comp: &str, host: &str, test: &str) -> Apply {
    Apply {
        rule: statusrelay_core::nodes::NodeRule::default(),
        component: comp.into(),
        host: host.into(),
        service: "svc".into(),
        test: test.into(),
        change: TestChange::Recover {
            one_shot_families: vec!["timeout".into()],
        },
        description: None,
    }
}

fn desired_of(s: &Spool, comp: &str) -> Option<State> {
    s.desired()
        .unwrap()
        .into_iter()
        .find(|(c, _, _)| c == comp)
        .map(|(_, st, _)| st)
}

#[test]
fn pragmas_are_durable_and_schema_is_current() {
    let f = Fixture::new("pragmas");
    let s = f.open();
    assert_eq!(s.pragma("journal_mode").unwrap(), "wal");
    assert_eq!(s.pragma("synchronous").unwrap(), "2", "FULL");
    assert_eq!(s.pragma("temp_store").unwrap(), "2", "MEMORY");
    assert_eq!(
        s.pragma("busy_timeout").unwrap(),
        BUSY_TIMEOUT.as_millis().to_string()
    );
    assert_eq!(
        s.pragma("user_version").unwrap(),
        MIGRATIONS.last().unwrap().0.to_string()
    );
    drop(s);
    // Re-opening runs no migration twice.
    let s = f.open();
    assert_eq!(s.pragma("user_version").unwrap(), "10");
}

#[test]
fn a_newer_schema_is_refused() {
    let f = Fixture::new("toonew");
    let s = f.open();
    s.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(s);
    let err = Spool::open(&f.dir.join("spool.db"), f.clock.clone())
        .err()
        .unwrap();
    assert!(matches!(err, SpoolError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn recovery_clears_only_its_own_test() {
    let f = Fixture::new("pertest");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    s.record(
        &ev("svc"),
        &[fail(
            "db",
            "h1",
            "resource:cpu usage",
            State::PerformanceIssues,
        )],
        None,
    )
    .unwrap();
    assert_eq!(desired_of(&s, "db"), Some(State::MajorOutage));
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    assert_eq!(
        desired_of(&s, "db"),
        Some(State::PerformanceIssues),
        "cpu is still failing"
    );
    s.record(
        &ev("svc"),
        &[recover("db", "h1", "resource:mem usage")],
        None,
    )
    .unwrap();
    assert_eq!(
        desired_of(&s, "db"),
        Some(State::PerformanceIssues),
        "mem recovering must not clear cpu"
    );
    s.record(
        &ev("svc"),
        &[recover("db", "h1", "resource:cpu usage")],
        None,
    )
    .unwrap();
    assert_eq!(desired_of(&s, "db"), Some(State::Operational));
}

#[test]
fn bare_family_recovery_clears_sub_tests_and_one_shots() {
    let f = Fixture::new("family");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "connection:[a]:1", State::MajorOutage)],
        None,
    )
    .unwrap();
    s.record(&ev("svc"), &[recover("db", "h1", "connection")], None)
        .unwrap();
    assert_eq!(desired_of(&s, "db"), Some(State::Operational));
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "timeout", State::MajorOutage)],
        None,
    )
    .unwrap();
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    assert_eq!(
        desired_of(&s, "db"),
        Some(State::Operational),
        "Timeout has no recovery of its own"
    );
}

#[test]
fn one_hosts_recovery_never_hides_anothers_outage() {
    let f = Fixture::new("hosts");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    s.record(
        &ev("svc"),
        &[fail("db", "h2", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let r = s
        .record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    assert!(r.changes.is_empty(), "no delivery: still down on h2");
    assert_eq!(desired_of(&s, "db"), Some(State::MajorOutage));
    s.record(&ev("svc"), &[recover("db", "h2", "existence")], None)
        .unwrap();
    assert_eq!(desired_of(&s, "db"), Some(State::Operational));
}

#[test]
fn a_failure_keeps_the_words_it_began_with_until_it_passes() {
    let f = Fixture::new("words");
    let mut s = f.open();
    let said = |s: &Spool| -> Vec<Option<String>> {
        s.failing_tests("db")
            .unwrap()
            .into_iter()
            .map(|t| t.description)
            .collect()
    };
    let with = |d: &str| Apply {
        description: Some(d.into()),
        ..fail("db", "h1", "existence", State::MajorOutage)
    };
    s.record(&ev("svc"), &[with("process is not running")], None)
        .unwrap();
    assert_eq!(said(&s), vec![Some("process is not running".to_string())]);
    // A status document's report of the same failure has no words: the first ones stay.
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    assert_eq!(said(&s), vec![Some("process is not running".to_string())]);
    // New words replace them.
    s.record(&ev("svc"), &[with("failed to start")], None)
        .unwrap();
    assert_eq!(said(&s), vec![Some("failed to start".to_string())]);
    // Passing clears them: the next failure without words has none, not the old outage's.
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    assert!(said(&s).is_empty());
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    assert_eq!(said(&s), vec![None]);
}

#[test]
fn refired_failure_queues_nothing_new() {
    let f = Fixture::new("refire");
    let mut s = f.open();
    let a = s
        .record(
            &ev("svc"),
            &[fail("db", "h1", "existence", State::MajorOutage)],
            None,
        )
        .unwrap();
    assert_eq!(a.changes.len(), 1);
    let b = s
        .record(
            &ev("svc"),
            &[fail("db", "h1", "existence", State::MajorOutage)],
            None,
        )
        .unwrap();
    assert!(b.changes.is_empty());
    assert_eq!(s.open_items().unwrap().len(), 1);
}

#[test]
fn an_older_event_replayed_late_does_not_override_a_newer_one() {
    let f = Fixture::new("seq");
    let mut s = f.open();
    let old = s.record_rejected(&ev("svc"), "config was broken").unwrap();
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    // The rejected failure (older sequence) is replayed after the recovery arrived.
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        Some(old),
    )
    .unwrap();
    assert_eq!(desired_of(&s, "db"), Some(State::Operational));
    assert!(s.rejected_events().unwrap().is_empty());
}

#[test]
fn claim_coalesces_to_the_newest_and_inherits_backoff() {
    let f = Fixture::new("coalesce");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let (c, sup) = s.claim_next("w1").unwrap();
    let c = c.unwrap();
    s.finish(
        &c,
        &Outcome::Retry {
            at: f.clock.now_ms() + 60_000,
            error: "HTTP 503".into(),
        },
    )
    .unwrap();
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::PartialOutage)],
        None,
    )
    .unwrap();
    assert!(sup.is_empty());
    let (c, sup) = s.claim_next("w1").unwrap();
    assert!(c.is_none(), "backoff of the superseded row holds");
    assert_eq!(sup.len(), 2);
    f.advance(60_000);
    let (c, _) = s.claim_next("w1").unwrap();
    let c = c.unwrap();
    assert_eq!(c.item.state, State::PartialOutage);
    assert_eq!(c.item.attempts, 1);
    s.finish(
        &c,
        &Outcome::Delivered {
            backend: "b".into(),
            state: State::PartialOutage,
        },
    )
    .unwrap();
    assert_eq!(s.page_state("b", "db").unwrap(), Some(State::PartialOutage));
    assert!(s.open_items().unwrap().is_empty());
}

#[test]
fn a_stale_claim_fails_loudly() {
    let f = Fixture::new("stale");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let c = s.claim_next("w1").unwrap().0.unwrap();
    // A restarted flusher takes the row back.
    s.recover_claims(0).unwrap();
    let c2 = s.claim_next("w2").unwrap().0.unwrap();
    let err = s
        .finish(
            &c,
            &Outcome::Delivered {
                backend: "b".into(),
                state: State::MajorOutage,
            },
        )
        .unwrap_err();
    assert!(err.is_stale_claim(), "{err}");
    assert_eq!(
        s.page_state("b", "db").unwrap(),
        None,
        "nothing recorded for the stale worker"
    );
    s.finish(
        &c2,
        &Outcome::Delivered {
            backend: "b".into(),
            state: State::MajorOutage,
        },
    )
    .unwrap();
}

#[test]
fn replay_revives_dead_items_with_a_fresh_budget() {
    let f = Fixture::new("replay");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let c = s.claim_next("w").unwrap().0.unwrap();
    s.finish(
        &c,
        &Outcome::Dead {
            error: "HTTP 401: bad token".into(),
        },
    )
    .unwrap();
    let items = s.open_items().unwrap();
    assert_eq!(
        (items[0].status.as_str(), items[0].last_error.as_deref()),
        ("dead", Some("HTTP 401: bad token"))
    );
    assert!(
        s.replay_items(&[], false, None, false)
            .unwrap()
            .due
            .is_empty(),
        "pending only without --dead"
    );
    let dry = s.replay_items(&[], true, None, true).unwrap().due;
    assert_eq!(dry.len(), 1);
    assert_eq!(
        s.open_items().unwrap()[0].status,
        DeliveryStatus::Dead,
        "dry run changes nothing"
    );
    f.advance(5000);
    s.replay_items(&[c.item.id], false, None, false).unwrap();
    let it = s.item(c.item.id).unwrap().unwrap();
    assert_eq!(
        (it.status.as_str(), it.attempts, it.queued_at),
        ("pending", 0, f.clock.now_ms())
    );
}

#[test]
fn replay_since_forces_the_latest_state_of_recent_components() {
    let f = Fixture::new("since");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("old", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    f.advance(3_600_000);
    s.record(
        &ev("svc"),
        &[fail("new", "h1", "existence", State::PartialOutage)],
        None,
    )
    .unwrap();
    let got = s
        .replay_since(f.clock.now_ms() - 60_000, None, false)
        .unwrap();
    assert_eq!(got, vec![("new".to_string(), State::PartialOutage)]);
    assert!(
        s.open_items()
            .unwrap()
            .iter()
            .any(|i| i.component == "new" && i.force)
    );
}

#[test]
fn prune_keeps_what_is_still_referenced() {
    let f = Fixture::new("prune");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    for _ in 0..5 {
        s.record(&ev("svc"), &[], None).unwrap();
    }
    s.record_rejected(&ev("svc"), "unknown").unwrap();
    f.advance(10_000);
    let (_, removed) = s.prune(Duration::from_secs(1), 1_000_000).unwrap();
    assert_eq!(
        removed, 5,
        "info events go; the applied one (referenced) and the rejected one stay"
    );
    assert_eq!(s.stats().unwrap().events, 2);
}

/// Issue 13, item 3: retention used to prune in one transaction, holding the write lock for
/// seconds with millions of events (handlers gave up, events were lost). Each call now removes
/// one bounded batch in its own transaction and says whether there is more.
#[test]
fn prune_removes_one_bounded_batch_per_transaction() {
    let f = Fixture::new("prunebatch");
    let mut s = f.open();
    for _ in 0..25 {
        s.record(&ev("svc"), &[], None).unwrap();
    }
    f.advance(10_000);
    let mut batches = Vec::new();
    loop {
        let p = s
            .prune_batch(Duration::from_secs(1), 1_000_000, 10)
            .unwrap();
        batches.push(p.events);
        if !p.more {
            break;
        }
    }
    assert_eq!(batches, [10, 10, 5]);
    assert_eq!(s.stats().unwrap().events, 0);
    // The count limit is batched the same way.
    for _ in 0..25 {
        s.record(&ev("svc"), &[], None).unwrap();
    }
    let p = s.prune_batch(Duration::from_secs(3600), 3, 10).unwrap();
    assert_eq!((p.events, p.more), (10, true));
    assert_eq!(s.prune(Duration::from_secs(3600), 3).unwrap().1, 12);
    assert_eq!(s.stats().unwrap().events, 3);
}

#[test]
fn resync_leaves_tests_changed_after_its_snapshot_alone() {
    let f = Fixture::new("resyncguard");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let snapshot = s.max_event_id().unwrap();
    // An exec recovery lands while Monit's XML (taken at `snapshot`, still failing) is in flight.
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    s.record_resync(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        snapshot,
    )
    .unwrap();
    assert_eq!(
        desired_of(&s, "db"),
        Some(State::Operational),
        "the fresher exec event wins"
    );
    // With a current snapshot, resync does repair.
    s.record_resync(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        s.max_event_id().unwrap(),
    )
    .unwrap();
    assert_eq!(desired_of(&s, "db"), Some(State::MajorOutage));
}

#[test]
fn one_unresolved_incident_per_component_is_enforced_by_the_schema() {
    let f = Fixture::new("incidents");
    let mut s = f.open();
    let i = s
        .incident_intent("b", "db", "db: Major outage", State::MajorOutage)
        .unwrap();
    assert_eq!(i.status, IncidentStatus::Opening);
    assert!(
        s.incident_intent("b", "db", "again", State::MajorOutage)
            .is_err(),
        "a second unresolved incident is refused"
    );
    assert!(
        s.incident_intent("other page", "db", "x", State::MajorOutage)
            .is_ok()
    );
    s.incident_opened(i.id, "17", State::MajorOutage).unwrap();
    assert_eq!(
        s.open_incident("b", "db")
            .unwrap()
            .unwrap()
            .remote_id
            .as_deref(),
        Some("17")
    );
    s.incident_status(i.id, IncidentStatus::Resolved, None)
        .unwrap();
    assert!(s.open_incident("b", "db").unwrap().is_none());
    assert!(
        s.incident_intent("b", "db", "next outage", State::PartialOutage)
            .is_ok()
    );
}

#[test]
fn held_deliveries_stay_pending_with_their_reason() {
    let f = Fixture::new("held");
    let mut s = f.open();
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let c = s.claim_next("w").unwrap().0.unwrap();
    s.finish(
        &c,
        &Outcome::Held {
            until: f.clock.now_ms() + 30_000,
            reason: "held: maintenance".into(),
        },
    )
    .unwrap();
    let it = s.item(c.item.id).unwrap().unwrap();
    assert_eq!(
        (it.status.as_str(), it.held.as_deref(), it.attempts),
        ("pending", Some("held: maintenance"), 0)
    );
    assert!(s.claim_next("w").unwrap().0.is_none(), "not due while held");
    f.advance(30_000);
    let c = s.claim_next("w").unwrap().0.unwrap();
    s.finish(
        &c,
        &Outcome::Delivered {
            backend: "b".into(),
            state: State::MajorOutage,
        },
    )
    .unwrap();
    assert_eq!(s.item(c.item.id).unwrap().unwrap().held, None);
}

#[test]
fn maintenance_windows_start_stop_and_expire() {
    let f = Fixture::new("maint");
    let mut s = f.open();
    let w = s
        .maintenance_start("db", f.clock.now_ms() + 60_000, Some("deploy"), true)
        .unwrap();
    assert_eq!(s.maintenance_active("db").unwrap().unwrap().id, w.id);
    assert!(s.maintenance_active("web").unwrap().is_none());
    assert!(s.expire_maintenance().unwrap().is_empty());
    f.advance(60_000);
    assert!(
        s.maintenance_active("db").unwrap().is_none(),
        "over when its time is up"
    );
    assert_eq!(s.expire_maintenance().unwrap().len(), 1);
    s.maintenance_start("web", f.clock.now_ms() + 60_000, None, false)
        .unwrap();
    assert_eq!(s.maintenance_stop(Some("web")).unwrap().len(), 1);
    assert!(s.maintenance_list(false).unwrap().is_empty());
    assert_eq!(s.maintenance_list(true).unwrap().len(), 2);
}

#[test]
fn a_new_spool_is_group_writable_for_the_flusher() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new("mode");
    let s = f.open();
    s.conn.execute_batch("BEGIN IMMEDIATE; COMMIT;").unwrap();
    let mode = std::fs::metadata(f.dir.join("spool.db"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn a_corrupt_spool_is_moved_aside_never_deleted() {
    let f = Fixture::new("corrupt");
    let garbage = b"this is not a database, it is a file someone broke".repeat(200);
    std::fs::write(f.dir.join("spool.db"), &garbage).unwrap();
    let mut s = f.open();
    let aside = s.moved_aside().expect("moved aside").to_path_buf();
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        garbage,
        "the corrupt file is kept, byte for byte"
    );
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    assert_eq!(
        desired_of(&s, "db"),
        Some(State::MajorOutage),
        "a fresh spool works"
    );
    drop(s);
    assert!(
        f.open().moved_aside().is_none(),
        "a healthy spool is left alone"
    );
}

#[test]
fn an_unconfirmed_request_clears_the_pages_confirmed_state() {
    let f = Fixture::new("unconfirmed");
    let mut s = f.open();
    s.record(&ev("svc"), &[recover("db", "h1", "existence")], None)
        .unwrap();
    let c = s.claim_next("w").unwrap().0.unwrap();
    s.finish(
        &c,
        &Outcome::Delivered {
            backend: "b".into(),
            state: State::Operational,
        },
    )
    .unwrap();
    assert_eq!(s.page_state("b", "db").unwrap(), Some(State::Operational));
    // A PUT of major_outage times out: the page may show it now.
    s.record(
        &ev("svc"),
        &[fail("db", "h1", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let c = s.claim_next("w").unwrap().0.unwrap();
    s.finish(
        &c,
        &Outcome::Retry {
            at: f.clock.now_ms() + 1000,
            error: "timed out".into(),
        },
    )
    .unwrap();
    assert_eq!(
        s.page_state("b", "db").unwrap(),
        None,
        "unknown after an unconfirmed request"
    );
    // A flusher killed mid-request: the same.
    s.finish(
        &c,
        &Outcome::Delivered {
            backend: "b".into(),
            state: State::MajorOutage,
        },
    )
    .unwrap_err();
    f.advance(1000);
    let _c = s.claim_next("w").unwrap().0.unwrap();
    s.conn
        .execute("UPDATE page SET state = 'major_outage'", [])
        .unwrap();
    s.recover_claims(0).unwrap();
    assert_eq!(
        s.page_state("b", "db").unwrap(),
        None,
        "unknown after a crash mid-request"
    );
}

/// Issue 13, item 15: permanent spool failures said 75 "retry later".
#[test]
fn only_lock_contention_and_a_full_disk_are_temporary() {
    let err = |code| SpoolError::Sqlite {
        path: PathBuf::from("s.db"),
        source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None),
    };
    for code in [
        rusqlite::ffi::SQLITE_BUSY,
        rusqlite::ffi::SQLITE_LOCKED,
        rusqlite::ffi::SQLITE_FULL,
    ] {
        assert!(err(code).is_temporary(), "{code}");
    }
    for code in [
        rusqlite::ffi::SQLITE_READONLY,
        rusqlite::ffi::SQLITE_CANTOPEN,
        rusqlite::ffi::SQLITE_IOERR,
        rusqlite::ffi::SQLITE_PERM,
    ] {
        assert!(!err(code).is_temporary(), "{code}");
    }
    assert!(
        err(rusqlite::ffi::SQLITE_READONLY)
            .hint()
            .unwrap()
            .contains("on a writable file system")
    );
}

/// Issue 14, item 1: statuses are typed; a word the schema does not know is an error naming it.
#[test]
fn stored_words_are_typed_and_an_unknown_one_is_named() {
    use rusqlite::types::{FromSql, ValueRef};
    assert_eq!(
        DeliveryStatus::column_result(ValueRef::Text(b"superseded")).unwrap(),
        DeliveryStatus::Superseded
    );
    let e = IncidentStatus::column_result(ValueRef::Text(b"closed")).unwrap_err();
    assert!(
        e.to_string().contains("unknown IncidentStatus \"closed\""),
        "{e}"
    );
    assert_eq!(
        serde_json::to_string(&EventStatus::Rejected).unwrap(),
        "\"rejected\""
    );
}

/// Issue 15: a node's reports are ordered by its own (epoch, seq), a snapshot replaces what
/// the node said before, and one node's recovery never hides another's outage.
#[test]
fn node_reports_are_ordered_per_node_and_a_snapshot_replaces_the_nodes_state() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("reports");
    let mut s = f.open();
    let rule = |_: &str| NodeRule::default();
    let db = vec!["db".to_string()];
    let both = vec!["db".to_string(), "web".to_string()];
    let report = |node: &'static str, seq: i64, whole: bool| NodeReport {
        node,
        order: (1, seq),
        snapshot: if whole {
            Snapshot::Node(&db)
        } else {
            Snapshot::Components(&db)
        },
        via: statusrelay_core::nodes::Via::Relay,
        period_ms: Some(30_000),
        rule_of: &rule,
        keep: &[],
        identity: None,
    };
    let down = |node: &str| fail("db", node, "existence", State::MajorOutage);
    let desired = |s: &Spool| s.desired().unwrap()[0].1;
    assert_eq!(
        s.record_report(&report("db1", 1, false), &ev("mysql"), &[down("db1")])
            .unwrap(),
        Reported::UnknownNode
    );
    assert!(s.add_node("db1", "h1", None).unwrap());
    assert!(s.add_node("db2", "h2", None).unwrap());
    assert!(
        !s.add_node("db1", "other", None).unwrap(),
        "names are unique"
    );
    let r = s
        .record_report(&report("db1", 1, false), &ev("mysql"), &[down("db1")])
        .unwrap();
    assert!(
        matches!(r, Reported::Applied(ref x) if x.changes.len() == 1),
        "{r:?}"
    );
    assert_eq!(desired(&s), State::MajorOutage);
    // The same report again (a retry after a lost acknowledgement) changes nothing.
    assert_eq!(
        s.record_report(&report("db1", 1, false), &ev("mysql"), &[down("db1")])
            .unwrap(),
        Reported::Outdated {
            mark: (1, 1),
            repeat: true
        }
    );
    s.record_report(&report("db2", 7, false), &ev("mysql"), &[down("db2")])
        .unwrap();
    // db1's snapshot says nothing is failing: its test recovers, db2 still holds the outage.
    s.record_report(&report("db1", 3, true), &ev("mysql"), &[])
        .unwrap();
    assert_eq!(
        s.node_failing("db1").unwrap().len(),
        0,
        "the snapshot replaced db1's state"
    );
    assert_eq!(desired(&s), State::MajorOutage, "db2 is still down");
    // A delayed older report from db1 (seq 2) never overrides its newer snapshot.
    assert_eq!(
        s.record_report(&report("db1", 2, false), &ev("mysql"), &[down("db1")])
            .unwrap(),
        Reported::Outdated {
            mark: (1, 3),
            repeat: false
        }
    );
    assert!(s.node_failing("db1").unwrap().is_empty());
    s.record_report(&report("db2", 8, true), &ev("mysql"), &[])
        .unwrap();
    assert_eq!(desired(&s), State::Operational);
    // A report of one component leaves the node's other components alone.
    let other = fail("web", "db2", "existence", State::MajorOutage);
    let two = NodeReport {
        snapshot: Snapshot::Components(&both),
        ..report("db2", 9, false)
    };
    s.record_report(&two, &ev("nginx"), &[down("db2"), other])
        .unwrap();
    s.record_report(&report("db2", 10, false), &ev("mysql"), &[])
        .unwrap();
    let left = s.node_failing("db2").unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, "web");
    let n = s.node("db2").unwrap().unwrap();
    assert_eq!(
        (n.last_seq, n.via, n.period_ms),
        (
            Some(8),
            Some(statusrelay_core::nodes::Via::Relay),
            Some(30_000)
        ),
        "last_seq is the newest whole report"
    );
    assert_eq!(n.feeds, both);
    // A whole report that no longer names "web": db2 no longer feeds it, its failure clears.
    s.record_report(&report("db2", 11, true), &ev("mysql"), &[])
        .unwrap();
    assert!(s.node_failing("db2").unwrap().is_empty());
    assert_eq!(s.node("db2").unwrap().unwrap().feeds, db);
}

/// Issue 15: order is kept per component. A report about "web" read after one about "db"
/// but delivered first must not make the "db" report look old; a new flusher run (epoch)
/// starts above the old one even with smaller sequence numbers (a fresh or restored spool).
#[test]
fn node_reports_are_ordered_per_component_and_a_new_epoch_starts_over() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("order");
    let mut s = f.open();
    s.add_node("n1", "h", None).unwrap();
    let rule = |_: &str| NodeRule::default();
    let db = vec!["db".to_string()];
    let web = vec!["web".to_string()];
    let rep = |scope: &'static [String], order| NodeReport {
        node: "n1",
        order,
        snapshot: Snapshot::Components(scope),
        via: statusrelay_core::nodes::Via::Relay,
        period_ms: None,
        rule_of: &rule,
        keep: &[],
        identity: None,
    };
    let db: &'static [String] = db.leak();
    let web: &'static [String] = web.leak();
    let webdown = fail("web", "n1", "existence", State::MajorOutage);
    let dbdown = fail("db", "n1", "existence", State::MajorOutage);
    s.record_report(&rep(web, (1, 6)), &ev("nginx"), &[webdown])
        .unwrap();
    let r = s
        .record_report(
            &rep(db, (1, 5)),
            &ev("mysql"),
            std::slice::from_ref(&dbdown),
        )
        .unwrap();
    assert!(matches!(r, Reported::Applied(_)), "{r:?}");
    assert_eq!(s.node_failing("n1").unwrap().len(), 2);
    // The flusher restarted on a fresh spool: seq 1 of epoch 2 is newer than seq 5 of epoch 1.
    let r = s
        .record_report(&rep(db, (2, 1)), &ev("mysql"), &[])
        .unwrap();
    assert!(matches!(r, Reported::Applied(_)), "{r:?}");
    assert_eq!(s.node_failing("n1").unwrap().len(), 1);
    // A delayed report of the old run changes nothing.
    assert_eq!(
        s.record_report(&rep(db, (1, 9)), &ev("mysql"), &[dbdown])
            .unwrap(),
        Reported::Outdated {
            mark: (2, 1),
            repeat: false
        }
    );
}

/// Issue 15: a node silent for more than `stale_after` periods is stale; by default it shows
/// as unknown (not frozen in its last state), never hiding another node's outage; it
/// resumes with its next report. The sweep is an event, so the page follows by itself.
#[test]
fn a_silent_node_goes_stale_and_comes_back() {
    use statusrelay_core::nodes::{NodeRule, RuleKind, StalePolicy};
    let f = Fixture::new("silent");
    let mut s = f.open();
    for n in ["db1", "db2", "db3"] {
        s.add_node(n, "h", None).unwrap();
    }
    let count = NodeRule {
        rule: RuleKind::Count,
        stale: StalePolicy::Failing,
        ..NodeRule::default()
    };
    let rule = move |c: &str| {
        if c == "counted" {
            count
        } else {
            NodeRule::default()
        }
    };
    let comps = vec!["db".to_string(), "counted".to_string()];
    let doc = |node: &'static str, seq: i64| NodeReport {
        node,
        order: (0, seq),
        snapshot: Snapshot::Node(&comps),
        via: statusrelay_core::nodes::Via::Collector,
        period_ms: Some(30_000),
        rule_of: &rule,
        keep: &[],
        identity: None,
    };
    let down = |c: &str, n: &str| Apply {
        rule: rule(c),
        ..fail(c, n, "existence", State::MajorOutage)
    };
    // Silence is judged on a monotonic clock (here: `t`), the spool records the verdicts.
    let mut live = statusrelay_core::liveness::Liveness::new(3);
    let sweep = |s: &mut Spool, live: &mut statusrelay_core::liveness::Liveness, t| {
        let swept = s.apply_silence(&live.due(t), &rule).unwrap();
        for c in &swept {
            live.settle(&c.node);
        }
        swept
    };
    for n in ["db1", "db2", "db3"] {
        live.heard(n, Some(30_000), 0);
    }
    s.record_report(&doc("db1", 1), &ev("mysql"), &[down("db", "db1")])
        .unwrap();
    s.record_report(&doc("db2", 1), &ev("mysql"), &[]).unwrap();
    s.record_report(&doc("db3", 1), &ev("mysql"), &[]).unwrap();
    let state = |s: &Spool, c: &str| {
        s.desired()
            .unwrap()
            .into_iter()
            .find(|d| d.0 == c)
            .map(|d| d.1)
    };
    assert_eq!(state(&s, "db"), Some(State::MajorOutage));
    assert_eq!(state(&s, "counted"), Some(State::Operational));
    // Two periods of silence pass: under stale_after = 3 nothing crosses.
    f.advance(60_000);
    for n in ["db2", "db3"] {
        s.record_report(&doc(n, 2), &ev("mysql"), &[]).unwrap();
        live.heard(n, None, 60_000);
    }
    assert!(sweep(&mut s, &mut live, 60_000).is_empty());
    // db1 has now been silent 100 s > 3 x 30 s: stale. "db" (default: unknown) no longer
    // shows db1's last word (major outage) but unknown; "counted" counts it as failing.
    f.advance(40_000);
    let swept = sweep(&mut s, &mut live, 100_000);
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].node, "db1");
    assert_eq!(state(&s, "db"), Some(State::Unknown));
    assert_eq!(state(&s, "counted"), Some(State::PartialOutage));
    assert!(s.node("db1").unwrap().unwrap().stale_since.is_some());
    assert!(
        sweep(&mut s, &mut live, 100_500).is_empty(),
        "once, not at every sweep"
    );
    // Another node's outage still shows over the unknown.
    s.record_report(&doc("db2", 3), &ev("mysql"), &[down("db", "db2")])
        .unwrap();
    assert_eq!(state(&s, "db"), Some(State::MajorOutage));
    // db1 is heard from again, with a report older than its last (a queued document):
    // nothing of it applies, but the node is alive, so it resumes with its last word.
    assert_eq!(
        s.record_report(&doc("db1", 1), &ev("mysql"), &[]).unwrap(),
        Reported::Outdated {
            mark: (0, 1),
            repeat: true
        }
    );
    assert!(s.node("db1").unwrap().unwrap().stale_since.is_none());
    assert_eq!(state(&s, "db"), Some(State::MajorOutage));
    assert_eq!(state(&s, "counted"), Some(State::Operational));
    // Its next report, all passing, applies.
    s.record_report(&doc("db1", 9), &ev("mysql"), &[]).unwrap();
    assert!(s.node_failing("db1").unwrap().is_empty());
    s.record_report(&doc("db2", 4), &ev("mysql"), &[]).unwrap();
    assert_eq!(state(&s, "db"), Some(State::Operational));
}

/// Issue 15: a relaying node's epoch grows at every start, even with the clock set back; a
/// snapshot request made while one is in flight is still owed after it is sent.
#[test]
fn a_relay_epoch_far_ahead_of_the_clock_starts_a_new_sequence() {
    // Issue 20, situation 1: the node's clock was once in 2099, then corrected.
    let f = Fixture::new("ahead");
    let mut s = f.open();
    f.clock.0.store(4_070_908_800_000, Ordering::SeqCst);
    let in_2099 = s.relay_start().unwrap();
    f.clock.0.store(1_796_000_000_000, Ordering::SeqCst);
    let back = s.relay_start().unwrap();
    assert_eq!(back.restarted, Some(in_2099.epoch));
    assert_eq!(back.epoch, 1_796_000_000_000, "back on the clock");
    assert_ne!(
        back.reporter, in_2099.reporter,
        "a new sequence, a new reporter"
    );
    // A few minutes ahead is not far: the epoch just grows.
    f.clock.0.store(1_795_999_900_000, Ordering::SeqCst);
    let next = s.relay_start().unwrap();
    assert_eq!((next.epoch, next.restarted), (back.epoch + 1, None));
}

#[test]
fn the_relay_epoch_grows_and_snapshot_requests_are_not_lost() {
    let f = Fixture::new("relay");
    let mut s = f.open();
    let first = s.relay_start().unwrap();
    assert_eq!(first.epoch, 1_000_000);
    assert_eq!(first.reporter.len(), 32, "a random id: {first:?}");
    // The clock set back (less than the far-ahead bound): the epoch still grows.
    f.clock.0.store(990_000, Ordering::SeqCst);
    let second = s.relay_start().unwrap();
    assert!(second.epoch > first.epoch, "{second:?} after {first:?}");
    assert_eq!(
        second.reporter, first.reporter,
        "the id is the spool's, for its life"
    );
    assert_eq!(second.restarted, None);
    let due = s.snapshot_due().unwrap();
    assert!(due > 0);
    s.request_snapshot().unwrap();
    s.snapshot_sent(due).unwrap();
    assert_eq!(
        s.snapshot_due().unwrap(),
        1,
        "the request made meanwhile is owed"
    );
    s.snapshot_sent(1).unwrap();
    assert_eq!(s.snapshot_due().unwrap(), 0);
    s.record(
        &ev("mysql"),
        &[fail("db", "h", "existence", State::MajorOutage)],
        None,
    )
    .unwrap();
    let v = s.relay_view(&["db", "web"]).unwrap();
    assert_eq!(v.seq, s.max_event_id().unwrap());
    assert_eq!(v.components[0].1.len(), 1);
    assert!(v.components[1].1.is_empty());
}

/// Issue 15 (measured in the ingest benchmark): a statement SQLite re-prepares at every run
/// costs a second compile each time, in the handler and per aggregator request. The statements
/// of the recording path run many times on one connection are compiled once.
#[test]
fn the_hot_statements_are_compiled_once() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("reprepare");
    let mut s = f.open();
    let mut other = f.open();
    for n in ["a", "b", "c"] {
        s.add_node(n, "x", None).unwrap();
    }
    // "db" counts its nodes, so the per-node query runs too.
    let rule = |c: &str| NodeRule {
        rule: if c == "db" {
            statusrelay_core::nodes::RuleKind::Count
        } else {
            statusrelay_core::nodes::RuleKind::Worst
        },
        ..NodeRule::default()
    };
    let comps = vec!["db".to_string()];
    for i in 0..12i64 {
        let n = ["a", "b", "c"][i as usize % 3];
        let _ = s.node(n).unwrap();
        let r = NodeReport {
            node: n,
            order: (0, i),
            snapshot: Snapshot::Node(&comps),
            via: statusrelay_core::nodes::Via::Collector,
            period_ms: Some(1000),
            rule_of: &rule,
            keep: &[],
            identity: None,
        };
        let applies = if i % 2 == 0 {
            vec![fail("db", n, "existence", State::MajorOutage)]
        } else {
            vec![]
        };
        s.record_report(&r, &ev("x"), &applies).unwrap();
        s.record(
            &ev("y"),
            &[fail("web", "h", "existence", State::MajorOutage)],
            None,
        )
        .unwrap();
        // Another connection writing in between, as the flusher does.
        let _ = other.claim_next("c1");
    }
    // A node's own spool (no nodes) takes the plain path.
    let g = Fixture::new("reprepare-node");
    let mut plain = g.open();
    for i in 0..6 {
        let change = if i % 2 == 0 {
            fail("db", "h", "existence", State::MajorOutage)
        } else {
            recover("db", "h", "existence")
        };
        plain.record(&ev("z"), &[change], None).unwrap();
    }
    for sql in crate::record::HOT_NODE_FOR_TEST {
        let st = plain.conn.prepare_cached(sql).unwrap();
        let runs = st.get_status(rusqlite::StatementStatus::Run);
        let again = st.get_status(rusqlite::StatementStatus::RePrepare);
        assert!(runs > 1, "{sql} ran {runs} times");
        assert_eq!(again, 0, "re-prepared {again} of {runs} runs: {sql}");
    }
    // The statements watched, from the connection's cache: none was re-prepared.
    for sql in crate::record::HOT_FOR_TEST {
        let st = s.conn.prepare_cached(sql).unwrap();
        let runs = st.get_status(rusqlite::StatementStatus::Run);
        let again = st.get_status(rusqlite::StatementStatus::RePrepare);
        assert!(runs > 1, "{sql} ran {runs} times");
        assert_eq!(again, 0, "re-prepared {again} of {runs} runs: {sql}");
    }
}

/// Issue 15: the steady state (a document or heartbeat that repeats what the node said) is a
/// no-op: it is noted, not recorded; anything new, older, or from a stale node is recorded.
/// Touches move marks and times forward only.
#[test]
fn a_report_that_repeats_the_nodes_word_is_a_noop_and_touches_only_move_forward() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("noop");
    let mut s = f.open();
    s.add_node("a", "x", None).unwrap();
    let rule = |_: &str| NodeRule::default();
    let db = vec!["db".to_string()];
    let both = vec!["db".to_string(), "web".to_string()];
    let doc = |seq: i64, scope: &'static [String]| NodeReport {
        node: "a",
        order: (0, seq),
        snapshot: Snapshot::Node(scope),
        via: statusrelay_core::nodes::Via::Collector,
        period_ms: Some(1000),
        rule_of: &rule,
        keep: &[],
        identity: None,
    };
    let db: &'static [String] = db.leak();
    let both: &'static [String] = both.leak();
    let down = vec![fail("db", "a", "existence", State::MajorOutage)];
    assert!(!s.report_is_noop(&doc(1, db), &down).unwrap(), "first word");
    s.record_report(&doc(1, db), &ev("x"), &down).unwrap();
    assert!(
        s.report_is_noop(&doc(2, db), &down).unwrap(),
        "the same again"
    );
    assert!(!s.report_is_noop(&doc(1, db), &down).unwrap(), "not newer");
    assert!(!s.report_is_noop(&doc(2, db), &[]).unwrap(), "a recovery");
    let partial = vec![fail("db", "a", "existence", State::PartialOutage)];
    assert!(
        !s.report_is_noop(&doc(2, db), &partial).unwrap(),
        "another state"
    );
    assert!(
        !s.report_is_noop(&doc(2, both), &down).unwrap(),
        "a new component"
    );
    s.touch_nodes(&[Touch {
        node: "a".into(),
        at: 5_000_000,
        via: statusrelay_core::nodes::Via::Collector,
        period_ms: Some(2000),
        whole: Some((0, 7)),
        components: vec![("db".into(), (0, 7))],
    }])
    .unwrap();
    s.touch_nodes(&[Touch {
        node: "a".into(),
        at: 4_000_000,
        via: statusrelay_core::nodes::Via::Collector,
        period_ms: None,
        whole: Some((0, 3)),
        components: vec![("db".into(), (0, 3))],
    }])
    .unwrap();
    let n = s.node("a").unwrap().unwrap();
    // Marks only move forward; the last-seen time is the wall clock as it was (stepped back
    // here), shown to the operator and never used to judge silence.
    assert_eq!(
        (n.last_seen_at, n.last_seq, n.period_ms),
        (Some(4_000_000), Some(7), Some(2000))
    );
    assert!(
        !s.report_is_noop(&doc(6, db), &down).unwrap(),
        "older than the touch"
    );
    assert!(s.report_is_noop(&doc(8, db), &down).unwrap());
}

/// Issue 20: a report as one node, with a reporter identity.
fn doc_as<'a>(
    node: &'a str,
    reporter: &'a str,
    seq: i64,
    comps: &'a [String],
    keep: &'a [String],
    rule: &'a dyn Fn(&str) -> statusrelay_core::nodes::NodeRule,
) -> NodeReport<'a> {
    NodeReport {
        node,
        order: (0, seq),
        snapshot: Snapshot::Node(comps),
        via: statusrelay_core::nodes::Via::Collector,
        period_ms: Some(10_000),
        rule_of: rule,
        keep,
        identity: Some(Identity {
            reporter,
            peer: if reporter.ends_with('b') {
                "10.0.0.2"
            } else {
                "10.0.0.1"
            },
            window_ms: 30_000,
        }),
    }
}

/// Issue 20, situation 1: a new reporter (a reinstalled node's fresh spool, a Monit restarted
/// with its clock set back, a switch from relaying to Monit alone) starts a new sequence and
/// is heard at once, whatever the old one's marks were; the old one coming back while the new
/// one is live is a conflict, refused both ways, until one side falls silent a whole window.
#[test]
fn a_new_reporter_starts_anew_and_two_live_ones_are_a_conflict() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("reporter");
    let mut s = f.open();
    s.add_node("n1", "h", None).unwrap();
    let rule = |_: &str| NodeRule::default();
    let comps = vec!["db".to_string()];
    let down = || vec![fail("db", "n1", "existence", State::MajorOutage)];
    let state = |s: &Spool| s.desired().unwrap()[0].1;
    // The old reporter's mark is far ahead (its clock was in 2099 when it collected).
    let r = s
        .record_report(
            &doc_as("n1", "a", 4_070_908_800, &comps, &[], &rule),
            &ev("m"),
            &[],
        )
        .unwrap();
    assert!(matches!(r, Reported::Applied(_)), "{r:?}");
    // Before: any later report of the node was outdated for good. Now a new reporter (the
    // node reinstalled) is heard at once, with a much smaller mark.
    f.advance(40_000);
    let r = s
        .record_report(&doc_as("n1", "b", 5, &comps, &[], &rule), &ev("m"), &down())
        .unwrap();
    assert!(matches!(r, Reported::Applied(_)), "{r:?}");
    assert_eq!(state(&s), State::MajorOutage);
    let n = s.node("n1").unwrap().unwrap();
    assert_eq!(
        (n.reporter.as_deref(), n.rival.as_deref(), n.conflict_since),
        (Some("b"), Some("a"), None)
    );
    // Its own next report goes on in its sequence.
    f.advance(1_000);
    assert!(matches!(
        s.record_report(&doc_as("n1", "b", 6, &comps, &[], &rule), &ev("m"), &down())
            .unwrap(),
        Reported::Applied(_)
    ));
    // The old reporter speaks again while b is live: a conflict, refused.
    f.advance(1_000);
    let r = s
        .record_report(&doc_as("n1", "a", 7, &comps, &[], &rule), &ev("m"), &[])
        .unwrap();
    let Reported::Conflict(c) = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        (
            c.reporter.as_str(),
            c.peer.as_str(),
            c.rival.as_str(),
            c.rival_peer.as_str()
        ),
        ("b", "10.0.0.2", "a", "10.0.0.1")
    );
    assert_eq!(state(&s), State::MajorOutage, "a conflict changes nothing");
    // Neither is taken while both are live: b is refused too.
    f.advance(1_000);
    assert!(matches!(
        s.record_report(&doc_as("n1", "b", 8, &comps, &[], &rule), &ev("m"), &[])
            .unwrap(),
        Reported::Conflict(_)
    ));
    assert!(s.node("n1").unwrap().unwrap().conflict_since.is_some());
    // a stops (the copied VM shut down); once it has been silent a whole window, b is taken.
    f.advance(31_000);
    let r = s
        .record_report(&doc_as("n1", "b", 9, &comps, &[], &rule), &ev("m"), &[])
        .unwrap();
    assert!(matches!(r, Reported::Applied(_)), "{r:?}");
    assert_eq!(state(&s), State::Operational);
    assert_eq!(s.node("n1").unwrap().unwrap().conflict_since, None);
}

/// Issue 20, situations 2 and 3: services Monit has no word on (initialising after a reload,
/// unmonitored) keep their rows in a whole-node report; the others are replaced as before.
#[test]
fn a_service_without_monits_word_keeps_its_rows() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("keep");
    let mut s = f.open();
    s.add_node("n1", "h", None).unwrap();
    let rule = |_: &str| NodeRule::default();
    let comps = vec!["db".to_string()];
    let mysql = Apply {
        service: "mysql".into(),
        ..fail("db", "n1", "existence", State::MajorOutage)
    };
    s.record_report(
        &doc_as("n1", "a", 1, &comps, &[], &rule),
        &ev("m"),
        std::slice::from_ref(&mysql),
    )
    .unwrap();
    assert_eq!(s.desired().unwrap()[0].1, State::MajorOutage);
    // Monit reloaded: every service initialising, status 0. Nothing recovers.
    let keep = vec!["mysql".to_string()];
    let r = s
        .record_report(&doc_as("n1", "a", 2, &comps, &keep, &rule), &ev("m"), &[])
        .unwrap();
    assert!(
        matches!(r, Reported::Applied(ref x) if x.changes.is_empty()),
        "{r:?}"
    );
    assert_eq!(s.node_failing("n1").unwrap().len(), 1);
    assert!(
        !s.report_is_noop(&doc_as("n1", "a", 3, &comps, &[], &rule), &[])
            .unwrap(),
        "Monit's word again (all passing) is a change"
    );
    assert!(
        s.report_is_noop(&doc_as("n1", "a", 3, &comps, &keep, &rule), &[])
            .unwrap(),
        "still no word: nothing to write"
    );
    // Monit has its word again: the service passes, the failure ends.
    s.record_report(&doc_as("n1", "a", 4, &comps, &[], &rule), &ev("m"), &[])
        .unwrap();
    assert_eq!(s.desired().unwrap()[0].1, State::Operational);
}

/// Issue 21: a whole-node report clears the node's other failing tests in one statement per
/// component; a kept service is matched by its whole name ("my" keeps "my", not "mysql").
#[test]
fn a_kept_service_is_matched_by_its_whole_name_in_the_clear() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("keepname");
    let mut s = f.open();
    s.add_node("n1", "h", None).unwrap();
    let rule = |_: &str| NodeRule::default();
    let comps = vec!["db".to_string()];
    let on = |svc: &str| Apply {
        service: svc.into(),
        ..fail("db", "n1", "existence", State::MajorOutage)
    };
    s.record_report(
        &doc_as("n1", "a", 1, &comps, &[], &rule),
        &ev("m"),
        &[on("my"), on("mysql"), on("my,sql")],
    )
    .unwrap();
    assert_eq!(s.node_failing("n1").unwrap().len(), 3);
    let keep = vec!["my".to_string()];
    s.record_report(&doc_as("n1", "a", 2, &comps, &keep, &rule), &ev("m"), &[])
        .unwrap();
    let left: Vec<String> = s
        .failing_tests("db")
        .unwrap()
        .into_iter()
        .map(|t| t.service)
        .collect();
    assert_eq!(left, ["my"]);
}

/// Issue 20, situation 4: forgetting a node is one transaction that recomputes what it fed;
/// a report of it after that finds no node.
#[test]
fn forgetting_a_node_recomputes_what_it_fed_at_once() {
    use statusrelay_core::nodes::NodeRule;
    let f = Fixture::new("forget");
    let mut s = f.open();
    s.add_node("n1", "h", None).unwrap();
    let rule = |_: &str| NodeRule::default();
    let comps = vec!["db".to_string()];
    s.record_report(
        &doc_as("n1", "a", 1, &comps, &[], &rule),
        &ev("m"),
        &[fail("db", "n1", "existence", State::MajorOutage)],
    )
    .unwrap();
    let done = s.forget_node("n1", &ev("forget"), &rule).unwrap().unwrap();
    assert_eq!(done.cleared, 1);
    assert_eq!(done.recorded.changes.len(), 1);
    assert_eq!(s.desired().unwrap()[0].1, State::Operational);
    assert!(s.node_failing("n1").unwrap().is_empty());
    assert_eq!(
        s.record_report(
            &doc_as("n1", "a", 2, &comps, &[], &rule),
            &ev("m"),
            &[fail("db", "n1", "existence", State::MajorOutage)]
        )
        .unwrap(),
        Reported::UnknownNode
    );
    assert_eq!(s.desired().unwrap()[0].1, State::Operational);
    assert!(s.forget_node("n1", &ev("forget"), &rule).unwrap().is_none());
}

/// Issue 20, situation 7: with `stale = "ignore"`, a component every node of which is silent
/// is `unknown`, never `operational`: a lost rack does not read as healthy.
#[test]
fn a_component_with_no_live_node_is_unknown_whatever_the_policy() {
    use statusrelay_core::liveness::Silence;
    use statusrelay_core::nodes::{NodeRule, StalePolicy};
    let f = Fixture::new("nolive");
    let mut s = f.open();
    let ignore = NodeRule {
        stale: StalePolicy::Ignore,
        ..NodeRule::default()
    };
    let rule = move |_: &str| ignore;
    let comps = vec!["db".to_string()];
    for n in ["a", "b"] {
        s.add_node(n, "h", None).unwrap();
        s.record_report(
            &doc_as(n, n, 1, &comps, &[], &rule),
            &ev("m"),
            &[Apply {
                rule: ignore,
                ..fail("db", n, "existence", State::MajorOutage)
            }],
        )
        .unwrap();
    }
    let silent = |n: &str| Silence {
        node: n.into(),
        silent_ms: 100_000,
        period_ms: 10_000,
    };
    s.apply_silence(&[silent("a")], &rule).unwrap();
    assert_eq!(
        s.desired().unwrap()[0].1,
        State::MajorOutage,
        "b still says so"
    );
    s.apply_silence(&[silent("b")], &rule).unwrap();
    assert_eq!(s.desired().unwrap()[0].1, State::Unknown);
}

/// Issue 20, situation 9: nodes and local sources cannot collide. A node named
/// `maintenance` or `manual` reports "all clear" and the operator's window and manual outage
/// stay; the migration renames what older spools hold.
#[test]
fn node_names_never_speak_for_local_sources() {
    use statusrelay_core::nodes::{NodeRule, RuleKind};
    let f = Fixture::new("namespace");
    // An older spool (schema 5) with a maintenance row and a manual outage.
    {
        let c = rusqlite::Connection::open(f.dir.join("spool.db")).unwrap();
        for (v, sql) in MIGRATIONS.iter().take(5) {
            c.execute_batch(sql).unwrap();
            c.pragma_update(None, "user_version", v).unwrap();
        }
        c.execute_batch(
            "INSERT INTO tests VALUES ('db', 'maintenance', '-', 'maintenance', 'under_maintenance', 1, 0);
             INSERT INTO tests VALUES ('db', 'manual', '-', 'manual', 'major_outage', 2, 0);",
        )
        .unwrap();
    }
    let mut s = f.open();
    let hosts: Vec<String> = s
        .failing_tests("db")
        .unwrap()
        .into_iter()
        .map(|t| t.host)
        .collect();
    assert_eq!(hosts, ["@maintenance", "@manual"]);
    let count = NodeRule {
        rule: RuleKind::Count,
        ..NodeRule::default()
    };
    let rule = move |_: &str| count;
    let comps = vec!["db".to_string()];
    for n in ["maintenance", "manual"] {
        s.add_node(n, "h", None).unwrap();
        s.record_report(&doc_as(n, n, 1, &comps, &[], &rule), &ev("m"), &[])
            .unwrap();
    }
    assert_eq!(
        s.failing_tests("db").unwrap().len(),
        2,
        "the nodes' all-clear clears nothing of the operator's"
    );
    assert_eq!(crate::local_source("manual"), "@manual");
    assert_eq!(crate::local_source("@manual"), "@manual");
}

#[test]
fn credentials_are_read_apart_and_their_version_moves_only_with_them() {
    let f = Fixture::new("creds");
    let mut s = f.open();
    let r = CredentialReader::open(&f.dir.join("spool.db")).unwrap();
    let v0 = r.version().unwrap();
    assert!(s.add_node("db1", "h1", None).unwrap());
    let (v1, creds) = r.load().unwrap();
    assert!(v1 > v0);
    assert_eq!(creds["db1"].secret_sha256, "h1");
    assert_eq!(creds["db1"].components, None);
    // A report's trace (last seen, marks) is not a credential.
    s.touch_nodes(&[Touch {
        node: "db1".into(),
        at: 5,
        via: statusrelay_core::nodes::Via::Relay,
        period_ms: Some(1000),
        whole: Some((1, 1)),
        components: vec![],
    }])
    .unwrap();
    s.note_refusal("db1", "told").unwrap();
    assert_eq!(r.version().unwrap(), v1);
    // Re-keyed, limited, forgotten: each moves it.
    assert!(s.put_node("db1", "h2", Some(&["db".to_string()])).unwrap());
    let (v2, creds) = r.load().unwrap();
    assert!(v2 > v1);
    assert_eq!(creds["db1"].secret_sha256, "h2");
    assert_eq!(creds["db1"].components, Some(vec!["db".to_string()]));
    s.forget_node("db1", &ev("-"), &|_| Default::default())
        .unwrap();
    let (v3, creds) = r.load().unwrap();
    assert!(v3 > v2);
    assert!(creds.is_empty());
}

/// The aggregator computes a component's state in SQL (worst of: failing tests of live nodes,
/// what a stale node counts as, nobody live means at least unknown; a count rule per node);
/// `NodeRule::combine` is the rule as written. On random fleets (nodes, failing tests, stale
/// flags, stale policies, worst or count rules) the two agree.
mod worst_rule {
    use super::*;
    use proptest::prelude::*;
    use statusrelay_core::nodes::{AllWord, MajorAt, NodeRule, RuleKind, StalePolicy};
    use std::collections::BTreeMap;

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::PerformanceIssues),
            Just(State::PartialOutage),
            Just(State::MajorOutage),
            Just(State::UnderMaintenance),
            Just(State::Unknown),
        ]
    }

    /// The worst-of rule, or a count with `partial_at <= major_at` (a number or "all").
    fn rule_with(stale: StalePolicy) -> impl Strategy<Value = NodeRule> {
        prop_oneof![
            Just(NodeRule {
                stale,
                ..NodeRule::default()
            }),
            (1u32..3, 0u32..3, any::<bool>()).prop_map(move |(partial, more, all)| NodeRule {
                rule: RuleKind::Count,
                partial_at: partial,
                major_at: if all {
                    MajorAt::Word(AllWord::All)
                } else {
                    MajorAt::Nodes(partial + more)
                },
                stale,
            }),
        ]
    }

    fn policy() -> impl Strategy<Value = StalePolicy> {
        prop_oneof![
            Just(StalePolicy::Unknown),
            Just(StalePolicy::Failing),
            Just(StalePolicy::Ignore),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn the_sql_path_equals_the_rule(
            fleet in prop::collection::vec(
                (prop::collection::vec((0u8..3, state()), 0..4), any::<bool>()),
                1..5,
            ),
            rule in policy().prop_flat_map(rule_with),
        ) {
            let f = Fixture::new("worst-prop");
            let mut s = f.open();
            let rule_of = move |_: &str| rule;
            let comps = vec!["c".to_string()];
            let mut map = BTreeMap::new();
            let (mut any_stale, mut any_live) = (false, false);
            for (i, (tests, stale)) in fleet.iter().enumerate() {
                let node = format!("n{i}");
                s.add_node(&node, "h", None).unwrap();
                // One state per service: the first given (a later one under the same event
                // would not override it).
                let mut seen = Vec::new();
                let mut applies = Vec::new();
                let mut own = State::Operational;
                for (svc, st) in tests {
                    if seen.contains(svc) {
                        continue;
                    }
                    seen.push(*svc);
                    own = own.worst(*st);
                    applies.push(Apply {
                        service: format!("s{svc}"),
                        rule,
                        ..fail("c", &node, "existence", *st)
                    });
                }
                let report = NodeReport {
                    node: &node,
                    order: (0, 1),
                    snapshot: Snapshot::Node(&comps),
                    via: statusrelay_core::nodes::Via::Relay,
                    period_ms: Some(10_000),
                    rule_of: &rule_of,
                    keep: &[],
                    identity: None,
                };
                s.record_report(&report, &ev("x"), &applies).unwrap();
                if *stale {
                    any_stale = true;
                } else {
                    any_live = true;
                }
                if let Some(st) = rule.node_state(own, *stale) {
                    map.insert(node, st);
                }
            }
            let silent: Vec<Silence> = fleet
                .iter()
                .enumerate()
                .filter(|(_, (_, stale))| *stale)
                .map(|(i, _)| Silence { node: format!("n{i}"), silent_ms: 40_000, period_ms: 10_000 })
                .collect();
            s.apply_silence(&silent, &rule_of).unwrap();
            let mut want = rule.combine(&map);
            if any_stale && !any_live {
                want = want.worst(State::Unknown);
            }
            prop_assert_eq!(desired_of(&s, "c"), Some(want), "{:?} {:?}", fleet, rule);
        }
    }
}

/// Schema 10: no write of an event, a delivery or an incident builds a temporary table of an
/// IN list (its CHECK is an OR of equalities), and the claim of the next delivery seeks the
/// open deliveries' index instead of reading the whole outbox.
#[test]
fn writes_build_no_temporary_tables_and_the_claim_uses_the_open_index() {
    let f = Fixture::new("no-in-lists");
    let s = f.open();
    let opcodes = |sql: &str| -> Vec<String> {
        let mut st = s.conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        st.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    for sql in [
        "INSERT INTO events (received_at, origin, raw, status) VALUES (1, 'event', '{}', 'applied')",
        "INSERT INTO outbox (component, state, created_at, queued_at, status, next_attempt_at)
         VALUES ('web', 'operational', 1, 1, 'pending', 1)",
        "UPDATE outbox SET status = 'done' WHERE id = 1",
        "INSERT INTO incidents (backend, component, status, name, state, intent_at)
         VALUES ('b', 'web', 'opening', 'n', 'major_outage', 1)",
        "UPDATE incidents SET status = 'resolved' WHERE id = 1",
    ] {
        let ops = opcodes(sql);
        assert!(ops.iter().any(|o| o == "Halt"), "{sql}: {ops:?}");
        assert!(
            !ops.iter().any(|o| o == "OpenEphemeral"),
            "{sql} builds a temporary table: {ops:?}"
        );
    }
    let plan: Vec<String> = s
        .conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT id FROM outbox o WHERE status = 'pending' AND next_attempt_at <= 5
             AND NOT EXISTS (SELECT 1 FROM outbox s WHERE s.component = o.component AND s.status = 'sending')",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        plan[0].contains("USING INDEX outbox_open"),
        "the claim reads the outbox whole: {plan:?}"
    );
}

/// Schema 10 rebuilt three tables: an older spool's rows, ids and sequences survive it.
#[test]
fn rebuilding_the_tables_keeps_rows_ids_and_sequences() {
    let f = Fixture::new("rebuild-10");
    {
        let c = rusqlite::Connection::open(f.dir.join("spool.db")).unwrap();
        for (v, sql) in MIGRATIONS.iter().take(9) {
            c.execute_batch(sql).unwrap();
            c.pragma_update(None, "user_version", v).unwrap();
        }
        c.execute_batch(
            "INSERT INTO events (id, received_at, origin, raw, status) VALUES (7, 1, 'event', '{}', 'rejected');
             INSERT INTO events (id, received_at, origin, raw, status) VALUES (40, 2, 'event', '{}', 'applied');
             DELETE FROM events WHERE id = 40;
             INSERT INTO outbox (id, component, state, created_at, queued_at, status, next_attempt_at, held)
               VALUES (3, 'web', 'major_outage', 1, 1, 'pending', 9, 'window');
             INSERT INTO incidents (id, backend, component, status, name, state, intent_at)
               VALUES (5, 'b', 'web', 'open', 'Web is down', 'major_outage', 1);",
        )
        .unwrap();
    }
    let s = f.open();
    let row = |sql: &str| -> String { s.conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        row("SELECT group_concat(id || ':' || status) FROM events"),
        "7:rejected"
    );
    assert_eq!(
        row("SELECT id || ':' || status || ':' || next_attempt_at || ':' || held FROM outbox"),
        "3:pending:9:window"
    );
    assert_eq!(
        row("SELECT id || ':' || status || ':' || name FROM incidents"),
        "5:open:Web is down"
    );
    assert_eq!(
        row(
            "SELECT group_concat(name || '=' || seq, ' ') FROM (SELECT * FROM sqlite_sequence WHERE name IN ('events', 'outbox', 'incidents') ORDER BY name)"
        ),
        "events=40 incidents=5 outbox=3",
        "a pruned id is never given again"
    );
    assert_eq!(row("PRAGMA integrity_check"), "ok");
    // The checks still refuse what they refused.
    let bad = s.conn.execute(
        "INSERT INTO events (received_at, origin, raw, status) VALUES (1, 'event', '{}', 'lost')",
        [],
    );
    assert!(bad.is_err(), "an unknown status is refused");
}
