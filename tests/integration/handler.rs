//! The handler (`statusrelay monit`, `statusrelay event`) through the real binary.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;

use crate::support::*;

#[test]
fn every_event_in_the_real_corpus_maps_to_a_documented_outcome() {
    let sb = html_sandbox("corpus", "");
    let n = replay_corpus(&sb);
    assert_eq!(n, 112);
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 112);
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events WHERE status = 'rejected'"),
        0
    );
    // Spot-check the documented table against what was recorded.
    let conn = db(&sb);
    let mut st = conn
        .prepare("SELECT DISTINCT event, effect, status FROM events ORDER BY event")
        .unwrap();
    let rows: BTreeMap<String, (String, String)> = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get::<_, String>(1)?, r.get::<_, String>(2)?),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (event, effect) in [
        ("Does not exist", "fail"),
        ("Exists", "recover"),
        ("Connection failed", "fail"),
        ("Resource limit succeeded", "recover"),
        ("Timeout", "fail"),
        ("Content match", "fail"),
        ("Upload bytes ok", "recover"),
        ("Link down", "fail"),
        ("PID changed", "info"),
        ("Started", "info"),
        ("Filesystem flags changed", "info"),
    ] {
        assert_eq!(rows[event].0, effect, "{event}");
    }
    // Content match is ignored by default: recorded, no state change.
    assert_eq!(rows["Content match"].1, "info");
    assert_eq!(rows["Started"].1, "info");
}

#[test]
fn the_corpus_ends_in_the_states_monit_left_behind() {
    let sb = html_sandbox("corpus-states", "");
    replay_corpus(&sb);
    let state = |c: &str| -> String {
        db(&sb)
            .query_row("SELECT state FROM desired WHERE component = ?1", [c], |r| {
                r.get(0)
            })
            .unwrap()
    };
    // webport's port check failed and never recovered in the lab run.
    assert_eq!(state("webport"), "major_outage");
    // flappy hit its restart limit (Timeout, no recovery event).
    assert_eq!(state("flappy"), "major_outage");
    // watched: the last events were recoveries of each failed test.
    let open: i64 = count(
        &sb,
        "SELECT count(*) FROM tests WHERE component = 'lo' AND state IS NOT NULL",
    );
    assert_eq!(open, 0, "lo's bandwidth tests all recovered");
}

#[test]
fn missing_service_is_exit_65_and_the_raw_event_is_kept() {
    let sb = html_sandbox("missing", DB);
    let r = sb.monit(
        &[
            ("MONIT_EVENT", "Does not exist"),
            ("MONIT_DESCRIPTION", "gone"),
        ],
        &[],
    );
    assert_code(&r, 65);
    assert!(
        r.stderr.contains("MONIT_SERVICE is not set"),
        "{}",
        r.stderr
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM events WHERE status = 'rejected' AND raw LIKE '%gone%'"
        ),
        1
    );
    let q = sb.run(&["queue"]);
    assert!(
        q.stdout.contains("rejected events") && q.stdout.contains("MONIT_SERVICE"),
        "{}",
        q.stdout
    );
}

#[test]
fn no_monit_variables_is_a_usage_error_that_records_nothing() {
    let sb = html_sandbox("nomonit", DB);
    let r = sb.monit(&[], &[]);
    assert_code(&r, 64);
    assert!(r.stderr.contains("no MONIT_* variables"), "{}", r.stderr);
    assert!(!sb.spool_path().exists());
}

#[test]
fn invalid_utf8_in_the_service_is_rejected_but_kept() {
    let sb = html_sandbox("utf8", DB);
    let mut vars = BTreeMap::new();
    vars.insert("MONIT_SERVICE", OsString::from_vec(b"my\xffsql".to_vec()));
    vars.insert("MONIT_EVENT", OsString::from("Does not exist"));
    let r = sb.monit_os(&vars);
    assert_code(&r, 65);
    assert!(
        r.stderr.contains("MONIT_SERVICE is not valid UTF-8"),
        "{}",
        r.stderr
    );
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events WHERE status = 'rejected'"),
        1
    );
    // Invalid UTF-8 in the free-text description is accepted (replaced), the event applies.
    let mut vars = BTreeMap::new();
    vars.insert("MONIT_SERVICE", OsString::from("mysql"));
    vars.insert("MONIT_EVENT", OsString::from("Does not exist"));
    vars.insert(
        "MONIT_DESCRIPTION",
        OsString::from_vec(b"bad \xff bytes".to_vec()),
    );
    assert_code(&sb.monit_os(&vars), 0);
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE state = 'major_outage'"
        ),
        1
    );
}

