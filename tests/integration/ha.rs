//! Issue 23: several `serve` instances on one PostgreSQL (a cluster of the test's own, in a
//! temp dir, on loopback), one elected writer, the strict fake Cachet as the page, a node
//! reporting to one instance or the other. Every process is the real binary. Without a
//! PostgreSQL server the tests are skipped with a message, except under `CI=true`, where that
//! fails.

use std::time::{Duration, Instant};

use statusrelay_testkit::postgres::Postgres;

use crate::fleet::{Aggregator, node};
use crate::support::*;

/// The component, with incidents: one outage is one incident, whichever writer opens or
/// resolves it.
pub(crate) const DBI: &str =
    "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\nincidents = true\n";

/// The lease of these tests: the page's timeout is 2 s, so it must be over 2.67 s.
pub(crate) const LEASE_MS: u64 = 3_000;

pub(crate) fn instance(name: &str, fake: &FakeCachet, pg: &Postgres) -> Aggregator {
    instance_on(name, fake, &pg.url())
}

pub(crate) fn instance_on(name: &str, fake: &FakeCachet, url: &str) -> Aggregator {
    let mut agg = Aggregator::on(cachet_sandbox(&format!("ha-{name}"), fake, DBI));
    agg.append_config(&format!(
        "[store]\nurl = \"{url}\"\ninstance = \"{name}\"\nlease = \"{LEASE_MS}ms\"\n"
    ));
    agg.store = Some(url.to_string());
    agg
}

/// Instances (two: a and b; or three with c) on one database, and a node db1 added
/// through a.
pub(crate) struct Pair {
    pub(crate) fake: FakeCachet,
    pub(crate) pg: Postgres,
    pub(crate) aggs: Vec<Aggregator>,
    pub(crate) running: Vec<Option<LiveFlusher>>,
    pub(crate) db1: Sandbox,
}

pub(crate) const NAMES: [&str; 3] = ["a", "b", "c"];

impl Pair {
    pub(crate) fn start(name: &str) -> Option<Pair> {
        Pair::of(name, 2)
    }

    pub(crate) fn of(name: &str, n: usize) -> Option<Pair> {
        let pg = Postgres::for_test(name)?;
        let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
        let aggs: Vec<Aggregator> = NAMES[..n].iter().map(|i| instance(i, &fake, &pg)).collect();
        // A node's credential, added through one instance, is in the database every one reads.
        let secret = aggs[0].add_node("db1");
        assert_contains(&aggs[1].sb.run(&["nodes"]).stdout, "db1: never seen");
        let db1 = node("db1", &aggs[0], &secret);
        let mut p = Pair {
            fake,
            pg,
            running: (0..n).map(|_| None).collect(),
            aggs,
            db1,
        };
        for i in 0..n {
            p.run(i);
        }
        p.until_writer(None);
        Some(p)
    }

    pub(crate) fn run(&mut self, i: usize) {
        let serve = LiveFlusher::spawn(self.aggs[i].sb.cmd(&[
            "serve",
            "--log-level",
            "debug",
            "--metrics-file",
            "metrics.prom",
        ]));
        serve.wait_log("serving nodes on", Duration::from_secs(20));
        self.running[i] = Some(serve);
    }

    /// Instance `i`'s metrics file says it writes (1) or follows (0).
    pub(crate) fn until_metric_writer(&self, i: usize, writes: u8) {
        let want = format!("statusrelay_writer{{instance=\"{}\"}} {writes}", NAMES[i]);
        assert!(
            wait_until(Duration::from_secs(10), || {
                std::fs::read_to_string(self.aggs[i].sb.path("metrics.prom"))
                    .is_ok_and(|m| m.contains(&want))
            }),
            "{want}\n{}",
            self.logs()
        );
    }

    /// kill -9 instance `i`.
    pub(crate) fn kill(&mut self, i: usize) {
        let mut dead = self.running[i].take().expect("running");
        let _ = dead.child.kill();
        let _ = dead.child.wait();
    }

