//! A temp dir per test and the real binary run in it with the host's environment cleared.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A test's private directory and the binary under test.
pub struct Sandbox {
    pub dir: PathBuf,
    pub bin: PathBuf,
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    pub fn new(bin: &str, name: &str) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("statusrelay-it-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create sandbox");
        Sandbox {
            dir,
            bin: PathBuf::from(bin),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).expect("write sandbox file");
        p
    }

    /// A command for the binary: cleared environment, cwd in the sandbox, `--config config.toml`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&self.dir)
            .arg("--config")
            .arg(self.path("config.toml"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).output().expect("run statusrelay").into()
    }

    /// Run `statusrelay monit` with these MONIT_* variables.
    pub fn monit(&self, vars: &[(&str, &str)], args: &[&str]) -> Run {
        let mut all = vec!["monit"];
        all.extend_from_slice(args);
        let mut c = self.cmd(&all);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("run statusrelay monit").into()
    }

    /// Run `statusrelay monit` with raw OS strings (for invalid UTF-8).
    pub fn monit_os(&self, vars: &BTreeMap<&str, OsString>) -> Run {
        let mut c = self.cmd(&["monit"]);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.output().expect("run statusrelay monit").into()
    }

    /// Start a long-running `statusrelay flush`.
    pub fn spawn_flush(&self) -> Child {
        self.cmd(&["flush", "--log-level", "debug"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flush")
    }

    /// Open the spool read-only-ish for assertions.
    pub fn spool_path(&self) -> PathBuf {
        self.path("spool.db")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Poll `pred` every 20 ms until it holds or `deadline` passes.
pub fn wait_until(deadline: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pred()
}

/// Send SIGTERM (or SIGKILL) to a child.
pub fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

/// Is the test running as root (CI is)? Tests that mount or make namespaces need it.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Can this test go on? When `missing` names what it lacks (root, a tool), it is skipped with a
/// message, except under `CI=true`, where a test that cannot run fails: CI has root and
/// installs its tools, so a skip there would be a pass that tested nothing.
pub fn can_run(missing: Option<&str>) -> bool {
    let Some(what) = missing else {
        return true;
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and this test cannot run: {what}"
    );
    eprintln!("SKIPPED: {what}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: &str = "STATUSRELAY_CAN_RUN_PROBE";

    /// Every test that needs a tool or a privilege (PostgreSQL through `Postgres::for_test`,
    /// namespaces, Monit) asks `can_run`: without it the test is skipped with a message, and
    /// under `CI=true` it fails. Run in a child (this test binary again), with and without CI.
    #[test]
    fn a_test_that_cannot_run_is_skipped_with_a_message_and_fails_under_ci() {
        if std::env::var_os(PROBE).is_some() {
            assert!(!can_run(Some("no such tool (probe)")));
            return;
        }
        assert!(can_run(None), "nothing missing: it runs");
        let child = |ci: bool| {
            let mut c = Command::new(std::env::current_exe().unwrap());
            c.args([
                "--exact",
                "sandbox::tests::a_test_that_cannot_run_is_skipped_with_a_message_and_fails_under_ci",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(PROBE, "1")
            .env_remove("CI");
            if ci {
                c.env("CI", "true");
            }
            c.output().unwrap()
        };
        let skipped = child(false);
        assert!(skipped.status.success(), "{skipped:?}");
        assert!(
            String::from_utf8_lossy(&skipped.stderr).contains("SKIPPED: no such tool (probe)"),
            "{skipped:?}"
        );
        let under_ci = child(true);
        assert!(!under_ci.status.success(), "under CI=true a skip fails");
        let said = String::from_utf8_lossy(&under_ci.stdout).to_string()
            + &String::from_utf8_lossy(&under_ci.stderr);
        assert!(
            said.contains("CI=true and this test cannot run: no such tool (probe)"),
            "{said}"
        );
    }
}
