//! Issue 15, several hosts for real: the aggregator and each node in a network namespace of
//! its own (`ip netns`, veth pairs), so every report crosses interfaces as on a network. Node
//! n1 runs Monit with statusrelay relaying its spool; node n2 runs Monit alone, pushing to
//! the collector. Cutting a node's link makes it stale by the configured rule; restoring it
//! brings it back. Needs root (CI is root) and iproute2; skipped with a message otherwise.
//!
//! Addresses are on links the test makes inside its own namespaces, never the host's.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// Namespaces and processes made by the test, undone in any case.
struct Hosts {
    prefix: String,
    children: Vec<Child>,
}

impl Hosts {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn ip(&self, args: &[&str]) {
        let r = Command::new("ip")
            .args(args)
            .output()
            .expect("ip (iproute2)");
        assert!(
            r.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&r.stderr)
        );
    }

    fn in_ns(&self, ns: &str, args: &[&str]) {
        let ns = self.ns(ns);
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        self.ip(&all);
    }

    /// A command run inside host `ns`, with a cleared environment.
    fn cmd(&self, ns: &str, program: &str, dir: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .current_dir(dir)
            .args(["netns", "exec", &self.ns(ns), program])
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for n in ["agg", "n1", "n2"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(n)])
                .status();
        }
    }
}

/// Make the three hosts: agg linked to n1 (10.77.1.0/24) and to n2 (10.77.2.0/24).
fn hosts() -> Hosts {
    let h = Hosts {
        prefix: format!("sr{}", std::process::id() % 100_000),
        children: Vec::new(),
    };
    for n in ["agg", "n1", "n2"] {
        h.ip(&["netns", "add", &h.ns(n)]);
        h.in_ns(n, &["link", "set", "lo", "up"]);
    }
    for (i, n) in ["n1", "n2"].iter().enumerate() {
        let i = i + 1;
        let (a, b) = (format!("a{i}"), n.to_string());
        h.in_ns(
            "agg",
            &[
                "link",
                "add",
                &a,
                "type",
                "veth",
                "peer",
                "name",
                &b,
                "netns",
                &h.ns(n),
            ],
        );
        h.in_ns(
            "agg",
            &["addr", "add", &format!("10.77.{i}.1/24"), "dev", &a],
        );
        h.in_ns("agg", &["link", "set", &a, "up"]);
        h.in_ns(n, &["addr", "add", &format!("10.77.{i}.2/24"), "dev", &b]);
        h.in_ns(n, &["link", "set", &b, "up"]);
    }
    h
}

/// Start Monit inside host `ns` on a lab monitrc of `checks`.
fn monit_in(h: &mut Hosts, ns: &str, dir: &std::path::Path, name: &str, checks: &str) {
    let rc = statusrelay_testkit::monit::lab_rc(dir, name, checks);
    let child = h
        .cmd(ns, "monit", dir)
        .arg("-c")
        .arg(&rc)
        .arg("-I")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    h.children.push(child);
}

