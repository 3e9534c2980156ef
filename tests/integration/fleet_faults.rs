//! Issue 15, the fleet under faults: the aggregator down while nodes keep failing and
//! recovering, and killed (SIGKILL) while it ingests and while it delivers. Nothing a node was
//! told is committed is lost, and an outage gets one incident, whatever happens in between.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use statusrelay_testkit::http::Fault;

use crate::fleet::{Aggregator, beating_node};
use crate::support::*;

/// "db cluster" with incidents on, as the fake's component 2.
const DBI: &str =
    "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\nincidents = true\n";

fn aggregator(name: &str, fake: &FakeCachet) -> Aggregator {
    Aggregator::on(cachet_sandbox(name, fake, DBI))
}

/// Deliveries a node still has to make (pending or in flight).
fn owed(sb: &Sandbox) -> i64 {
    count(
        sb,
        "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')",
    )
}

#[test]
fn the_aggregator_down_loses_nothing_and_the_page_converges_with_one_incident() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = aggregator("ff-down", &fake);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let (db1, db2) = (
        beating_node("db1", &agg, &s1),
        beating_node("db2", &agg, &s2),
    );
    let f1 = LiveFlusher::start(&db1);
    let f2 = LiveFlusher::start(&db2);
    // The aggregator is down while db1 fails and recovers and db2 fails.
    assert_code(&monit(&db1, &fail("mysql")), 0);
    assert_code(&monit(&db2, &fail("mysql")), 0);
    assert_code(&monit(&db1, &ok("mysql")), 0);
    for (sb, f) in [(&db1, &f1), (&db2, &f2)] {
        f.wait_log("retry", Duration::from_secs(20));
        assert!(owed(sb) > 0, "{}", f.log());
    }
    let serve = agg.start();
    // Nothing lost: both nodes deliver, db2's outage reaches the page, db1's recovery does
    // not hide it, and one incident is opened for it.
    assert!(
        wait_until(Duration::from_secs(30), || owed(&db1) == 0
            && owed(&db2) == 0
            && fake.puts().last() == Some(&(2, 4))),
        "{:?}\n{}\n{}",
        fake.puts(),
        serve.log(),
        f2.log()
    );
    assert_eq!(agg.node_failing("db1"), 0);
    assert_eq!(agg.node_failing("db2"), 1);
    assert!(
        wait_until(Duration::from_secs(20), || fake.incidents().len() == 1),
        "{:?}",
        fake.incidents()
    );
    // Until db2 recovers, the page never said operational after the outage began.
    let puts = fake.puts();
    let began = puts.iter().position(|p| *p == (2, 4)).unwrap();
    assert!(!puts[began..].contains(&(2, 1)), "{puts:?}");
    assert_code(&monit(&db2, &ok("mysql")), 0);
    assert!(
        wait_until(Duration::from_secs(30), || fake.puts().last()
            == Some(&(2, 1))
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?} {:?}\n{}",
        fake.puts(),
        fake.incidents(),
        serve.log()
    );
    assert_eq!(fake.incidents().len(), 1, "one incident for one outage");
    for f in [f1, f2, serve] {
        let (code, _, log) = f.stop();
        assert_eq!(code, 0, "{log}");
    }
}

