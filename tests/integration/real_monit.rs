//! Against real Monit daemons (Debian package `monit`) on loopback: Monit runs the built
//! `statusrelay monit` on its own schedule, a flusher delivers to the strict fake Cachet, and
//! each test asserts the exact sequence of statuses the page received. Waits are on
//! conditions with deadlines, never on fixed sleeps alone.

use std::time::Duration;

use statusrelay_testkit::monit::{
    MONIT_PASSWORD, MONIT_USER, MonitLab, Sleeper, free_port, write_rc_and_check,
};

use crate::support::*;

/// Monit on a 1 s cycle needs a few cycles per transition; CI machines are slow.
const STEP: Duration = Duration::from_secs(30);

struct Lab {
    fake: FakeCachet,
    sb: Sandbox,
    port: u16,
}

impl Lab {
    /// A sandbox whose config reads Monit at `port` and delivers to a fresh fake Cachet.
    fn new(name: &str, components: &str, extra: &str) -> Lab {
        let fake = FakeCachet::start(TOKEN, &[(2, "db cluster"), (3, "web")]);
        let sb = cachet_sandbox(name, &fake, components);
        let port = free_port();
        sb.write("monit-password", &format!("{MONIT_PASSWORD}\n"));
        let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
        sb.write(
            "config.toml",
            &format!("{cfg}[monit]\nurl = \"http://127.0.0.1:{port}\"\nuser = \"{MONIT_USER}\"\npassword_file = \"monit-password\"\n{extra}"),
        );
        Lab { fake, sb, port }
    }

    /// The exec action Monit runs: plain tokens only.
    fn exec(&self) -> String {
        format!(
            "{} --config {} monit",
            BIN,
            self.sb.path("config.toml").display()
        )
    }

    fn both(&self) -> String {
        let x = self.exec();
        format!("then exec \"{x}\" else if succeeded then exec \"{x}\"")
    }

    fn monit(&self, checks: &str) -> MonitLab {
        MonitLab::start(&self.sb.dir, "monit", self.port, "node1", checks)
    }

    fn wait_puts(&self, want: &[i64], monit: &MonitLab) {
        let ok = wait_until(STEP, || {
            self.fake.puts().iter().map(|p| p.1).collect::<Vec<_>>() == want
        });
        assert!(
            ok,
            "page saw {:?}, want {want:?}\nmonit log:\n{}",
            self.fake.puts(),
            monit.log()
        );
    }

