//! The aggregator's benchmarks (`--ingest NODES`, `--e2e N`).
//!
//! Ingest: NODES simulated nodes against a real `statusrelay serve` on loopback, half pushing
//! Monit status documents (the real captured shape, tests/data/mmonit) and half relaying
//! snapshots, at a steady rate; then a burst of 50 relayed events from every node at once (a
//! partition healing). Each request is a new connection, as Monit makes them. Figures: the
//! aggregator's CPU (utime + stime of its process) as a share of one core, its peak RSS, p50 and
//! p99 time to acknowledge, and the burst's time against the physical limit measured in the same
//! run (`limit.rs`): the same rows committed to the same spool file, one transaction per request, by one
//! SQLite connection with the same durability and no HTTP.
//!
//! End to end (`--e2e N`) is `e2e.rs`, on the same helpers; the loads themselves (what each
//! simulated node sends, and the clients that send it) are `jobs.rs`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statusrelay_testkit::monit::free_port;

use super::jobs::{burst_jobs, drive, steady_jobs};
use super::{ms, pct};

pub(crate) fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            if i <= c.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One request on a new connection; (HTTP status, time to the answer).
pub(crate) fn post(port: u16, path: &str, auth: &str, body: &[u8]) -> (u16, Duration) {
    let t = Instant::now();
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, t.elapsed());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let code = String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, t.elapsed())
}

/// ((user, system) CPU seconds, peak RSS in KiB) of a process, from /proc.
pub(crate) fn cpu_and_peak(pid: u32) -> ((f64, f64), u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let at = |i: usize| {
        fields
            .get(i)
            .and_then(|x| x.parse::<f64>().ok())
            .unwrap_or(0.0)
            / ticks
    };
    let cpu = (at(11), at(12));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, hwm)
}

pub(crate) struct Serve {
    child: Child,
}

impl Serve {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// `statusrelay COMMAND` on `cfg` in `dir`, its environment cleared, warnings only, to
/// `stderr`.
pub(crate) fn statusrelay(
    bin: &Path,
    dir: &Path,
    cfg: &Path,
    command: &str,
    stderr: Stdio,
) -> Child {
    Command::new(bin)
        .env_clear()
        .current_dir(dir)
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--log-level",
            "warn",
            command,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command}: {e}"))
}