    pub(crate) fn log(&self, i: usize) -> String {
        self.running[i]
            .as_ref()
            .map(|s| s.log())
            .unwrap_or_default()
    }

    pub(crate) fn logs(&self) -> String {
        (0..self.aggs.len())
            .map(|i| format!("{}:\n{}", NAMES[i], self.log(i)))
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// The instance that said last that it writes, among those running.
    pub(crate) fn writer(&self) -> Option<usize> {
        (0..self.aggs.len())
            .filter(|i| self.running[*i].is_some())
            .filter_map(|i| {
                let log = self.log(i);
                let at = log.rfind(&format!("instance {} writes the page now", NAMES[i]))?;
                let followed = log.rfind(&format!("{} takes reports and follows", NAMES[i]));
                (followed.is_none_or(|f| f < at)).then_some((at, i))
            })
            .max()
            .map(|(_, i)| i)
    }

    /// Wait until an instance other than `not` writes; which.
    pub(crate) fn until_writer(&self, not: Option<usize>) -> usize {
        let mut found = None;
        assert!(
            wait_until(Duration::from_secs(20), || {
                found = self.writer().filter(|w| Some(*w) != not);
                found.is_some()
            }),
            "no instance took the lease:\n{}",
            self.logs()
        );
        found.unwrap()
    }

    /// The node reports what its Monit said to instance `i`, and it is acknowledged.
    pub(crate) fn report_to(&self, i: usize, vars: &[(&str, String)]) {
        let cfg = std::fs::read_to_string(self.db1.path("config.toml")).unwrap();
        let cfg: Vec<String> = cfg
            .lines()
            .map(|l| match l.starts_with("url = ") {
                true => format!("url = \"http://127.0.0.1:{}\"", self.aggs[i].port),
                false => l.to_string(),
            })
            .collect();
        self.db1
            .write("config.toml", &format!("{}\n", cfg.join("\n")));
        assert_code(&monit(&self.db1, vars), 0);
        let r = self.db1.run(&["flush", "--once"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stderr, self.logs());
    }

    /// Wait until the page shows `status` for the component and its incidents are `incident`
    /// (1 open, 4 resolved) and one.
    /// The page writes (anything but a GET) instance `i` made, as the page saw them: by the
    /// User-Agent every instance's requests carry. `since`: only those at or after it.
    pub(crate) fn page_writes_by(&self, i: usize, since: Option<Instant>) -> Vec<String> {
        let me = format!("(instance {})", NAMES[i]);
        self.fake
            .seen()
            .into_iter()
            .filter(|r| r.method != "GET" && since.is_none_or(|t| r.at >= t))
            .filter(|r| r.agent.as_deref().is_some_and(|a| a.ends_with(&me)))
            .map(|r| format!("{} {}", r.method, r.url))
            .collect()
    }

    pub(crate) fn until_page(&self, status: i64, incident: i64) {
        assert!(
            wait_until(Duration::from_secs(20), || {
                let inc = self.fake.incidents();
                self.fake.status_of(2) == Some(status)
                    && inc.len() == 1
                    && inc[0].status == incident
            }),
            "{:?} {:?}\n{}",
            self.fake.puts(),
            self.fake.incidents(),
            self.logs()
        );
    }
}

/// How many page writes an instance's log says it made.
fn sent(log: &str) -> usize {
    log.matches("sent db cluster:").count()
}

#[test]
fn two_instances_take_reports_one_writes_and_a_killed_writer_is_replaced_within_its_lease() {
    let Some(mut p) = Pair::start("ha-kill") else {
        return;
    };
    let first = p.until_writer(None);
    p.until_metric_writer(first, 1);
    p.until_metric_writer(1 - first, 0);
    // The node reports to the instance that does not write: the page follows through the
    // database.
    p.report_to(1 - first, &fail("mysql"));
    p.until_page(4, 1);
    // kill -9 the writer; the other writes within the lease and a renewal.
    let killed = Instant::now();
    p.kill(first);
    let second = p.until_writer(Some(first));
    let took = killed.elapsed();
    assert!(
        took < Duration::from_millis(LEASE_MS + LEASE_MS / 5 + 1_000),
        "taken over after {took:?}"
    );
    p.until_metric_writer(second, 1);
    // `status`, on either instance's config, lists both and says which writes.
    let st = p.aggs[1 - second].sb.run(&["status"]);
    assert_code(&st, 0);
    assert_contains(
        &st.stdout,
        &format!("instance:  {} WRITES the page (term", NAMES[second]),
    );
    assert_contains(&st.stdout, &format!("instance:  {} seen", NAMES[first]));
    assert_contains(&st.stdout, "store:     PostgreSQL");
    let json = p.aggs[second].sb.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["writer"]["holder"], NAMES[second], "{v}");
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(2), "{v}");
    // `nodes` too: the instances the nodes report to, which writes, then the nodes.
    let nodes = p.aggs[1 - second].sb.run(&["nodes"]);
    assert_code(&nodes, 0);
    assert_contains(
        &nodes.stdout,
        &format!("instance:  {} WRITES the page (term", NAMES[second]),
    );
    assert_contains(&nodes.stdout, &format!("instance:  {} seen", NAMES[first]));
    assert_contains(&nodes.stdout, "db1: last seen");
    let json = p.aggs[first].sb.run(&["nodes", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["writer"]["holder"], NAMES[second], "{v}");
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["nodes"][0]["name"], "db1", "{v}");
    // The recovery, to the survivor: on the page, and the incident the first writer opened
    // is resolved by the second. One incident for the outage.
    p.report_to(second, &ok("mysql"));
    p.until_page(1, 4);
}

