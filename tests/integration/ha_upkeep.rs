//! Issue 23: the writer's upkeep on PostgreSQL. Retention: only the writer prunes, and a
//! newly elected one begins with a batch.

use std::time::Duration;

use statusrelay_testkit::postgres::Postgres;

use crate::fleet::node;
use crate::ha::instance_on;
use crate::support::*;

/// Events nothing needs any more are pruned by the writer as soon as it is elected (here by
/// `[retention] max_events`); those a delivery or a failing test points at are kept.
#[test]
fn a_newly_elected_writer_prunes_the_events_nothing_needs() {
    let Some(pg) = Postgres::for_test("ha-prune") else {
        return;
    };
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = instance_on("a", &fake, &pg.url());
    let secret = agg.add_node("db1");
    let db1 = node("db1", &agg, &secret);
    let serve = agg.start();
    serve.wait_log("instance a writes the page now", Duration::from_secs(20));
    // An outage, its recovery, and an outage again: three deliveries, an incident.
    for step in [fail("mysql"), ok("mysql"), fail("mysql")] {
        assert_code(&monit(&db1, &step), 0);
        assert_code(&db1.run(&["flush", "--once"]), 0);
    }
    assert!(
        wait_until(Duration::from_secs(20), || fake.status_of(2) == Some(4)
            && fake.puts().len() >= 2
            && agg.count(
                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
            ) == 0),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    let before = agg.count("SELECT count(*) FROM events");
    assert!(before >= 3, "{before} events recorded");
    // Kept: the events a delivery (until it is pruned itself) or a test row points at.
    let needed = agg.count(
        "SELECT count(*) FROM events WHERE status = 'rejected'
           OR id IN (SELECT event_id FROM tests)
           OR id IN (SELECT event_id FROM outbox WHERE event_id IS NOT NULL)",
    );
    agg.append_config("[retention]\nmax_events = 1\n");
    let serve = agg.start();
    serve.wait_log("instance a writes the page now", Duration::from_secs(20));
    serve.wait_log("past retention", Duration::from_secs(20));
    assert!(
        needed >= 1 && needed < before,
        "{needed} of {before} needed"
    );
    let after = agg.count("SELECT count(*) FROM events");
    assert_eq!(
        after,
        needed,
        "{before} events before: every one nothing needs is pruned, no other\n{}",
        serve.log()
    );
    assert_eq!(
        agg.count("SELECT count(*) FROM events WHERE id IN (SELECT event_id FROM tests)"),
        agg.count("SELECT count(DISTINCT event_id) FROM tests"),
        "no event a test points at was pruned"
    );
    assert_eq!(
        fake.status_of(2),
        Some(4),
        "the page still shows the outage"
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