#[test]
fn a_huge_description_is_cut_and_still_applied() {
    let sb = html_sandbox("bigdesc", DB);
    // Linux refuses any single environment string over MAX_ARG_STRLEN (128 KiB) at exec, so
    // Monit cannot hand a 1 MB description to any program: pin that, then send the largest
    // description that can arrive.
    let mb = "x".repeat(1024 * 1024);
    let err = sb
        .cmd(&["monit"])
        .env("MONIT_SERVICE", "mysql")
        .env("MONIT_DESCRIPTION", &mb)
        .output()
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(7), "E2BIG");
    let big = "x".repeat(127 * 1024);
    let r = sb.monit(
        &[
            ("MONIT_SERVICE", "mysql"),
            ("MONIT_EVENT", "Does not exist"),
            ("MONIT_DESCRIPTION", &big),
        ],
        &[],
    );
    assert_code(&r, 0);
    let len: i64 = count(&sb, "SELECT length(description) FROM events");
    assert!(len < 20 * 1024, "stored {len} bytes");
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM events WHERE description LIKE '%cut from 130048 bytes%'"
        ),
        1
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE state = 'major_outage'"
        ),
        1
    );
}

/// A failing mysql event padded with MONIT_PAD_* variables to exactly `bytes` bytes of names and
/// values (what `RawEvent::bytes` counts), each value under the 16 KiB cap so nothing is cut.
fn event_of(bytes: usize) -> Vec<(String, String)> {
    let mut vars = vec![
        ("MONIT_SERVICE".to_string(), "mysql".to_string()),
        ("MONIT_EVENT".to_string(), "Does not exist".to_string()),
    ];
    let size = |v: &[(String, String)]| v.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    while size(&vars) < bytes {
        let key = format!("MONIT_PAD_{:03}", vars.len());
        let left = bytes - size(&vars);
        if left < key.len() {
            vars.last_mut().unwrap().1.push_str(&"y".repeat(left));
        } else {
            let value = "x".repeat((left - key.len()).min(15_000));
            vars.push((key, value));
        }
    }
    assert_eq!(size(&vars), bytes);
    vars
}

#[test]
fn the_handler_gives_sqlite_a_fixed_heap_up_to_its_bound_and_the_system_allocator_beyond() {
    use statusrelay_spool::heap::{HEAP_BYTES, MAX_EVENT_BYTES};
    let sb = html_sandbox("heap", DB);
    let run = |vars: &[(String, String)]| {
        let mut c = sb.cmd(&["monit", "--log-level", "debug"]);
        c.envs(vars.iter().map(|(k, v)| (k, v)));
        let r: Run = c.output().unwrap().into();
        assert_code(&r, 0);
        r
    };
    let fixed = format!("sqlite: a fixed {} MiB heap", HEAP_BYTES >> 20);
    // An everyday event.
    let r = run(&event_of(100));
    assert!(r.stderr.contains(&fixed), "{}", r.stderr);
    // The largest event the fixed heap takes: a fixed heap cannot grow, so it must not run out.
    let r = run(&event_of(MAX_EVENT_BYTES));
    assert!(r.stderr.contains(&fixed), "{}", r.stderr);
    // One byte more, and SQLite keeps the system allocator, saying why.
    let r = run(&event_of(MAX_EVENT_BYTES + 1));
    assert!(
        r.stderr.contains(&format!(
            "sqlite: the system allocator (the event is {} bytes",
            MAX_EVENT_BYTES + 1
        )),
        "{}",
        r.stderr
    );
    // All three recorded whole, and applied.
    let conn = db(&sb);
    let mut st = conn
        .prepare("SELECT length(raw) FROM events ORDER BY id")
        .unwrap();
    let lengths: Vec<i64> = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lengths.len(), 3);
    assert!(lengths[1] as usize > MAX_EVENT_BYTES, "{lengths:?}");
    assert!(lengths[2] > lengths[1], "{lengths:?}");
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events WHERE status = 'applied'"),
        3
    );
}

#[test]
fn a_fixed_heap_that_runs_out_loses_nothing_the_handler_records_again_on_the_system_allocator() {
    let sb = html_sandbox("heap-out", DB);
    // 4 MiB is too small for the largest event allowed on the fixed heap (see the test above).
    let mut c = sb.cmd(&["monit", "--log-level", "debug"]);
    c.env("STATUSRELAY_SQLITE_HEAP", "4")
        .envs(event_of(statusrelay_spool::heap::MAX_EVENT_BYTES));
    let r: Run = c.output().unwrap().into();
    assert_code(&r, 0);
    assert!(
        r.stderr.contains("sqlite ran out of a fixed 4 MiB heap")
            && r.stderr
                .contains("nothing was recorded, so recording again on the system allocator")
            && r.stderr
                .contains("sqlite: the system allocator (STATUSRELAY_SQLITE_HEAP=system)"),
        "{}",
        r.stderr
    );
    // Recorded once: the attempt that ran out committed nothing.
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 1);
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE state = 'major_outage'"
        ),
        1
    );
}

