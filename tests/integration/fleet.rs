//! Issue 15, the fleet: nodes relay their spools to one aggregator (`statusrelay serve`), which
//! alone writes to the page (here the strict fake Cachet). Every process is the real binary.

use std::time::Duration;

use statusrelay_testkit::monit::free_port;

use crate::support::*;

/// An aggregator: a sandbox delivering to `fake`, listening on a free loopback port.
struct Aggregator {
    sb: Sandbox,
    port: u16,
}

impl Aggregator {
    fn new(name: &str, fake: &FakeCachet) -> Aggregator {
        let sb = cachet_sandbox(name, fake, DB);
        let port = free_port();
        let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
        sb.write(
            "config.toml",
            &format!("{cfg}[serve]\nlisten = \"127.0.0.1:{port}\"\n"),
        );
        Aggregator { sb, port }
    }

    fn start(&self) -> LiveFlusher {
        let serve = LiveFlusher::spawn(self.sb.cmd(&["serve", "--log-level", "debug"]));
        serve.wait_log("serving nodes on", Duration::from_secs(20));
        serve
    }

    /// `nodes add NAME`; the secret it printed.
    fn add_node(&self, name: &str) -> String {
        let r = self.sb.run(&["nodes", "add", name]);
        assert_code(&r, 0);
        r.stdout
            .lines()
            .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap()
            .to_string()
    }

    /// Has the aggregator recorded `node`'s tests of the component as `failing` of them?
    fn node_failing(&self, node: &str) -> i64 {
        count(
            &self.sb,
            &format!("SELECT count(*) FROM tests WHERE host = '{node}' AND state IS NOT NULL"),
        )
    }
}

/// A node: its own spool and Monit events, relaying to the aggregator as `name`.
fn node(name: &str, agg: &Aggregator, secret: &str) -> Sandbox {
    let sb = Sandbox::new(BIN, &format!("fleet-{name}"));
    sb.write("token", &format!("{secret}\n"));
    std::fs::set_permissions(
        sb.path("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    sb.write(
        "config.toml",
        &format!(
            "spool = \"spool.db\"\nnode = \"{name}\"\n[backend]\nkind = \"relay\"\nurl = \"http://127.0.0.1:{}\"\ntoken_file = \"token\"\ntimeout = \"5s\"\n[delivery]\nbackoff_base = \"200ms\"\nbackoff_cap = \"1s\"\n{DB}",
            agg.port
        ),
    );
    sb
}

fn relay(sb: &Sandbox) -> Run {
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    r
}

#[test]
fn one_nodes_recovery_never_hides_another_nodes_outage() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("fleet-agg", &fake);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let (db1, db2) = (node("db1", &agg, &s1), node("db2", &agg, &s2));
    assert_code(&monit(&db1, &fail("mysql")), 0);
    relay(&db1);
    assert_code(&monit(&db2, &fail("mysql")), 0);
    relay(&db2);
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == [(2, 4)]),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    // db1 recovers; db2 is still down: the page stays down.
    assert_code(&monit(&db1, &ok("mysql")), 0);
    relay(&db1);
    assert_eq!(
        agg.node_failing("db1"),
        0,
        "the aggregator took db1's recovery"
    );
    assert_eq!(agg.node_failing("db2"), 1);
    assert_eq!(
        count(&agg.sb, "SELECT count(*) FROM outbox"),
        1,
        "nothing new to deliver: db2 still holds the outage"
    );
    assert_eq!(fake.puts(), [(2, 4)]);
    assert_code(&monit(&db2, &ok("mysql")), 0);
    relay(&db2);
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == [(2, 4), (2, 1)]),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    // The aggregator knows who reported what.
    let nodes = agg.sb.run(&["nodes"]);
    assert_contains(&nodes.stdout, "db1: last seen");
    assert_contains(&nodes.stdout, "via relay");
    let (code, took, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
}

#[test]
fn a_node_cannot_report_without_its_own_credential() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("fleet-auth", &fake);
    let s1 = agg.add_node("db1");
    agg.add_node("db2");
    let serve = agg.start();
    // db2 tries to report with db1's secret: refused, dead-lettered on the node with the
    // aggregator's words, logged on the aggregator with the peer, never the secret.
    let impostor = node("db2", &agg, &s1);
    assert_code(&monit(&impostor, &fail("mysql")), 0);
    let r = impostor.run(&["flush", "--once"]);
    assert_contains(&r.stderr, "dead-lettered");
    assert_contains(&r.stderr, "HTTP 401");
    serve.wait_log("as node \"db2\" refused (401)", Duration::from_secs(10));
    assert_contains(&serve.log(), "127.0.0.1:");
    assert!(!serve.log().contains(&s1), "the secret is never logged");
    assert_eq!(agg.node_failing("db2"), 0);
    // A node limited to other components may not feed this one (403, dead-lettered).
    let cfg = std::fs::read_to_string(agg.sb.path("config.toml")).unwrap();
    agg.sb.write(
        "config.toml",
        &format!("{cfg}[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n"),
    );
    let r = agg.sb.run(&["nodes", "add", "web1", "--component", "web"]);
    assert_code(&r, 0);
    let s3 = r
        .stdout
        .lines()
        .find(|l| l.len() == 64)
        .unwrap()
        .to_string();
    let web1 = node("web1", &agg, &s3);
    assert_code(&monit(&web1, &fail("mysql")), 0);
    let r = web1.run(&["flush", "--once"]);
    assert_contains(&r.stderr, "HTTP 403");
    assert_contains(&r.stderr, "may not feed \"db cluster\"");
    assert_eq!(agg.node_failing("web1"), 0);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert!(fake.puts().is_empty());
}
