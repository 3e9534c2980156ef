//! Issue 15, the fleet: nodes relay their spools to one aggregator (`statusrelay serve`), which
//! alone writes to the page (here the strict fake Cachet). Every process is the real binary.

use std::time::Duration;

use statusrelay_testkit::monit::free_port;

use crate::support::*;

/// An aggregator: a sandbox delivering to its page, listening on a free loopback port.
pub struct Aggregator {
    pub sb: Sandbox,
    pub port: u16,
    /// The PostgreSQL store's connection string, when it is on one (`on_store`).
    pub store: Option<String>,
}

impl Aggregator {
    pub fn new(name: &str, fake: &FakeCachet) -> Aggregator {
        Aggregator::on(cachet_sandbox(name, fake, DB))
    }

    /// The aggregator of a sandbox's config, listening on a free loopback port.
    pub fn on(sb: Sandbox) -> Aggregator {
        let port = free_port();
        let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
        sb.write(
            "config.toml",
            &format!("{cfg}[serve]\nlisten = \"127.0.0.1:{port}\"\n"),
        );
        Aggregator {
            sb,
            port,
            store: None,
        }
    }

    /// On the PostgreSQL store at `url` (instance "a"), when given; else on its spool. Its
    /// last table then is `[store]`: append serve's own keys before.
    pub fn on_store(mut self, url: Option<&str>) -> Aggregator {
        if let Some(url) = url {
            self.append_config(&format!("[store]\nurl = \"{url}\"\ninstance = \"a\"\n"));
            self.store = Some(url.to_string());
        }
        self
    }

    /// A count from the aggregator's store, whichever it is (`sql` in words both take).
    pub fn count(&self, sql: &str) -> i64 {
        match &self.store {
            Some(url) => statusrelay_testkit::postgres::client(url)
                .unwrap()
                .query_one(sql, &[])
                .unwrap()
                .get(0),
            None => count(&self.sb, sql),
        }
    }

    /// The state the aggregator's store wants `component` to show ("" before any).
    pub fn desired(&self, component: &str) -> String {
        match &self.store {
            Some(url) => statusrelay_testkit::postgres::client(url)
                .unwrap()
                .query_opt(
                    "SELECT state FROM desired WHERE component = $1",
                    &[&component],
                )
                .unwrap()
                .map(|r| r.get(0))
                .unwrap_or_default(),
            None => desired_state(&self.sb, component),
        }
    }

    /// Append to its config; bare keys land in `[serve]`, its last table.
    pub fn append_config(&self, lines: &str) {
        let cfg = std::fs::read_to_string(self.sb.path("config.toml")).unwrap();
        self.sb.write("config.toml", &format!("{cfg}{lines}"));
    }

    pub fn start(&self) -> LiveFlusher {
        let serve = LiveFlusher::spawn(self.sb.cmd(&["serve", "--log-level", "debug"]));
        serve.wait_log("serving nodes on", Duration::from_secs(20));
        serve
    }

    /// `nodes add NAME`; the secret it printed.
    pub fn add_node(&self, name: &str) -> String {
        let r = self.sb.run(&["nodes", "add", name]);
        assert_code(&r, 0);
        r.stdout
            .lines()
            .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap()
            .to_string()
    }

    /// Has the aggregator recorded `node`'s tests of the component as `failing` of them?
    pub fn node_failing(&self, node: &str) -> i64 {
        self.count(&format!(
            "SELECT count(*) FROM tests WHERE host = '{node}' AND state IS NOT NULL"
        ))
    }
}

/// Wait until the page got exactly these PUTs (component, status); the aggregator's log if not.
pub fn wait_puts(fake: &FakeCachet, serve: &LiveFlusher, want: &[(u64, i64)]) {
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == want),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
}