#[test]
fn a_bad_heap_setting_is_said_and_never_stops_an_event() {
    let sb = html_sandbox("heap-setting", DB);
    let mut c = sb.cmd(&["monit"]);
    c.env("STATUSRELAY_SQLITE_HEAP", "lots")
        .env("MONIT_SERVICE", "mysql")
        .env("MONIT_EVENT", "Does not exist");
    let r: Run = c.output().unwrap().into();
    assert_code(&r, 0);
    assert!(
        r.stderr.contains(
            "warn: sqlite: the system allocator (STATUSRELAY_SQLITE_HEAP=\"lots\" is neither 'system' nor a size in MiB from 1 to 32)"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 1);
}

#[test]
fn an_unknown_service_is_exit_65_and_replayable_after_the_config_is_fixed() {
    let sb = html_sandbox("unknown", DB);
    let r = monit(&sb, &fail("nginx"));
    assert_code(&r, 65);
    assert!(
        r.stderr.contains("\"nginx\" matches no [[component]]"),
        "{}",
        r.stderr
    );
    // The operator adds nginx to a component and replays.
    sb.write("config.toml", &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n"));
    let r = sb.run(&["replay", "--rejected"]);
    assert_code(&r, 0);
    assert!(
        r.stdout.contains("applied; web -> major_outage"),
        "{}",
        r.stdout
    );
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events WHERE status = 'rejected'"),
        0
    );
}

#[test]
fn a_broken_config_is_exit_78_and_the_event_lands_in_the_named_spool() {
    let sb = html_sandbox("broken", DB);
    sb.write(
        "config.toml",
        "spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndri = \"www\"\n",
    );
    let r = monit(&sb, &fail("mysql"));
    assert_code(&r, 78);
    assert!(
        r.stderr.contains("unknown field `dri`") && r.stderr.contains("line 4: backend.dri"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("replay --rejected"), "{}", r.stderr);
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM events WHERE status = 'rejected' AND error LIKE 'config error:%'"
        ),
        1
    );
    // Once fixed, the event is applied with its original sequence number.
    sb.write(
        "config.toml",
        &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}"),
    );
    assert_code(&sb.run(&["replay", "--rejected"]), 0);
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE component = 'db cluster' AND state = 'major_outage'"
        ),
        1
    );
}

#[test]
fn the_config_can_come_from_statusrelay_config() {
    let sb = html_sandbox("envconfig", DB);
    let r: Run = std::process::Command::new(BIN)
        .env_clear()
        .env("STATUSRELAY_CONFIG", sb.path("config.toml"))
        .current_dir(&sb.dir)
        .arg("check")
        .output()
        .unwrap()
        .into();
    assert_code(&r, 0);
    assert!(
        r.stdout
            .contains("component \"db cluster\" <- mysql, mysql-*"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_missing_explicit_config_is_exit_78_naming_the_file() {
    let sb = html_sandbox("noconfig", DB);
    std::fs::remove_file(sb.path("config.toml")).unwrap();
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert!(
        r.stderr.contains("config.toml") && r.stderr.contains("No such file"),
        "{}",
        r.stderr
    );
}

#[test]
fn fifty_concurrent_handlers_lose_no_event_while_the_flusher_runs() {
    let sb = html_sandbox("concurrent", DB);
    // Create the spool first so the race is on writes, as on a live node.
    assert_code(&monit(&sb, &ok("mysql")), 0);
    let mut flusher = sb.spawn_flush();
    let children: Vec<_> = (0..50)
        .map(|i| {
            let mut c = sb.cmd(&["monit"]);
            let svc = format!("mysql-{i}");
            let ev = if i % 2 == 0 {
                "Does not exist"
            } else {
                "Connection failed"
            };
            c.env("MONIT_SERVICE", &svc)
                .env("MONIT_EVENT", ev)
                .env("MONIT_HOST", format!("node{}", i % 5));
            c.stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ch in children {
        let out = ch.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 51);
    assert_eq!(
        count(&sb, "SELECT count(*) FROM tests WHERE state IS NOT NULL"),
        50
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE state = 'major_outage'"
        ),
        1
    );
    // The flusher settles on the final state.
    assert!(wait_until(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(sb.path("www/status.json"))
            .is_ok_and(|t| t.contains("\"major_outage\""))
            && count(
                &sb,
                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')",
            ) == 0
    }));
    signal(&flusher, "TERM");
    assert!(flusher.wait().unwrap().success());
}

#[test]
fn event_command_sets_a_state_per_source_and_validates_input() {
    let sb = html_sandbox("eventcmd", DB);
    let r = sb.run(&[
        "event",
        "--component",
        "db cluster",
        "--status",
        "partial_outage",
        "--message",
        "failover drill",
        "--source",
        "cron",
    ]);
    assert_code(&r, 0);
    assert!(
        r.stdout.contains("db cluster: none -> partial_outage"),
        "{}",
        r.stdout
    );
    // Monit reports a worse failure; the cron source's recovery must not hide it.
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&[
        "event",
        "--component",
        "db cluster",
        "--status",
        "operational",
        "--source",
        "cron",
    ]);
    assert!(r.stdout.contains("no state change"), "{}", r.stdout);
    let r = sb.run(&["event", "--component", "db cluster", "--status", "down"]);
    assert_code(&r, 64);
    assert!(r.stderr.contains("unknown state \"down\""), "{}", r.stderr);
    let r = sb.run(&["event", "--component", "nope", "--status", "operational"]);
    assert_code(&r, 64);
    assert!(
        r.stderr.contains("no component named \"nope\""),
        "{}",
        r.stderr
    );
}
