//! Issue 23, the operator's side of several `serve` instances on one PostgreSQL: a single
//! aggregator's spool migrated, maintenance, events and replay on any instance, the single
//! aggregator's ingest, hostile-input and staleness tests on the PostgreSQL store, `check`
//! on an empty database. Clusters of the tests' own, as in `ha.rs`.

use std::time::Duration;

use statusrelay_testkit::postgres::Postgres;

use crate::fleet::{Aggregator, node};
use crate::ha::{DBI, LEASE_MS, Pair, instance};
use crate::support::*;

/// `store migrate`: a single aggregator's SQLite spool copied into PostgreSQL; `serve` on it
/// carries on where the spool was (its nodes and their marks, the page's state, the open
/// incident), and a second copy into the same database is refused.
#[test]
fn a_single_aggregators_spool_migrates_into_postgresql_and_serve_carries_on() {
    let Some(pg) = Postgres::for_test("ha-migrate") else {
        return;
    };
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::on(cachet_sandbox("ha-migrate", &fake, DBI));
    let secret = agg.add_node("db1");
    // A node limited to one component: its list survives the copy (and "any" stays any).
    assert_code(
        &agg.sb
            .run(&["nodes", "add", "db2", "--component", "db cluster"]),
        0,
    );
    let db1 = node("db1", &agg, &secret);
    let serve = agg.start();
    assert_code(&monit(&db1, &fail("mysql")), 0);
    assert_code(&db1.run(&["flush", "--once"]), 0);
    assert!(
        wait_until(Duration::from_secs(20), || fake.status_of(2) == Some(4)
            && fake.incidents().len() == 1),
        "{}",
        serve.log()
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    // Without [store], there is nowhere to copy to: said so.
    let r = agg.sb.run(&["store", "migrate"]);
    assert_code(&r, 64);
    assert_contains(&r.stderr, "add a [store] table");
    agg.append_config(&format!(
        "[store]\nurl = \"{}\"\ninstance = \"a\"\nlease = \"{LEASE_MS}ms\"\n",
        pg.url()
    ));
    let r = agg.sb.run(&["store", "migrate"]);
    assert_code(&r, 0);
    for table in [
        "nodes: 2",
        "events: ",
        "outbox: ",
        "incidents: 1",
        "page: 1",
    ] {
        assert_contains(&r.stdout, table);
    }
    let again = agg.sb.run(&["store", "migrate"]);
    assert_code(&again, 78);
    assert_contains(&again.stderr, "empty database only");
    // serve on PostgreSQL: the node, its marks and the page's state are there.
    let nodes = agg.sb.run(&["nodes"]);
    assert_contains(&nodes.stdout, "db1: last seen");
    assert_contains(&nodes.stdout, "feeds only db cluster");
    let db1_line = nodes
        .stdout
        .lines()
        .find(|l| l.starts_with("db1:"))
        .unwrap();
    assert!(
        !db1_line.contains("feeds only"),
        "db1 feeds any: {db1_line}"
    );
    let serve = agg.start();
    serve.wait_log("instance a writes the page now", Duration::from_secs(20));
    let st = agg.sb.run(&["status"]);
    assert_contains(&st.stdout, "db cluster: major_outage");
    assert_contains(&st.stdout, "(shown on the page)");
    // The node's next report is newer than its copied marks: taken, and the incident the
    // spool's flusher opened is resolved. One incident for the outage.
    assert_code(&monit(&db1, &ok("mysql")), 0);
    assert_code(&db1.run(&["flush", "--once"]), 0);
    assert!(
        wait_until(Duration::from_secs(20), || fake.status_of(2) == Some(1)
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?}\n{}",
        fake.incidents(),
        serve.log()
    );
    assert_eq!(fake.incidents().len(), 1);
}

/// A maintenance window started and stopped by the operator on an instance that does not
/// write: the page shows it through the writer, and the window's end releases what it held.
#[test]
fn a_maintenance_window_on_any_instance_reaches_the_page_through_the_writer() {
    let Some(p) = Pair::start("ha-maint") else {
        return;
    };
    let w = p.until_writer(None);
    let follower = &p.aggs[1 - w].sb;
    let r = follower.run(&[
        "maintenance",
        "start",
        "--component",
        "db cluster",
        "--for",
        "1h",
        "--reason",
        "kernel",
        "--show",
    ]);
    assert_code(&r, 0);
    // Cachet has no maintenance status for a component: the writer sends what the backend
    // maps it to (performance issues, status 2).
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.status_of(2) == Some(2)),
        "{:?}\n{}",
        p.fake.puts(),
        p.logs()
    );
    assert_contains(
        &p.aggs[w].sb.run(&["status"]).stdout,
        "db cluster: under_maintenance",
    );
    assert_contains(&follower.run(&["maintenance", "list"]).stdout, "kernel");
    // A failure meanwhile is held, not sent; the window's end releases it.
    p.report_to(w, &fail("mysql"));
    let r = follower.run(&["maintenance", "stop", "--component", "db cluster"]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "ended maintenance");
    p.until_page(4, 1);
}

