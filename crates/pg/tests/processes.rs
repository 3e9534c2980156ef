//! The election with real processes on a real PostgreSQL: each instance is this test binary
//! started again (`instance_process`, ignored unless a test starts it). An instance renews its
//! lease every fifth of it and, while it may write, writes a row under its term (fenced)
//! every 20 ms. The writer is killed (kill -9), or frozen (SIGSTOP) past its lease and woken:
//! the other takes over within the lease plus one renewal, and a woken writer writes nothing
//! after the takeover. Without a PostgreSQL server the tests are skipped with a message,
//! except under `CI=true`, where that is a failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statusrelay_pg::lease::fence;
use statusrelay_pg::{Held, Lease, PgError, migrate};
use statusrelay_testkit::postgres::Postgres;

const LEASE: Duration = Duration::from_millis(1_000);
/// How often an instance renews: a fifth of the lease.
const RENEW: Duration = Duration::from_millis(200);

fn cluster(name: &str) -> Option<Postgres> {
    match Postgres::start(name) {
        Ok(pg) => Some(pg),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true and this test cannot run: {why}"
            );
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// One loop of an instance: renew when due, say it is alive, write while it may.
fn step(
    c: &mut postgres::Client,
    lease: &Lease,
    held: &mut Held,
    renewed: &mut Option<Instant>,
) -> Result<(), PgError> {
    if renewed.is_none_or(|t| t.elapsed() >= RENEW) {
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

#[test]
#[ignore = "an instance process, started by the tests of this file"]
fn instance_process() {
    let name = std::env::var("SR_PG_INSTANCE").expect("started by a test with SR_PG_INSTANCE");
    let url = std::env::var("SR_PG_URL").expect("and SR_PG_URL");
    let lease = Lease {
        instance: name,
        duration: LEASE,
    };
    let mut held = Held::Follower { writer: None };
    let mut renewed = None;
    let mut conn: Option<postgres::Client> = None;
    loop {
        if conn.is_none() {
            conn = postgres::Client::connect(&url, postgres::NoTls).ok();
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

/// An instance process, killed when dropped.
struct Instance {
    child: Child,
}

impl Instance {
    fn start(pg: &Postgres, name: &str) -> Instance {
        let log = std::fs::File::create(pg.path().join(format!("{name}.log"))).unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "instance_process", "--nocapture"])
            .env_clear()
            .env("SR_PG_INSTANCE", name)
            .env("SR_PG_URL", pg.url())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Instance { child }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(pg: &Postgres) -> postgres::Client {
    let mut c = postgres::Client::connect(&pg.url(), postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", pg.log()));
    c.batch_execute("SET statement_timeout = 20000").unwrap();
    c
}

/// The schema, and the table instances write to.
fn prepare(pg: &Postgres) -> postgres::Client {
    let mut c = connect(pg);
    migrate(&mut c).unwrap();
    c.batch_execute(
        "CREATE TABLE writes (instance TEXT NOT NULL, term BIGINT NOT NULL,
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

fn holder(c: &mut postgres::Client) -> Option<(String, i64)> {
    c.query_opt("SELECT holder, term FROM writer WHERE id = 1", &[])
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// Start a writer and a follower; the writer's name.
fn pair(pg: &Postgres, c: &mut postgres::Client, run: usize) -> (Instance, Instance, String) {
    let (a, b) = (format!("a{run}"), format!("b{run}"));
    let first = Instance::start(pg, &a);
    until(
        c,
        "the first instance writes",
        &format!("SELECT EXISTS (SELECT 1 FROM writes WHERE instance = '{a}')"),
    );
    let second = Instance::start(pg, &b);
    until(
        c,
        "the second instance is up",
        &format!("SELECT EXISTS (SELECT 1 FROM instances WHERE name = '{b}')"),
    );
    assert_eq!(holder(c).map(|h| h.0), Some(a.clone()));
    (first, second, b)
}

/// Three runs: how long until the follower held the lease after `act` on the writer.
fn takeovers(pg: &Postgres, c: &mut postgres::Client, act: &str) -> Vec<Duration> {
    (0..3)
        .map(|run| {
            let (mut writer, follower, next) = pair(pg, c, run);
            let t0 = Instant::now();
            match act {
                "kill" => writer.child.kill().unwrap(),
                sig => writer.signal(sig),
            }
            until(
                c,
                "the follower takes over",
                &format!("SELECT coalesce((SELECT holder = '{next}' FROM writer WHERE id = 1), false)"),
            );
            let took = t0.elapsed();
            if act == "-STOP" {
                let name = format!("a{run}");
                let woke: String = c
                    .query_one("SELECT clock_timestamp()::text", &[])
                    .unwrap()
                    .get(0);
                writer.signal("-CONT");
                // Woken: it lives on (loops again) and writes nothing.
                until(
                    c,
                    "the woken writer loops again",
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM instances WHERE name = '{name}'
                                        AND seen_at > '{woke}'::timestamptz + interval '50 milliseconds')"
                    ),
                );
                let late: i64 = c
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM writes WHERE instance = '{name}'
                             AND at >= '{woke}'::timestamptz"
                        ),
                        &[],
                    )
                    .unwrap()
                    .get(0);
                assert_eq!(late, 0, "a deposed writer wrote when it woke");
            }
            // Every run starts from a free lease, both instances gone.
            drop(writer);
            drop(follower);
            c.execute("UPDATE writer SET expires_at = now()", &[]).unwrap();
            took
        })
        .collect()
}

fn assert_bounded(what: &str, took: &[Duration]) {
    let worst = took.iter().max().unwrap();
    eprintln!(
        "{what}: takeover {:?}, worst {worst:?}; lease {LEASE:?}, renewal {RENEW:?}",
        took
    );
    // The lease plus one renewal, and the statements' own time on a loaded machine.
    assert!(
        *worst < LEASE + RENEW + Duration::from_millis(400),
        "{what}: a takeover took {worst:?}"
    );
}

#[test]
fn the_writer_killed_another_takes_over_within_the_lease_and_a_renewal() {
    let Some(pg) = cluster("kill9") else { return };
    let mut c = prepare(&pg);
    let took = takeovers(&pg, &mut c, "kill");
    assert_bounded("kill -9", &took);
    assert_eq!(
        holder(&mut c).map(|h| h.1),
        Some(6),
        "one new term a takeover"
    );
}

#[test]
fn the_writer_frozen_past_its_lease_is_taken_over_and_writes_nothing_when_woken() {
    let Some(pg) = cluster("sigstop") else { return };
    let mut c = prepare(&pg);
    let took = takeovers(&pg, &mut c, "-STOP");
    assert_bounded("SIGSTOP", &took);
}
