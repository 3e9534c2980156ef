//! The writer's election on a real PostgreSQL (Debian's server, a cluster of the test's own
//! in a temp dir): two instances at once, renewal, a frozen writer deposed and fenced, a
//! takeover waiting for a fenced transaction, a clean hand-over, the database restarting.
//! Without a PostgreSQL server the tests are skipped with a message, except under
//! `CI=true`, where that is a failure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use statusrelay_pg::lease::{fence, writer};
use statusrelay_pg::{Held, Lease, PgError, migrate};
use statusrelay_testkit::postgres::Postgres;

fn lease(name: &str, ms: u64) -> Lease {
    Lease {
        instance: name.to_string(),
        duration: Duration::from_millis(ms),
    }
}

/// Ask for the lease until this instance holds it (or the deadline passes); when it did.
fn until_writer(l: &Lease, c: &mut postgres::Client, deadline: Duration) -> (Held, Instant) {
    let end = Instant::now() + deadline;
    loop {
        let held = l.acquire(c).unwrap();
        if matches!(held, Held::Writer { .. }) {
            return (held, Instant::now());
        }
        assert!(
            Instant::now() < end,
            "{} never took the lease: {held:?}",
            l.instance
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_instances_starting_at_once_migrate_once_and_one_of_them_writes() {
    let Some(pg) = Postgres::for_test("at-once") else {
        return;
    };
    let url = pg.url();
    let start = Arc::new(Barrier::new(2));
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                start.wait();
                migrate(&mut c).unwrap();
                (name, lease(name, 30_000).acquire(&mut c).unwrap())
            })
        })
        .collect();
    let held: Vec<(&str, Held)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let writers: Vec<&str> = held
        .iter()
        .filter(|(_, h)| matches!(h, Held::Writer { term: 1, .. }))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        writers.len(),
        1,
        "exactly one writer, under term 1: {held:?}"
    );
    let follower = held.iter().find(|(n, _)| *n != writers[0]).unwrap();
    match &follower.1 {
        Held::Follower { writer: Some(w) } => {
            assert_eq!(w.holder, writers[0]);
            assert_eq!(w.term, 1);
            assert!(w.expires_in_s > 20.0, "{w:?}");
        }
        other => panic!("the other instance: {other:?}"),
    }
    let mut c = pg.connect();
    let versions: Vec<i32> = c
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=statusrelay_pg::SCHEMA).collect::<Vec<_>>(),
        "each migration applied once"
    );
}

