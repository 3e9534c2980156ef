//! The election with real processes on a real PostgreSQL (`statusrelay_testkit::election`):
//! each instance is this test binary started again (`instance_process`, ignored unless a test
//! starts it). The writer is killed (kill -9), or frozen (SIGSTOP) past its lease and woken:
//! the other takes over within the lease plus one renewal, and a woken writer writes nothing.
//! Without a PostgreSQL server the tests are skipped with a message, except under `CI=true`,
//! where that is a failure. (`statusrelay-bench --takeover N` measures the same over N runs.)

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use statusrelay_testkit::election::{Act, holder, instance_loop, prepare, takeovers};
use statusrelay_testkit::postgres::Postgres;

const LEASE: Duration = Duration::from_millis(1_000);

#[test]
#[ignore = "an instance process, started by the tests of this file"]
fn instance_process() {
    let name = std::env::var("SR_PG_INSTANCE").expect("started by a test with SR_PG_INSTANCE");
    let url = std::env::var("SR_PG_URL").expect("and SR_PG_URL");
    instance_loop(&name, &url, LEASE);
}

/// This test binary as the instance `name`, its output in the cluster's directory.
fn spawn(pg: &Postgres) -> impl Fn(&str) -> Child + '_ {
    move |name: &str| {
        let log = std::fs::File::create(pg.path().join(format!("{name}.log"))).unwrap();
        Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "instance_process", "--nocapture"])
            .env_clear()
            .env("SR_PG_INSTANCE", name)
            .env("SR_PG_URL", pg.url())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

fn assert_bounded(what: &str, took: &[Duration]) {
    let worst = took.iter().max().unwrap();
    let renew = LEASE / 5;
    eprintln!("{what}: takeover {took:?}, worst {worst:?}; lease {LEASE:?}, renewal {renew:?}");
    // The lease plus one renewal, and the statements' own time on a loaded machine.
    assert!(
        *worst < LEASE + renew + Duration::from_millis(400),
        "{what}: a takeover took {worst:?}"
    );
}

#[test]
fn the_writer_killed_another_takes_over_within_the_lease_and_a_renewal() {
    let Some(pg) = Postgres::for_test("kill9") else {
        return;
    };
    let mut c = prepare(&pg);
    let took = takeovers(&mut c, Act::Kill, 3, &spawn(&pg));
    assert_bounded("kill -9", &took);
    assert_eq!(
        holder(&mut c).map(|h| h.1),
        Some(6),
        "one new term a takeover"
    );
}

#[test]
fn the_writer_frozen_past_its_lease_is_taken_over_and_writes_nothing_when_woken() {
    let Some(pg) = Postgres::for_test("sigstop") else {
        return;
    };
    let mut c = prepare(&pg);
    let took = takeovers(&mut c, Act::Freeze, 3, &spawn(&pg));
    assert_bounded("SIGSTOP", &took);
}
