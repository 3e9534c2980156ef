//! Issue 23: several `serve` instances on one PostgreSQL (a cluster of the test's own, in a
//! temp dir, on loopback), one elected writer, the strict fake Cachet as the page, nodes
//! reporting to different instances. Every process is the real binary. Without a PostgreSQL
//! server the tests are skipped with a message, except under `CI=true`, where that fails.

use std::time::Duration;

use statusrelay_testkit::postgres::Postgres;

use crate::fleet::{Aggregator, node, relay};
use crate::support::*;

/// An instance of the aggregator on `pg`, named `name`, delivering to `fake`.
/// The component, with incidents: one is opened by one writer and resolved by the next.
const DBI: &str =
    "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\nincidents = true\n";

fn instance(name: &str, fake: &FakeCachet, pg: &Postgres, lease: &str) -> Aggregator {
    let agg = Aggregator::on(cachet_sandbox(&format!("ha-{name}"), fake, DBI));
    agg.append_config(&format!(
        "[store]\nurl = \"{}\"\ninstance = \"{name}\"\nlease = \"{lease}\"\n",
        pg.url()
    ));
    agg
}

/// Which of the running instances said it writes the page (the later one, if both did).
fn writer_of<'a>(running: &'a [(&'a str, &'a LiveFlusher)]) -> Option<&'a str> {
    running
        .iter()
        .rev()
        .find(|(name, s)| {
            s.log()
                .contains(&format!("instance {name} writes the page now"))
        })
        .map(|(name, _)| *name)
}

#[test]
fn two_instances_take_reports_one_writes_and_a_killed_writer_is_replaced_within_its_lease() {
    let Some(pg) = Postgres::for_test("ha-serve") else {
        return;
    };
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let a = instance("a", &fake, &pg, "3s");
    let b = instance("b", &fake, &pg, "3s");
    // A node's credential, added through one instance, is in the database every one reads.
    let secret = a.add_node("db1");
    let nodes = b.sb.run(&["nodes"]);
    assert_contains(&nodes.stdout, "db1: never seen");
    let (mut sa, mut sb) = (a.start(), b.start());
    assert!(
        wait_until(Duration::from_secs(20), || writer_of(&[
            ("a", &sa),
            ("b", &sb)
        ])
        .is_some()),
        "no instance took the lease:\n{}\n{}",
        sa.log(),
        sb.log()
    );
    let first = writer_of(&[("a", &sa), ("b", &sb)]).unwrap().to_string();
    // The node reports to the instance that does not write: its report reaches the page
    // through the database.
    let (follower_port, writer_port) = if first == "a" {
        (b.port, a.port)
    } else {
        (a.port, b.port)
    };
    let db1 = node("db1", &a, &secret);
    let point = |port: u16| {
        let cfg = std::fs::read_to_string(db1.path("config.toml")).unwrap();
        let cfg = cfg
            .lines()
            .map(|l| {
                if l.starts_with("url = ") {
                    format!("url = \"http://127.0.0.1:{port}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        db1.write("config.toml", &format!("{cfg}\n"));
    };
    point(follower_port);
    let both = || format!("{}\n---\n{}", sa.log(), sb.log());
    assert_code(&monit(&db1, &fail("mysql")), 0);
    let r = db1.run(&["flush", "--once"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, both());
    assert!(
        wait_until(Duration::from_secs(20), || fake.status_of(2) == Some(4)),
        "{:?}\n{}",
        fake.puts(),
        both()
    );
    // kill -9 the writer; the other takes over within the lease and a renewal.
    let (dead, alive) = if first == "a" {
        (&mut sa, &sb)
    } else {
        (&mut sb, &sa)
    };
    let killed = std::time::Instant::now();
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let other = if first == "a" { "b" } else { "a" };
    alive.wait_log(
        &format!("instance {other} writes the page now"),
        Duration::from_secs(10),
    );
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(3_000 + 600 + 1_000),
        "taken over after {took:?}"
    );
    // The node's recovery, to the survivor (its other URL): on the page.
    point(if first == "a" { b.port } else { a.port });
    let _ = writer_port;
    assert_code(&monit(&db1, &ok("mysql")), 0);
    relay(&db1);
    assert!(
        wait_until(Duration::from_secs(20), || fake.status_of(2) == Some(1)
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?}\n{}",
        fake.puts(),
        alive.log()
    );
    // One incident for the outage, opened by one writer and resolved by the other.
    let incidents = fake.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:?}\n{}", alive.log());
    assert_eq!(
        incidents[0].status, 4,
        "resolved (Cachet status 4): {incidents:?}"
    );
}