/// A node: its own spool and Monit events, relaying to the aggregator as `name`.
pub fn node(name: &str, agg: &Aggregator, secret: &str) -> Sandbox {
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

pub fn relay(sb: &Sandbox) -> Run {
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    r
}

#[test]
fn one_nodes_recovery_never_hides_another_nodes_outage() {
    recovery_on("fleet-agg", None);
}

/// The recovery test on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`tests/integration/ha.rs` runs it so).
pub fn recovery_on(name: &str, store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new(name, &fake).on_store(store);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let (db1, db2) = (node("db1", &agg, &s1), node("db2", &agg, &s2));
    assert_code(&monit(&db1, &fail("mysql")), 0);
    relay(&db1);
    assert_code(&monit(&db2, &fail("mysql")), 0);
    relay(&db2);
    wait_puts(&fake, &serve, &[(2, 4)]);
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
        agg.count("SELECT count(*) FROM outbox"),
        1,
        "nothing new to deliver: db2 still holds the outage"
    );
    assert_eq!(fake.puts(), [(2, 4)]);
    assert_code(&monit(&db2, &ok("mysql")), 0);
    relay(&db2);
    wait_puts(&fake, &serve, &[(2, 4), (2, 1)]);
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
    credentials_on("fleet-auth", None);
}