#[test]
fn a_frozen_writer_is_replaced_and_writes_nothing_when_it_wakes() {
    let Some(p) = Pair::start("ha-freeze") else {
        return;
    };
    let first = p.until_writer(None);
    p.report_to(first, &fail("mysql"));
    p.until_page(4, 1);
    // Its delivery finished and said so before it is frozen: a line written after the
    // page's answer and before the freeze would otherwise come out after the wake.
    p.running[first]
        .as_ref()
        .unwrap()
        .wait_log("sent db cluster: major_outage", Duration::from_secs(10));
    // SIGSTOP past the lease: the other takes over.
    let frozen = p.running[first].as_ref().unwrap();
    signal(&frozen.child, "STOP");
    let second = p.until_writer(Some(first));
    let taken_over = Instant::now();
    p.report_to(second, &ok("mysql"));
    p.until_page(1, 4);
    let writes = p.fake.puts().len();
    let sent_before = sent(&p.log(first));
    // Woken, it sees the lease gone and follows; it writes nothing to the page.
    signal(&p.running[first].as_ref().unwrap().child, "CONT");
    let follows = format!(
        "instance {} writes the page; {} takes reports and follows",
        NAMES[second], NAMES[first]
    );
    p.running[first]
        .as_ref()
        .unwrap()
        .wait_log(&follows, Duration::from_secs(10));
    assert_eq!(sent(&p.log(first)), sent_before, "{}", p.logs());
    // A report to the woken one reaches the page through the writer, and only through it.
    p.report_to(first, &fail("mysql"));
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.status_of(2) == Some(4)),
        "{}",
        p.logs()
    );
    assert_eq!(sent(&p.log(first)), sent_before, "{}", p.logs());
    assert!(p.fake.puts().len() > writes);
    // The page itself saw it: every write since the takeover is the second's, none the
    // woken one's, and the first did write before it froze.
    assert!(
        !p.page_writes_by(first, None).is_empty(),
        "{:?}",
        p.fake.seen()
    );
    assert_eq!(
        p.page_writes_by(first, Some(taken_over)),
        Vec::<String>::new(),
        "a deposed writer wrote to the page"
    );
    assert!(!p.page_writes_by(second, Some(taken_over)).is_empty());
}

