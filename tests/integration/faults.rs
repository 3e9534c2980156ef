//! Spool faults and clock skew, through the real binary: clear errors, documented exit codes,
//! nothing hangs, a corrupt file is kept.

use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_corrupt_spool_is_moved_aside_loudly_and_a_fresh_one_takes_the_event() {
    let sb = html_sandbox("corrupt", DB);
    std::fs::write(sb.spool_path(), b"garbage, not SQLite".repeat(500)).unwrap();
    let r = monit(&sb, &fail("mysql"));
    assert_code(&r, 0);
    assert!(
        r.stderr.contains("was corrupt: it was moved to") && r.stderr.contains("never deleted"),
        "{}",
        r.stderr
    );
    let aside: Vec<_> = std::fs::read_dir(&sb.dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("spool.db.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(
        std::fs::read(aside[0].path())
            .unwrap()
            .starts_with(b"garbage")
    );
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 1);
}

#[test]
fn an_unwritable_spool_directory_is_exit_74_with_a_hint() {
    let sb = html_sandbox("readonly", DB);
    // Root ignores permissions: run the handler as nobody against a root-owned directory.
    let dir = sb.path("locked-down");
    std::fs::create_dir(&dir).unwrap();
    sb.write(
        "config.toml",
        &format!(
            "spool = \"locked-down/spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}"
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    for p in [sb.dir.clone(), sb.path("config.toml")] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        sb.path("config.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new(BIN)
        .uid(65534)
        .gid(65534)
        .arg("--config")
        .arg(sb.path("config.toml"))
        .arg("monit")
        .env_clear()
        .env("MONIT_SERVICE", "mysql")
        .env("MONIT_EVENT", "Does not exist")
        .output()
        .unwrap();
    let r: Run = out.into();
    // A permission problem needs a person, not a retry (issue 13, item 15): 74, not 75.
    assert_code(&r, 74);
    assert!(
        r.stderr.contains("unable to open database file")
            && r.stderr
                .contains("hint: the spool's directory must exist and be writable"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_spool_locked_by_another_process_fails_after_the_busy_timeout_not_forever() {
    let sb = html_sandbox("locked", DB);
    assert_code(&monit(&sb, &ok("mysql")), 0);
    let holder = db(&sb);
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t = Instant::now();
    let r = monit(&sb, &fail("mysql"));
    let took = t.elapsed();
    assert_code(&r, 75);
    assert!(
        r.stderr.contains("database is locked")
            && r.stderr
                .contains("hint: another process holds the spool locked"),
        "{}",
        r.stderr
    );
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "gave up after {took:?}"
    );
    holder.execute_batch("ROLLBACK").unwrap();
    assert_code(&monit(&sb, &fail("mysql")), 0);
}

#[test]
fn a_full_disk_is_exit_75_with_a_hint_and_the_spool_survives() {
    let sb = html_sandbox("diskfull", DB);
    let mnt = sb.path("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let m = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=160k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        m.success(),
        "mounting a small tmpfs needs root (CI is root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    sb.write(
        "config.toml",
        &format!("spool = \"tiny/spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}"),
    );
    // Fill the filesystem with events until SQLite cannot write any more.
    let big = "x".repeat(15 * 1024);
    let mut last = None;
    for i in 0..200 {
        let r = sb.monit(
            &[
                ("MONIT_SERVICE", "mysql"),
                (
                    "MONIT_EVENT",
                    if i % 2 == 0 {
                        "Does not exist"
                    } else {
                        "Exists"
                    },
                ),
                ("MONIT_DESCRIPTION", &big),
            ],
            &[],
        );
        if r.code != 0 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("the disk never filled");
    assert_code(&r, 75);
    assert!(
        r.stderr.contains("full")
            && r.stderr
                .contains("hint: free space on the spool's filesystem"),
        "{}",
        r.stderr
    );
    // The spool is intact: everything committed before is still readable.
    let conn = rusqlite::Connection::open(mnt.join("spool.db")).unwrap();
    let ok: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn ordering_uses_the_spools_sequence_not_monit_date() {
    let sb = html_sandbox("clock", DB);
    // The failure claims to come from the future, the recovery from the past: arrival order wins.
    let mut f = fail("mysql");
    f.push(("MONIT_DATE", "Fri, 01 Jan 2100 00:00:00".into()));
    let mut o = ok("mysql");
    o.push(("MONIT_DATE", "Mon, 01 Jan 1990 00:00:00".into()));
    assert_code(&monit(&sb, &f), 0);
    assert_code(&monit(&sb, &o), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let state: String = db(&sb)
        .query_row("SELECT state FROM desired", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "operational");
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM events WHERE monit_date LIKE '%2100%'"
        ),
        1,
        "MONIT_DATE is kept for audit"
    );
}

/// Drop consecutive repeats: at-least-once delivery may re-send a state after a kill.
fn squeeze(v: impl IntoIterator<Item = i64>) -> Vec<i64> {
    let mut out: Vec<i64> = Vec::new();
    for x in v {
        if out.last() != Some(&x) {
            out.push(x);
        }
    }
    out
}

fn is_subsequence(needle: &[i64], hay: &[i64]) -> bool {
    let mut it = hay.iter();
    needle.iter().all(|n| it.any(|h| h == n))
}

fn cachet_code(state: &str) -> i64 {
    match state {
        "operational" => 1,
        "performance_issues" => 2,
        "partial_outage" => 3,
        "major_outage" => 4,
        other => panic!("unexpected state {other}"),
    }
}

#[test]
fn kill_9_at_random_points_200_times_loses_nothing_and_keeps_order() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster"), (3, "web")]);
    let comps = "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\nincidents = true\n\
                 [[component]]\nname = \"web\"\nid = 3\nservices = [\"nginx\"]\n";
    let sb = cachet_sandbox("kill200", &fake, comps);
    // Events keep arriving from Monit while the flusher is killed again and again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (bin, cfg, stop) = (BIN.to_string(), sb.path("config.toml"), stop.clone());
        std::thread::spawn(move || {
            let events = [
                ("mysql", "Does not exist"),
                ("nginx", "Connection failed"),
                ("mysql", "Exists"),
                ("nginx", "Connection succeeded"),
            ];
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (svc, ev) = events[n % events.len()];
                let st = std::process::Command::new(&bin)
                    .env_clear()
                    .env("MONIT_SERVICE", svc)
                    .env("MONIT_EVENT", ev)
                    .env("MONIT_HOST", "node1")
                    .arg("--config")
                    .arg(&cfg)
                    .arg("monit")
                    .status()
                    .unwrap();
                assert!(st.success());
                n += 1;
                std::thread::sleep(Duration::from_millis(37));
            }
            n
        })
    };
    let mut seed: u64 = 0x5eed_1234;
    for _ in 0..200 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let flusher = sb.spawn_flush();
        std::thread::sleep(Duration::from_millis(5 + (seed >> 33) % 120));
        signal(&flusher, "KILL");
        let _ = flusher.wait_with_output();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let produced = producer.join().unwrap();
    assert!(produced >= 100, "only {produced} events arrived");
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);

    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending', 'dead')"
        ),
        0,
        "everything delivered"
    );
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events"),
        produced as i64,
        "every event recorded"
    );
    let conn = db(&sb);
    for (id, comp) in [(2u64, "db cluster"), (3, "web")] {
        let desired: String = conn
            .query_row(
                "SELECT state FROM desired WHERE component = ?1",
                [comp],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            fake.status_of(id),
            Some(cachet_code(&desired)),
            "{comp}: the page ends on the last state"
        );
        let history: Vec<i64> = {
            let mut st = conn
                .prepare("SELECT state FROM outbox WHERE component = ?1 ORDER BY id")
                .unwrap();
            st.query_map([comp], |r| r.get::<_, String>(0))
                .unwrap()
                .map(|s| cachet_code(&s.unwrap()))
                .collect()
        };
        let seen = squeeze(fake.puts().into_iter().filter(|p| p.0 == id).map(|p| p.1));
        assert!(
            is_subsequence(&seen, &squeeze(history.clone())),
            "{comp}: page saw {seen:?}, out of order against {history:?}"
        );
    }
    // No incident the spool does not know of, and never two unresolved at once.
    let known: Vec<String> = {
        let mut st = conn
            .prepare("SELECT remote_id FROM incidents WHERE remote_id IS NOT NULL")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    for i in fake.incidents() {
        assert!(
            known.contains(&i.id.to_string()),
            "incident #{} on the page is unknown to the spool: a duplicate",
            i.id
        );
    }
    assert!(fake.incidents().iter().filter(|i| i.status != 4).count() <= 1);
}

