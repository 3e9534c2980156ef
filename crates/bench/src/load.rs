//! The event storm and the flusher benchmarks.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use statusrelay_core::State;
use statusrelay_core::time::SystemClock;
use statusrelay_spool::{Apply, NewEvent, Spool, TestChange};
use statusrelay_testkit::FakeCachet;

/// `workers` concurrent handler processes, `total` events in all: lost events, failed exits, rate.
pub fn storm(bin: &Path, dir: &Path, workers: usize, total: usize) {
    let cfg = dir.join("storm.toml");
    std::fs::write(
        &cfg,
        "spool = \"storm.db\"\n[backend]\nkind = \"html\"\ndir = \"storm-www\"\n",
    )
    .unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (next, failed, bin, cfg) =
                (next.clone(), failed.clone(), bin.to_path_buf(), cfg.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        return;
                    }
                    let ev = if (i / 500) % 2 == 0 {
                        "Does not exist"
                    } else {
                        "Exists"
                    };
                    let st = Command::new(&bin)
                        .env_clear()
                        .env("MONIT_SERVICE", format!("svc-{}", i % 500))
                        .env("MONIT_EVENT", ev)
                        .env("MONIT_HOST", "node1")
                        .arg("--config")
                        .arg(&cfg)
                        .arg("monit")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    if !st.is_ok_and(|s| s.success()) {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let took = t.elapsed();
    let conn = rusqlite::Connection::open(dir.join("storm.db")).unwrap();
    let recorded: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    println!("\nevent storm: {workers} concurrent handlers, {total} events");
    println!(
        "  recorded {recorded}, lost {}, failed exits {}",
        total as i64 - recorded,
        failed.load(Ordering::SeqCst)
    );
    println!(
        "  {:.2} s, {:.0} events/s",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
}

/// Run a command as our only child and report its peak RSS (KiB) from getrusage.
pub fn peak_rss_of(args: &[String]) -> ! {
    let st = Command::new(&args[0])
        .args(&args[1..])
        .status()
        .expect("spawn");
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    println!("{}", ru.ru_maxrss);
    std::process::exit(st.code().unwrap_or(1));
}

/// `events` pending events across `components` components, drained by `statusrelay flush --once`
/// against the loopback fake Cachet.
pub fn flusher(bin: &Path, me: &Path, dir: &Path, components: usize, events: usize) {
    let names: Vec<String> = (1..=components).map(|i| format!("c{i}")).collect();
    let page: Vec<(u64, &str)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u64 + 1, n.as_str()))
        .collect();
    let fake = FakeCachet::start("bench-token", &page);
    std::fs::write(dir.join("token"), "bench-token\n").unwrap();
    let mut cfg = format!(
        "spool = \"flush.db\"\n[backend]\nkind = \"cachet\"\nurl = \"{}\"\ntoken_file = \"token\"\nversion = \"2.4\"\nschedules = \"off\"\n",
        fake.url()
    );
    for (i, n) in names.iter().enumerate() {
        cfg.push_str(&format!(
            "[[component]]\nname = \"{n}\"\nid = {}\nservices = [\"svc-{}\"]\n",
            i + 1,
            i
        ));
    }
    let cfg_path = dir.join("flush.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    // Queue the events through the spool library (what 10,000 handler runs would leave).
    let mut spool = Spool::open(&dir.join("flush.db"), Arc::new(SystemClock)).unwrap();
    for i in 0..events {
        let comp = &names[i % components];
        let round = i / components;
        let change = if round.is_multiple_of(2) {
            TestChange::Fail(State::MajorOutage)
        } else {
            TestChange::Recover {
                one_shot_families: vec![],
            }
        };
        let ev = NewEvent {
            service: Some(format!("svc-{}", i % components)),
            ..NewEvent::new(statusrelay_core::EventSource::Monit {
                monit: statusrelay_core::RawEvent::default(),
                component: None,
            })
        };
        let apply = Apply {
            rule: statusrelay_core::nodes::NodeRule::default(),
            component: comp.clone(),
            host: "node1".into(),
            service: format!("svc-{}", i % components),
            test: "existence".into(),
            change,
            description: None,
        };
        spool.record(&ev, &[apply], None).unwrap();
    }
    drop(spool);
    let before = fake.arrivals();
    let t = Instant::now();
    let out = Command::new(me)
        .args([
            "peak-rss",
            bin.to_str().unwrap(),
            "--config",
            cfg_path.to_str().unwrap(),
            "--log-level",
            "warn",
            "flush",
            "--once",
        ])
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "flush failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rss_kib: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let calls = fake.arrivals() - before;
    let puts = fake.puts().len();
    let gets = fake.seen().iter().filter(|s| s.method == "GET").count();
    println!(
        "\nflusher: {events} pending events across {components} components, loopback fake Cachet"
    );
    println!(
        "  API calls {calls} ({puts} status PUTs, {gets} GETs); at most one PUT per component: {}",
        puts <= components
    );
    println!(
        "  drained in {:.2} s, {:.0} requests/s",
        took.as_secs_f64(),
        calls as f64 / took.as_secs_f64().max(1e-9)
    );
    println!(
        "  peak RSS {:.1} MB (target 16 MB)",
        rss_kib as f64 / 1024.0
    );
}
