//! `--takeover-serve N --bin BIN [--lease-ms MS]`: the writer's takeover with `serve` itself:
//! two instances of the real binary on one PostgreSQL (a cluster of the bench's own), N runs
//! of kill -9 on the writer and N of SIGSTOP past its lease, each timed from the signal
//! until the other instance says it writes the page ("instance X writes the page now").
//! After each run the killed instance is started again, or the frozen one woken, and the
//! bench waits until it says it follows. The figures are against issue 23's goal: the lease
//! plus one renewal (a fifth of the lease).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statusrelay_testkit::monit::free_port;
use statusrelay_testkit::postgres::Postgres;

struct Instance {
    name: &'static str,
    cfg: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    fn start(&mut self, bin: &Path, dir: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(bin)
                .env_clear()
                .current_dir(dir)
                .args(["--config", self.cfg.to_str().unwrap(), "serve"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    /// How many times its log says `what`.
    fn said(&self, what: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(what)
            .count()
    }

    /// Does it write now: its last word on the election is that it writes?
    fn is_writer(&self) -> bool {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        match (log.rfind(&self.writes()), log.rfind(&self.follows())) {
            (Some(w), Some(f)) => w > f,
            (Some(_), None) => true,
            _ => false,
        }
    }

    fn writes(&self) -> String {
        format!("instance {} writes the page now", self.name)
    }

    fn follows(&self) -> String {
        format!("{} takes reports and follows", self.name)
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let _ = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait until `cond`, at most `deadline` (else panic, saying `what` and the logs); how
/// long it took.
fn until(
    deadline: Duration,
    what: &str,
    logs: &[&Path],
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() >= deadline {
            let logs: Vec<String> = logs
                .iter()
                .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                .collect();
            panic!("{what}: not within {deadline:?}\n{}", logs.join("\n---\n"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

pub fn run(bin: &Path, dir: &Path, runs: usize, lease: Duration) {
    let pg = Postgres::start("bench-takeover-serve")
        .unwrap_or_else(|why| panic!("--takeover-serve needs a PostgreSQL server: {why}"));
    let mut instances: Vec<Instance> = ["a", "b"]
        .iter()
        .map(|name| {
            let cfg = dir.join(format!("{name}.toml"));
            std::fs::write(
                &cfg,
                format!(
                    "spool = \"{name}.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n[serve]\nlisten = \"127.0.0.1:{}\"\n[store]\nurl = \"{} sslmode=disable\"\ninstance = \"{name}\"\nlease = \"{}ms\"\n",
                    free_port(),
                    pg.url(),
                    lease.as_millis()
                ),
            )
            .unwrap();
            Instance {
                name,
                cfg,
                log: dir.join(format!("{name}.log")),
                child: None,
            }
        })
        .collect();
    for i in instances.iter_mut() {
        i.start(bin, dir);
    }
    let deadline = lease * 4 + Duration::from_secs(10);
    let logs: Vec<PathBuf> = instances.iter().map(|i| i.log.clone()).collect();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    until(deadline, "an instance takes the lease", &logs, || {
        instances.iter().any(|i| i.said(&i.writes()) > 0)
    });
    let bound = lease + lease / 5;
    println!(
        "takeover with serve: two instances, lease {} ms, renewal every {} ms, goal: under {} ms (lease + renewal)",
        lease.as_millis(),
        (lease / 5).as_millis(),
        bound.as_millis()
    );
    for (sig, what) in [("KILL", "kill -9"), ("STOP", "SIGSTOP past the lease")] {
        let mut took = Vec::with_capacity(runs);
        for _ in 0..runs {
            // The writer: the instance whose last word on the election is that it writes.
            // (Counting its lines was wrong: a restarted instance's log holds an old run's.)
            let w = (0..2)
                .find(|&k| instances[k].is_writer())
                .expect("an instance writes");
            let o = 1 - w;
            let before = instances[o].said(&instances[o].writes());
            instances[w].signal(sig);
            took.push(until(deadline, "the other takes over", &logs, || {
                instances[o].said(&instances[o].writes()) > before
            }));
            // Back as a follower, for the next run.
            let follows = instances[w].said(&instances[w].follows());
            if sig == "KILL" {
                if let Some(mut c) = instances[w].child.take() {
                    let _ = c.wait();
                }
                instances[w].start(bin, dir);
            } else {
                instances[w].signal("CONT");
            }
            until(deadline, "the old writer follows", &logs, || {
                instances[w].said(&instances[w].follows()) > follows
            });
        }
        took.sort();
        let (median, worst) = (took[took.len() / 2], took[took.len() - 1]);
        println!(
            "  {what}, {runs} runs: median {:.0} ms, worst {:.0} ms; worst / goal {:.2}x",
            median.as_secs_f64() * 1000.0,
            worst.as_secs_f64() * 1000.0,
            worst.as_secs_f64() / bound.as_secs_f64()
        );
    }
}
