//! `statusrelay-bench`: handler latency, spawn to exit, against a baseline measured in the same
//! run: a minimal program (this binary, mode `baseline-commit`) that opens **the same spool
//! file** with the same durability and WAL handling (WAL, synchronous=FULL, checkpoint on close)
//! and commits one row into its `events` table, which is the physical limit of "record durably
//! and exit". Built for `x86_64-unknown-linux-musl`, this binary is static like the handler, as
//! the baseline should be; a dynamic build says so. A second baseline row commits one row into a
//! fresh one-table file, to show what the spool's schema itself costs, and a third gives the
//! baseline the handler's fixed SQLite heap, to show how much of the handler's lead over its own
//! overhead is that tuning. `/bin/true` shows the cost of spawning a process at all.
//!
//! Also, with `--storm N`, N events from 64 concurrent handler processes (lost events, failed
//! exits, events/s), and with `--flusher N`, N pending events across 1,000 components drained
//! by `flush --once` against a loopback fake Cachet (API calls, drain time, requests/s, peak RSS).
//!
//! With `--prune N` alone, how long retention holds the write lock pruning N expired events,
//! batched, against deleting them in one transaction.
//!
//! With `--ingest NODES` and/or `--e2e N` (and no handler rows), the aggregator: see `fleet`.
//!
//! Usage: statusrelay-bench [--runs N] [--sizes 0,100000] [--bin target/release/statusrelay]
//!        [--storm 20000] [--flusher 10000]
//!        statusrelay-bench --prune 1500000
//!        statusrelay-bench --takeover 20 [--lease-ms 2000]
//!        statusrelay-bench --bin BIN --ingest 1000 [--docs-per-minute 10000] [--window 60] [--flood N]
//!                          [--burst 50000] [--e2e 40]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Open `db` as the handler opens the spool and commit one row: into the spool's `events` table
/// (`into_spool`, the same file the handler writes), or into a one-table file of its own.
fn baseline_commit(db: &Path, into_spool: bool) {
    let c = rusqlite::Connection::open(db).expect("open");
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    let _: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    c.pragma_update(None, "synchronous", "FULL").unwrap();
    let sql = if into_spool {
        "BEGIN IMMEDIATE; INSERT INTO events (received_at, origin, raw, status) VALUES (0, 'bench', '{}', 'info'); COMMIT;"
    } else {
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT); BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ('x'); COMMIT;"
    };
    c.execute_batch(sql).unwrap();
}

fn time_runs(runs: usize, mut make: impl FnMut(usize) -> Command) -> Vec<Duration> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let mut c = make(i);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let o = c.output().expect("spawn");
        out.push(t.elapsed());
        assert!(
            o.status.success(),
            "run {i} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    out.sort();
    out
}

/// Time two commands alternately (a, b, a, b...), so drift on a shared machine hits both alike.
fn time_pairs(
    runs: usize,
    mut a: impl FnMut(usize) -> Command,
    mut b: impl FnMut(usize) -> Command,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut va, mut vb) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        va.extend(time_runs(1, |_| a(i)));
        vb.extend(time_runs(1, |_| b(i)));
    }
    va.sort();
    vb.sort();
    (va, vb)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Grow the spool to `n` events in one transaction (the schema comes from a first handler run).