/// An operator's `event` on an instance that does not write: recorded in the database, on
/// the page through the writer; one naming no component is refused (64) and kept there as
/// rejected, nothing lost.
#[test]
fn an_operators_event_on_any_instance_reaches_the_page_and_a_bad_one_is_kept() {
    let Some(p) = Pair::start("ha-event") else {
        return;
    };
    let w = p.until_writer(None);
    let follower = &p.aggs[1 - w].sb;
    let r = follower.run(&[
        "event",
        "--component",
        "db cluster",
        "--status",
        "partial_outage",
        "--message",
        "replica lag",
    ]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "db cluster: none -> partial_outage");
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.status_of(2) == Some(3)),
        "{:?}\n{}",
        p.fake.puts(),
        p.logs()
    );
    let r = follower.run(&["event", "--component", "nope", "--status", "major_outage"]);
    assert_code(&r, 64);
    let kept: i64 =
        p.pg.connect()
            .query_one(
                "SELECT count(*) FROM events WHERE status = 'rejected' AND error IS NOT NULL",
                &[],
            )
            .unwrap()
            .get(0);
    assert_eq!(kept, 1, "the refused event is kept for replay --rejected");
    // `queue`, on any instance, lists it.
    let q = follower.run(&["queue", "--json"]);
    assert_code(&q, 0);
    assert_contains(&q.stdout, "\"rejected_events\":[{");
    // `replay`, on any instance, works on the database: the refused event is refused still
    // (the config has no such component); the last hour's states are queued again, forced,
    // and the writer sends them.
    let r = follower.run(&["replay", "--rejected"]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "still rejected");
    let puts = p.fake.puts().len();
    let r = follower.run(&["replay", "--since", "1h"]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "db cluster: will re-send partial_outage");
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.puts().len() > puts),
        "{:?}\n{}",
        p.fake.puts(),
        p.logs()
    );
    // A node's spool kept Monit's event while its config took no mysql (rejected there):
    // moved into the database with this config, which maps it; the writer shows it.
    let other = html_sandbox(
        "ha-event-node",
        "[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n",
    );
    assert_code(&monit(&other, &fail("mysql")), 65);
    let from = other.spool_path();
    let r = follower.run(&["replay", "--rejected", "--from", &from.to_string_lossy()]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "moved to the PostgreSQL store as e");
    assert_contains(&r.stdout, "apply (1 test change(s))");
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.status_of(2) == Some(4)),
        "{:?}\n{}",
        p.fake.puts(),
        p.logs()
    );
    // Moved once: the source spool says so, and a second run moves nothing.
    let again = follower.run(&["replay", "--rejected", "--from", &from.to_string_lossy()]);
    assert_code(&again, 0);
    assert!(!again.stdout.contains("moved to"), "{}", again.stdout);
}

/// The single aggregator's ingest tests, on the PostgreSQL store: one node's recovery never
/// hides another's outage; a node reports only with its own credential, only to its
/// components; Monit's documents are ordered by collection time and its credentials kept
/// nowhere; a node over its rate is told to wait.
#[test]
fn the_single_aggregators_ingest_tests_pass_on_the_postgresql_store() {
    let Some(pg) = Postgres::for_test("ha-ingest") else {
        return;
    };
    crate::fleet::recovery_on("ha-recovery", Some(&pg.url()));
    // Each on a database of its own: the same node names, another story.
    for (name, test) in [
        (
            "auth",
            crate::fleet::credentials_on as fn(&str, Option<&str>),
        ),
        ("collector", crate::fleet::collector_on),
        ("rate", crate::fleet::rate_on),
    ] {
        let db = pg.database(name);
        test(&format!("ha-{name}"), Some(&db));
    }
}

/// The single aggregator's hostile-input test, on the PostgreSQL store.
#[test]
fn hostile_requests_on_the_postgresql_store_get_a_clear_4xx_and_change_nothing() {
    let Some(pg) = Postgres::for_test("ha-hostile") else {
        return;
    };
    crate::fleet::hostile_on("ha-hostile", Some(&pg.url()));
}

/// The single aggregator's staleness test, on the PostgreSQL store, where silence is judged
/// by the database.
#[test]
fn a_silent_node_on_the_postgresql_store_goes_stale_and_resumes() {
    let Some(pg) = Postgres::for_test("ha-stale") else {
        return;
    };
    crate::fleet::stale_on("ha-stale", Some(&pg.url()));
}

/// `serve` as the very first user of an empty database: the election's connection brings
/// the schema up itself, so the instance never says the database cannot be asked.
#[test]
fn the_first_instance_on_an_empty_database_is_elected_without_a_false_alarm() {
    let Some(pg) = Postgres::for_test("ha-fresh") else {
        return;
    };
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = instance("a", &fake, &pg);
    // `check` says where the store is; `check --online` asks it, changing nothing.
    let c = agg.sb.run(&["check", "--online"]);
    assert_code(&c, 0);
    assert_contains(&c.stdout, "store:   PostgreSQL 127.0.0.1 db statusrelay");
    assert_contains(&c.stdout, "[ok] the store is reachable and empty");
    // This host's own Monit events: where they go is said, not left to be found out.
    assert_contains(&c.stdout, "this host's Monit: report it with `set mmonit`");
    let serve = agg.start();
    serve.wait_log("instance a writes the page now", Duration::from_secs(20));
    let c = agg.sb.run(&["check", "--online"]);
    assert_contains(&c.stdout, "instance a writes the page (term 1)");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("cannot ask the database"), "{log}");
    // A store that cannot be reached fails the online check (69), saying why.
    pg.stop().unwrap();
    let c = agg.sb.run(&["check", "--online"]);
    assert_code(&c, 69);
    assert_contains(&c.stdout, "[FAIL] the store: PostgreSQL:");
}
