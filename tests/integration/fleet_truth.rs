//! Issue 20: the fleet's page stays true through everyday operations. Real Monit daemons
//! pushing to the real aggregator, real relaying nodes (the built binary), the strict fake
//! Cachet as the page; each test waits on conditions (the aggregator's log lines, the page's
//! recorded writes), never on a fixed sleep.

use std::time::Duration;

use statusrelay_testkit::monit::{MonitLab, free_port};

use crate::fleet::{Aggregator, node, wait_puts};
use crate::support::*;

/// Situations 2 and 3 (and 8): `monit reload`, a Monit restart's first document and `monit
/// unmonitor` say nothing about a failing service: the page keeps the outage, with one
/// incident, on the collector path as `resync` does. A service named in UTF-8 is matched.
#[test]
fn monit_reload_restart_and_unmonitor_never_show_a_false_recovery() {
    reload_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn reload_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "api")]);
    let agg = Aggregator::on(cachet_sandbox(
        "truth-reload",
        &fake,
        "[[component]]\nname = \"api\"\nservices = [\"bäckend\"]\n",
    ));
    let port = agg.port;
    let agg = agg.on_store(store);
    let secret = agg.add_node("alpha");
    let serve = agg.start();
    let down_port = free_port();
    let checks = format!(
        "set mmonit http://alpha:{secret}@127.0.0.1:{port}/collector\n\
         check host bäckend with address 127.0.0.1\n  if failed port {down_port} then alert\n\
         check host unrouted-db with address 127.0.0.1\n  if failed port {down_port} then alert\n"
    );
    let mut monit = Some(MonitLab::start(
        &agg.sb.dir,
        "alpha",
        free_port(),
        "alpha-system",
        &checks,
    ));
    // Monit's first document has no word on any service (all initialising): the component's
    // first state may be written as operational before the failure is known (the flusher is
    // woken by each commit), so the page is read from the first outage on.
    let page = || {
        let p = fake.puts();
        let from = p.iter().position(|w| *w == (2, 4)).unwrap_or(p.len());
        p[from..].to_vec()
    };
    assert!(
        wait_until(Duration::from_secs(20), || page() == [(2, 4)]),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    // Every document seen from now on is counted in the log; a document about the reloaded
    // Monit's initialising services says so ("no word on ... (kept)").
    let kept = |log: &str| {
        log.lines()
            .filter(|l| l.contains("no word on") && l.contains("bäckend"))
            .count()
    };
    let before = kept(&serve.log());
    monit.as_ref().unwrap().reload();
    assert!(
        wait_until(Duration::from_secs(30), || kept(&serve.log()) > before),
        "the reloaded Monit's first document: {}\n{}",
        monit.as_ref().unwrap().log(),
        serve.log()
    );
    // And Monit's word again afterwards (the next documents), still failing: nothing moved.
    let docs = |log: &str| log.matches("status document").count();
    let n = docs(&serve.log());
    assert!(wait_until(Duration::from_secs(30), || docs(&serve.log()) >= n + 2));
    assert_eq!(page(), [(2, 4)], "no false recovery after reload");
    // Monit restarted (a new incarnation): the same.
    let before = kept(&serve.log());
    drop(monit.take());
    monit = Some(MonitLab::start(
        &agg.sb.dir,
        "alpha",
        free_port(),
        "alpha-system",
        &checks,
    ));
    assert!(
        wait_until(Duration::from_secs(30), || kept(&serve.log()) > before),
        "{}",
        serve.log()
    );
    let n = docs(&serve.log());
    assert!(wait_until(Duration::from_secs(30), || docs(&serve.log()) >= n + 2));
    assert_eq!(page(), [(2, 4)], "no false recovery after a restart");
    // Unmonitored while failing: the failure is kept, as resync keeps it.
    monit.as_ref().unwrap().command(&["unmonitor", "bäckend"]);
    let before = kept(&serve.log());
    assert!(
        wait_until(Duration::from_secs(30), || kept(&serve.log()) > before + 1),
        "{}",
        serve.log()
    );
    assert_eq!(page(), [(2, 4)], "no recovery published by unmonitor");
    let listed = agg.sb.run(&["nodes"]).stdout;
    assert_contains(&listed, "api: bäckend connection");
    // The failing service no component takes is said, not dropped.
    assert_contains(&listed, "reports unrouted-db failing (connection)");
    assert_contains(&serve.log(), "no component on this aggregator takes it");
    assert_contains(&agg.sb.run(&["status"]).stdout, "no component takes it");
    // Monitored again, and up: the one recovery.
    let _up = std::net::TcpListener::bind(("127.0.0.1", down_port)).unwrap();
    monit.as_ref().unwrap().command(&["monitor", "bäckend"]);
    assert!(
        wait_until(Duration::from_secs(20), || page() == [(2, 4), (2, 1)]),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    drop(monit);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situation 1: a node reinstalled with a fresh spool (its old one's marks ahead: its clock
/// ran five minutes fast) is heard at once; the old installation still running with the
/// copied credential is a conflict, refused and shown with both reporters, never ordered.
#[test]
fn a_reinstalled_node_is_heard_at_once_and_a_copied_one_is_a_conflict() {
    reinstall_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn reinstall_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-reinstall", &fake);
    let agg = agg.on_store(store);
    let secret = agg.add_node("n1");
    let serve = agg.start();
    // The old installation, its clock five minutes fast: its marks are ahead of the new one's.
    let old = node("n1-old", &agg, &secret);
    let cfg = std::fs::read_to_string(old.path("config.toml")).unwrap();
    old.write(
        "config.toml",
        &cfg.replace("node = \"n1-old\"", "node = \"n1\""),
    );
    let fast = |args: &[&str]| {
        let mut c = old.cmd(args);
        c.env("LD_PRELOAD", faketime_lib()).env("FAKETIME", "+5m");
        c.output().unwrap()
    };
    assert_code(&monit(&old, &fail("mysql")), 0);
    let r = fast(&["flush", "--once"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    wait_puts(&fake, &serve, &[(2, 4)]);
    // Reinstalled: a fresh spool on the correct clock says mysql runs again.
    let new = node("n1-new", &agg, &secret);
    let cfg = std::fs::read_to_string(new.path("config.toml")).unwrap();
    new.write(
        "config.toml",
        &cfg.replace("node = \"n1-new\"", "node = \"n1\""),
    );
    assert_code(&monit(&new, &ok("mysql")), 0);
    crate::fleet::relay(&new);
    wait_puts(&fake, &serve, &[(2, 4), (2, 1)]);
    // The old one still runs (a copied config): refused, both shown, the page unmoved.
    assert_code(&monit(&old, &fail("mysql")), 0);
    let r = fast(&["flush", "--once"]);
    let said = String::from_utf8_lossy(&r.stderr).to_string();
    serve.wait_log(
        "two reporters use node n1's credential",
        Duration::from_secs(20),
    );
    let listed = agg.sb.run(&["nodes"]).stdout;
    assert_contains(&listed, "CONFLICT since");
    assert_contains(&listed, "refused");
    assert_contains(
        &agg.sb.run(&["status"]).stdout,
        "two reporters use its credential",
    );
    assert_eq!(fake.puts(), [(2, 4), (2, 1)], "{said}\n{}", serve.log());
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// libfaketime's preload library (Debian package `faketime`).
fn faketime_lib() -> String {
    for p in [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    ] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!("libfaketime is not installed: apt-get install -y faketime (.ci/run does)");
}

/// Situation 5: the aggregator stopped longer than the stale window (a reboot, an upgrade)
/// flashes nothing at its start: a node is judged stale only once it stays silent a whole
/// window after the aggregator is back.
#[test]
fn an_aggregator_restarted_after_a_long_stop_flashes_nothing() {
    restart_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn restart_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-restart", &fake);
    // Long enough that the node is never stale in the first run, whatever the machine's pace.
    agg.append_config("stale_after = 1000\n");
    let agg = agg.on_store(store);
    let secret = agg.add_node("n1");
    let serve = agg.start();
    let n1 = node("n1", &agg, &secret);
    let cfg = std::fs::read_to_string(n1.path("config.toml")).unwrap();
    n1.write(
        "config.toml",
        &cfg.replace(
            "timeout = \"5s\"\n",
            "timeout = \"5s\"\nheartbeat = \"1s\"\n",
        ),
    );
    assert_code(&monit(&n1, &fail("mysql")), 0);
    crate::fleet::relay(&n1);
    wait_puts(&fake, &serve, &[(2, 4)]);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    // Down for more than two periods of 1 s: the node's last-seen time says so.
    let seen = agg.count("SELECT last_seen_at FROM nodes WHERE name = 'n1'");
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    assert!(wait_until(Duration::from_secs(10), || now() > seen + 3_000));
    let cfg = std::fs::read_to_string(agg.sb.path("config.toml")).unwrap();
    agg.sb.write(
        "config.toml",
        &cfg.replace("stale_after = 1000", "stale_after = 2"),
    );
    let started = std::time::Instant::now();
    let serve = agg.start();
    // The node stays silent: it is stale only a whole window after the start, not at once.
    serve.wait_log("node n1 is stale", Duration::from_secs(20));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "stale {:?} after the start: {}",
        started.elapsed(),
        serve.log()
    );
    // Then, and only then, the page says so (unknown, Cachet's 0 here).
    wait_puts(&fake, &serve, &[(2, 4), (2, 0)]);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situations 9 and 10: a node named `manual` reporting "all clear" leaves the operator's
/// manual outage (`statusrelay event`) on the page; its announced period of 1 ms is taken as
/// a second, said once.
#[test]
fn a_node_named_like_a_local_source_clears_nothing_and_its_period_is_clamped() {
    names_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn names_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-names", &fake);
    let agg = agg.on_store(store);
    let secret = agg.add_node("manual");
    let serve = agg.start();
    let r = agg.sb.run(&[
        "event",
        "--component",
        "db cluster",
        "--status",
        "major_outage",
        "--message",
        "fibre cut",
    ]);
    assert_code(&r, 0);
    wait_puts(&fake, &serve, &[(2, 4)]);
    let all_clear = |seq: i64| {
        format!(
            r#"{{"epoch":1,"period_ms":1,"snapshot":true,"reporter":"r1","reports":[{{"seq":{seq},"component":"db cluster","failing":[]}}]}}"#
        )
    };
    for seq in 1..=3 {
        assert_eq!(
            crate::fleet_faults::post(agg.port, "manual", &secret, &all_clear(seq)),
            200
        );
    }
    serve.wait_log(
        "node manual announces a period of 1 ms; taken as 1000 ms",
        Duration::from_secs(10),
    );
    assert_eq!(
        serve.log().matches("announces a period").count(),
        1,
        "said once"
    );
    // The node's word is in (it feeds the component) and the operator's outage stands.
    assert_eq!(
        agg.count("SELECT count(*) FROM feeds WHERE node = 'manual' AND component = 'db cluster'"),
        1
    );
    assert_eq!(agg.desired("db cluster"), "major_outage");
    assert_contains(&agg.sb.run(&["status"]).stdout, "@manual");
    assert_eq!(fake.puts(), [(2, 4)]);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// The public words: an aggregator's incidents and page say what Monit said on the nodes,
/// grouped by service, like a single node's; never the node names (unless the operator asks
/// with `[backend] show_nodes`) nor how the aggregator heard it ("reports 1 failing test(s)").
#[test]
fn an_aggregators_page_speaks_monits_words_never_its_own() {
    words_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn words_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::on(cachet_sandbox(
        "truth-words",
        &fake,
        &format!("{DB}incidents = true\n"),
    ));
    let agg = agg.on_store(store);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let (db1, db2) = (node("db1", &agg, &s1), node("db2", &agg, &s2));
    let checksum = vec![
        ("MONIT_SERVICE", "mysql-replica".to_string()),
        ("MONIT_EVENT", "Checksum failed".into()),
        (
            "MONIT_DESCRIPTION",
            "checksum failed, expected 1a2b got 3c4d".into(),
        ),
        ("MONIT_HOST", "node1".into()),
    ];
    assert_code(&monit(&db2, &checksum), 0);
    crate::fleet::relay(&db2);
    // (Cachet sets the component with the incident, and statusrelay sets it again.)
    assert!(
        wait_until(Duration::from_secs(20), || fake.incidents().len() == 1),
        "{:?}\n{}",
        fake.incidents(),
        serve.log()
    );
    let opened = fake.incidents()[0].message.clone();
    assert_contains(&opened, "Partial outage since 20");
    assert_contains(
        &opened,
        ": mysql-replica: checksum failed, expected 1a2b got 3c4d\n",
    );
    // db1's mysql is down: the incident's update names what makes the major outage.
    assert_code(&monit(&db1, &fail("mysql")), 0);
    crate::fleet::relay(&db1);
    assert!(
        wait_until(Duration::from_secs(20), || fake.updates().len() == 1),
        "{:?}\n{}",
        fake.updates(),
        serve.log()
    );
    let (_, status, update) = fake.updates()[0].clone();
    assert_ne!(status, 4, "still open");
    assert_contains(&update, "Major outage since ");
    assert!(
        update.ends_with(": mysql: process is not running"),
        "{update}"
    );
    for text in [&opened, &update] {
        // (The marker statusrelay finds its own incidents by is its name, not the text's.)
        let text = text.split("\n\n[statusrelay ").next().unwrap();
        for internal in [
            "db1",
            "db2",
            "node1",
            "reports",
            "failing test",
            "relay",
            " on ",
        ] {
            assert!(!text.contains(internal), "{internal:?} in {text:?}");
        }
    }
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// `[backend] show_nodes = true`: the page names the nodes each failure is on.
#[test]
fn show_nodes_names_the_nodes_on_the_page() {
    show_nodes_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn show_nodes_on(store: Option<&str>) {
    // Counted: one node down is a partial outage, two a major one, so the page changes (and
    // speaks) once each node's failure has landed.
    let agg = Aggregator::on(html_sandbox(
        "truth-show-nodes",
        &format!("show_nodes = true\n{DB}[component.nodes]\nrule = \"count\"\nmajor_at = 2\n"),
    ));
    let agg = agg.on_store(store);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let (db1, db2) = (node("db1", &agg, &s1), node("db2", &agg, &s2));
    let page = || -> Option<(String, String)> {
        let page: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(agg.sb.path("www/status.json")).ok()?)
                .ok()?;
        let c = &page["components"][0];
        Some((c["state"].as_str()?.into(), c["message"].as_str()?.into()))
    };
    let shows = |state: &str, message: &str| {
        assert!(
            wait_until(Duration::from_secs(20), || page()
                == Some((state.into(), message.into()))),
            "{:?}\n{}",
            page(),
            serve.log()
        );
    };
    assert_code(&monit(&db1, &fail("mysql")), 0);
    crate::fleet::relay(&db1);
    shows("partial_outage", "mysql on db1: process is not running");
    assert_code(&monit(&db2, &fail("mysql")), 0);
    crate::fleet::relay(&db2);
    shows("major_outage", "mysql on db1, db2: process is not running");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situation 4: `nodes forget` while the node reports as fast as it is answered. Round after
/// round, whatever lands first, the forgotten node leaves nothing behind: no test, nothing
/// fed, the component recomputed (operational, no node left), and its later reports are 401.
#[test]
fn forgetting_a_node_that_reports_leaves_nothing_behind() {
    forget_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn forget_on(store: Option<&str>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-forget", &fake);
    agg.append_config("node_rate = 1000\nnode_burst = 1000\n");
    let secret = "7f3a9c1e5b2d8f4a6c0e9b3d7a1f5c2e8b4d6a0f9e3c7b1d5a2f8e4c6b0d9a3f".to_string();
    agg.sb.write("db1.secret", &format!("{secret}\n"));
    let agg = agg.on_store(store);
    let serve = agg.start();
    let port = agg.port;
    for round in 0..10 {
        assert_code(
            &agg.sb
                .run(&["nodes", "add", "db1", "--secret-file", "db1.secret"]),
            0,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let (taken, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let sender = {
            let (stop, taken, refused, secret) =
                (stop.clone(), taken.clone(), refused.clone(), secret.clone());
            std::thread::spawn(move || {
                let mut seq = 0;
                while !stop.load(Ordering::SeqCst) {
                    seq += 1;
                    let body = format!(
                        r#"{{"epoch":{round},"snapshot":true,"reporter":"r{round}","reports":[{{"seq":{seq},"component":"db cluster","failing":[{{"service":"mysql","test":"existence","state":"major_outage","description":"process is not running"}}]}}]}}"#
                    );
                    match crate::fleet_faults::post(port, "db1", &secret, &body) {
                        200 => taken.fetch_add(1, Ordering::SeqCst),
                        401 => refused.fetch_add(1, Ordering::SeqCst),
                        _ => 0,
                    };
                }
            })
        };
        // Forget it while its reports land: at least one was taken first.
        assert!(
            wait_until(Duration::from_secs(20), || taken.load(Ordering::SeqCst) > 0),
            "{}",
            serve.log()
        );
        assert_code(&agg.sb.run(&["nodes", "forget", "db1"]), 0);
        // And some arrive after it, refused.
        assert!(
            wait_until(Duration::from_secs(20), || refused.load(Ordering::SeqCst)
                > 0),
            "round {round}: {}",
            serve.log()
        );
        stop.store(true, Ordering::SeqCst);
        sender.join().unwrap();
        assert_eq!(agg.node_failing("db1"), 0, "round {round}");
        assert_eq!(
            agg.count("SELECT count(*) FROM feeds WHERE node = 'db1'"),
            0,
            "round {round}"
        );
        assert_eq!(
            agg.desired("db cluster"),
            "operational",
            "round {round}: a component down with no node"
        );
    }
    // The page followed: down while the node was, up once it was forgotten.
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts().last()
            == Some(&(2, 1))),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situation 6: the aggregator's wall clock steps (faketime, re-read from a file while it
/// runs; its monotonic clock left alone, as NTP leaves it). Two hours forward flashes no live
/// node stale; a step back leaves no dead node alive: it is stale within its window.
#[test]
fn the_aggregators_clock_stepping_neither_flashes_nor_hides_a_node() {
    clock_step_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn clock_step_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-step", &fake);
    agg.append_config("stale_after = 3\n");
    let agg = agg.on_store(store);
    let secret = agg.add_node("n1");
    let offset = agg.sb.path("faketime");
    agg.sb.write("faketime", "+0\n");
    let mut cmd = agg.sb.cmd(&["serve", "--log-level", "debug"]);
    cmd.env("LD_PRELOAD", faketime_lib())
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_CACHE_DURATION", "1")
        .env("DONT_FAKE_MONOTONIC", "1");
    let serve = crate::support::LiveFlusher::spawn(cmd);
    serve.wait_log("serving nodes on", Duration::from_secs(20));
    let n1 = crate::fleet::beating_node("n1", &agg, &secret);
    assert_code(&monit(&n1, &fail("mysql")), 0);
    let beat = crate::support::LiveFlusher::start(&n1);
    wait_puts(&fake, &serve, &[(2, 4)]);
    let real_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let seen = || agg.count("SELECT last_seen_at FROM nodes WHERE name = 'n1'");
    // Forward two hours: the aggregator's last-seen times say it has stepped...
    agg.sb.write("faketime", "+2h\n");
    assert!(
        wait_until(Duration::from_secs(20), || seen() > real_now() + 3_600_000),
        "{}",
        serve.log()
    );
    // ...and the node's next reports, over more than its stale window, find it live.
    let reports = |log: &str| log.matches("node n1: 1 report(s)").count();
    let after = reports(&serve.log());
    assert!(
        wait_until(Duration::from_secs(20), || reports(&serve.log())
            >= after + 5),
        "{}",
        serve.log()
    );
    assert!(!serve.log().contains("node n1 is stale"), "{}", serve.log());
    assert_eq!(fake.puts(), [(2, 4)], "no flash of unknown");
    // The node dies, then the clock steps back four hours: it is stale all the same.
    let (code, _, log) = beat.stop();
    assert_eq!(code, 0, "{log}");
    agg.sb.write("faketime", "-2h\n");
    serve.wait_log("node n1 is stale", Duration::from_secs(20));
    wait_puts(&fake, &serve, &[(2, 4), (2, 0)]);
    assert_contains(&agg.sb.run(&["nodes"]).stdout, "n1: STALE");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situation 7: `stale = "ignore"` leaves a silent node out while others are heard; when
/// every node is silent, nobody can say the component is fine: `unknown`, never operational.
#[test]
fn every_node_silent_is_unknown_whatever_the_stale_policy() {
    all_silent_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn all_silent_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::on(cachet_sandbox(
        "truth-all-silent",
        &fake,
        &format!("{DB}[component.nodes]\nstale = \"ignore\"\n"),
    ));
    agg.append_config("stale_after = 2\n");
    let agg = agg.on_store(store);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let (db1, db2) = (
        crate::fleet::beating_node("db1", &agg, &s1),
        crate::fleet::beating_node("db2", &agg, &s2),
    );
    assert_code(&monit(&db1, &fail("mysql")), 0);
    // db1's outage reaches the page first: with db2 alone heard, the page would rightly show
    // operational for a moment, and the PUTs below would depend on which node came first.
    let f1 = crate::support::LiveFlusher::start(&db1);
    wait_puts(&fake, &serve, &[(2, 4)]);
    let f2 = crate::support::LiveFlusher::start(&db2);
    assert!(
        wait_until(Duration::from_secs(20), || agg
            .count("SELECT count(*) FROM feeds WHERE component = 'db cluster'")
            == 2),
        "{}",
        serve.log()
    );
    wait_puts(&fake, &serve, &[(2, 4)]);
    // db1 (the failing one) goes silent: ignored, db2 says all is well.
    let (code, _, log) = f1.stop();
    assert_eq!(code, 0, "{log}");
    serve.wait_log("node db1 is stale", Duration::from_secs(20));
    wait_puts(&fake, &serve, &[(2, 4), (2, 1)]);
    // db2 too: the last word was an outage, and no one is left to say otherwise.
    let (code, _, log) = f2.stop();
    assert_eq!(code, 0, "{log}");
    serve.wait_log("node db2 is stale", Duration::from_secs(20));
    wait_puts(&fake, &serve, &[(2, 4), (2, 1), (2, 0)]);
    let status = agg.sb.run(&["status"]).stdout;
    assert_contains(&status, "unknown");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situation 1, the rest: a relaying node whose clock ran in 2099 is refused with a clear
/// answer (how far ahead, what to do), and heard again as soon as its clock is right; the
/// same node then switched to Monit alone (`set mmonit`, here a document captured from a
/// real Monit 5.33) is a new reporter, heard at once, not outdated by the relay's marks.
#[test]
fn a_node_from_the_future_is_told_and_a_switch_to_monit_alone_is_heard() {
    future_on(None);
}

/// The test above, on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`ha_truth.rs` runs it so).
pub fn future_on(store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster"), (3, "backend")]);
    let agg = Aggregator::on(cachet_sandbox(
        "truth-future",
        &fake,
        &format!("{DB}[[component]]\nname = \"backend\"\n"),
    ));
    let agg = agg.on_store(store);
    let secret = agg.add_node("n1");
    let serve = agg.start();
    let n1 = node("n1", &agg, &secret);
    assert_code(&monit(&n1, &fail("mysql")), 0);
    let mut future = n1.cmd(&["flush", "--once"]);
    future
        .env("LD_PRELOAD", faketime_lib())
        .env("FAKETIME", "@2099-01-01 00:00:00");
    let r = future.output().unwrap();
    let said = String::from_utf8_lossy(&r.stderr).to_string();
    assert_contains(&said, "ahead of the aggregator's clock");
    assert_contains(&said, "NTP");
    assert_eq!(agg.node_failing("n1"), 0, "nothing taken from 2099");
    let listed = agg.sb.run(&["nodes"]).stdout;
    assert_contains(&listed, "refused");
    // The clock set right: the next run starts a new sequence by itself, and is heard.
    crate::fleet::relay(&n1);
    wait_puts(&fake, &serve, &[(2, 4)]);
    // Monit alone from now on: its first document is the node's whole truth at once
    // (mysql is not in it: the relay's word on it ends), never "outdated".
    assert_eq!(
        crate::fleet::post_capture(agg.port, "02-status-all-ok.http", "n1", &secret),
        200
    );
    // (Monit is not really there: its next document never comes, so the node goes stale
    // after it; the order of the two components' writes is the flusher's.)
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts().contains(&(2, 1))),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    assert!(
        !serve.log().contains("µs, 0 failing test(s): outdated")
            && serve
                .log()
                .contains("µs, 0 failing test(s), no word on payments-api (kept): applied"),
        "the switch was taken as outdated: {}",
        serve.log()
    );
    assert_contains(&agg.sb.run(&["nodes"]).stdout, "via collector");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