#[test]
fn the_database_stopped_and_started_again_loses_nothing_acknowledged() {
    let Some(p) = Pair::start("ha-dbdown") else {
        return;
    };
    let w = p.until_writer(None);
    p.report_to(w, &fail("mysql"));
    p.until_page(4, 1);
    p.pg.stop().unwrap();
    // The node's report is not acknowledged while the database is down: it keeps it.
    assert_code(&monit(&p.db1, &ok("mysql")), 0);
    let r = p.db1.run(&["flush", "--once"]);
    assert_eq!(
        r.code,
        75,
        "still pending on the node: {}\n{}",
        r.stderr,
        p.logs()
    );
    p.pg.start_again().unwrap();
    // Sent again once the database is back: on the page, the incident resolved.
    let r = p.db1.run(&["flush", "--once"]);
    let acknowledged = wait_until(Duration::from_secs(20), || {
        p.db1.run(&["flush", "--once"]).code == 0
    });
    assert!(acknowledged, "{}\n{}", r.stderr, p.logs());
    p.until_page(1, 4);
}

#[test]
fn every_instance_restarted_at_once_carries_on_where_it_was() {
    let Some(mut p) = Pair::start("ha-restart") else {
        return;
    };
    let w = p.until_writer(None);
    p.report_to(1 - w, &fail("mysql"));
    p.until_page(4, 1);
    for i in 0..2 {
        let (code, _, log) = p.running[i].take().unwrap().stop();
        assert_eq!(code, 0, "{log}");
    }
    for i in 0..2 {
        p.run(i);
    }
    let w = p.until_writer(None);
    p.report_to(1 - w, &ok("mysql"));
    p.until_page(1, 4);
}

/// The database failing over: a streaming standby with synchronous replication, promoted
/// after the primary stops; the instance, given both hosts (`target_session_attrs =
/// read-write`), reconnects to the new primary, and what was acknowledged before is there:
/// the incident opened before the failover is resolved after it, one incident.
#[test]
fn the_database_failing_over_to_its_standby_loses_nothing_acknowledged() {
    let Some(primary) = Postgres::for_test("ha-failover") else {
        return;
    };
    let standby = primary.standby("ha-failover").unwrap();
    // Every commit waits for the standby to have it: acknowledged is on both.
    primary
        .configure("synchronous_standby_names = '*'")
        .unwrap();
    let url = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user={} dbname={} target_session_attrs=read-write sslmode=disable connect_timeout=2",
        primary.port,
        standby.port,
        statusrelay_testkit::postgres::DB,
        statusrelay_testkit::postgres::DB
    );
    through_a_failover(&url, Duration::from_secs(30), &String::new, || {
        // The primary is gone; the standby is promoted.
        primary.stop().unwrap();
        standby.promote().unwrap();
    });
}

/// `serve` (instance a) on the database at `url` through a failover: an outage shown with its
/// incident; `fail_over` (the primary gone, a standby promoted); then the recovery, refused
/// (503) until the instance has the new primary, kept by the node and sent again until it is
/// taken within `deadline`, shown, and the outage's one incident resolved. `more`: what else
/// to say when it fails (the cluster's own logs). The instance, still running, and its page.
pub(crate) fn through_a_failover(
    url: &str,
    deadline: Duration,
    more: &dyn Fn() -> String,
    fail_over: impl FnOnce(),
) -> (Aggregator, LiveFlusher, FakeCachet) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = instance_on("a", &fake, url);
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
    fail_over();
    assert_code(&monit(&db1, &ok("mysql")), 0);
    let mut said = String::new();
    assert!(
        wait_until(deadline, || {
            let r = db1.run(&["flush", "--once"]);
            said = r.stderr;
            r.code == 0
        }),
        "the node's last try: {said}\n{}\n{}",
        serve.log(),
        more()
    );
    assert!(
        wait_until(Duration::from_secs(30), || fake.status_of(2) == Some(1)
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?} {:?}\n{}\n{}",
        fake.puts(),
        fake.incidents(),
        serve.log(),
        more()
    );
    assert_eq!(
        fake.incidents().len(),
        1,
        "one incident across the failover"
    );
    (agg, serve, fake)
}