/// The credentials test on the aggregator's spool, or on the PostgreSQL store at `store`,
/// where every instance's gate reads the credentials from the database.
pub fn credentials_on(name: &str, store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new(name, &fake).on_store(store);
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
    agg.append_config("[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n");
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

/// Send one request captured from a real Monit (tests/data/mmonit) to `port`, with `user`'s
/// credential in place of the lab's; the HTTP status of the answer.
pub fn post_capture(port: u16, capture: &str, user: &str, secret: &str) -> u16 {
    let raw = std::fs::read(format!(
        "{}/../../tests/data/mmonit/{capture}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let at = raw.windows(5).position(|w| w == b"<?xml").unwrap();
    let body = &raw[at..];
    let auth = statusrelay_backend::http::base64(format!("{user}:{secret}").as_bytes());
    let mut req = format!(
        "POST /collector HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\nUser-Agent: Monit/5.33.0\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_request(port, &req)
}

/// What the built-in page says of `component` now (status.json), if it says anything.
pub fn page_message(sb: &Sandbox, component: &str) -> Option<String> {
    let page: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("www/status.json")).ok()?).ok()?;
    page["components"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == component)?["message"]
        .as_str()
        .map(str::to_string)
}

/// Monit's own push, as captured from a real Monit 5.33: documents are ordered by when Monit
/// collected them, never by arrival; the node's Monit credentials in them are never kept.
#[test]
fn monits_collector_documents_are_ordered_by_collection_time() {
    collector_on("fleet-collector", None);
}

/// The collector test on the aggregator's spool, or on the PostgreSQL store at `store`.
pub fn collector_on(name: &str, store: Option<&str>) {
    let agg = Aggregator::on(html_sandbox(name, "")).on_store(store);
    let port = agg.port;
    let secret = agg.add_node("nodeA");
    let serve = agg.start();
    let failing = |svc: &str| {
        agg.count(&format!(
            "SELECT count(*) FROM tests WHERE host = 'nodeA' AND service = '{svc}' AND state IS NOT NULL"
        ))
    };
    for capture in [
        "01-start-event.http",
        "02-status-all-ok.http",
        "03-event-port-failed.http",
    ] {
        assert_eq!(
            post_capture(port, capture, "nodeA", &secret),
            200,
            "{capture}\n{}",
            serve.log()
        );
    }
    assert_eq!(failing("backend"), 1, "the port test failed");
    // The page says it in Monit's words, from the document's <event>: not the node's name.
    let said = "backend: failed protocol test [DEFAULT] at [127.0.0.1]:18090 [TCP/IP] -- Connection refused";
    assert!(
        wait_until(Duration::from_secs(20), || page_message(&agg.sb, "backend")
            .as_deref()
            == Some(said)),
        "{:?}\n{}",
        page_message(&agg.sb, "backend"),
        serve.log()
    );
    assert_eq!(
        post_capture(
            port,
            "04-status-port-and-program-failed.http",
            "nodeA",
            &secret
        ),
        200
    );
    // Monit's queue re-sends an older document after an outage: acknowledged, ignored.
    assert_eq!(
        post_capture(port, "02-status-all-ok.http", "nodeA", &secret),
        200
    );
    assert_eq!(
        failing("backend"),
        1,
        "an older document never overrides a newer one"
    );
    assert_eq!(agg.desired("backend"), "major_outage");
    // Wrong credentials and damaged documents are refused with a clear status.
    assert_eq!(
        post_capture(port, "02-status-all-ok.http", "nodeA", "nope"),
        401
    );
    assert_eq!(
        post_capture(port, "02-status-all-ok.http", "nodeB", &secret),
        401
    );
    // The node's Monit httpd password is in every document; it is kept nowhere: no byte of
    // the spool, no row of the database (every column of the tables a report writes).
    if agg.store.is_some() {
        let rows = ["events", "tests", "nodes", "feeds", "outbox"].map(|t| {
            agg.count(&format!(
                "SELECT count(*) FROM {t} r WHERE r::text LIKE '%pw4bars%'"
            ))
        });
        assert_eq!(rows, [0; 5], "Monit's credentials were stored");
        assert!(
            agg.count("SELECT count(*) FROM events WHERE origin = 'collector'") > 0,
            "the documents were recorded, so the search above searched them"
        );
    } else {
        let mut kept = std::fs::read(agg.sb.spool_path()).unwrap();
        kept.extend(std::fs::read(agg.sb.path("spool.db-wal")).unwrap_or_default());
        assert!(
            !kept.windows(7).any(|w| w == b"pw4bars"),
            "Monit's credentials were stored"
        );
    }
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("pw4bars"), "Monit's credentials were logged");
}

/// A real Monit daemon pushing to the aggregator (`set mmonit`), with no statusrelay on the node.
#[test]
fn a_real_monit_pushes_to_serve_and_the_page_follows() {
    let agg = Aggregator::on(html_sandbox("fleet-monit", ""));
    let port = agg.port;
    let secret = agg.add_node("alpha");
    let serve = agg.start();
    let backend_port = free_port();
    let monit_port = free_port();
    let monit = statusrelay_testkit::monit::MonitLab::start(
        &agg.sb.dir,
        "alpha",
        monit_port,
        "alpha-system",
        &format!(
            "set mmonit http://alpha:{secret}@127.0.0.1:{port}/collector\n\
             check host backend with address 127.0.0.1\n  if failed port {backend_port} then alert\n"
        ),
    );
    let shows = |want: &str| {
        wait_until(Duration::from_secs(30), || {
            desired_state(&agg.sb, "backend") == want
        })
    };
    assert!(shows("major_outage"), "{}\n{}", monit.log(), serve.log());
    // Monit's words (its event's message, or its name for the failure where the document
    // that showed it carried no event), never the node's name.
    assert!(
        wait_until(Duration::from_secs(20), || {
            page_message(&agg.sb, "backend")
                .is_some_and(|m| m.starts_with("backend: ") && !m.contains("alpha"))
        }),
        "{:?}\n{}",
        page_message(&agg.sb, "backend"),
        serve.log()
    );
    let listener = std::net::TcpListener::bind(("127.0.0.1", backend_port)).unwrap();
    assert!(shows("operational"), "{}\n{}", monit.log(), serve.log());
    // The steady state: Monit keeps sending its document every cycle, and the aggregator
    // notes the node as seen without recording an event per document.
    let seen = || {
        count(
            &agg.sb,
            "SELECT coalesce(last_seen_at, 0) FROM nodes WHERE name = 'alpha'",
        )
    };
    let (events, since) = (count(&agg.sb, "SELECT count(*) FROM events"), seen());
    assert!(
        wait_until(Duration::from_secs(30), || seen() >= since + 3_000),
        "documents keep arriving: {}",
        serve.log()
    );
    assert_eq!(
        count(&agg.sb, "SELECT count(*) FROM events"),
        events,
        "no event per unchanged document"
    );
    drop(listener);
    assert_contains(&agg.sb.run(&["nodes"]).stdout, "alpha: last seen");
    assert_contains(&agg.sb.run(&["nodes"]).stdout, "via collector");
    drop(monit);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Send raw bytes to the aggregator; the status of its answer (0: none).
pub fn raw_request(port: u16, bytes: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Hostile input on both endpoints: a clear 4xx each, no panic, no hang, nothing recorded.
#[test]
fn hostile_requests_get_a_clear_4xx_and_change_nothing() {
    hostile_on("fleet-hostile", None);
}

/// The hostile-input test on the aggregator's spool, or on the PostgreSQL store at `store`
/// (a connection string: `tests/integration/ha.rs` runs it so).
pub fn hostile_on(name: &str, store: Option<&str>) {
    let agg = Aggregator::on(html_sandbox(name, DB));
    agg.append_config("max_body = 4096\nrequest_timeout = \"1s\"\n");
    let agg = agg.on_store(store);
    let secret = agg.add_node("db1");
    let serve = agg.start();
    let port = agg.port;
    let auth = statusrelay_backend::http::base64(format!("db1:{secret}").as_bytes());
    let post = |path: &str, body: &[u8]| {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw_request(port, &req)
    };
    assert_eq!(post("/v1/reports", b"{not json"), 400);
    assert_eq!(
        post(
            "/v1/reports",
            br#"{"epoch":1,"reports":[{"seq":1,"component":"db cluster","failing":[],"node":"db2"}]}"#
        ),
        400,
        "a body naming a node is refused"
    );
    assert_eq!(
        post(
            "/v1/reports",
            br#"{"epoch":1,"reports":[{"seq":1,"component":"nope","failing":[]}]}"#
        ),
        422
    );
    assert_eq!(post("/collector", b"<monit><services>"), 400);
    assert_eq!(post("/collector", &[0xff, 0xfe, 0x00, 0x01]), 400);
    assert_eq!(post("/v1/reports", &vec![b' '; 10_000]), 413);
    // A client that sends its headers and then trickles its body is cut off (408), not waited on.
    let t = std::time::Instant::now();
    let slow = raw_request(
        port,
        format!("POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: 100\r\n\r\n{{").as_bytes(),
    );
    assert_eq!(slow, 408, "{}", serve.log());
    assert!(t.elapsed() < Duration::from_secs(10));
    // Slowloris: clients that trickle their headers (a byte every 200 ms, for ever) hold a
    // connection each for at most request_timeout, and never a worker: a real report made
    // meanwhile is answered at once.
    let loris: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let t = std::time::Instant::now();
                let _ = s.write_all(b"POST /v1/reports HTTP/1.1\r\nHost: x\r\n");
                let mut buf = [0u8; 256];
                while t.elapsed() < Duration::from_secs(20) {
                    if s.write_all(b"X").is_err() {
                        break;
                    }
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                t.elapsed()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // let them connect (not a proof of absence)
    let t = std::time::Instant::now();
    assert_eq!(
        post("/v1/reports", br#"{"epoch":1,"reports":[]}"#),
        200,
        "a real node is served while slow clients trickle"
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    for l in loris {
        let held = l.join().unwrap();
        assert!(
            held < Duration::from_secs(5),
            "a slow client held on {held:?}"
        );
    }
    // Asked of whichever store it is, as an operator asks.
    let st: serde_json::Value =
        serde_json::from_str(&agg.sb.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(st["events"], 0, "nothing was recorded: {st}");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// A node whose flusher relays as a daemon with a one-second heartbeat.
pub fn beating_node(name: &str, agg: &Aggregator, secret: &str) -> Sandbox {
    let sb = node(name, agg, secret);
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace(
            "timeout = \"5s\"\n",
            "timeout = \"5s\"\nheartbeat = \"1s\"\n",
        ),
    );
    sb
}

/// Issue 15: a node that goes silent (its statusrelay killed, as a dead machine) is stale
/// after `stale_after` missed heartbeats: the page no longer shows its last word (a major
/// outage) but `unknown`, the default, while a node that keeps beating is never stale. The
/// node comes back with its next run's snapshot, and the page follows it again.
#[test]
fn a_silent_node_goes_stale_and_resumes_with_its_snapshot() {
    stale_on("fleet-stale", None);
}

/// The staleness test on the aggregator's spool, or on the PostgreSQL store at `store`
/// (`tests/integration/ha.rs` runs it so: there silence is judged by the database).
pub fn stale_on(name: &str, store: Option<&str>) {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new(name, &fake);
    agg.append_config("stale_after = 2\n");
    let agg = agg.on_store(store);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let (db1, db2) = (
        beating_node("db1", &agg, &s1),
        beating_node("db2", &agg, &s2),
    );
    let f1 = LiveFlusher::start(&db1);
    let mut f2 = LiveFlusher::start(&db2);
    assert_code(&monit(&db2, &fail("mysql")), 0);
    // The nodes' first snapshots (all passing) may reach the page before db2's failure does:
    // what follows is checked after whatever came first.
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts().last()
            == Some(&(2, 4))),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    let before = fake.puts();
    let then = |more: &[(u64, i64)]| [before.as_slice(), more].concat();
    // db2 dies: nothing more from it. Two missed seconds later it is stale.
    f2.child.kill().unwrap();
    f2.child.wait().unwrap();
    serve.wait_log("node db2 is stale", Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == then(&[(2, 0)])),
        "the page shows unknown, not db2's last word: {:?}\n{}",
        fake.puts(),
        serve.log()
    );
    let listed = agg.sb.run(&["nodes", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let stale = |n: &str| {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap()["stale"]
            .as_bool()
            .unwrap()
    };
    assert!(stale("db2"), "{v}");
    assert!(!stale("db1"), "db1 keeps beating: {v}");
    assert_eq!(v["nodes"][0]["period_ms"], 1000, "{v}");
    assert_contains(&agg.sb.run(&["nodes"]).stdout, "db2: STALE");
    // `status` on the aggregator says which node fails what, and which is stale.
    let st = agg.sb.run(&["status"]).stdout;
    assert_contains(&st, "mysql on db2:");
    assert_contains(&st, "nodes (worst of): db1, db2 (STALE, counts as unknown)");
    let st: serde_json::Value =
        serde_json::from_str(&agg.sb.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(st["components"][0]["failing"][0]["host"], "db2", "{st}");
    assert_eq!(st["components"][0]["nodes"][1]["stale"], true, "{st}");
    // db2 comes back (mysql still down there): its start-up snapshot resumes it.
    let f2 = LiveFlusher::start(&db2);
    serve.wait_log("node db2 reports again", Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts()
            == then(&[(2, 0), (2, 4)])),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    assert_code(&monit(&db2, &ok("mysql")), 0);
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts().last()
            == Some(&(2, 1))),
        "{:?}\n{}",
        fake.puts(),
        serve.log()
    );
    assert_eq!(
        serve.log().matches("node db1 is stale").count(),
        0,
        "{}",
        serve.log()
    );
    for f in [f1, f2] {
        let (code, _, log) = f.stop();
        assert_eq!(code, 0, "{log}");
    }
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(log.matches("node db2 is stale").count(), 1, "{log}");
}

/// Issue 15: a node over its rate is told to slow down (429 with Retry-After), warned about
/// once per streak, and other nodes are not affected.
#[test]
fn a_node_over_its_rate_is_told_to_wait_and_others_are_not() {
    rate_on("fleet-rate", None);
}

/// The rate test on the aggregator's spool, or on the PostgreSQL store at `store`.
pub fn rate_on(name: &str, store: Option<&str>) {
    let agg = Aggregator::on(html_sandbox(name, DB));
    agg.append_config("node_rate = 1\nnode_burst = 3\n");
    let agg = agg.on_store(store);
    let (s1, s2) = (agg.add_node("db1"), agg.add_node("db2"));
    let serve = agg.start();
    let port = agg.port;
    let post = |user: &str, secret: &str| {
        use std::io::{Read, Write};
        let auth = statusrelay_backend::http::base64(format!("{user}:{secret}").as_bytes());
        let body = br#"{"epoch":1,"reports":[]}"#;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    let codes: Vec<String> = (0..6)
        .map(|_| {
            post("db1", &s1)
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(&codes[..3], ["200", "200", "200"], "{codes:?}");
    assert!(codes[3..].iter().all(|c| c == "429"), "{codes:?}");
    let refused = post("db1", &s1);
    assert_contains(&refused.to_ascii_lowercase(), "retry-after: 1");
    assert_contains(&refused, "over its rate limit");
    assert!(
        post("db2", &s2).starts_with("HTTP/1.1 200"),
        "db2 has its own budget"
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert_eq!(
        log.matches("db1 is over its rate limit").count(),
        1,
        "{log}"
    );
}

/// Issue 15: TLS with rustls. A node relays over https trusting the aggregator's CA; a
/// renewed certificate is served without a restart; a broken renewal keeps the working one;
/// a key that does not fit is refused by `check` and `serve` before anything listens.
#[test]
fn serve_speaks_tls_and_reloads_a_renewed_certificate() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("fleet-tls", &fake);
    let dir = agg.sb.path("");
    statusrelay_testkit::certs::self_signed(&dir, "one");
    statusrelay_testkit::certs::self_signed(&dir, "two");
    std::fs::copy(dir.join("one.crt"), dir.join("serve.crt")).unwrap();
    std::fs::copy(dir.join("one.key"), dir.join("serve.key")).unwrap();
    agg.append_config("tls_cert = \"serve.crt\"\ntls_key = \"serve.key\"\n");
    // A key that does not fit its certificate: refused before anything listens.
    std::fs::copy(dir.join("two.key"), dir.join("serve.key")).unwrap();
    let r = agg.sb.run(&["check"]);
    assert_code(&r, 78);
    assert_contains(&r.stderr, "serve.tls_cert");
    assert_contains(&r.stderr, "does not fit");
    let r = agg.sb.run(&["serve"]);
    assert_code(&r, 78);
    std::fs::copy(dir.join("one.key"), dir.join("serve.key")).unwrap();
    assert_contains(&agg.sb.run(&["check"]).stdout, "TLS with serve.crt");
    let secret = agg.add_node("db1");
    let serve = LiveFlusher::spawn(agg.sb.cmd(&["serve", "--log-level", "debug"]));
    serve.wait_log("serving nodes on https://", Duration::from_secs(20));
    let db1 = node("db1", &agg, &secret);
    let trust = |ca: &str| {
        let cfg = std::fs::read_to_string(db1.path("config.toml")).unwrap();
        let cfg: String = cfg
            .lines()
            .filter(|l| !l.starts_with("ca_file"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .replace("http://127.0.0.1", "https://localhost")
            .replace(
                "kind = \"relay\"\n",
                &format!("kind = \"relay\"\nca_file = \"{ca}\"\n"),
            );
        db1.write("config.toml", &cfg);
    };
    std::fs::copy(dir.join("one-ca.crt"), db1.path("one.crt")).unwrap();
    std::fs::copy(dir.join("two-ca.crt"), db1.path("two.crt")).unwrap();
    trust("one.crt");
    assert_code(&db1.run(&["check", "--online"]), 0);
    assert_code(&monit(&db1, &fail("mysql")), 0);
    relay(&db1);
    wait_puts(&fake, &serve, &[(2, 4)]);
    // The certificate is renewed on disk (another key): served from the next connection on.
    std::fs::copy(dir.join("two.key"), dir.join("serve.key")).unwrap();
    std::fs::copy(dir.join("two.crt"), dir.join("serve.crt")).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let _ = db1.run(&["check", "--online"]);
            serve.log().contains("TLS certificate reloaded")
        }),
        "{}",
        serve.log()
    );
    // A node still trusting the old CA refuses the new certificate, as it should.
    let r = db1.run(&["check", "--online"]);
    assert_ne!(r.code, 0);
    assert_contains(&r.stdout, "invalid peer certificate");
    trust("two.crt");
    let r = db1.run(&["check", "--online"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, serve.log());
    // A renewal caught half-written: the working certificate stays. (The renewal above may
    // have been caught between its two files already: count from here.)
    let before = serve.log().matches("not reloaded").count();
    agg.sb
        .write("serve.crt", "-----BEGIN CERTIFICATE-----\ntruncated");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let _ = db1.run(&["check", "--online"]);
            serve.log().matches("not reloaded").count() > before
        }),
        "{}",
        serve.log()
    );
    // Said in words, not as the bytes of the missing marker.
    assert_contains(
        &serve.log(),
        "cut short: no \"-----END CERTIFICATE-----\" line",
    );
    assert!(!serve.log().contains("[45, 45"), "{}", serve.log());
    assert_code(&db1.run(&["check", "--online"]), 0);
    assert_code(&monit(&db1, &ok("mysql")), 0);
    relay(&db1);
    wait_puts(&fake, &serve, &[(2, 4), (2, 1)]);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains(&secret), "the secret is never logged");
}

/// Issue 15, with three real Monit daemons pushing to `serve` (`set mmonit`) and "api" counted
/// across them: one node down is a partial outage, two a major one, a recovery while another
/// node is down keeps the page in an outage, and a node whose Monit stops is stale after
/// `stale_after` of its poll cycles (unknown, the default) rather than frozen.
#[test]
fn three_real_monits_are_counted_and_a_silent_one_goes_stale() {
    let fake = FakeCachet::start(TOKEN, &[(2, "api")]);
    let agg = Aggregator::on(cachet_sandbox(
        "fleet-three",
        &fake,
        "[[component]]\nname = \"api\"\nservices = [\"api\"]\n[component.nodes]\nrule = \"count\"\npartial_at = 1\nmajor_at = 2\n",
    ));
    let port = agg.port;
    let names = ["a", "b", "c"];
    let secrets: Vec<String> = names.iter().map(|n| agg.add_node(n)).collect();
    let serve = agg.start();
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let mut up: Vec<Option<std::net::TcpListener>> = ports
        .iter()
        .map(|p| Some(std::net::TcpListener::bind(("127.0.0.1", *p)).unwrap()))
        .collect();
    let mut monits: Vec<Option<statusrelay_testkit::monit::MonitLab>> = names
        .iter()
        .zip(&secrets)
        .zip(&ports)
        .map(|((n, s), p)| {
            Some(statusrelay_testkit::monit::MonitLab::start(
                &agg.sb.dir,
                n,
                free_port(),
                &format!("{n}-system"),
                &format!(
                    "set mmonit http://{n}:{s}@127.0.0.1:{port}/collector\n\
                     check host api with address 127.0.0.1\n  if failed port {p} then alert\n"
                ),
            ))
        })
        .collect();
    let page = |want: i64| wait_until(Duration::from_secs(30), || fake.status_of(2) == Some(want));
    let seen_all = || {
        wait_until(Duration::from_secs(30), || {
            count(
                &agg.sb,
                "SELECT count(*) FROM feeds WHERE component = 'api'",
            ) == 3
        })
    };
    assert!(seen_all(), "{}", serve.log());
    up[0] = None; // a's api goes down
    assert!(
        page(3),
        "one of three: partial. {:?}\n{}",
        fake.puts(),
        serve.log()
    );
    up[1] = None; // and b's
    assert!(
        page(4),
        "two of three: major. {:?}\n{}",
        fake.puts(),
        serve.log()
    );
    up[0] = Some(std::net::TcpListener::bind(("127.0.0.1", ports[0])).unwrap());
    assert!(page(3), "a recovers, b is still down. {:?}", fake.puts());
    up[1] = Some(std::net::TcpListener::bind(("127.0.0.1", ports[1])).unwrap());
    assert!(page(1), "{:?}", fake.puts());
    assert!(
        !fake.puts().contains(&(2, 1)) || fake.puts().last() == Some(&(2, 1)),
        "operational only at the end: {:?}",
        fake.puts()
    );
    // c's Monit stops: three poll cycles of one second later c is stale, and "api" shows
    // unknown, not c's last word.
    monits[2] = None;
    serve.wait_log("node c is stale", Duration::from_secs(30));
    assert!(page(0), "{:?}\n{}", fake.puts(), serve.log());
    let listed = agg.sb.run(&["nodes"]).stdout;
    assert_contains(&listed, "c: STALE");
    assert_contains(&listed, "via collector every 1s");
    drop(monits);
    drop(up);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Issue 15: a node with Monit alone, configured the way a config manager does it. The
/// aggregator takes the node's secret from a file (`nodes add --secret-file`, idempotent);
/// the node's `monit-config` writes the `set mmonit` line (0600, Monit's own credentials
/// not sent) and checks that only alert; a real Monit reading them feeds the aggregator.
#[test]
fn a_monit_only_node_is_configured_by_monit_config_and_feeds_serve() {
    let agg = Aggregator::on(html_sandbox(
        "fleet-mmonit",
        "[[component]]\nname = \"api\"\nservices = [\"api\"]\n",
    ));
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef";
    agg.sb.write("n1.secret", &format!("{secret}\n"));
    let add = |want: &str| {
        let r = agg
            .sb
            .run(&["nodes", "add", "n1", "--secret-file", "n1.secret"]);
        assert_code(&r, 0);
        assert_contains(&r.stdout, want);
        assert!(!r.stdout.contains(secret), "never printed");
    };
    add("added node n1");
    add("node n1 unchanged");
    agg.sb.write("short.secret", "abc\n");
    let r = agg
        .sb
        .run(&["nodes", "add", "n2", "--secret-file", "short.secret"]);
    assert_code(&r, 64);
    assert_contains(&r.stderr, "openssl rand -hex 32");
    // Long enough, but 32 times the same letter: no strength at all.
    agg.sb
        .write("weak.secret", &format!("{}\n", "a".repeat(32)));
    let r = agg
        .sb
        .run(&["nodes", "add", "n2", "--secret-file", "weak.secret"]);
    assert_code(&r, 64);
    assert_contains(&r.stderr, "too weak: about 0 bits");
    let serve = agg.start();
    let node = Sandbox::new(BIN, "fleet-mmonit-n1");
    node.write("secret", &format!("{secret}\n"));
    node.write("api.flag", "up\n");
    node.write(
        "config.toml",
        &format!(
            "spool = \"spool.db\"\nnode = \"n1\"\n[collector]\nurl = \"http://127.0.0.1:{}/collector\"\nsecret_file = \"secret\"\n[[component]]\nname = \"api\"\nservices = [\"api\"]\n[[check]]\nservice = \"api\"\ntype = \"file\"\ntarget = \"with path {}\"\ntests = [\"does not exist\"]\n",
            agg.port,
            node.path("api.flag").display()
        ),
    );
    let r = node.run(&["monit-config", "--dir", "monit.d"]);
    assert_code(&r, 0);
    let mmonit = node.path("monit.d/statusrelay-mmonit");
    let text = std::fs::read_to_string(&mmonit).unwrap();
    assert_contains(
        &text,
        &format!(
            "set mmonit http://n1:{secret}@127.0.0.1:{}/collector",
            agg.port
        ),
    );
    assert_contains(&text, "register without credentials");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&mmonit).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let check = std::fs::read_to_string(node.path("monit.d/statusrelay-api")).unwrap();
    assert_contains(&check, "if does not exist then alert");
    assert!(!check.contains("exec"), "{check}");
    assert!(
        !node.path("monit.d/statusrelay-flush").exists(),
        "no flusher to watch"
    );
    assert_code(
        &node.run(&["monit-config", "--dir", "monit.d", "--check"]),
        0,
    );
    let monit = statusrelay_testkit::monit::MonitLab::start(
        &node.dir,
        "n1",
        free_port(),
        "n1-system",
        &format!("include {}/*\n", node.path("monit.d").display()),
    );
    let shows = |want: &str| {
        wait_until(Duration::from_secs(30), || {
            desired_state(&agg.sb, "api") == want
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &agg.sb,
            "SELECT count(*) FROM feeds WHERE node = 'n1'"
        ) == 1),
        "{}\n{}",
        monit.log(),
        serve.log()
    );
    std::fs::remove_file(node.path("api.flag")).unwrap();
    assert!(shows("major_outage"), "{}\n{}", monit.log(), serve.log());
    node.write("api.flag", "up\n");
    assert!(shows("operational"), "{}", serve.log());
    // The secret is rotated on the aggregator: the old one no longer works.
    agg.sb
        .write("n1.secret", "fedcba9876543210fedcba9876543210fedcba98\n");
    add("secret or components replaced");
    serve.wait_log("as node \"n1\" refused (401)", Duration::from_secs(30));
    assert!(!serve.log().contains(secret), "{}", serve.log());
    drop(monit);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Issue 15: several aggregator URLs on a node. The first cannot be reached: the node's
/// reports go to the next, and `check --online` says which answers and which does not.
#[test]
fn a_node_passes_over_an_aggregator_it_cannot_reach() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("fleet-fallback", &fake);
    let secret = agg.add_node("db1");
    let serve = agg.start();
    let db1 = node("db1", &agg, &secret);
    let dead = free_port();
    let cfg = std::fs::read_to_string(db1.path("config.toml")).unwrap();
    db1.write(
        "config.toml",
        &cfg.replace(
            &format!("url = \"http://127.0.0.1:{}\"\n", agg.port),
            &format!(
                "url = \"http://127.0.0.1:{dead}\"\nfallback_urls = [\"http://127.0.0.1:{}\"]\n",
                agg.port
            ),
        ),
    );
    let r = db1.run(&["check", "--online"]);
    assert_ne!(r.code, 0, "the first aggregator is down: {}", r.stdout);
    assert_contains(
        &r.stdout,
        &format!("127.0.0.1:{} accepts this node's credential", agg.port),
    );
    assert_contains(&r.stdout, &format!("[FAIL] http://127.0.0.1:{dead}"));
    assert_code(&monit(&db1, &fail("mysql")), 0);
    relay(&db1);
    wait_puts(&fake, &serve, &[(2, 4)]);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
