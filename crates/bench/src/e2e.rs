//! End to end (`--e2e N`): an event on a node to the page's PUT (a loopback fake Cachet),
//! with the flushers running: on a single node (the handler run as Monit runs it, its flusher,
//! the page), through a relaying node and the aggregator, and through a real Monit pushing to
//! the collector (its poll cycle is 1 s, part of the figure).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statusrelay_testkit::FakeCachet;
use statusrelay_testkit::monit::{MonitLab, free_port};

use super::fleet::{add_node, node_secret, serve, statusrelay};
use super::{ms, pct};

/// A token file as an operator keeps it (0600), so the flusher has nothing to warn about.
fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A relaying node sandbox: config, secret, and its flusher.
fn relay_node(bin: &Path, dir: &Path, agg_port: u16, secret: &str) -> (PathBuf, Child) {
    let nd = dir.join("e2e-node");
    std::fs::create_dir_all(&nd).unwrap();
    write_secret(&nd.join("token"), &format!("{secret}\n"));
    let cfg = nd.join("config.toml");
    std::fs::write(
        &cfg,
        format!("spool = \"spool.db\"\nnode = \"relay1\"\n[backend]\nkind = \"relay\"\nurl = \"http://127.0.0.1:{agg_port}\"\ntoken_file = \"token\"\n[[component]]\nname = \"api\"\nservices = [\"api\"]\n"),
    )
    .unwrap();
    let child = statusrelay(bin, &nd, &cfg, "flush", Stdio::inherit());
    (cfg, child)
}

/// Wait for a PUT of `status` to component 1 that arrived after `t0`; how long after.
fn put_arrival(fake: &FakeCachet, status: i64, t0: Instant) -> Option<Duration> {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let found = fake.seen().into_iter().find(|p| {
            let body: String = p.body.split_whitespace().collect();
            p.method == "PUT"
                && p.url.contains("/components/1")
                && p.at >= t0
                && (body.contains(&format!("\"status\":{status}"))
                    || body.contains(&format!("status={status}")))
        });
        if let Some(p) = found {
            return Some(p.at.duration_since(t0));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// The handler as Monit runs it, `n` times alternating `api` down and up; each time, how long
/// until the page got the PUT.
fn changes(bin: &Path, node_cfg: &Path, host: &str, fake: &FakeCachet, n: usize) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in 0..n {
        let (ev, status) = if i % 2 == 0 {
            ("Does not exist", 4)
        } else {
            ("Exists", 1)
        };
        let t0 = Instant::now();
        let st = Command::new(bin)
            .env_clear()
            .env("MONIT_SERVICE", "api")
            .env("MONIT_EVENT", ev)
            .env("MONIT_HOST", host)
            .args(["--config", node_cfg.to_str().unwrap(), "monit"])
            .status()
            .unwrap();
        assert!(st.success());
        match put_arrival(fake, status, t0) {
            Some(d) => took.push(d),
            None => panic!("{host}: no PUT for change {i}"),
        }
    }
    took.sort();
    took
}

/// A single node: its handler, its flusher and the page, no aggregator.
fn single_node(bin: &Path, dir: &Path, n: usize) {
    let fake = FakeCachet::start("bench-token", &[(1, "api")]);
    let nd = dir.join("e2e-single");
    std::fs::create_dir_all(&nd).unwrap();
    write_secret(&nd.join("token"), "bench-token\n");
    let cfg = nd.join("config.toml");
    std::fs::write(
        &cfg,
        format!("spool = \"spool.db\"\n[backend]\nkind = \"cachet\"\nurl = \"{}\"\ntoken_file = \"token\"\nversion = \"2.4\"\nschedules = \"off\"\n[[component]]\nname = \"api\"\nid = 1\nservices = [\"api\"]\n", fake.url()),
    )
    .unwrap();
    let mut flusher = statusrelay(bin, &nd, &cfg, "flush", Stdio::inherit());
    let took = changes(bin, &cfg, "single1", &fake, n);
    let _ = flusher.kill();
    let _ = flusher.wait();
    println!(
        "  on a single node ({n} changes): p50 {} ms, p99 {} ms (target p99 under 50 ms)",
        ms(pct(&took, 0.5)),
        ms(pct(&took, 0.99))
    );
}

/// `--e2e N`: N state changes through each way in, event to the page's PUT.
pub fn end_to_end(bin: &Path, dir: &Path, n: usize) {
    let fake = FakeCachet::start("bench-token", &[(1, "api")]);
    std::fs::write(dir.join("token"), "bench-token\n").unwrap();
    let port = free_port();
    let cfg = dir.join("e2e.toml");
    std::fs::write(
        &cfg,
        format!("spool = \"e2e.db\"\n[backend]\nkind = \"cachet\"\nurl = \"{}\"\ntoken_file = \"token\"\nversion = \"2.4\"\nschedules = \"off\"\n[[component]]\nname = \"api\"\nid = 1\nservices = [\"api\"]\n[serve]\nlisten = \"127.0.0.1:{port}\"\n", fake.url()),
    )
    .unwrap();
    let secrets: Vec<String> = ["relay1", "monit1"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let secret = node_secret(0xe2e0_u64 + i as u64);
            add_node(bin, dir, &cfg, name, &secret);
            secret
        })
        .collect();
    println!(
        "\nend to end: an event on a node to the page's PUT (loopback fake Cachet), flushers running"
    );
    single_node(bin, dir, n);
    let _s = serve(bin, dir, &cfg, port);
    // Through a relaying node: the handler as Monit runs it.
    let (node_cfg, mut flusher) = relay_node(bin, dir, port, &secrets[0]);
    let relay = changes(bin, &node_cfg, "relay1", &fake, n);
    let _ = flusher.kill();
    let _ = flusher.wait();
    println!(
        "  through the relay and the aggregator ({n} changes): p50 {} ms, p99 {} ms (target p99 under 100 ms)",
        ms(pct(&relay, 0.5)),
        ms(pct(&relay, 0.99))
    );
    // Through the collector: a real Monit, poll cycle 1 s, watching a file the bench removes
    // and puts back. The latency includes up to one poll cycle of Monit's own.
    let md = dir.join("e2e-monit");
    std::fs::create_dir_all(&md).unwrap();
    let flag = md.join("api.flag");
    std::fs::write(&flag, "up").unwrap();
    let monit = MonitLab::start(
        &md,
        "monit1",
        free_port(),
        "monit1-system",
        &format!(
            "set mmonit http://monit1:{}@127.0.0.1:{port}/collector\ncheck file api with path {}\n  if does not exist then alert\n",
            secrets[1],
            flag.display()
        ),
    );
    // Let the first documents arrive before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let mut collector = Vec::new();
    for i in 0..n {
        let status = if i % 2 == 0 { 4 } else { 1 };
        let t0 = Instant::now();
        if i % 2 == 0 {
            std::fs::remove_file(&flag).unwrap();
        } else {
            std::fs::write(&flag, "up").unwrap();
        }
        match put_arrival(&fake, status, t0) {
            Some(d) => collector.push(d),
            None => panic!("collector: no PUT for change {i}; {}", monit.log()),
        }
    }
    collector.sort();
    println!(
        "  through the collector ({n} changes, real Monit, poll 1 s): p50 {} ms, p99 {} ms (Monit's own poll cycle included)",
        ms(pct(&collector, 0.5)),
        ms(pct(&collector, 0.99))
    );
}
