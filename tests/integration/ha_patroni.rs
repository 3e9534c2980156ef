//! Issue 23: the database made highly available by Patroni over etcd (Debian's `patroni` and
//! `etcd-server`, a cluster of the test's own on loopback), beside `ha.rs`'s standby
//! promoted by hand. Without them the test is skipped with a message, except under `CI=true`.

use std::time::Duration;

use statusrelay_testkit::patroni::Patroni;

use crate::fleet::node;
use crate::ha::instance_on;
use crate::support::*;

/// The primary's machine dies (its Patroni and its PostgreSQL killed): Patroni promotes the
/// synchronous standby once the leader's key runs out in etcd; `serve`, given every member
/// with `target_session_attrs=read-write`, reconnects to it and carries on. What was
/// acknowledged before is there (synchronous replication); the report made meanwhile is
/// answered 503 and kept by its node until it is taken; one incident for the outage.
#[test]
fn the_database_failing_over_by_patroni_loses_nothing_acknowledged() {
    let Some(mut pt) = Patroni::for_test("ha-patroni", 2) else {
        return;
    };
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = instance_on("a", &fake, &pt.url());
    let secret = agg.add_node("db1");
    let db1 = node("db1", &agg, &secret);
    let serve = agg.start();
    serve.wait_log("instance a writes the page now", Duration::from_secs(20));
    assert_code(&monit(&db1, &fail("mysql")), 0);
    assert_code(&db1.run(&["flush", "--once"]), 0);
    assert!(
        wait_until(Duration::from_secs(20), || fake.status_of(2) == Some(4)
            && fake.incidents().len() == 1),
        "{}",
        serve.log()
    );
    let leader = pt.leader().expect("a leader");
    pt.kill(leader);
    pt.until(Duration::from_secs(60), |p| {
        p.leader().is_some_and(|l| l != leader)
    })
    .unwrap_or_else(|e| panic!("Patroni promoted no standby: {e}"));
    // The node's recovery: refused (503) until the instance has the new primary, kept by the
    // node and sent again until it is taken.
    assert_code(&monit(&db1, &ok("mysql")), 0);
    let mut said = String::new();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let r = db1.run(&["flush", "--once"]);
            said = r.stderr;
            r.code == 0
        }),
        "the node's last try: {said}\nroles: {:?}\n{}\n{}",
        pt.roles(),
        serve.log(),
        pt.logs()
    );
    assert!(
        wait_until(Duration::from_secs(30), || fake.status_of(2) == Some(1)
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?} {:?}\n{}\n{}",
        fake.puts(),
        fake.incidents(),
        serve.log(),
        pt.logs()
    );
    assert_eq!(
        fake.incidents().len(),
        1,
        "one incident across the failover"
    );
    // What was acknowledged before the failover is on the promoted primary: the node, and
    // the outage's event and its delivery.
    assert!(agg.count("SELECT count(*) FROM nodes WHERE name = 'db1'") == 1);
    assert!(agg.count("SELECT count(*) FROM outbox") >= 2);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