#[test]
fn a_frozen_writer_is_deposed_after_its_lease_and_fenced_when_it_wakes() {
    let Some(pg) = Postgres::for_test("frozen") else {
        return;
    };
    let (mut ca, mut cb) = (pg.connect(), pg.connect());
    migrate(&mut ca).unwrap();
    let (a, b) = (lease("a", 1_000), lease("b", 1_000));
    let held_a = a.acquire(&mut ca).unwrap();
    assert!(matches!(held_a, Held::Writer { term: 1, .. }), "{held_a:?}");
    // Renewing keeps the term; the other instance follows.
    let held_a = a.acquire(&mut ca).unwrap();
    assert!(matches!(held_a, Held::Writer { term: 1, .. }), "{held_a:?}");
    assert!(matches!(b.acquire(&mut cb).unwrap(), Held::Follower { .. }));
    // a freezes (renews no more); b takes over once the lease has run out, not before.
    let frozen_at = Instant::now();
    let (held_b, took_at) = until_writer(&b, &mut cb, Duration::from_secs(10));
    assert!(matches!(held_b, Held::Writer { term: 2, .. }), "{held_b:?}");
    let takeover = took_at - frozen_at;
    assert!(
        takeover >= Duration::from_millis(900) && takeover < Duration::from_millis(2_000),
        "taken over after {takeover:?}, lease 1 s"
    );
    // When b holds the lease, a's own clock already says a may not write.
    assert_eq!(held_a.writes(took_at), None);
    // a wakes: what it does under term 1 is refused in the database too; b's passes.
    let mut tx = ca.transaction().unwrap();
    let r = fence(&mut tx, "a", 1);
    assert!(matches!(r, Err(PgError::Deposed { term: 1 })), "{r:?}");
    assert!(r.unwrap_err().is_deposed());
    drop(tx);
    let mut tx = cb.transaction().unwrap();
    fence(&mut tx, "b", 2).unwrap();
    tx.commit().unwrap();
    // And it finds b writing.
    match a.acquire(&mut ca).unwrap() {
        Held::Follower { writer: Some(w) } => assert_eq!((w.holder.as_str(), w.term), ("b", 2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_takeover_waits_for_the_fenced_transaction_in_flight() {
    let Some(pg) = Postgres::for_test("fenced") else {
        return;
    };
    let (mut ca, mut cb) = (pg.connect(), pg.connect());
    migrate(&mut ca).unwrap();
    let a = lease("a", 500);
    assert!(matches!(
        a.acquire(&mut ca).unwrap(),
        Held::Writer { term: 1, .. }
    ));
    let mut tx = ca.transaction().unwrap();
    fence(&mut tx, "a", 1).unwrap();
    let committed = Arc::new(AtomicBool::new(false));
    let b = std::thread::spawn({
        let committed = committed.clone();
        move || {
            let (held, _) = until_writer(&lease("b", 500), &mut cb, Duration::from_secs(20));
            (held, committed.load(Ordering::SeqCst))
        }
    });
    // The lease runs out while a's transaction is open; b waits on its row lock.
    let row = writer(&mut tx).unwrap().unwrap();
    let wait = Duration::from_secs_f64(row.expires_in_s.max(0.0)) + Duration::from_millis(300);
    std::thread::sleep(wait);
    committed.store(true, Ordering::SeqCst);
    tx.commit().unwrap();
    let (held, after_commit) = b.join().unwrap();
    assert!(matches!(held, Held::Writer { term: 2, .. }), "{held:?}");
    assert!(
        after_commit,
        "b took over before a's fenced transaction ended"
    );
}

#[test]
fn a_clean_stop_hands_the_lease_over_at_once() {
    let Some(pg) = Postgres::for_test("release") else {
        return;
    };
    let (mut ca, mut cb) = (pg.connect(), pg.connect());
    migrate(&mut ca).unwrap();
    let (a, b) = (lease("a", 60_000), lease("b", 60_000));
    assert!(matches!(
        a.acquire(&mut ca).unwrap(),
        Held::Writer { term: 1, .. }
    ));
    assert!(matches!(b.acquire(&mut cb).unwrap(), Held::Follower { .. }));
    a.release(&mut ca).unwrap();
    // b's release is a no-op: it holds nothing.
    b.release(&mut cb).unwrap();
    assert!(matches!(
        b.acquire(&mut cb).unwrap(),
        Held::Writer { term: 2, .. }
    ));
    // a, back, holds it no more and takes it back only under a new term.
    assert!(matches!(a.acquire(&mut ca).unwrap(), Held::Follower { .. }));
}

#[test]
fn the_database_restarting_is_a_retryable_error_and_the_lease_survives_it() {
    let Some(pg) = Postgres::for_test("restart") else {
        return;
    };
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    let a = lease("a", 60_000);
    assert!(matches!(
        a.acquire(&mut c).unwrap(),
        Held::Writer { term: 1, .. }
    ));
    pg.stop().unwrap();
    let err = a.acquire(&mut c).unwrap_err();
    assert!(err.is_retryable(), "{err}");
    pg.start_again().unwrap();
    let mut c = pg.connect();
    assert!(
        matches!(a.acquire(&mut c).unwrap(), Held::Writer { term: 1, .. }),
        "within its lease, the writer renews under the same term"
    );
}

#[test]
fn a_database_from_a_newer_statusrelay_is_refused() {
    let Some(pg) = Postgres::for_test("too-new") else {
        return;
    };
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    c.execute("INSERT INTO schema_version (version) VALUES (99)", &[])
        .unwrap();
    let err = migrate(&mut c).unwrap_err();
    assert!(
        matches!(
            err,
            PgError::TooNew { found: 99, known } if known == statusrelay_pg::SCHEMA
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains("upgrade statusrelay on every instance")
    );
}

#[test]
fn a_writer_frozen_inside_a_fenced_transaction_holds_off_a_takeover_a_quarter_lease_at_most() {
    let Some(pg) = Postgres::for_test("frozen-in-tx") else {
        return;
    };
    let (mut ca, mut cb) = (pg.connect(), pg.connect());
    migrate(&mut ca).unwrap();
    let (a, b) = (lease("a", 1_000), lease("b", 1_000));
    a.prepare_session(&mut ca).unwrap();
    b.prepare_session(&mut cb).unwrap();
    // Were a's transaction never ended, b's statement fails here instead of waiting forever.
    cb.batch_execute("SET statement_timeout = 5000").unwrap();
    assert!(matches!(
        a.acquire(&mut ca).unwrap(),
        Held::Writer { term: 1, .. }
    ));
    let frozen_at = Instant::now();
    let mut tx = ca.transaction().unwrap();
    fence(&mut tx, "a", 1).unwrap();
    tx.execute("SELECT 1", &[]).unwrap();
    // a freezes here, its transaction open and idle. Without the session's timeout b would
    // wait on the row's lock for as long as a stays frozen.
    let (held, took_at) = until_writer(&b, &mut cb, Duration::from_secs(10));
    assert!(matches!(held, Held::Writer { term: 2, .. }), "{held:?}");
    let takeover = took_at - frozen_at;
    assert!(
        takeover < Duration::from_millis(1_000 + 250 + 700),
        "taken over after {takeover:?}: lease 1 s, idle transactions ended after 250 ms"
    );
    // a wakes: its transaction was ended by the server, nothing of it is written.
    let r = tx.commit();
    assert!(
        r.is_err(),
        "a's frozen transaction committed after the takeover"
    );
}
