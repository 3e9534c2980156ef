//! A session the server ends is a retryable error, so an instance reconnects and carries on
//! instead of stopping: a failover's dying primary terminating every backend under a running
//! statement (57P01), and an instance frozen inside a transaction past its idle timeout.
//! Both stopped `serve` before (found by the suite under load: Patroni's failover, and the
//! SIGSTOP test). The frozen case answers 25P03 only to a client that was frozen while the
//! server ended it; here the client sees the connection closed, and the code itself is
//! pinned by `is_transient`'s unit test.

use std::time::{Duration, Instant};

use statusrelay_pg::PgError;
use statusrelay_testkit::postgres::Postgres;

/// Wait (deadline 10 s) until the backend `pid` is gone: the server ended the session.
fn until_gone(watch: &mut postgres::Client, pid: i32) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        assert!(Instant::now() < end, "the server never ended session {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn said(e: &PgError) -> String {
    match e {
        PgError::Db(e) => format!("{e:?}"),
        other => other.to_string(),
    }
}

#[test]
fn a_session_the_server_ends_is_a_retryable_error() {
    let Some(pg) = Postgres::for_test("sessions") else {
        return;
    };
    let mut watch = pg.connect();

    // Terminated by the server under a running statement, as a dying primary terminates
    // every backend: the statement's answer is the server's FATAL (57P01).
    let mut c = pg.connect();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let running = std::thread::spawn(move || {
        let r = c.query_one("SELECT pg_sleep(20)", &[]);
        PgError::from(r.unwrap_err())
    });
    let end = Instant::now() + Duration::from_secs(10);
    while watch
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
            &[&pid],
        )
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(Instant::now() < end, "the statement never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    watch
        .execute("SELECT pg_terminate_backend($1)", &[&pid])
        .unwrap();
    let e = running.join().unwrap();
    assert!(
        matches!(&e, PgError::Db(d) if d.code().is_some()),
        "the server's own word: {}",
        said(&e)
    );
    assert!(e.is_retryable(), "terminated: {}", said(&e));

    // Ended for idling inside a transaction, as an instance frozen mid-transaction is.
    let mut c = pg.connect();
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    c.batch_execute("SET idle_in_transaction_session_timeout = 100")
        .unwrap();
    let mut tx = c.transaction().unwrap();
    tx.execute("SELECT 1", &[]).unwrap();
    until_gone(&mut watch, pid);
    let e = PgError::from(tx.query_one("SELECT 1", &[]).unwrap_err());
    assert!(e.is_retryable(), "idle in a transaction: {}", said(&e));

    // A statement's own error is not.
    let mut c = pg.connect();
    let e = PgError::from(c.query_one("SELECT no_such_column", &[]).unwrap_err());
    assert!(!e.is_retryable(), "{}", said(&e));
}