#[test]
fn nodes_in_their_own_network_namespaces_go_stale_when_their_link_is_cut() {
    if !can_run(
        (!is_root()).then_some(
            "the multi-host test makes network namespaces, which needs root (CI is root)",
        ),
    ) {
        return;
    }
    if !can_run(
        Command::new("ip")
            .arg("-V")
            .output()
            .is_err()
            .then_some("no `ip` (apt-get install iproute2; .ci/run does)"),
    ) {
        return;
    }
    if !can_run(
        (!statusrelay_testkit::monit::available())
            .then_some("monit is not installed (apt-get install monit; .ci/run does)"),
    ) {
        return;
    }
    let mut h = hosts();
    // The aggregator, on agg's interfaces: plain HTTP off loopback, by name.
    let agg = html_sandbox(
        "hosts-agg",
        "[[component]]\nname = \"api\"\nservices = [\"api\"]\n",
    );
    let cfg = std::fs::read_to_string(agg.path("config.toml")).unwrap();
    agg.write(
        "config.toml",
        &format!(
            "{cfg}[serve]\nlisten = \"0.0.0.0:8731\"\nallow_plain_http = true\nstale_after = 2\n"
        ),
    );
    let secret = |n: &str| {
        let r = agg.run(&["nodes", "add", n]);
        assert_code(&r, 0);
        r.stdout
            .lines()
            .find(|l| l.len() == 64)
            .unwrap()
            .to_string()
    };
    let (s1, s2) = (secret("n1"), secret("n2"));
    let mut serve_cmd = h.cmd("agg", BIN, &agg.dir);
    serve_cmd.args(["--config", "config.toml", "serve", "--log-level", "debug"]);
    let serve = LiveFlusher::spawn(serve_cmd);
    serve.wait_log(
        "serving nodes on http://0.0.0.0:8731",
        Duration::from_secs(20),
    );
    assert_contains(&serve.log(), "allow_plain_http");

    // n1: Monit runs statusrelay's handler; its flusher relays to 10.77.1.1.
    let n1 = Sandbox::new(BIN, "hosts-n1");
    n1.write("token", &format!("{s1}\n"));
    std::fs::set_permissions(
        n1.path("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    n1.write(
        "config.toml",
        "spool = \"spool.db\"\nnode = \"n1\"\n[backend]\nkind = \"relay\"\nurl = \"http://10.77.1.1:8731\"\ntoken_file = \"token\"\ntimeout = \"2s\"\nheartbeat = \"1s\"\n[delivery]\nbackoff_base = \"200ms\"\nbackoff_cap = \"1s\"\n[[component]]\nname = \"api\"\nservices = [\"api\"]\n",
    );
    n1.write("api.flag", "up\n");
    let x = format!("{BIN} --config {} monit", n1.path("config.toml").display());
    monit_in(
        &mut h,
        "n1",
        &n1.dir,
        "n1",
        &format!(
            "check file api with path {}\n  if does not exist then exec \"{x}\" else if succeeded then exec \"{x}\"\n",
            n1.path("api.flag").display()
        ),
    );
    let mut flush_cmd = h.cmd("n1", BIN, &n1.dir);
    flush_cmd.args(["--config", "config.toml", "flush", "--log-level", "debug"]);
    let f1 = LiveFlusher::spawn(flush_cmd);

    // n2: Monit alone, pushing its status to the collector at 10.77.2.1.
    let n2 = Sandbox::new(BIN, "hosts-n2");
    n2.write("api.flag", "up\n");
    monit_in(
        &mut h,
        "n2",
        &n2.dir,
        "n2",
        &format!(
            "set mmonit http://n2:{s2}@10.77.2.1:8731/collector\ncheck file api with path {}\n  if does not exist then alert\n",
            n2.path("api.flag").display()
        ),
    );
    let both_seen = || {
        wait_until(Duration::from_secs(30), || {
            count(&agg, "SELECT count(*) FROM feeds WHERE component = 'api'") == 2
        })
    };
    assert!(both_seen(), "{}\n{}", serve.log(), f1.log());
    let shows = |want: &str| {
        wait_until(Duration::from_secs(30), || {
            desired_state(&agg, "api") == want
        })
    };

    // n2's api goes away: the page goes down. n1's fails and recovers meanwhile: still down.
    std::fs::remove_file(n2.path("api.flag")).unwrap();
    assert!(shows("major_outage"), "{}", serve.log());
    std::fs::remove_file(n1.path("api.flag")).unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &agg,
            "SELECT count(*) FROM tests WHERE host = 'n1' AND state IS NOT NULL"
        ) == 1),
        "{}\n{}",
        serve.log(),
        f1.log()
    );
    n1.write("api.flag", "up\n");
    assert!(
        wait_until(Duration::from_secs(30), || count(
            &agg,
            "SELECT count(*) FROM tests WHERE host = 'n1' AND state IS NOT NULL"
        ) == 0),
        "{}\n{}",
        serve.log(),
        f1.log()
    );
    assert_eq!(
        desired_state(&agg, "api"),
        "major_outage",
        "n2 is still down"
    );

    // n2's link is cut on the aggregator's side: after two missed cycles n2 is stale, and
    // "api" shows unknown rather than n2's last word.
    h.in_ns("agg", &["link", "set", "a2", "down"]);
    serve.wait_log("node n2 is stale", Duration::from_secs(30));
    assert!(shows("unknown"), "{}", serve.log());
    // Back: n2's Monit reaches the aggregator again, still reporting api down.
    h.in_ns("agg", &["link", "set", "a2", "up"]);
    serve.wait_log("node n2 reports again", Duration::from_secs(30));
    assert!(shows("major_outage"), "{}", serve.log());
    n2.write("api.flag", "up\n");
    assert!(shows("operational"), "{}", serve.log());

    // n1's link is cut: its relay's heartbeats stop arriving; stale, then back.
    h.in_ns("agg", &["link", "set", "a1", "down"]);
    serve.wait_log("node n1 is stale", Duration::from_secs(30));
    assert!(shows("unknown"), "{}", serve.log());
    h.in_ns("agg", &["link", "set", "a1", "up"]);
    serve.wait_log("node n1 reports again", Duration::from_secs(30));
    assert!(shows("operational"), "{}\n{}", serve.log(), f1.log());
    // The reports came from the nodes' own addresses, across the links.
    assert_contains(&serve.log(), "10.77.1.2:");
    assert_contains(&serve.log(), "10.77.2.2:");
    let (code, _, log) = f1.stop();
    assert_eq!(code, 0, "{log}");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}
