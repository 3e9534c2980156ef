//! The writer's election with real processes (`crates/pg`), for its tests and its benchmark:
//! instance processes on a [`Postgres`] cluster, the writer killed (kill -9) or frozen
//! (SIGSTOP) and woken, and how long until another instance held the lease.
//!
//! Invariants:
//! - An instance ([`instance_loop`]) renews its lease every fifth of it and, while it may
//!   write, writes a row under its fenced term every 20 ms; it reconnects after any error.
//! - Every run starts from a free lease with both instances gone; a frozen writer, woken, is
//!   checked to write nothing (a failed assertion, never a figure).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use statusrelay_pg::lease::fence;
use statusrelay_pg::{Held, Lease, PgError, migrate};

use crate::postgres::Postgres;

/// An instance's loop, forever (it is killed): renew when due, say it is alive, write while
/// it may.
pub fn instance_loop(name: &str, url: &str, lease: Duration) -> ! {
    let lease = Lease {
        instance: name.to_string(),
        duration: lease,
    };
    let mut held = Held::Follower { writer: None };
    let mut renewed = None;
    let mut conn: Option<postgres::Client> = None;
    loop {
        if conn.is_none() {
            conn = postgres::Client::connect(url, postgres::NoTls).ok();
            if let Some(c) = conn.as_mut()
                && lease.prepare_session(c).is_err()
            {
                conn = None;
            }
        }
        if let Some(c) = conn.as_mut()
            && let Err(e) = step(c, &lease, &mut held, &mut renewed)
        {
            eprintln!("{}: {e}", lease.instance);
            conn = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn step(
    c: &mut postgres::Client,
    lease: &Lease,
    held: &mut Held,
    renewed: &mut Option<Instant>,
) -> Result<(), PgError> {
    if renewed.is_none_or(|t| t.elapsed() >= lease.duration / 5) {
        *renewed = Some(Instant::now());
        *held = lease.acquire(c)?;
    }
    c.execute(
        "INSERT INTO instances (name, started_at, seen_at) VALUES ($1, now(), now())
         ON CONFLICT (name) DO UPDATE SET seen_at = now()",
        &[&lease.instance],
    )?;
    if let Some(term) = held.writes(Instant::now()) {
        let mut tx = c.transaction()?;
        match fence(&mut tx, &lease.instance, term) {
            Ok(()) => {
                tx.execute(
                    "INSERT INTO writes (instance, term) VALUES ($1, $2)",
                    &[&lease.instance, &term],
                )?;
                tx.commit()?;
            }
            Err(e) if e.is_deposed() => *held = Held::Follower { writer: None },
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What is done to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// kill -9.
    Kill,
    /// SIGSTOP until another instance holds the lease, then SIGCONT.
    Freeze,
}

/// An instance process, killed when dropped.
struct Instance(Child);

impl Instance {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.0.id());
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The schema, and the table instances write to; a connection whose statements give up after
/// 20 s instead of waiting on a lock forever.
pub fn prepare(pg: &Postgres) -> postgres::Client {
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS writes (instance TEXT NOT NULL, term BIGINT NOT NULL,
                              at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())",
    )
    .unwrap();
    c
}

/// Wait (10 s at most) until `sql` returns true.
fn until(c: &mut postgres::Client, what: &str, sql: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let yes: bool = c.query_one(sql, &[]).unwrap().get(0);
        if yes {
            return;
        }
        assert!(Instant::now() < end, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The lease's holder and term now.
pub fn holder(c: &mut postgres::Client) -> Option<(String, i64)> {
    c.query_opt("SELECT holder, term FROM writer WHERE id = 1", &[])
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// `runs` times: a writer and a follower started (`spawn` makes the process of an instance
/// name), `act` on the writer; how long until the follower held the lease.
pub fn takeovers(
    c: &mut postgres::Client,
    act: Act,
    runs: usize,
    spawn: &dyn Fn(&str) -> Child,
) -> Vec<Duration> {
    (0..runs)
        .map(|run| {
            // Names of their own per act and run: rows of earlier runs stay in the tables.
            let act_name = match act {
                Act::Kill => "kill",
                Act::Freeze => "stop",
            };
            let (a, b) = (format!("{act_name}-a{run}"), format!("{act_name}-b{run}"));
            let writer = Instance(spawn(&a));
            until(
                c,
                "the first instance writes",
                &format!("SELECT EXISTS (SELECT 1 FROM writes WHERE instance = '{a}')"),
            );
            let follower = Instance(spawn(&b));
            until(
                c,
                "the second instance is up",
                &format!("SELECT EXISTS (SELECT 1 FROM instances WHERE name = '{b}')"),
            );
            assert_eq!(holder(c).map(|h| h.0), Some(a.clone()));
            let t0 = Instant::now();
            match act {
                Act::Kill => writer.signal("-KILL"),
                Act::Freeze => writer.signal("-STOP"),
            }
            until(
                c,
                "the follower takes over",
                &format!(
                    "SELECT coalesce((SELECT holder = '{b}' FROM writer WHERE id = 1), false)"
                ),
            );
            let took = t0.elapsed();
            if act == Act::Freeze {
                let woke: String = c
                    .query_one("SELECT clock_timestamp()::text", &[])
                    .unwrap()
                    .get(0);
                writer.signal("-CONT");
                // Woken, it lives on (loops again) and writes nothing.
                until(
                    c,
                    "the woken writer loops again",
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM instances WHERE name = '{a}'
                                        AND seen_at > '{woke}'::timestamptz + interval '50 milliseconds')"
                    ),
                );
                let late: i64 = c
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM writes WHERE instance = '{a}'
                             AND at >= '{woke}'::timestamptz"
                        ),
                        &[],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(late, 0, "a deposed writer wrote when it woke");
            }
            drop(writer);
            drop(follower);
            c.execute("UPDATE writer SET expires_at = now()", &[]).unwrap();
            took
        })
        .collect()
}