#[test]
fn a_flapping_api_loses_nothing_and_sees_no_retry_storm() {
    let mut fake = FakeCachet::start(TOKEN, &[(2, "db cluster"), (3, "web")]);
    let comps = "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n[[component]]\nname = \"web\"\nid = 3\nservices = [\"nginx\"]\n";
    let sb = cachet_sandbox("flapping", &fake, comps);
    let flusher = sb.spawn_flush();
    let start = fake.arrivals();
    let phases: [(&str, u64); 5] = [
        ("down", 2),
        ("500", 2),
        ("drop", 2),
        ("slow", 3),
        ("429", 2),
    ];
    let mut n = 0;
    for (phase, secs) in phases {
        match phase {
            "down" => fake.stop(),
            "500" => {
                fake.resume();
                fake.push_faults(std::iter::repeat_n(Fault::Status(500), 1000));
            }
            "drop" => fake.push_faults(std::iter::repeat_n(Fault::Drop, 1000)),
            "slow" => {
                fake.push_faults(std::iter::repeat_n(
                    Fault::Slow(Duration::from_millis(2500)),
                    1000,
                ));
            }
            _ => fake.push_faults(std::iter::repeat_n(Fault::RateLimit(1), 1000)),
        }
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            let (svc, ev) = [
                ("mysql", "Does not exist"),
                ("nginx", "Connection failed"),
                ("mysql", "Exists"),
                ("nginx", "Connection succeeded"),
            ][n % 4];
            let t0 = Instant::now();
            let r = sb.monit(&[("MONIT_SERVICE", svc), ("MONIT_EVENT", ev)], &[]);
            assert_eq!(
                r.code,
                0,
                "handler failed after {:?} in phase {phase}: {}",
                t0.elapsed(),
                r.stderr
            );
            n += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        // Clear what is left of this phase's faults before the next one.
        fake.clear_faults();
    }
    let during = fake.arrivals() - start;
    fake.clear_faults();
    // Healthy again: it catches up by itself (backoff is capped at 1 s here).
    let desired = |comp: &str| -> String {
        db(&sb)
            .query_row(
                "SELECT state FROM desired WHERE component = ?1",
                [comp],
                |r| r.get(0),
            )
            .unwrap()
    };
    // Generous: the condition ends the wait as soon as it holds; a loaded CI machine is slow.
    let caught_up = wait_until(Duration::from_secs(60), || {
        fake.status_of(2) == Some(cachet_code(&desired("db cluster")))
            && fake.status_of(3) == Some(cachet_code(&desired("web")))
            && count(
                &sb,
                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')",
            ) == 0
    });
    signal(&flusher, "TERM");
    let out = flusher.wait_with_output().unwrap();
    assert!(
        caught_up,
        "did not catch up: page db={:?} web={:?}, desired db={} web={}, open rows {}\n{}",
        fake.status_of(2),
        fake.status_of(3),
        desired("db cluster"),
        desired("web"),
        count(
            &sb,
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
        ),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count(&sb, "SELECT count(*) FROM outbox WHERE status = 'dead'"),
        0,
        "nothing dead-lettered"
    );
    // Two components over 9 s of faults: a few dozen requests, not a storm.
    assert!(
        during < 120,
        "{during} requests during 9 s of faults: retry storm"
    );
    assert!(n >= 60, "only {n} events during the faults");
}
