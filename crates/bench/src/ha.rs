//! `--ingest-ha NODES [--docs-per-minute N] [--window S] [--burst N]`: the ingest load
//! (`fleet.rs`) into two `serve` instances on one PostgreSQL (a cluster of the bench's own,
//! on loopback), each node reporting to one of them, against one instance on its SQLite
//! spool, in one run. Figures: CPU of the instances and of the database's processes (a share
//! of one core), ack p50 and p99, the burst's time, and nothing lost (the events recorded,
//! counted in each store).

use std::path::Path;
use std::time::{Duration, Instant};

use statusrelay_testkit::monit::free_port;
use statusrelay_testkit::postgres::Postgres;

use super::fleet::{COMPONENTS, Serve, add_nodes, count, cpu_and_peak, serve};
use super::jobs::{burst_jobs, drive, steady_jobs};
use super::{ms, pct};

/// What one setup measured.
struct Figures {
    steady_p50: Duration,
    steady_p99: Duration,
    steady_refused: usize,
    /// Instances' CPU, and the database's, as a share of one core during the steady load.
    steady_cpu: f64,
    steady_db_cpu: f64,
    burst: Duration,
    burst_p99: Duration,
    burst_refused: usize,
    burst_cpu: f64,
    burst_db_cpu: f64,
    lost: i64,
}

/// CPU seconds (user + system) of these processes.
fn cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|p| {
            let ((u, s), _) = cpu_and_peak(*p);
            u + s
        })
        .sum()
}

/// The database server's processes: the postmaster (its pid file's first line) and its
/// children (a backend per connection, the writers).
fn db_pids(pg: &Postgres) -> Vec<u32> {
    let pid_file = pg.path().join("data").join("postmaster.pid");
    let Some(main) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
    else {
        return Vec::new();
    };
    let mut pids = vec![main];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(main) {
            pids.push(pid);
        }
    }
    pids
}

/// The steady load then the burst against `ports`, measuring `pids` (and `db` for the
/// database's processes); `recorded` counts the relayed events in the store.
fn measure(
    ports: &[u16],
    pids: &[u32],
    db: &dyn Fn() -> Vec<u32>,
    auths: &[String],
    load: &super::fleet::Load,
    recorded: &mut dyn FnMut() -> i64,
) -> Figures {
    let nodes = auths.len();
    let total = load.per_minute * load.window as usize / 60;
    let poll = (nodes as u64 * 60 / load.per_minute as u64).max(1);
    let (c0, d0) = (cpu(pids), cpu(&db()));
    let t = Instant::now();
    let (lat, steady_refused) = drive(ports, 32, steady_jobs(auths, total, load.window, poll));
    let took = t.elapsed().as_secs_f64();
    let (c1, d1) = (cpu(pids), cpu(&db()));
    let per_node = load.burst / nodes;
    let before = recorded();
    let (b0, e0) = (cpu(pids), cpu(&db()));
    let t = Instant::now();
    let (blat, burst_refused) = drive(ports, 64, burst_jobs(auths, per_node, poll));
    let burst = t.elapsed();
    let (b1, e1) = (cpu(pids), cpu(&db()));
    let sent = (per_node / 10 * 10 * nodes) as i64;
    Figures {
        steady_p50: pct(&lat, 0.5),
        steady_p99: pct(&lat, 0.99),
        steady_refused,
        steady_cpu: (c1 - c0) / took,
        steady_db_cpu: (d1 - d0) / took,
        burst,
        burst_p99: pct(&blat, 0.99),
        burst_refused,
        burst_cpu: b1 - b0,
        burst_db_cpu: e1 - e0,
        lost: sent - (recorded() - before),
    }
}

fn say(what: &str, f: &Figures) {
    println!(
        "  {what}: steady ack p50 {} ms, p99 {} ms, {} refused; CPU {:.1}% of a core (database {:.1}%)",
        ms(f.steady_p50),
        ms(f.steady_p99),
        f.steady_refused,
        f.steady_cpu * 100.0,
        f.steady_db_cpu * 100.0
    );
    println!(
        "  {what}: burst acknowledged in {:.2} s, p99 {} ms, {} refused; CPU {:.2} s (database {:.2} s); lost {}",
        f.burst.as_secs_f64(),
        ms(f.burst_p99),
        f.burst_refused,
        f.burst_cpu,
        f.burst_db_cpu,
        f.lost
    );
}

