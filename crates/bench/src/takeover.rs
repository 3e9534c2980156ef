//! `--takeover N [--lease-ms MS]`: the writer's election (crates/pg) on a real PostgreSQL
//! cluster of the bench's own, with instance processes (this binary, `lease-instance`): N
//! runs of kill -9 on the writer and N of SIGSTOP past its lease, each timed until the other
//! instance holds the lease. The figures are against issue 23's goal, the lease plus one
//! renewal period (a fifth of the lease). `serve` does not run on PostgreSQL yet: this is the
//! election's part of a takeover.

use std::process::{Command, Stdio};
use std::time::Duration;

use statusrelay_testkit::election::{Act, prepare, takeovers};
use statusrelay_testkit::postgres::Postgres;

pub fn run(runs: usize, lease: Duration) {
    let pg = Postgres::start("bench-takeover")
        .unwrap_or_else(|why| panic!("--takeover needs a PostgreSQL server: {why}"));
    let mut c = prepare(&pg);
    let me = std::env::current_exe().unwrap();
    let ms = lease.as_millis().to_string();
    let spawn = |name: &str| {
        let log = std::fs::File::create(pg.path().join(format!("{name}.log"))).unwrap();
        Command::new(&me)
            .args(["lease-instance", name, &pg.url(), &ms])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let bound = lease + lease / 5;
    println!(
        "takeover: lease {} ms, renewal every {} ms, goal: under {} ms (lease + renewal)",
        lease.as_millis(),
        (lease / 5).as_millis(),
        bound.as_millis()
    );
    for (act, what) in [
        (Act::Kill, "kill -9"),
        (Act::Freeze, "SIGSTOP past the lease"),
    ] {
        let mut took = takeovers(&mut c, act, runs, &spawn);
        took.sort();
        let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
        println!(
            "  {what}, {runs} runs: median {:.0} ms, worst {:.0} ms; worst / goal {:.2}x{}",
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            worst.as_secs_f64() / bound.as_secs_f64(),
            if act == Act::Freeze {
                "; the woken writer wrote nothing, each run"
            } else {
                ""
            }
        );
    }
}
