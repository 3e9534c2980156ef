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
    let fake = FakeCachet::start(TOKEN, &[(2, "api")]);
    let agg = Aggregator::on(cachet_sandbox(
        "truth-reload",
        &fake,
        "[[component]]\nname = \"api\"\nservices = [\"bäckend\"]\n",
    ));
    let port = agg.port;
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
    wait_puts(&fake, &serve, &[(2, 4)]);
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
    assert_eq!(fake.puts(), [(2, 4)], "no false recovery after reload");
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
    assert_eq!(fake.puts(), [(2, 4)], "no false recovery after a restart");
    // Unmonitored while failing: the failure is kept, as resync keeps it.
    monit.as_ref().unwrap().command(&["unmonitor", "bäckend"]);
    let before = kept(&serve.log());
    assert!(
        wait_until(Duration::from_secs(30), || kept(&serve.log()) > before + 1),
        "{}",
        serve.log()
    );
    assert_eq!(fake.puts(), [(2, 4)], "no recovery published by unmonitor");
    let listed = agg.sb.run(&["nodes"]).stdout;
    assert_contains(&listed, "api: bäckend connection");
    // The failing service no component takes is said, not dropped.
    assert_contains(&listed, "reports unrouted-db failing (connection)");
    assert_contains(&serve.log(), "no component on this aggregator takes it");
    assert_contains(&agg.sb.run(&["status"]).stdout, "no component takes it");
    // Monitored again, and up: the one recovery.
    let _up = std::net::TcpListener::bind(("127.0.0.1", down_port)).unwrap();
    monit.as_ref().unwrap().command(&["monitor", "bäckend"]);
    wait_puts(&fake, &serve, &[(2, 4), (2, 1)]);
    drop(monit);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Situation 1: a node reinstalled with a fresh spool (its old one's marks ahead: its clock
/// ran five minutes fast) is heard at once; the old installation still running with the
/// copied credential is a conflict, refused and shown with both reporters, never ordered.
#[test]
fn a_reinstalled_node_is_heard_at_once_and_a_copied_one_is_a_conflict() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-reinstall", &fake);
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
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-restart", &fake);
    // Long enough that the node is never stale in the first run, whatever the machine's pace.
    agg.append_config("stale_after = 1000\n");
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
    let seen = count(&agg.sb, "SELECT last_seen_at FROM nodes WHERE name = 'n1'");
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
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("truth-names", &fake);
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
        count(
            &agg.sb,
            "SELECT count(*) FROM feeds WHERE node = 'manual' AND component = 'db cluster'"
        ),
        1
    );
    assert_eq!(desired_state(&agg.sb, "db cluster"), "major_outage");
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
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::on(cachet_sandbox(
        "truth-words",
        &fake,
        &format!("{DB}incidents = true\n"),
    ));
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
    // Counted: one node down is a partial outage, two a major one, so the page changes (and
    // speaks) once each node's failure has landed.
    let agg = Aggregator::on(html_sandbox(
        "truth-show-nodes",
        &format!("show_nodes = true\n{DB}[component.nodes]\nrule = \"count\"\nmajor_at = 2\n"),
    ));
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