pub fn ingest(bin: &Path, dir: &Path, load: &super::fleet::Load) {
    let pg = Postgres::start("bench-ha")
        .unwrap_or_else(|why| panic!("--ingest-ha needs a PostgreSQL server: {why}"));
    // With --pg-statements, the database's time per statement is printed at the end
    // (pg_stat_statements, from Debian's postgresql package).
    let statements = std::env::args().any(|a| a == "--pg-statements");
    if statements {
        pg.configure("shared_preload_libraries = 'pg_stat_statements'")
            .unwrap();
        pg.connect()
            .batch_execute("CREATE EXTENSION pg_stat_statements")
            .unwrap();
    }
    println!(
        "\ningest into two instances on one PostgreSQL, against one on SQLite, same run: {} nodes, {}/min for {} s, a burst of {} events",
        load.nodes, load.per_minute, load.window, load.burst
    );
    // One instance on its SQLite spool: the baseline.
    let port = free_port();
    let cfg = dir.join("sqlite.toml");
    std::fs::write(
        &cfg,
        format!("spool = \"sqlite.db\"\n[backend]\nkind = \"html\"\ndir = \"www-sqlite\"\n{COMPONENTS}[serve]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let auths = add_nodes(bin, dir, &cfg, load.nodes);
    let db = dir.join("sqlite.db");
    let s = serve(bin, dir, &cfg, port);
    let sqlite = measure(&[port], &[s.pid()], &Vec::new, &auths, load, &mut || {
        count(&db, "SELECT count(*) FROM events WHERE origin = 'relay'")
    });
    drop(s);
    say("SQLite, one instance", &sqlite);
    // Two instances on PostgreSQL, each node reporting to one of them.
    let ports = [free_port(), free_port()];
    let cfgs: Vec<_> = ["a", "b"]
        .iter()
        .zip(ports)
        .map(|(name, port)| {
            let cfg = dir.join(format!("pg-{name}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "spool = \"pg-{name}.db\"\n[backend]\nkind = \"html\"\ndir = \"www-pg\"\n{COMPONENTS}[serve]\nlisten = \"127.0.0.1:{port}\"\n[store]\nurl = \"{} sslmode=disable\"\ninstance = \"{name}\"\n",
                    pg.url()
                ),
            )
            .unwrap();
            cfg
        })
        .collect();
    let auths = add_nodes(bin, dir, &cfgs[0], load.nodes);
    let instances: Vec<Serve> = cfgs
        .iter()
        .zip(ports)
        .map(|(cfg, port)| serve(bin, dir, cfg, port))
        .collect();
    let pids: Vec<u32> = instances.iter().map(Serve::pid).collect();
    let mut client = pg.connect();
    let postgres = measure(&ports, &pids, &|| db_pids(&pg), &auths, load, &mut || {
        client
            .query_one("SELECT count(*) FROM events WHERE origin = 'relay'", &[])
            .map(|r| r.get(0))
            .unwrap_or(-1)
    });
    drop(instances);
    say("PostgreSQL, two instances", &postgres);
    if statements {
        println!("  the database's time by statement (pg_stat_statements), the ten largest:");
        let mut c = pg.connect();
        for r in c
            .query(
                "SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 100)
                 FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10",
                &[],
            )
            .unwrap()
        {
            let (calls, ms, q): (i64, f64, String) = (r.get(0), r.get(1), r.get(2));
            println!("    {ms:>9.0} ms {calls:>8} calls  {q}");
        }
    }
    println!(
        "  ratios (PostgreSQL / SQLite): steady ack p99 {:.2}x, burst time {:.2}x, burst CPU with the database {:.2}x",
        postgres.steady_p99.as_secs_f64() / sqlite.steady_p99.as_secs_f64().max(1e-6),
        postgres.burst.as_secs_f64() / sqlite.burst.as_secs_f64(),
        (postgres.burst_cpu + postgres.burst_db_cpu) / sqlite.burst_cpu.max(1e-6)
    );
}