/// A report sent as node `user`; its acknowledgement's status (0: no answer).
pub fn post(port: u16, user: &str, secret: &str, body: &str) -> u16 {
    let auth = statusrelay_backend::http::base64(format!("{user}:{secret}").as_bytes());
    let req = format!(
        "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    crate::fleet::raw_request(port, req.as_bytes())
}

#[test]
fn kill_9_during_ingest_loses_nothing_acknowledged() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = aggregator("ff-kill-ingest", &fake);
    let nodes: Vec<(String, String)> = (1..=3)
        .map(|i| {
            let n = format!("db{i}");
            let s = agg.add_node(&n);
            (n, s)
        })
        .collect();
    let mut serve = agg.start();
    let port = agg.port;
    let stop = Arc::new(AtomicBool::new(false));
    // Each node reports as fast as it is answered, alternating down and up; it remembers
    // the newest report acknowledged.
    let senders: Vec<_> = nodes
        .iter()
        .cloned()
        .map(|(n, s)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = 0i64;
                for seq in 1..100_000i64 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let failing = if seq % 2 == 1 {
                        r#"[{"service":"mysql","test":"existence","state":"major_outage"}]"#
                    } else {
                        "[]"
                    };
                    let body = format!(
                        r#"{{"epoch":1,"reports":[{{"seq":{seq},"component":"db cluster","failing":{failing}}}]}}"#
                    );
                    match post(port, &n, &s, &body) {
                        200 => acked = seq,
                        0 => break, // the aggregator is gone
                        other => panic!("{n} seq {seq}: HTTP {other}"),
                    }
                }
                (n, acked)
            })
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &agg.sb,
            "SELECT count(*) FROM events"
        ) >= 60),
        "{}",
        serve.log()
    );
    signal(&serve.child, "KILL");
    serve.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<(String, i64)> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    // Every acknowledged report is in the spool, as the node's newest word on the component.
    for (n, seq) in &acked {
        assert!(*seq > 0, "{n} was acknowledged something");
        let kept = count(
            &agg.sb,
            &format!("SELECT coalesce(max(seq), 0) FROM feeds WHERE node = '{n}'"),
        );
        assert!(kept >= *seq, "{n}: acknowledged seq {seq}, kept {kept}");
        let failing = agg.node_failing(n);
        // What the spool says of the node is what its newest kept report said.
        assert_eq!(failing, kept % 2, "{n}: seq {kept}");
    }
    // Restarted, it carries on from there: the page shows what the spool says.
    let serve = agg.start();
    let any_down = acked.iter().any(|(n, _)| agg.node_failing(n) == 1);
    let want = if any_down { 4 } else { 1 };
    assert!(
        wait_until(Duration::from_secs(30), || fake.status_of(2) == Some(want)),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn kill_9_during_delivery_sends_again_with_one_incident() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = aggregator("ff-kill-deliver", &fake);
    let secret = agg.add_node("db1");
    let mut serve = agg.start();
    let port = agg.port;
    // The page takes its time over the first write: the aggregator dies in the middle of it.
    fake.push_fault_on(
        "PUT",
        "/api/v1/components/2",
        Fault::Slow(Duration::from_secs(5)),
    );
    let down = r#"{"epoch":1,"reports":[{"seq":1,"component":"db cluster","failing":[{"service":"mysql","test":"existence","state":"major_outage"}]}]}"#;
    assert_eq!(post(port, "db1", &secret, down), 200);
    assert!(
        wait_until(Duration::from_secs(20), || fake
            .arrived("PUT", "/api/v1/components/2")
            >= 1),
        "{}",
        serve.log()
    );
    signal(&serve.child, "KILL");
    serve.child.wait().unwrap();
    // Restarted: the delivery left in flight is sent again, and the outage has one incident.
    let serve = agg.start();
    serve.wait_log(
        "in flight when the last flusher stopped",
        Duration::from_secs(20),
    );
    assert!(
        wait_until(Duration::from_secs(30), || fake.status_of(2) == Some(4)
            && fake.incidents().len() == 1),
        "{:?} {:?}\n{}",
        fake.puts(),
        fake.incidents(),
        serve.log()
    );
    let up = r#"{"epoch":1,"reports":[{"seq":2,"component":"db cluster","failing":[]}]}"#;
    assert_eq!(post(port, "db1", &secret, up), 200);
    assert!(
        wait_until(Duration::from_secs(30), || fake.status_of(2) == Some(1)
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?} {:?}\n{}",
        fake.puts(),
        fake.incidents(),
        serve.log()
    );
    assert_eq!(fake.incidents().len(), 1, "{:?}", fake.incidents());
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
