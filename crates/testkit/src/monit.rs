//! A real Monit daemon per test: its own monitrc, id, state and pid files in the test's dir,
//! `set daemon 1`, httpd on a free 127.0.0.1 port with a password, run in the foreground (`-I`)
//! so the test owns the process and reaps it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const MONIT_USER: &str = "admin";
pub const MONIT_PASSWORD: &str = "lab-pw-1";

/// Is a monit binary installed? (`.ci/run` installs the Debian package.)
pub fn available() -> bool {
    Command::new("monit")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Write `<dir>/<name>.monitrc`: a 1-second cycle, its files beside it, then `body`; checked
/// with `monit -t` (panics with Monit's words if refused). Returns its path.
pub fn lab_rc(dir: &Path, name: &str, body: &str) -> PathBuf {
    let rc = dir.join(format!("{name}.monitrc"));
    let p = |f: &str| dir.join(format!("{name}.{f}")).display().to_string();
    let text = format!(
        "set daemon 1 with start delay 0\nset logfile {}\nset pidfile {}\nset idfile {}\nset statefile {}\n{body}\n",
        p("log"),
        p("pid"),
        p("id"),
        p("state")
    );
    if let Err(e) = write_rc_and_check(&rc, &text) {
        panic!("monit -t rejected the lab monitrc: {e}");
    }
    rc
}

/// Write a monitrc (mode 0600, as Monit demands) and run `monit -t` on it.
pub fn write_rc_and_check(rc: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(rc, text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(rc, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    let out = Command::new("monit")
        .arg("-c")
        .arg(rc)
        .arg("-t")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A free TCP port on loopback for a daemon or a test to bind later.
///
/// Ports come from 20000-31999, below Linux's ephemeral range (32768+): the fakes and every
/// client socket get ephemeral ports, so one of them can no longer take a port between this
/// check and Monit's bind (seen once as "Cannot bind: Address already in use"). A counter keeps
/// the tests of one process apart; the pid spreads concurrent test processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 1000) as u16 * 12;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (offset.wrapping_add(n)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running Monit daemon.
pub struct MonitLab {
    pub dir: PathBuf,
    pub rc: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl MonitLab {
    /// Write `<dir>/<name>.monitrc` with `checks` (and `system`, the `check system` name) and
    /// start Monit on it; returns once its HTTP interface answers.
    pub fn start(dir: &Path, name: &str, port: u16, system: &str, checks: &str) -> MonitLab {
        let httpd = format!(
            "set httpd port {port} use address 127.0.0.1\n    allow {MONIT_USER}:{MONIT_PASSWORD}\n"
        );
        let lab = MonitLab::launch(dir, name, port, &httpd, system, checks);
        lab.wait_ready(|| lab.status_xml().is_some());
        lab
    }

    /// The same, with Monit's HTTP interface on a unix socket only (`set httpd unixsocket`).
    pub fn start_unix(
        dir: &Path,
        name: &str,
        socket: &Path,
        system: &str,
        checks: &str,
    ) -> MonitLab {
        let httpd = format!(
            "set httpd unixsocket {}\n    allow {MONIT_USER}:{MONIT_PASSWORD}\n",
            socket.display()
        );
        let lab = MonitLab::launch(dir, name, 0, &httpd, system, checks);
        lab.wait_ready(|| std::os::unix::net::UnixStream::connect(socket).is_ok());
        lab
    }

    fn wait_ready(&self, ready: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(15);
        while !ready() {
            assert!(
                Instant::now() < end,
                "monit did not answer; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn launch(
        dir: &Path,
        name: &str,
        port: u16,
        httpd: &str,
        system: &str,
        checks: &str,
    ) -> MonitLab {
        assert!(
            available(),
            "monit is not installed: apt-get install -y monit (.ci/run does)"
        );
        let rc = lab_rc(
            dir,
            name,
            &format!("{httpd}check system {system}\n{checks}"),
        );
        let child = Command::new("monit")
            .arg("-c")
            .arg(&rc)
            .arg("-I")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start monit");
        MonitLab {
            dir: dir.to_path_buf(),
            rc,
            port,
            child: Some(child),
        }
    }

    /// Monit's status document, or None when it does not answer (yet).
    pub fn status_xml(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        // admin:lab-pw-1
        s.write_all(b"GET /_status?format=xml HTTP/1.0\r\nAuthorization: Basic YWRtaW46bGFiLXB3LTE=\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.starts_with("HTTP/1.0 200").then_some(out)
    }

    /// `monit reload`: Monit forgets its state and re-fires failures that still hold.
    pub fn reload(&self) {
        self.command(&["reload"]);
    }

    /// Any `monit` action on this lab (`unmonitor NAME`, `monitor NAME`, `reload`).
    pub fn command(&self, args: &[&str]) {
        let out = Command::new("monit")
            .arg("-c")
            .arg(&self.rc)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "monit {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.rc.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for MonitLab {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A process the test starts and kills, with a pidfile Monit watches.
pub struct Sleeper {
    pub pidfile: PathBuf,
    child: Option<Child>,
}

impl Sleeper {
    pub fn start(pidfile: &Path) -> Sleeper {
        let child = Command::new("sleep").arg("3600").spawn().unwrap();
        std::fs::write(pidfile, format!("{}\n", child.id())).unwrap();
        Sleeper {
            pidfile: pidfile.to_path_buf(),
            child: Some(child),
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.kill();
    }
}
