//! Helpers shared by the integration tests.

use std::time::Duration;

pub use statusrelay_testkit::sandbox::{Run, Sandbox, can_run, is_root, signal, wait_until};
pub use statusrelay_testkit::{FakeCachet, Fault};

pub const TOKEN: &str = "t0ken-for-tests-only";
pub const BIN: &str = env!("CARGO_BIN_EXE_statusrelay");

/// A sandbox whose config points at the static page backend.
pub fn html_sandbox(name: &str, components: &str) -> Sandbox {
    let sb = Sandbox::new(BIN, name);
    sb.write(
        "config.toml",
        &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{components}"),
    );
    sb
}

/// A sandbox whose config points at `fake`, with fast retries so tests stay short.
pub fn cachet_sandbox(name: &str, fake: &FakeCachet, components: &str) -> Sandbox {
    let sb = Sandbox::new(BIN, name);
    sb.write("token", &format!("{TOKEN}\n"));
    sb.write(
        "config.toml",
        &format!(
            "spool = \"spool.db\"\n[backend]\nkind = \"cachet\"\nurl = \"{}\"\ntoken_file = \"token\"\ntimeout = \"2s\"\n[delivery]\nbackoff_base = \"200ms\"\nbackoff_cap = \"1s\"\n{components}",
            fake.url()
        ),
    );
    sb
}

pub const DB: &str = "[[component]]\nname = \"db cluster\"\nservices = [\"mysql\", \"mysql-*\"]\n";

pub fn fail(service: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONIT_SERVICE", service.to_string()),
        ("MONIT_EVENT", "Does not exist".into()),
        ("MONIT_DESCRIPTION", "process is not running".into()),
        ("MONIT_HOST", "node1".into()),
    ]
}

pub fn ok(service: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONIT_SERVICE", service.to_string()),
        ("MONIT_EVENT", "Exists".into()),
        ("MONIT_DESCRIPTION", "process is running with pid 42".into()),
        ("MONIT_HOST", "node1".into()),
    ]
}

/// One Monit event of `service` on node1, described by the event name.
pub fn event(service: &str, ev: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONIT_SERVICE", service.into()),
        ("MONIT_EVENT", ev.into()),
        ("MONIT_DESCRIPTION", format!("{ev} (test)")),
        ("MONIT_HOST", "node1".into()),
    ]
}

/// Run `monit` with owned vars.
pub fn monit(sb: &Sandbox, vars: &[(&str, String)]) -> Run {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.monit(&v, &[])
}

/// Open the spool for assertions (a second connection, as an operator's sqlite3 would).
pub fn db(sb: &Sandbox) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(sb.spool_path()).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

pub fn count(sb: &Sandbox, sql: &str) -> i64 {
    db(sb).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The state the spool wants `component` to show ("" before any).
pub fn desired_state(sb: &Sandbox, component: &str) -> String {
    db(sb)
        .query_row(
            "SELECT state FROM desired WHERE component = ?1",
            [component],
            |r| r.get::<_, String>(0),
        )
        .unwrap_or_default()
}

pub fn assert_code(r: &Run, code: i32) {
    assert_eq!(
        r.code, code,
        "exit code; stdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
}

/// Run every exec call of the real Monit corpus (tests/data, see its README) through
/// `statusrelay monit`, asserting each exits 0. Returns how many were run.
pub fn replay_corpus(sb: &Sandbox) -> usize {
    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/monit-exec-events.jsonl"
    ))
    .expect("tests/data/monit-exec-events.jsonl");
    let mut n = 0;
    for line in corpus.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        // One record is the recorder's own end-of-run marker, not an exec call.
        let Some(env) = rec.get("monit_env").and_then(serde_json::Value::as_object) else {
            continue;
        };
        let vars: Vec<(&str, String)> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_string()))
            .collect();
        assert_code(&monit(sb, &vars), 0);
        n += 1;
    }
    n
}

/// A running `statusrelay flush` whose stderr is read as it comes, so a test can wait for a
/// log line (an observable event) instead of sleeping.
pub struct LiveFlusher {
    pub child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LiveFlusher {
    pub fn start(sb: &Sandbox) -> LiveFlusher {
        LiveFlusher::spawn(sb.cmd(&["flush", "--log-level", "debug"]))
    }

    pub fn spawn(mut cmd: std::process::Command) -> LiveFlusher {
        use std::io::Read;
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn flush");
        let mut err = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let l = log.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                l.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        LiveFlusher {
            child,
            log,
            reader: Some(reader),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `text`; panics with the log after `deadline`.
    pub fn wait_log(&self, text: &str, deadline: Duration) {
        assert!(
            wait_until(deadline, || self.log().contains(text)),
            "flusher never logged {text:?}; log:\n{}",
            self.log()
        );
    }

    /// A line of /proc/PID/status in KiB (VmRSS: resident now, VmHWM: the peak).
    pub fn mem_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, then the exit code and how long it took to exit.
    pub fn stop(mut self) -> (i32, Duration, String) {
        let t = std::time::Instant::now();
        signal(&self.child, "TERM");
        let status = self.child.wait().unwrap();
        let took = t.elapsed();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status.code().unwrap_or(-1), took, self.log())
    }
}

impl Drop for LiveFlusher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` contains `needle`; the failure shows the whole text.
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}