fn prefill(db: &Path, n: usize) {
    let mut c = rusqlite::Connection::open(db).unwrap();
    let have: i64 = c
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut st = tx
            .prepare("INSERT INTO events (received_at, origin, host, service, event, description, raw, test, effect, status) VALUES (?1, 'monit', 'node1', ?2, 'Resource limit matched', 'cpu usage of 56.6% matches resource limit [cpu usage > 40.0%]', '{}', 'resource:cpu usage', 'fail', 'applied')")
            .unwrap();
        for i in have as usize..n {
            st.execute(rusqlite::params![i as i64, format!("svc-{}", i % 500)])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

mod e2e;
mod fleet;
mod flood;
mod ha;
mod jobs;
mod limit;
mod load;
mod prune;
mod takeover;
mod takeover_serve;

/// One handler run, which creates the spool and its schema.
fn warm(bin: &Path, config: &Path) {
    let first = Command::new(bin)
        .env_clear()
        .arg("--config")
        .arg(config)
        .arg("monit")
        .env("MONIT_SERVICE", "warm")
        .env("MONIT_EVENT", "Exists")
        .output()
        .unwrap();
    assert!(first.status.success());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(mode @ ("baseline-commit" | "baseline-spool" | "baseline-spool-heap")) =
        args.get(1).map(String::as_str)
    {
        if mode == "baseline-spool-heap" {
            // For reference only: the baseline given the handler's SQLite heap too.
            let sqlite = statusrelay_spool::heap::for_one_event(0, None);
            assert!(
                matches!(sqlite, statusrelay_spool::heap::Allocator::Fixed(_)),
                "{sqlite}"
            );
        }
        baseline_commit(Path::new(&args[2]), mode != "baseline-commit");
        return;
    }
    if args.get(1).map(String::as_str) == Some("fake-cachet") {
        // The strict fake Cachet as a process of its own (the systemd test's page): prints
        // its URL, serves until its standard input closes.
        let token = args.get(2).cloned().unwrap_or_else(|| "fake-token".into());
        let fake = statusrelay_testkit::FakeCachet::start(&token, &[(1, "web")]);
        println!("{}", fake.url());
        let mut sink = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut sink);
        return;
    }
    if args.get(1).map(String::as_str) == Some("lease-instance") {
        // An aggregator instance's part in the election, for --takeover: NAME URL LEASE_MS.
        let ms: u64 = args[4].parse().expect("lease-instance NAME URL LEASE_MS");
        statusrelay_testkit::election::instance_loop(&args[2], &args[3], Duration::from_millis(ms));
    }
    if args.get(1).map(String::as_str) == Some("peak-rss") {
        load::peak_rss_of(&args[2..]);
    }
    let get = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let runs: usize = get("--runs")
        .map(|s| s.parse().expect("--runs N"))
        .unwrap_or(1000);
    let sizes: Vec<usize> = get("--sizes")
        .unwrap_or_else(|| "0,100000".into())
        .split(',')
        .map(|s| s.parse().expect("--sizes"))
        .collect();
    if let Some(n) = get("--takeover") {
        // On its own: a PostgreSQL cluster and instance processes, no statusrelay binary.
        let ms: u64 = get("--lease-ms").map_or(2_000, |v| v.parse().expect("--lease-ms MS"));
        takeover::run(n.parse().expect("--takeover N"), Duration::from_millis(ms));
        return;
    }
    if let Some(n) = get("--prune") {
        // On its own: it needs no binary and no handler runs.
        let dir = std::env::temp_dir().join(format!("statusrelay-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        prune::prune(&dir, n.parse().expect("--prune N"));
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let bin = PathBuf::from(get("--bin").unwrap_or_else(|| "target/release/statusrelay".into()));
    assert!(
        bin.exists(),
        "{} missing: cargo build --release first",
        bin.display()
    );
    let me = std::env::current_exe().unwrap();
    let dir = std::env::temp_dir().join(format!("statusrelay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        "spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n",
    )
    .unwrap();
    let spool = dir.join("spool.db");
    if let Some(n) = get("--takeover-serve") {
        let bin = bin.canonicalize().unwrap();
        let ms: u64 = get("--lease-ms").map_or(3_000, |v| v.parse().expect("--lease-ms MS"));
        takeover_serve::run(
            &bin,
            &dir,
            n.parse().expect("--takeover-serve N"),
            Duration::from_millis(ms),
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if get("--ingest").is_some() || get("--e2e").is_some() || get("--ingest-ha").is_some() {
        // The fleet's processes run in the bench's directory.
        let bin = bin.canonicalize().unwrap();
        println!("binary: {}", bin.display());
        if let Some(n) = get("--ingest") {
            let num = |flag: &str, default: usize| {
                get(flag).map_or(default, |v| v.parse().expect("a number"))
            };
            fleet::ingest(
                &bin,
                &dir,
                &fleet::Load {
                    nodes: n.parse().expect("--ingest NODES"),
                    per_minute: num("--docs-per-minute", 10_000),
                    window: num("--window", 60) as u64,
                    burst: num("--burst", 50_000),
                    announce_poll: get("--announce-poll")
                        .map(|v| v.parse().expect("--announce-poll S")),
                    partition: get("--partition").map(|v| v.parse().expect("--partition S")),
                    flood: get("--flood").map(|v| v.parse().expect("--flood N")),
                },
            );
        }
        if let Some(n) = get("--ingest-ha") {
            let num = |flag: &str, default: usize| {
                get(flag).map_or(default, |v| v.parse().expect("a number"))
            };
            ha::ingest(
                &bin,
                &dir,
                &fleet::Load {
                    nodes: n.parse().expect("--ingest-ha NODES"),
                    per_minute: num("--docs-per-minute", 10_000),
                    window: num("--window", 60) as u64,
                    burst: num("--burst", 50_000),
                    announce_poll: None,
                    partition: None,
                    flood: None,
                },
            );
        }
        if let Some(n) = get("--e2e") {
            let n: usize = n.parse().expect("--e2e N");
            e2e::end_to_end(&bin, &dir, n + n % 2);
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }

    let size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!(
        "runs per row: {runs}; binary: {} ({:.2} MB)",
        bin.display(),
        size as f64 / 1_000_000.0
    );
    println!(
        "baseline: {}",
        if cfg!(target_env = "musl") {
            "this bench binary, static (musl), as the handler"
        } else {
            "this bench binary, DYNAMIC: build it with --target x86_64-unknown-linux-musl for the static baseline the ratios are meant against"
        }
    );
    println!(
        "{:<44} {:>10} {:>10} {:>14}",
        "what", "median ms", "p99 ms", "median ratio"
    );
    warm(&bin, &config);
    let floor = time_runs(runs, |_| Command::new("/bin/true"));
    let baseline = |_: usize| {
        let mut c = Command::new(&me);
        c.arg("baseline-spool").arg(&spool);
        c
    };
    let base = time_runs(runs, baseline);
    let table_db = dir.join("baseline.db");
    let one_table = time_runs(runs, |_| {
        let mut c = Command::new(&me);
        c.arg("baseline-commit").arg(&table_db);
        c
    });
    let row = |name: &str, v: &[Duration]| {
        let ratio = pct(v, 0.5).as_secs_f64() / pct(&base, 0.5).as_secs_f64();
        println!(
            "{:<44} {:>10} {:>10} {:>13.2}x",
            name,
            ms(pct(v, 0.5)),
            ms(pct(v, 0.99)),
            ratio
        );
    };
    row("/bin/true (spawn floor)", &floor);
    row("baseline: open the spool, commit 1 row, exit", &base);
    row("  the same into a fresh one-table file", &one_table);
    // Interleaved with the plain baseline: the difference is small, drift on a shared machine is not.
    let (paired, with_heap) = time_pairs(runs, baseline, |_| {
        let mut c = Command::new(&me);
        c.arg("baseline-spool-heap").arg(&spool);
        c
    });
    println!(
        "{:<44} {:>10} {:>10} {:>13.2}x   (against the baseline at the same moments: {} ms)",
        "  the same with the handler's SQLite heap",
        ms(pct(&with_heap, 0.5)),
        ms(pct(&with_heap, 0.99)),
        pct(&with_heap, 0.5).as_secs_f64() / pct(&paired, 0.5).as_secs_f64(),
        ms(pct(&paired, 0.5)),
    );
    let version = time_runs(runs, |_| {
        let mut c = Command::new(&bin);
        c.arg("--version");
        c
    });
    row("statusrelay --version (start-up)", &version);
    // What people use today: curl PUTting the state straight to the page (here a loopback fake).
    if Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        let fake = statusrelay_testkit::FakeCachet::start("bench-token", &[(1, "db")]);
        let url = format!("{}/api/v1/components/1", fake.url());
        let curl = time_runs(runs, |i| {
            let mut c = Command::new("curl");
            c.args([
                "-s",
                "-o",
                "/dev/null",
                "-X",
                "PUT",
                "-H",
                "X-Cachet-Token: bench-token",
                "-H",
                "Accept: application/json",
                "-d",
            ])
            .arg(format!("status={}", if i % 2 == 0 { 4 } else { 1 }))
            .arg(&url);
            c
        });
        row("curl -XPUT to a loopback status page", &curl);
    }
    for &size in &sizes {
        prefill(&spool, size);
        let (paired_base, v) = time_pairs(runs, baseline, |i| {
            let mut c = Command::new(&bin);
            c.env_clear().arg("--config").arg(&config).arg("monit");
            // Each service alternates failure and recovery (i / 50 flips per round), so every run
            // changes a state and queues a delivery: the handler's most expensive path.
            let ev = if (i / 50) % 2 == 0 {
                "Does not exist"
            } else {
                "Exists"
            };
            c.env("MONIT_SERVICE", format!("svc-{}", i % 50))
                .env("MONIT_EVENT", ev)
                .env("MONIT_HOST", "node1")
                .env("MONIT_DESCRIPTION", "process is not running");
            c
        });
        let ratio = pct(&v, 0.5).as_secs_f64() / pct(&paired_base, 0.5).as_secs_f64();
        println!(
            "{:<44} {:>10} {:>10} {:>13.2}x",
            format!("statusrelay monit, spool of {size} events"),
            ms(pct(&v, 0.5)),
            ms(pct(&v, 0.99)),
            ratio
        );
        println!(
            "{:<44} {:>10} {:>10}   (interleaved with the row above; ratio is against this)",
            "  baseline, same moments",
            ms(pct(&paired_base, 0.5)),
            ms(pct(&paired_base, 0.99))
        );
    }
    if let Some(n) = get("--storm") {
        load::storm(&bin, &dir, 64, n.parse().expect("--storm N"));
    }
    if let Some(n) = get("--flusher") {
        load::flusher(&bin, &me, &dir, 1000, n.parse().expect("--flusher N"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