/// The writer killed while its incident POST is in flight, the page completing it after:
/// the next writer finds the intent the first committed, looks the incident up on the page
/// before creating one, and resolves that one. One incident for the outage.
#[test]
fn a_writer_killed_during_its_incident_post_leaves_one_incident() {
    let Some(mut p) = Pair::start("ha-post") else {
        return;
    };
    let first = p.until_writer(None);
    // The page holds the POST a second, then carries it out: its answer never reaches the
    // writer, killed meanwhile.
    p.fake.push_fault_on(
        "POST",
        "/api/v1/incidents",
        Fault::Slow(Duration::from_secs(1)),
    );
    p.report_to(first, &fail("mysql"));
    assert!(
        wait_until(Duration::from_secs(20), || p
            .fake
            .arrived("POST", "/api/v1/incidents")
            == 1),
        "{}",
        p.logs()
    );
    p.kill(first);
    let second = p.until_writer(Some(first));
    // The outage still shows, with its one incident; the recovery resolves that incident.
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.status_of(2) == Some(4)),
        "{:?}\n{}",
        p.fake.puts(),
        p.logs()
    );
    p.report_to(second, &ok("mysql"));
    p.until_page(1, 4);
    assert_eq!(
        p.fake.arrived("POST", "/api/v1/incidents"),
        1,
        "the second writer looked the incident up instead of creating another\n{}",
        p.logs()
    );
}

/// The writer killed while its component PUT is in flight, the page carrying it out after:
/// the next writer takes the delivery back (its outcome unknown), sends it again, and
/// resolves the outage's one incident; the page ends where the reports say.
#[test]
fn a_writer_killed_during_its_component_put_leaves_the_page_true() {
    let Some(mut p) = Pair::start("ha-put") else {
        return;
    };
    let first = p.until_writer(None);
    p.report_to(1 - first, &fail("mysql"));
    p.until_page(4, 1);
    // The recovery's PUT is held a second by the page, then carried out: its answer never
    // reaches the writer, killed meanwhile.
    let puts = p.fake.arrived("PUT", "/api/v1/components/2");
    p.fake.push_fault_on(
        "PUT",
        "/api/v1/components/2",
        Fault::Slow(Duration::from_secs(1)),
    );
    p.report_to(1 - first, &ok("mysql"));
    assert!(
        wait_until(Duration::from_secs(20), || p
            .fake
            .arrived("PUT", "/api/v1/components/2")
            > puts),
        "{}",
        p.logs()
    );
    p.kill(first);
    let second = p.until_writer(Some(first));
    assert!(
        wait_until(Duration::from_secs(20), || p
            .log(second)
            .contains("1 deliveries were in flight")),
        "the next writer takes the delivery back\n{}",
        p.logs()
    );
    p.until_page(1, 4);
    // And the page goes on following the reports through the new writer.
    p.report_to(second, &fail("mysql"));
    assert!(
        wait_until(Duration::from_secs(20), || p.fake.status_of(2) == Some(4)),
        "{:?}\n{}",
        p.fake.puts(),
        p.logs()
    );
}

/// Three instances: the writer killed, then the next: the third writes, and the page follows
/// every report, whichever instance took it.
#[test]
fn three_instances_survive_two_writers_killed_one_after_the_other() {
    let Some(mut p) = Pair::of("ha-three", 3) else {
        return;
    };
    let first = p.until_writer(None);
    p.report_to((first + 1) % 3, &fail("mysql"));
    p.until_page(4, 1);
    p.kill(first);
    let second = p.until_writer(Some(first));
    p.kill(second);
    let third = p.until_writer(Some(second));
    assert!(third != first && third != second);
    p.report_to(third, &ok("mysql"));
    p.until_page(1, 4);
}