    fn program(&self, name: &str, code: i32) -> std::path::PathBuf {
        let status = self.sb.path(&format!("{name}.status"));
        std::fs::write(&status, code.to_string()).unwrap();
        let script = self.sb.write(
            &format!("{name}.sh"),
            &format!("#!/bin/sh\nexit $(cat {})\n", status.display()),
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn set_program(&self, name: &str, code: i32) {
        std::fs::write(self.sb.path(&format!("{name}.status")), code.to_string()).unwrap();
    }
}

/// The outbox holds exactly `n` deliveries, none pending or in flight: every state change was
/// sent, and nothing else was queued (the handler queues in the same transaction it records).
fn nothing_more_queued(sb: &Sandbox, n: i64) {
    assert_eq!(
        count(sb, "SELECT count(*) FROM outbox"),
        n,
        "deliveries queued"
    );
    assert!(
        wait_until(STEP, || count(
            sb,
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
        ) == 0),
        "a delivery is still pending"
    );
}

/// Wait until Monit has run `n` more cycles (its newest `collected_sec` moved on by `n`).
fn wait_cycles(monit: &MonitLab, n: i64) {
    let newest = || -> i64 {
        monit
            .status_xml()
            .unwrap_or_default()
            .split("<collected_sec>")
            .skip(1)
            .filter_map(|x| x.split('<').next()?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    let start = newest();
    assert!(
        wait_until(STEP, || newest() >= start + n),
        "Monit ran no {n} more cycles: {}",
        monit.log()
    );
}

const DB2: &str = "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"db*\"]\n";

#[test]
fn process_death_and_restart() {
    let lab = Lab::new("rm-process", DB2, "");
    let pid = lab.sb.path("db.pid");
    let mut proc1 = Sleeper::start(&pid);
    let monit = lab.monit(&format!(
        "check process db with pidfile {}\n  if does not exist {}\n",
        pid.display(),
        lab.both()
    ));
    let flusher = lab.sb.spawn_flush();
    proc1.kill();
    lab.wait_puts(&[4], &monit);
    let _proc2 = Sleeper::start(&pid);
    lab.wait_puts(&[4, 1], &monit);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn program_status_codes_follow_the_component_mapping() {
    let lab = Lab::new(
        "rm-program",
        &format!("{DB2}[component.mapping]\nstatus = \"partial_outage\"\n"),
        "",
    );
    let script = lab.program("db", 0);
    let monit = lab.monit(&format!(
        "check program db with path {}\n  if status != 0 {}\n",
        script.display(),
        lab.both()
    ));
    let flusher = lab.sb.spawn_flush();
    lab.set_program("db", 2);
    lab.wait_puts(&[3], &monit);
    lab.set_program("db", 0);
    lab.wait_puts(&[3, 1], &monit);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn two_tests_on_one_service_fail_and_recover_in_different_orders() {
    let lab = Lab::new(
        "rm-twotests",
        &format!("{DB2}[component.mapping]\nconnection = \"partial_outage\"\n"),
        "",
    );
    let pid = lab.sb.path("db.pid");
    let port = free_port();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut proc1 = Sleeper::start(&pid);
    let monit = lab.monit(&format!(
        "check process db with pidfile {}\n  if does not exist {}\n  if failed host 127.0.0.1 port {port} {}\n",
        pid.display(),
        lab.both(),
        lab.both()
    ));
    let flusher = lab.sb.spawn_flush();
    // The port fails first (partial), then the process dies (major).
    drop(listener);
    lab.wait_puts(&[3], &monit);
    proc1.kill();
    lab.wait_puts(&[3, 4], &monit);
    // The process comes back while the port is still closed: the page must not go operational.
    let _proc2 = Sleeper::start(&pid);
    lab.wait_puts(&[3, 4, 3], &monit);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    lab.wait_puts(&[3, 4, 3, 1], &monit);
    drop(listener);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn reload_and_repeat_refire_failures_without_duplicate_work() {
    let lab = Lab::new("rm-refire", DB2, "");
    let script = lab.program("db", 0);
    let x = lab.exec();
    let monit = lab.monit(&format!(
        "check program db with path {}\n  if status != 0 then exec \"{x}\" repeat every 2 cycles else if succeeded then exec \"{x}\"\n",
        script.display()
    ));
    let flusher = lab.sb.spawn_flush();
    lab.set_program("db", 1);
    lab.wait_puts(&[4], &monit);
    let events = || {
        count(
            &lab.sb,
            "SELECT count(*) FROM events WHERE event = 'Status failed'",
        )
    };
    // `repeat every 2 cycles` re-fires while the failure holds.
    assert!(
        wait_until(STEP, || events() >= 3),
        "repeat did not re-fire: {}",
        monit.log()
    );
    // `monit reload` forgets state and fires again.
    let before = events();
    monit.reload();
    assert!(
        wait_until(STEP, || events() > before),
        "reload did not re-fire"
    );
    assert_eq!(
        count(&lab.sb, "SELECT count(*) FROM outbox"),
        1,
        "one delivery for one outage"
    );
    assert_eq!(lab.fake.puts(), vec![(2, 4)]);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn two_hosts_feeding_one_component_one_recovers_the_page_stays_down() {
    let lab = Lab::new("rm-twohosts", DB2, "");
    let a = lab.program("a", 0);
    let b = lab.program("b", 0);
    let both = lab.both();
    let m1 = MonitLab::start(
        &lab.sb.dir,
        "node1",
        lab.port,
        "node1",
        &format!(
            "check program db with path {}\n  if status != 0 {both}\n",
            a.display()
        ),
    );
    let m2 = MonitLab::start(
        &lab.sb.dir,
        "node2",
        free_port(),
        "node2",
        &format!(
            "check program db with path {}\n  if status != 0 {both}\n",
            b.display()
        ),
    );
    let flusher = lab.sb.spawn_flush();
    lab.set_program("a", 1);
    lab.set_program("b", 1);
    lab.wait_puts(&[4], &m1);
    let both_failing = || {
        count(
            &lab.sb,
            "SELECT count(*) FROM tests WHERE state IS NOT NULL AND host IN ('node1', 'node2')",
        ) == 2
    };
    assert!(
        wait_until(STEP, both_failing),
        "node2 never reported: {}",
        m2.log()
    );
    lab.set_program("a", 0);
    assert!(wait_until(STEP, || count(
        &lab.sb,
        "SELECT count(*) FROM events WHERE event = 'Status succeeded' AND host = 'node1'"
    ) == 1));
    // The recovery is recorded, and with it whatever delivery it queued (one transaction):
    // none, so nothing can reach the page. No sleep needed to see that.
    nothing_more_queued(&lab.sb, 1);
    assert_eq!(
        lab.fake.puts(),
        vec![(2, 4)],
        "node1's recovery must not hide node2's outage"
    );
    lab.set_program("b", 0);
    lab.wait_puts(&[4, 1], &m1);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn resync_repairs_events_the_handler_never_recorded() {
    // resync_interval lets the flusher repair on its own, after the explicit command.
    let lab = Lab::new("rm-resync", DB2, "resync_interval = \"1s\"\n");
    let pid = lab.sb.path("db.pid");
    let mut proc1 = Sleeper::start(&pid);
    // The exec action fails: the event is lost, as with a full disk or a crashed handler.
    let monit = lab.monit(&format!("check process db with pidfile {}\n  if does not exist then exec \"/bin/false\" else if succeeded then exec \"/bin/false\"\n", pid.display()));
    proc1.kill();
    let xml_says_gone = || {
        monit.status_xml().is_some_and(|x| {
            x.contains("<name>db</name><collected_sec>") && x.contains("<status>512</status>")
        })
    };
    assert!(
        wait_until(STEP, xml_says_gone),
        "Monit never saw the process die"
    );
    assert!(
        !lab.sb.spool_path().exists(),
        "nothing was recorded by the handler"
    );
    let r = lab.sb.run(&["resync", "--dry-run"]);
    assert_code(&r, 0);
    assert!(
        r.stdout
            .contains("db cluster: db existence is failing (major_outage) (dry run)"),
        "{}",
        r.stdout
    );
    let r = lab.sb.run(&["resync"]);
    assert!(
        r.stdout
            .contains("db cluster: db existence is failing (major_outage)"),
        "{}",
        r.stdout
    );
    assert!(
        lab.sb
            .run(&["resync"])
            .stdout
            .contains("in step with Monit"),
        "a second resync finds nothing"
    );
    let flusher = lab.sb.spawn_flush();
    lab.wait_puts(&[4], &monit);
    // The recovery is lost too; the flusher's periodic resync repairs it.
    let _proc2 = Sleeper::start(&pid);
    lab.wait_puts(&[4, 1], &monit);
    signal(&flusher, "TERM");
    let out = flusher.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("resync: db cluster: db existence is passing per Monit")
    );
}

#[test]
fn resync_with_wrong_credentials_is_a_clear_error() {
    let lab = Lab::new("rm-resync-auth", DB2, "");
    let monit = lab.monit("");
    lab.sb.write("monit-password", "wrong\n");
    let r = lab.sb.run(&["resync"]);
    assert_code(&r, 69);
    assert!(
        r.stderr
            .contains("Monit refused the credentials (HTTP 401)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong"), "the password is never printed");
    drop(monit);
    let r = lab.sb.run(&["resync"]);
    assert_code(&r, 69);
    assert!(r.stderr.contains("cannot connect to Monit"), "{}", r.stderr);
}

#[test]
fn monit_config_output_is_accepted_by_monit_and_drives_the_page() {
    let lab = Lab::new(
        "rm-genconfig",
        &format!("{DB2}[[component]]\nname = \"web\"\nid = 3\nservices = [\"nginx\", \"site\"]\n"),
        "",
    );
    let script = lab.program("db", 0);
    let pid = lab.sb.path("nginx.pid");
    let checks = format!(
        "[[check]]\nservice = \"db\"\ntype = \"program\"\ntarget = \"with path {}\"\ntests = [\"status != 0\"]\n\
         [[check]]\nservice = \"nginx\"\ntype = \"process\"\ntarget = \"with pidfile {}\"\ntests = [\"does not exist\", \"changed pid\", \"3 restarts within 5 cycles\"]\nstart = \"/bin/true\"\n\
         [[check]]\nservice = \"site\"\ntype = \"host\"\ntarget = \"with address 127.0.0.1\"\ntests = [\"failed port {} protocol http for 2 cycles\"]\n",
        script.display(),
        pid.display(),
        free_port()
    );
    let cfg = std::fs::read_to_string(lab.sb.path("config.toml")).unwrap();
    sb_write_config(&lab.sb, &format!("{cfg}{checks}"));
    let conf_d = lab.sb.path("conf.d");
    let generate = |expect: &str| {
        let r = lab.sb.run(&[
            "monit-config",
            "--dir",
            conf_d.to_str().unwrap(),
            "--bin",
            BIN,
        ]);
        assert_code(&r, 0);
        assert!(r.stdout.contains(expect), "{}", r.stdout);
        r
    };
    generate("wrote");
    generate("unchanged");
    let dir_arg = conf_d.to_str().unwrap();
    let r = lab
        .sb
        .run(&["monit-config", "--dir", dir_arg, "--bin", BIN, "--check"]);
    assert_code(&r, 0);
    assert!(r.stdout.contains("in sync"), "{}", r.stdout);
    let stdout = lab.sb.run(&["monit-config", "--bin", BIN]).stdout;
    assert!(stdout.contains("check program db with path"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "exec \"{BIN} --config {} monit\"",
            lab.sb.path("config.toml").display()
        )),
        "{stdout}"
    );
    // monit -t accepts every generated file, the flusher watchdog included.
    let rc = lab.sb.path("test.monitrc");
    let t = write_rc_and_check(
        &rc,
        &format!("set daemon 30\ninclude {}/*\n", conf_d.display()),
    );
    assert!(t.is_ok(), "monit -t: {t:?}");
    // Dropping a service from the config removes its check.
    sb_write_config(
        &lab.sb,
        &format!(
            "{cfg}{}",
            checks
                .split("[[check]]\nservice = \"site\"")
                .next()
                .unwrap()
        ),
    );
    let r = lab
        .sb
        .run(&["monit-config", "--dir", dir_arg, "--bin", BIN, "--check"]);
    assert_code(&r, 1);
    assert!(
        r.stdout.contains("would remove") && r.stdout.contains("statusrelay-site"),
        "{}",
        r.stdout
    );
    generate("removed");
    assert!(!conf_d.join("statusrelay-site").exists() && conf_d.join("statusrelay-db").exists());
    // A real Monit running the generated check drives the page.
    let monit = lab.monit(&format!("include {}/statusrelay-db\n", conf_d.display()));
    let flusher = lab.sb.spawn_flush();
    lab.set_program("db", 1);
    lab.wait_puts(&[4], &monit);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

fn sb_write_config(sb: &Sandbox, text: &str) {
    sb.write("config.toml", text);
}

#[test]
fn a_host_port_and_a_file_the_test_controls() {
    let lab = Lab::new(
        "rm-hostfile",
        &format!(
            "{DB2}[[component]]\nname = \"web\"\nid = 3\nservices = [\"site\", \"content\"]\n"
        ),
        "",
    );
    let port = free_port();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let file = lab.sb.write("index.html", "hello\n");
    let both = lab.both();
    let monit = lab.monit(&format!(
        "check host site with address 127.0.0.1\n  if failed port {port} {both}\n\
         check file content with path {}\n  if does not exist {both}\n",
        file.display()
    ));
    let flusher = lab.sb.spawn_flush();
    drop(listener);
    let web = |want: &[i64]| {
        let ok = wait_until(STEP, || {
            lab.fake
                .puts()
                .iter()
                .filter(|p| p.0 == 3)
                .map(|p| p.1)
                .collect::<Vec<_>>()
                == want
        });
        assert!(
            ok,
            "web saw {:?}, want {want:?}\n{}",
            lab.fake.puts(),
            monit.log()
        );
    };
    web(&[4]);
    std::fs::remove_file(&file).unwrap();
    assert!(wait_until(STEP, || count(
        &lab.sb,
        "SELECT count(*) FROM tests WHERE service = 'content' AND state IS NOT NULL"
    ) == 1));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    // The port is back, the file is still missing: still down.
    assert!(wait_until(STEP, || count(
        &lab.sb,
        "SELECT count(*) FROM events WHERE event = 'Connection succeeded'"
    ) == 1));
    // The event is recorded with whatever delivery it queued: none for web.
    assert_eq!(
        count(
            &lab.sb,
            "SELECT count(*) FROM outbox WHERE component = 'web'"
        ),
        1,
        "the port's recovery queued nothing while the file is missing"
    );
    web(&[4]);
    std::fs::write(&file, "hello\n").unwrap();
    web(&[4, 1]);
    drop(listener);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn resource_limits_recover_per_resource() {
    let lab = Lab::new("rm-resource", DB2, "");
    let pid = lab.sb.path("db.pid");
    // A busy loop: cpu over the limit until the test stops it; its memory is always over 100 KB.
    let mut busy = std::process::Command::new("sh")
        .arg("-c")
        .arg("while :; do :; done")
        .spawn()
        .unwrap();
    std::fs::write(&pid, busy.id().to_string()).unwrap();
    let both = lab.both();
    let monit = lab.monit(&format!(
        "check process db with pidfile {}\n  if cpu > 20% {both}\n  if totalmem > 100 KB {both}\n",
        pid.display()
    ));
    let flusher = lab.sb.spawn_flush();
    lab.wait_puts(&[2], &monit);
    let failing = |t: &str| {
        count(
            &lab.sb,
            &format!("SELECT count(*) FROM tests WHERE test = '{t}' AND state IS NOT NULL"),
        )
    };
    assert!(
        wait_until(STEP, || failing("resource:cpu usage") == 1
            && failing("resource:total mem amount") == 1),
        "{}",
        monit.log()
    );
    // Stop the loop: cpu recovers, memory does not. The page stays degraded.
    let _ = std::process::Command::new("kill")
        .arg("-STOP")
        .arg(busy.id().to_string())
        .status();
    assert!(
        wait_until(STEP, || failing("resource:cpu usage") == 0),
        "cpu never recovered: {}",
        monit.log()
    );
    assert_eq!(
        failing("resource:total mem amount"),
        1,
        "a cpu recovery must not clear the memory failure"
    );
    assert_eq!(lab.fake.puts(), vec![(2, 2)]);
    let _ = busy.kill();
    let _ = busy.wait();
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}

#[test]
fn a_restart_limit_timeout_holds_until_resync_sees_it_gone() {
    let lab = Lab::new("rm-timeout", DB2, "");
    let pid = lab.sb.path("db.pid");
    let mode = lab.sb.write("db.mode", "crash\n");
    // A start program whose process lives 0.4 s (less than a cycle) while db.mode says "crash" (the
    // lab's `flappy`), and stays up otherwise.
    let start = lab.sb.write(
        "start.sh",
        &format!("#!/bin/sh\nif [ \"$(cat {m})\" = crash ]; then sleep 0.4 & echo $! > {p}; else sleep 3600 & echo $! > {p}; fi\n", m = mode.display(), p = pid.display()),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&start, std::fs::Permissions::from_mode(0o755)).unwrap();
    let x = lab.exec();
    let monit = lab.monit(&format!(
        "check process db with pidfile {}\n  start program = \"{}\" with timeout 5 seconds\n  if 2 restarts within 3 cycles then exec \"{x}\"\n",
        pid.display(),
        start.display()
    ));
    let flusher = lab.sb.spawn_flush();
    lab.wait_puts(&[4], &monit);
    assert!(
        count(
            &lab.sb,
            "SELECT count(*) FROM events WHERE event = 'Timeout'"
        ) >= 1,
        "the outage came from Monit's Timeout"
    );
    // The service is fixed. Monit sends no recovery for a restart limit: the page stays down...
    std::fs::write(&mode, "stay\n").unwrap();
    let running = || {
        monit.status_xml().is_some_and(|x| {
            x.contains("<name>db</name>")
                && x.split("<name>db</name>")
                    .nth(1)
                    .is_some_and(|r| r.contains("<status>0</status>"))
        })
    };
    assert!(
        wait_until(STEP, running),
        "Monit never saw db healthy: {}",
        monit.log()
    );
    // Two more of Monit's cycles with db healthy: a recovery event, were Monit to send one,
    // would have been recorded by now. None was, so nothing more is queued.
    wait_cycles(&monit, 2);
    nothing_more_queued(&lab.sb, 1);
    assert_eq!(lab.fake.puts(), vec![(2, 4)]);
    // ...until resync reads Monit's view.
    let r = lab.sb.run(&["resync"]);
    assert!(
        r.stdout.contains("db cluster: db timeout is passing"),
        "{}",
        r.stdout
    );
    lab.wait_puts(&[4, 1], &monit);
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
    drop(monit);
    // Only this test's own process: other tests run sleepers of their own in parallel.
    if let Ok(p) = std::fs::read_to_string(&pid) {
        let _ = std::process::Command::new("kill").arg(p.trim()).status();
    }
}

#[test]
fn resync_reads_monit_over_its_unix_socket() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("rm-socket", &fake, DB2);
    sb.write("monit-password", &format!("{MONIT_PASSWORD}\n"));
    let socket = sb.path("monit.sock");
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write("config.toml", &format!("{cfg}[monit]\nsocket = \"monit.sock\"\nuser = \"{MONIT_USER}\"\npassword_file = \"monit-password\"\n"));
    let pid = sb.path("db.pid");
    let mut proc1 = Sleeper::start(&pid);
    let monit = MonitLab::start_unix(
        &sb.dir,
        "monit",
        &socket,
        "node1",
        &format!(
            "check process db with pidfile {}\n  if does not exist then exec \"/bin/false\"\n",
            pid.display()
        ),
    );
    proc1.kill();
    let ok = wait_until(STEP, || {
        sb.run(&["resync"])
            .stdout
            .contains("db cluster: db existence is failing (major_outage)")
    });
    assert!(
        ok,
        "resync over the socket never saw the failure: {}",
        monit.log()
    );
    assert_code(&sb.run(&["flush", "--once"]), 0);
    assert_eq!(fake.puts(), vec![(2, 4)]);
}

#[test]
fn the_static_page_follows_a_real_monit() {
    let sb = html_sandbox(
        "rm-html",
        "[[component]]\nname = \"db cluster\"\nservices = [\"db\"]\n",
    );
    let pid = sb.path("db.pid");
    let mut proc1 = Sleeper::start(&pid);
    let x = format!(
        "{} --config {} monit",
        BIN,
        sb.path("config.toml").display()
    );
    let monit = MonitLab::start(
        &sb.dir,
        "monit",
        free_port(),
        "node1",
        &format!(
            "check process db with pidfile {}\n  if does not exist then exec \"{x}\" else if succeeded then exec \"{x}\"\n",
            pid.display()
        ),
    );
    let flusher = sb.spawn_flush();
    let page = || -> Option<String> {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(sb.path("www/status.json")).ok()?)
                .ok()?;
        doc["components"][0]["state"].as_str().map(str::to_string)
    };
    proc1.kill();
    assert!(
        wait_until(STEP, || page().as_deref() == Some("major_outage")),
        "{}",
        monit.log()
    );
    let _proc2 = Sleeper::start(&pid);
    assert!(
        wait_until(STEP, || page().as_deref() == Some("operational")),
        "{}",
        monit.log()
    );
    signal(&flusher, "TERM");
    let out = flusher.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let sent: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sent db cluster:"))
        .collect();
    assert_eq!(sent.len(), 2, "{log}");
    assert!(
        sent[0].contains("major_outage") && sent[1].contains("operational"),
        "{log}"
    );
}

/// Issue 13, item 1: a `[[check]]` routed to a component whose name has a space (the README's
/// "db cluster") or a double quote. Monit splits its exec string on whitespace, so the exec
/// line must name the component by its slug; before, the handler got `--component db` plus a
/// stray `cluster`, exited 64 and recorded nothing, and a `"` broke the monitrc.
#[test]
fn monit_config_routes_names_with_spaces_and_quotes_through_a_real_monit() {
    let lab = Lab::new(
        "rm-spaces",
        "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n\
         [[component]]\nname = 'web \"edge\"'\nid = 3\nservices = [\"nginx\"]\n",
        "",
    );
    let db = lab.program("probe", 0);
    let web = lab.program("edge", 0);
    let cfg = std::fs::read_to_string(lab.sb.path("config.toml")).unwrap();
    // Neither service name routes by itself: only --component can bring them to the page.
    sb_write_config(
        &lab.sb,
        &format!(
            "{cfg}[[check]]\nservice = \"probe\"\ntype = \"program\"\ntarget = \"with path {}\"\ntests = [\"status != 0\"]\ncomponent = \"db cluster\"\n\
             [[check]]\nservice = \"edge\"\ntype = \"program\"\ntarget = \"with path {}\"\ntests = [\"status != 0\"]\ncomponent = 'web \"edge\"'\n",
            db.display(),
            web.display()
        ),
    );
    let conf_d = lab.sb.path("conf.d");
    let r = lab.sb.run(&[
        "monit-config",
        "--dir",
        conf_d.to_str().unwrap(),
        "--bin",
        BIN,
    ]);
    assert_code(&r, 0);
    let text = std::fs::read_to_string(conf_d.join("statusrelay-probe")).unwrap();
    assert!(text.contains(" monit --component db-cluster\""), "{text}");
    let text = std::fs::read_to_string(conf_d.join("statusrelay-edge")).unwrap();
    assert!(text.contains(" monit --component web-edge\""), "{text}");
    let monit = lab.monit(&format!(
        "include {}/statusrelay-probe\ninclude {}/statusrelay-edge\n",
        conf_d.display(),
        conf_d.display()
    ));
    let flusher = lab.sb.spawn_flush();
    lab.set_program("probe", 1);
    lab.wait_puts(&[4], &monit);
    lab.set_program("edge", 1);
    assert!(
        wait_until(STEP, || lab.fake.puts().contains(&(3, 4))),
        "web \"edge\" never reached the page: {:?}\n{}",
        lab.fake.puts(),
        monit.log()
    );
    lab.set_program("probe", 0);
    assert!(
        wait_until(STEP, || lab.fake.puts().contains(&(2, 1))),
        "{:?}\n{}",
        lab.fake.puts(),
        monit.log()
    );
    assert_eq!(
        count(
            &lab.sb,
            "SELECT count(*) FROM events WHERE status = 'rejected'"
        ),
        0
    );
    signal(&flusher, "TERM");
    assert!(flusher.wait_with_output().unwrap().status.success());
}