/// Start `serve` on `cfg` and wait until /ready answers.
pub(crate) fn serve(bin: &Path, dir: &Path, cfg: &Path, port: u16) -> Serve {
    // Its warnings (a thousand nodes going stale in the partition) into a file beside it,
    // not between the figures.
    let log = std::fs::File::create(dir.join("serve.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::inherit());
    let child = statusrelay(bin, dir, cfg, "serve", log);
    let s = Serve { child };
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = c.write_all(b"GET /ready HTTP/1.0\r\n\r\n");
            let mut a = String::new();
            let _ = c.read_to_string(&mut a);
            if a.contains("\"ready\":true") {
                return s;
            }
        }
        assert!(Instant::now() < end, "serve did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node's secret, 64 hex digits from `seed` (splitmix64): varied enough for the
/// aggregator's strength check, the same from run to run.
pub(crate) fn node_secret(seed: u64) -> String {
    let mut x = seed;
    (0..4)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// `nodes add NAME --secret-file` on the aggregator's config, as a config manager does.
pub(crate) fn add_node(bin: &Path, dir: &Path, cfg: &Path, name: &str, secret: &str) {
    let f = dir.join("node.secret");
    std::fs::write(&f, secret).unwrap();
    let st = Command::new(bin)
        .env_clear()
        .current_dir(dir)
        .args(["--config", cfg.to_str().unwrap(), "nodes", "add", name])
        .arg("--secret-file")
        .arg(&f)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "nodes add {name}");
}

/// Add `n` nodes; their basic-auth values.
pub(crate) fn add_nodes(bin: &Path, dir: &Path, cfg: &Path, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let name = format!("n{i}");
            let secret = node_secret(0xfeed_0000_u64 + i as u64);
            add_node(bin, dir, cfg, &name, &secret);
            base64(format!("{name}:{secret}").as_bytes())
        })
        .collect()
}

pub(crate) fn count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

pub(crate) const COMPONENTS: &str = "[[component]]\nname = \"backend\"\nservices = [\"backend\"]\n[[component]]\nname = \"payments\"\nservices = [\"payments-api\"]\n";

/// The ingest load: `--ingest NODES [--docs-per-minute N] [--window S] [--burst N]
/// [--partition S] [--announce-poll S]`.
#[derive(Clone, Copy)]
pub struct Load {
    pub nodes: usize,
    pub per_minute: usize,
    /// Seconds of steady load.
    pub window: u64,
    /// Events in the burst.
    pub burst: usize,
    /// The period nodes announce, when it should differ from how often they report
    /// (shorter: nodes go stale and come back all through the run).
    pub announce_poll: Option<u64>,
    /// Seconds of silence before the burst (long enough, every node is stale when it heals).
    pub partition: Option<u64>,
    /// Unauthenticated 1 MiB requests sent at the end, while a genuine node reports.
    pub flood: Option<usize>,
}

pub fn ingest(bin: &Path, dir: &Path, load: &Load) {
    let Load {
        nodes,
        per_minute,
        window,
        burst,
        announce_poll,
        partition,
        flood,
    } = *load;
    let port = free_port();
    let cfg = dir.join("agg.toml");
    std::fs::write(
        &cfg,
        format!("spool = \"agg.db\"\n[backend]\nkind = \"html\"\ndir = \"agg-www\"\n{COMPONENTS}[serve]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let db = dir.join("agg.db");
    println!(
        "\naggregator ingest: {nodes} nodes (half Monit documents, half relayed snapshots), a new connection per request"
    );
    let auths = add_nodes(bin, dir, &cfg, nodes);
    let s = serve(bin, dir, &cfg, port);
    let pid = s.child.id();
    // Steady: `per_minute` submissions a minute, spread evenly over the window. As in a fleet,
    // a node mostly repeats itself: its state changes one submission in 50.
    let total = per_minute * window as usize / 60;
    // Each node reports every `poll` seconds and says so (Monit's <poll>, the relay's period),
    // so none goes stale while it keeps to it.
    let every = (nodes as u64 * 60 / per_minute as u64).max(1);
    let poll = announce_poll.unwrap_or(every);
    println!("  each node every {every} s, announcing a period of {poll} s");
    let jobs = steady_jobs(&auths, total, window, poll);
    let (cpu0, _) = cpu_and_peak(pid);
    let t = Instant::now();
    let (lat, failed) = drive(&[port], 32, jobs);
    let took = t.elapsed();
    let (cpu1, _) = cpu_and_peak(pid);
    let (user, system) = (
        (cpu1.0 - cpu0.0) / took.as_secs_f64(),
        (cpu1.1 - cpu0.1) / took.as_secs_f64(),
    );
    let core = user + system;
    println!(
        "  steady: {} submissions in {:.1} s ({:.0}/min), {failed} refused; ack p50 {} ms, p99 {} ms",
        lat.len(),
        took.as_secs_f64(),
        lat.len() as f64 * 60.0 / took.as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    println!(
        "  steady: aggregator CPU {:.1}% of one core ({:.1}% user, {:.1}% system) at {per_minute} submissions/min (target: 10,000 documents/min under 10%)",
        core * 100.0,
        user * 100.0,
        system * 100.0
    );
    // A partition: the nodes fall silent long enough to go stale, then all come back at once.
    if let Some(secs) = partition {
        std::thread::sleep(Duration::from_secs(secs));
        println!(
            "  partition: nodes silent {secs} s; stale when it heals: {}",
            count(
                &db,
                "SELECT count(*) FROM nodes WHERE stale_since IS NOT NULL"
            )
        );
    }
    // Burst: every node at once, 50 events each (a partition heals), 10 reports a request.
    let per_node = burst / nodes;
    let before = count(&db, "SELECT count(*) FROM events WHERE origin = 'relay'");
    let jobs = burst_jobs(&auths, per_node, poll);
    let requests = nodes * (per_node / 10);
    let (cpu0, _) = cpu_and_peak(pid);
    let t = Instant::now();
    let (lat, failed) = drive(&[port], 64, jobs);
    let took = t.elapsed();
    let (cpu1, peak) = cpu_and_peak(pid);
    let recorded = count(&db, "SELECT count(*) FROM events WHERE origin = 'relay'") - before;
    let stale_after = count(
        &db,
        "SELECT count(*) FROM nodes WHERE stale_since IS NOT NULL",
    );
    println!(
        "  burst: {} events in {requests} requests from {nodes} nodes at once: acknowledged in {:.2} s ({:.0} events/s), {failed} refused, {} recorded (lost {})",
        per_node / 10 * 10 * nodes,
        took.as_secs_f64(),
        recorded as f64 / took.as_secs_f64(),
        recorded,
        (per_node / 10 * 10 * nodes) as i64 - recorded
    );
    println!(
        "  burst: ack p50 {} ms, p99 {} ms; aggregator CPU {:.2} s; peak RSS {:.1} MB; stale after it {stale_after}",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        (cpu1.0 + cpu1.1) - (cpu0.0 + cpu0.1),
        peak as f64 / 1024.0
    );
    if let Some(n) = flood {
        super::flood::flood_run(port, pid, &auths[1], n, poll);
    }
    drop(s);
    let base = super::limit::baseline(&db, requests, 10);
    println!(
        "  physical limit, same run: the same {} rows committed to the same spool, one transaction per request, no HTTP: {:.2} s; burst ratio {:.2}x",
        requests * 10,
        base.as_secs_f64(),
        took.as_secs_f64() / base.as_secs_f64()
    );
}
