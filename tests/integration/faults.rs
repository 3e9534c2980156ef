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
fn an_unwritable_spool_directory_is_exit_75_with_a_hint() {
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
    assert_code(&r, 75);
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
