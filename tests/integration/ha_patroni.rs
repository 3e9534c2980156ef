//! Issue 23: the database made highly available by Patroni over etcd (Debian's `patroni` and
//! `etcd-server`, a cluster of the test's own on loopback), beside `ha.rs`'s standby
//! promoted by hand. Without them the test is skipped with a message, except under `CI=true`.

use std::time::Duration;

use statusrelay_testkit::patroni::Patroni;

use crate::ha::through_a_failover;

/// The primary's machine dies (its Patroni and its PostgreSQL killed): Patroni promotes the
/// synchronous standby once the leader's key runs out in etcd; `serve`, given every member
/// with `target_session_attrs=read-write`, reconnects to it and carries on. What was
/// acknowledged before is there (synchronous replication); the report made meanwhile is
/// answered 503 and kept by its node until it is taken; one incident for the outage.
#[test]
fn the_database_failing_over_by_patroni_loses_nothing_acknowledged() {
    let Some(pt) = Patroni::for_test("ha-patroni", 2) else {
        return;
    };
    let url = pt.url();
    let pt = std::cell::RefCell::new(pt);
    let (agg, serve, _page) = through_a_failover(
        &url,
        Duration::from_secs(60),
        &|| {
            let pt = pt.borrow();
            format!("roles: {:?}\n{}", pt.roles(), pt.logs())
        },
        || {
            let mut pt = pt.borrow_mut();
            let leader = pt.leader().expect("a leader");
            pt.kill(leader);
            pt.until(Duration::from_secs(60), |p| {
                p.leader().is_some_and(|l| l != leader)
            })
            .unwrap_or_else(|e| panic!("Patroni promoted no standby: {e}"));
        },
    );
    // What was acknowledged before the failover is on the promoted primary: the node, and
    // the outage's event and its delivery.
    assert!(agg.count("SELECT count(*) FROM nodes WHERE name = 'db1'") == 1);
    assert!(agg.count("SELECT count(*) FROM outbox") >= 2);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
