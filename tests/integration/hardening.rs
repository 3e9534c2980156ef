//! Issue 13: the defects found by attacking the shipped binary from the outside. Each test
//! failed against the product before its fix; the item number is in the test's doc line.

use std::time::Duration;

use crate::support::*;

/// Item 1: Monit split `--component db cluster`; the words are rejoined when they name a
/// component, and otherwise the event is kept as rejected (exit 64), never dropped.
#[test]
fn words_monit_split_off_a_component_name_lose_nothing() {
    let sb = html_sandbox("hd-split", DB);
    let r = sb.monit(
        &[
            ("MONIT_SERVICE", "probe"),
            ("MONIT_EVENT", "Does not exist"),
        ],
        &["--component", "db", "cluster"],
    );
    assert_code(&r, 0);
    assert_contains(&r.stderr, "regenerate the exec lines");
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE component = 'db cluster' AND state = 'major_outage'"
        ),
        1
    );
    let r = sb.monit(
        &[
            ("MONIT_SERVICE", "probe"),
            ("MONIT_EVENT", "Does not exist"),
        ],
        &["--component", "db", "clusters"],
    );
    assert_code(&r, 64);
    assert_contains(&r.stderr, "unexpected arguments");
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events WHERE status = 'rejected'"),
        1
    );
    // The slug names it too.
    let r = sb.monit(
        &[("MONIT_SERVICE", "probe"), ("MONIT_EVENT", "Exists")],
        &["--component", "db-cluster"],
    );
    assert_code(&r, 0);
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM desired WHERE component = 'db cluster' AND state = 'operational'"
        ),
        1
    );
}

/// Item 1: `monit-config` refuses a binary or config path Monit would split.
#[test]
fn monit_config_refuses_paths_monit_would_split() {
    let sb = html_sandbox(
        "hd-split-path",
        &format!(
            "{DB}[[check]]\nservice = \"mysql\"\ntype = \"process\"\ntarget = 'matching \"mysqld\"'\ntests = [\"does not exist\"]\n"
        ),
    );
    let r = sb.run(&["monit-config", "--bin", "/opt/my tools/statusrelay"]);
    assert_code(&r, 64);
    assert_contains(&r.stderr, "without spaces");
    std::fs::create_dir(sb.path("my dir")).unwrap();
    std::fs::copy(sb.path("config.toml"), sb.path("my dir/config.toml")).unwrap();
    let r: Run = sb
        .cmd(&[
            "monit-config",
            "--config",
            sb.path("my dir/config.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap()
        .into();
    assert_code(&r, 64);
    assert_contains(&r.stderr, "config path");
}

/// Damage the root page of every table and index (not the header, not the schema, so opening
/// the spool succeeds and only reading or writing a table fails), after a checkpoint so the
/// WAL holds nothing.
fn damage_btree_pages(sb: &Sandbox) {
    let roots: Vec<i64> = {
        let c = db(sb);
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let mut st = c
            .prepare("SELECT rootpage FROM sqlite_master WHERE rootpage > 1")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let path = sb.spool_path();
    let mut bytes = std::fs::read(&path).unwrap();
    for root in roots {
        let start = (root as usize - 1) * 4096;
        for (i, b) in bytes[start..start + 4096].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
    }
    std::fs::write(&path, bytes).unwrap();
}

fn corrupt_files(sb: &Sandbox) -> usize {
    std::fs::read_dir(&sb.dir)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.starts_with("spool.db.corrupt-") && !n.ends_with("-wal") && !n.ends_with("-shm")
        })
        .count()
}

/// Item 2: a spool with a damaged b-tree page (not the header) was neither detected nor moved
/// aside: every handler exited 74 and recorded nothing while `flush --once` and `status` said
/// nothing. Now each of them moves it aside loudly and carries on with a fresh spool.
#[test]
fn a_partly_corrupt_spool_is_moved_aside_by_the_handler_the_flusher_and_status() {
    let sb = html_sandbox("hd-corrupt", DB);
    let failing = || {
        for i in 0..30 {
            assert_code(&monit(&sb, &fail(&format!("mysql-{i}"))), 0);
        }
    };
    // Each in turn meets a damaged spool: it moves it aside, says so, and carries on. No
    // arguments: the handler, recording an event of mysql.
    let runs: [&[&str]; 3] = [&[], &["flush", "--once"], &["status", "--json"]];
    for (n, args) in runs.iter().enumerate() {
        failing();
        damage_btree_pages(&sb);
        let r = if args.is_empty() {
            monit(&sb, &fail("mysql"))
        } else {
            sb.run(args)
        };
        assert_code(&r, 0);
        assert_contains(&r.stderr, "is corrupt");
        assert_contains(&r.stderr, "moved to");
        assert_eq!(corrupt_files(&sb), n + 1, "{args:?}");
        if args.is_empty() {
            assert_eq!(
                count(&sb, "SELECT count(*) FROM events"),
                1,
                "the event is in the fresh spool"
            );
        }
    }
    // After status, the next event is recorded in its fresh spool too.
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 1);
}

/// Item 4: the flusher exited when the spool stayed locked past the 10 s busy timeout (an
/// operator's sqlite3 session); a daemon waits and carries on.
#[test]
fn the_flusher_waits_out_a_spool_locked_for_long() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("hd-locked", &fake, DB);
    let mut flusher = LiveFlusher::start(&sb);
    flusher.wait_log("flushing", Duration::from_secs(10));
    let holder = db(&sb);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // The heartbeat (every 5 s) meets the lock and gives up after 10 s: that is the moment.
    flusher.wait_log("waiting for it and carrying on", Duration::from_secs(40));
    assert!(flusher.running(), "the flusher exited:\n{}", flusher.log());
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == [(2, 4)]),
        "{:?}\n{}",
        fake.puts(),
        flusher.log()
    );
    let (code, _, _) = flusher.stop();
    assert_eq!(code, 0);
}

/// Item 5: a spool file removed (or its directory swapped) while the flusher runs: the
/// handler starts a fresh spool, and the flusher used to keep reading the deleted file,
/// delivering nothing, saying nothing, while a second flusher could start beside it.
#[test]
fn the_flusher_notices_its_spool_was_replaced_and_reopens_it() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("hd-replaced", &fake, DB);
    std::fs::create_dir(sb.path("state")).unwrap();
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace("spool = \"spool.db\"", "spool = \"state/spool.db\""),
    );
    let flusher = LiveFlusher::start(&sb);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == [(2, 4)]),
        "{:?}\n{}",
        fake.puts(),
        flusher.log()
    );
    // The whole directory goes (a restore, a careless clean-up) and comes back empty.
    std::fs::rename(sb.path("state"), sb.path("state.old")).unwrap();
    std::fs::create_dir(sb.path("state")).unwrap();
    assert_code(&monit(&sb, &ok("mysql")), 0);
    flusher.wait_log("was removed or replaced", Duration::from_secs(10));
    assert!(
        wait_until(Duration::from_secs(20), || fake.puts() == [(2, 4), (2, 1)]),
        "{:?}\n{}",
        fake.puts(),
        flusher.log()
    );
    // The lock moved with the spool: a second flusher is refused.
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert_contains(&r.stderr, "another statusrelay already delivers");
    let (code, _, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
}

/// Item 6: events kept while the config had a syntax error went to the default spool with the
/// advice "fix the config, then `replay --rejected`", which found nothing once the fixed config
/// named its own spool. Now the spool line of the broken file is honoured, and the advice names
/// the command that works (`--from`), which never lets a moved event override a newer one.
#[test]
fn events_kept_during_a_config_syntax_error_are_found_by_the_advised_command() {
    let sb = html_sandbox("hd-stranded", DB);
    sb.write(
        "config.toml",
        "spool = \"kept.db\"\n[backend\nkind = \"html\"\n",
    );
    let r = monit(&sb, &fail("mysql"));
    assert_code(&r, 78);
    let r2 = monit(&sb, &fail("mysql-2"));
    assert_code(&r2, 78);
    assert!(sb.path("kept.db").exists(), "{}", r.stderr);
    let hint = r
        .stderr
        .split('`')
        .find(|s| s.starts_with("statusrelay replay"))
        .unwrap_or_else(|| panic!("no command in {}", r.stderr))
        .to_string();
    assert!(hint.contains("--from"), "{hint}");
    // The fixed config names another spool; mysql-2 recovered since.
    sb.write(
        "config.toml",
        &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}"),
    );
    assert_code(&monit(&sb, &ok("mysql-2")), 0);
    let plain = sb.run(&["replay", "--rejected"]);
    assert_contains(&plain.stdout, "nothing to replay");
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let r = sb.run(&args);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "moved to");
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM tests WHERE service = 'mysql' AND state = 'major_outage'"
        ),
        1
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM tests WHERE service = 'mysql-2' AND state IS NOT NULL"
        ),
        0,
        "the recovery received after the moved failure stands"
    );
    let kept = rusqlite::Connection::open(sb.path("kept.db")).unwrap();
    let left: i64 = kept
        .query_row(
            "SELECT count(*) FROM events WHERE status = 'rejected'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "moved events are marked in the old spool");
    // Twice is harmless.
    let again = sb.run(&args);
    assert_contains(&again.stdout, "nothing to replay");
}

/// Item 7: a bad token dead-letters major_outage; the token is fixed; the recovery is
/// delivered; `replay --dead` (the dead letter's own advice) then sent major_outage again and
/// the page showed an outage that had ended. A superseded dead letter is never sent.
#[test]
fn replay_dead_never_sends_a_state_the_page_has_moved_past() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("hd-deadold", &fake, DB);
    sb.write("token", "wrong-token\n");
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["flush", "--once"]);
    assert_contains(&r.stderr, "dead-lettered");
    assert_eq!(
        count(&sb, "SELECT count(*) FROM outbox WHERE status = 'dead'"),
        1
    );
    sb.write("token", &format!("{TOKEN}\n"));
    assert_code(&monit(&sb, &ok("mysql")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    assert_eq!(fake.puts(), [(2, 1)]);
    let r = sb.run(&["replay", "--dead"]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "superseded by delivery");
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    assert!(r.stdout.starts_with("0 sent"), "{}", r.stdout);
    assert_eq!(fake.puts(), [(2, 1)], "the page stays operational");
    // By id, the same.
    let id: i64 = db(&sb)
        .query_row("SELECT id FROM outbox WHERE status = 'dead'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let r = sb.run(&["replay", &id.to_string()]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "not sent");
}

/// A sandbox against `fake` with a 1 s client timeout and reads back after 8 s. The late
/// requests below are held 5-6 s: seconds of margin either side on a loaded machine.
fn late_sandbox(name: &str, fake: &FakeCachet, components: &str) -> Sandbox {
    let sb = cachet_sandbox(name, fake, components);
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace("timeout = \"2s\"", "timeout = \"1s\"")
            .replace("[delivery]\n", "[delivery]\nverify_after = \"8s\"\n"),
    );
    sb
}

/// Item 8: a PUT that outlives the client's timeout is carried out late by the server, after
/// the later PUT of the recovery: the page showed Major Outage while `status` said
/// operational, and nothing looked again. The component is now read back after a write whose
/// outcome is unknown, and repaired.
#[test]
fn a_late_write_that_lands_over_a_newer_one_is_found_and_repaired() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = late_sandbox("hd-latewrite", &fake, DB);
    fake.push_fault_on(
        "PUT",
        "/api/v1/components/2",
        Fault::Slow(Duration::from_secs(5)),
    );
    let flusher = LiveFlusher::start(&sb);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    flusher.wait_log("retry delivery", Duration::from_secs(10));
    assert_code(&monit(&sb, &ok("mysql")), 0);
    // The recovery is sent, then the late outage lands over it.
    assert!(
        wait_until(Duration::from_secs(10), || fake.puts() == [(2, 1), (2, 4)]),
        "{:?}\n{}",
        fake.puts(),
        flusher.log()
    );
    flusher.wait_log("was carried out late", Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(10), || fake.status_of(2) == Some(1)),
        "the page still shows {:?}: {:?}\n{}",
        fake.status_of(2),
        fake.puts(),
        flusher.log()
    );
    let (code, _, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
}

/// Item 8: an incident POST that outlives the timeout: the retry's lookup ran before the late
/// POST landed, so a second incident was opened; the late one then appeared and statusrelay
/// took it for a human's, holding the recovery until a person closed it. Its incidents carry a
/// marker now: the late one is recognised and resolved with the other.
#[test]
fn a_late_incident_post_is_recognised_as_statusrelays_own() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = late_sandbox(
        "hd-lateinc",
        &fake,
        "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\nincidents = true\n",
    );
    fake.push_fault_on(
        "POST",
        "/api/v1/incidents",
        Fault::Slow(Duration::from_secs(6)),
    );
    let flusher = LiveFlusher::start(&sb);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert!(
        wait_until(Duration::from_secs(15), || fake.incidents().len() == 2),
        "the retry opens one, then the late one lands: {:?}\n{}",
        fake.incidents(),
        flusher.log()
    );
    assert!(
        fake.incidents()
            .iter()
            .all(|i| i.message.contains("[statusrelay ")),
        "{:?}",
        fake.incidents()
    );
    assert_code(&monit(&sb, &ok("mysql")), 0);
    assert!(
        wait_until(Duration::from_secs(15), || fake.status_of(2) == Some(1)
            && fake.incidents().iter().all(|i| i.status == 4)),
        "{:?} {:?}\n{}",
        fake.status_of(2),
        fake.incidents(),
        flusher.log()
    );
    let log = flusher.log();
    assert!(!log.contains("manual incident"), "{log}");
    assert!(log.contains("a duplicate of"), "{log}");
    let (code, _, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
}

/// A server that answers every request by echoing the token it was sent, as a framework's
/// debug page, a 401 body or a redirect's Location do. `mode`: 0 = 500, 1 = 401, 2 = 302.
fn echo_server(mode: std::sync::Arc<std::sync::atomic::AtomicUsize>) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(200) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !String::from_utf8_lossy(&buf).contains("\r\n\r\n") {
                match conn.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let req = String::from_utf8_lossy(&buf).to_string();
            let token = req
                .lines()
                .find_map(|l| {
                    l.strip_prefix("X-Cachet-Token: ")
                        .or_else(|| l.strip_prefix("x-cachet-token: "))
                })
                .unwrap_or("none")
                .trim()
                .to_string();
            let resp = match mode.load(std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    let body =
                        format!("{{\"message\":\"Whoops! debug: HTTP_X_CACHET_TOKEN={token}\"}}");
                    format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                1 => {
                    let body = format!("token {token} is not valid");
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                _ => format!(
                    "HTTP/1.1 302 Found\r\nLocation: https://login.example.invalid/?api_token={token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    port
}

/// Item 9: a server that echoes the token (a debug page, a 401 body, a redirect) had it kept
/// verbatim in the spool and printed by the logs, `queue`, `status --json` and `check --online`.
#[test]
fn a_token_the_server_echoes_is_never_stored_or_printed() {
    let mode = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let port = echo_server(mode.clone());
    let sb = Sandbox::new(BIN, "hd-echo");
    sb.write("token", &format!("{TOKEN}\n"));
    sb.write(
        "config.toml",
        &format!(
            "spool = \"spool.db\"\n[backend]\nkind = \"cachet\"\nurl = \"http://127.0.0.1:{port}\"\ntoken_file = \"token\"\ntimeout = \"2s\"\nversion = \"2.4\"\n[delivery]\nbackoff_base = \"200ms\"\nbackoff_cap = \"1s\"\n[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n"
        ),
    );
    std::fs::set_permissions(
        sb.path("token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let mut seen = String::new();
    for m in 0..3 {
        mode.store(m, std::sync::atomic::Ordering::SeqCst);
        let r = sb.run(&["flush", "--once"]);
        seen.push_str(&r.stderr);
        assert!(r.stderr.contains("<redacted>"), "mode {m}: {}", r.stderr);
        for args in [
            &["queue"][..],
            &["queue", "--json"],
            &["status", "--json"],
            &["check", "--online"],
        ] {
            let r = sb.run(args);
            seen.push_str(&r.stdout);
            seen.push_str(&r.stderr);
        }
        assert_code(&sb.run(&["replay", "--dead"]), 0);
    }
    assert!(!seen.contains(TOKEN), "the token was printed:\n{seen}");
    let stored: String = db(&sb)
        .query_row(
            "SELECT group_concat(coalesce(last_error, ''), ' ') || (SELECT coalesce(last_error, '') FROM flusher) FROM outbox",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.contains("<redacted>"), "{stored}");
    let bytes = std::fs::read(sb.spool_path()).unwrap();
    let wal = std::fs::read(sb.path("spool.db-wal")).unwrap_or_default();
    for b in [bytes, wal] {
        assert!(
            !b.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is stored in the spool"
        );
    }
}

/// Item 11: a description with ANSI colour codes (common in `check program` output) made
/// `feed.atom` invalid XML, and feed readers drop a whole invalid feed. Any input now gives a
/// well-formed feed and valid JSON.
#[test]
fn control_characters_never_break_the_feed_or_status_json() {
    let sb = html_sandbox("hd-ansi", DB);
    let nasty = "\u{1b}[31mFAILED\u{1b}[0m: exit \u{1}\u{7}\u{8}\u{b}\u{c}\u{1f}\u{7f}\u{85}\u{fffe} done\r\n<&>";
    let mut ev = fail("mysql");
    ev[2].1 = nasty.to_string();
    assert_code(&monit(&sb, &ev), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let mut ev2 = ok("mysql");
    ev2[2].1 = nasty.to_string();
    assert_code(&monit(&sb, &ev2), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let feed = std::fs::read_to_string(sb.path("www/feed.atom")).unwrap();
    let doc = roxmltree::Document::parse(&feed)
        .unwrap_or_else(|e| panic!("feed.atom is not XML ({e}):\n{feed:?}"));
    let text: String = doc
        .descendants()
        .filter(|n| n.has_tag_name("content"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        text.contains("FAILED: exit") && text.contains("done"),
        "{text:?}"
    );
    assert!(
        !text.contains("[31m"),
        "the colour sequence goes whole: {text:?}"
    );
    let json = std::fs::read_to_string(sb.path("www/status.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&json).expect("status.json is JSON");
    let html = std::fs::read_to_string(sb.path("www/index.html")).unwrap();
    assert!(!html.contains('\u{1b}') && !html.contains('\u{7}'));
}

/// A server that accepts every connection and never answers; counts the connections.
fn silent_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(50) {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn);
        }
    });
    (port, n)
}

fn cachet_config(url: &str, extra_backend: &str) -> String {
    format!(
        "spool = \"spool.db\"\n[backend]\nkind = \"cachet\"\nurl = \"{url}\"\ntoken_file = \"token\"\nversion = \"2.4\"\nschedules = \"off\"\n{extra_backend}[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n"
    )
}

/// Item 12: against a server that never answers, SIGTERM waited for the request's timeout
/// (28.7 s, and past the unit's TimeoutStopSec with `timeout = "30s"`), starting more requests.
/// It now abandons the request in flight at once; the delivery stays pending, nothing is lost.
#[test]
fn sigterm_ends_the_flusher_at_once_with_a_request_in_flight() {
    let (port, connections) = silent_server();
    let sb = Sandbox::new(BIN, "hd-sigterm");
    sb.write("token", &format!("{TOKEN}\n"));
    sb.write(
        "config.toml",
        &cachet_config(
            &format!("http://127.0.0.1:{port}"),
            "timeout = \"30s\"\nmin_interval = \"10ms\"\n",
        ),
    );
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let flusher = LiveFlusher::start(&sb);
    assert!(
        wait_until(Duration::from_secs(10), || connections
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1),
        "the request never arrived:\n{}",
        flusher.log()
    );
    let (code, took, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?}:\n{log}"
    );
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no request started after SIGTERM"
    );
    assert!(log.contains("abandoned in flight"), "{log}");
    assert_eq!(
        count(&sb, "SELECT count(*) FROM outbox WHERE status = 'pending'"),
        1,
        "the delivery waits for the next start"
    );
}

/// Item 12: pacing (`min_interval`) was an uninterruptible sleep: at "1m" SIGTERM waited over
/// 40 s, and at "1h" `flush --once` and `check --online` slept an hour. Pacing now yields to
/// SIGTERM, and `check` bounds the interval.
#[test]
fn sigterm_interrupts_pacing_and_check_bounds_min_interval() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = Sandbox::new(BIN, "hd-pacing");
    sb.write("token", &format!("{TOKEN}\n"));
    sb.write(
        "config.toml",
        &cachet_config(&fake.url(), "min_interval = \"1h\"\n"),
    );
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert!(
        r.stderr.contains("backend.min_interval") && r.stderr.contains("at most 60s"),
        "{}",
        r.stderr
    );
    sb.write(
        "config.toml",
        &cachet_config(&fake.url(), "min_interval = \"60s\"\n"),
    );
    assert_code(&sb.run(&["check"]), 0);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let flusher = LiveFlusher::start(&sb);
    flusher.wait_log("flushing", Duration::from_secs(10));
    let (code, took, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?}:\n{log}"
    );
    assert_eq!(fake.arrivals(), 0, "nothing was sent while pacing");
    assert_eq!(
        count(&sb, "SELECT count(*) FROM outbox WHERE status = 'pending'"),
        1
    );
}

/// Item 13: a config path that is a FIFO hung every command reading it, the handler first
/// (Monit piles up blocked handlers). Each now refuses it at once, exit 78, naming it.
#[test]
fn a_fifo_at_the_config_path_is_refused_not_waited_on() {
    let sb = Sandbox::new(BIN, "hd-fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(sb.path("config.toml"))
            .status()
            .unwrap()
            .success()
    );
    for args in [
        &["check"][..],
        &["event", "--component", "db", "--status", "major_outage"],
        &["status"],
    ] {
        let mut child = sb
            .cmd(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let done = wait_until(Duration::from_secs(10), || {
            child.try_wait().unwrap().is_some()
        });
        if !done {
            let _ = child.kill();
        }
        let r: Run = child.wait_with_output().unwrap().into();
        assert!(done, "{args:?} hung on the FIFO");
        assert_code(&r, 78);
        assert_contains(&r.stderr, "a FIFO");
    }
}

/// Item 14: under an address-space limit below about 48 MB (`ulimit -v`) every command,
/// `--version` included, segfaulted: the handler's fixed SQLite heap and the allocator's arena
/// were 40 MB of static memory, paid by every command. Both are now reserved at run time by
/// the handler alone, and not at all under a limit: the handler degrades to the system
/// allocator and records the event.
#[test]
fn every_command_runs_under_a_tight_address_space_limit() {
    let sb = html_sandbox("hd-ulimit", DB);
    let under_limit = |cmd: &str| -> Run {
        std::process::Command::new("sh")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MONIT_SERVICE", "mysql")
            .env("MONIT_EVENT", "Does not exist")
            .env("MONIT_HOST", "node1")
            .current_dir(&sb.dir)
            .arg("-c")
            .arg(format!(
                "ulimit -v 30000 && exec \"$0\" --config config.toml --log-level debug {cmd}"
            ))
            .arg(BIN)
            .output()
            .unwrap()
            .into()
    };
    let r = under_limit("--version");
    assert_code(&r, 0);
    let r = under_limit("monit");
    assert_code(&r, 0);
    assert!(
        r.stderr
            .contains("the system allocator (the address space is limited"),
        "{}",
        r.stderr
    );
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 1);
    assert_code(&under_limit("status"), 0);
    assert_code(&under_limit("flush --once"), 0);
    assert!(
        std::fs::read_to_string(sb.path("www/index.html"))
            .unwrap()
            .contains("db cluster")
    );
}

/// Item 15: permanent spool failures (the spool path is a directory, a read-only file system)
/// said 75 "retry later"; they are 74, with the hint. Lock contention and a full disk stay 75.
#[test]
fn a_spool_that_cannot_be_written_is_74_not_retry_later() {
    let sb = html_sandbox("hd-74", DB);
    std::fs::create_dir(sb.path("spool.db")).unwrap();
    let r = monit(&sb, &fail("mysql"));
    assert_code(&r, 74);
    assert_contains(&r.stderr, "the spool path must be a file");
    std::fs::remove_dir(sb.path("spool.db")).unwrap();
    // A read-only file system, in a mount namespace of the test's own (root only).
    if !can_run(
        (!is_root()).then_some("the read-only file system case mounts a tmpfs, which needs root"),
    ) {
        return;
    }
    std::fs::create_dir(sb.path("ro")).unwrap();
    let cfg = format!("spool = \"ro/spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}");
    sb.write("config.toml", &cfg);
    let r: Run = std::process::Command::new("unshare")
        .env_clear()
        .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
        .env("MONIT_SERVICE", "mysql")
        .env("MONIT_EVENT", "Does not exist")
        .current_dir(&sb.dir)
        .args([
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs -o ro tmpfs ro && exec \"$0\" --config config.toml monit",
        ])
        .arg(BIN)
        .output()
        .unwrap()
        .into();
    assert_code(&r, 74);
    assert_contains(&r.stderr, "on a writable file system");
}

/// Item 15: a spool written by a newer statusrelay (after a downgrade) is 78, now documented,
/// and says what to do.
#[test]
fn a_spool_from_a_newer_statusrelay_is_78_and_says_upgrade() {
    let sb = html_sandbox("hd-toonew", DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    db(&sb).pragma_update(None, "user_version", 99).unwrap();
    let r = monit(&sb, &ok("mysql"));
    assert_code(&r, 78);
    assert!(
        r.stderr.contains("newer than this statusrelay understands")
            && r.stderr.contains("upgrade statusrelay"),
        "{}",
        r.stderr
    );
}

/// Item 16: what was accepted silently, or said in words that tell an operator nothing.
#[test]
fn check_refuses_or_warns_about_what_was_accepted_silently() {
    let sb = html_sandbox("hd-check", DB);
    let html = "[backend]\nkind = \"html\"\ndir = \"www\"\n";
    let expect = |cfg: &str, code: i32, words: &str| {
        sb.write("config.toml", cfg);
        let r = sb.run(&["check"]);
        assert_code(&r, code);
        assert!(
            r.stdout.contains(words) || r.stderr.contains(words),
            "{words:?} not in:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    };
    expect(
        &format!("spool = \"s.db\"\n{html}[delivery]\nmax_age = \"0s\"\n"),
        78,
        "delivery.max_age: must be more than 0s",
    );
    expect(&format!("spool = \"\"\n{html}"), 78, "spool: is empty");
    expect(
        &format!(
            "spool = \"s.db\"\n{html}[[component]]\nname = \"DB\"\n[[component]]\nname = \"db\"\n"
        ),
        78,
        "differ only in case",
    );
    expect(
        &format!(
            "spool = \"s.db\"\n{html}[[component]]\nname = \"db\"\nservices = [\"mysql*\"]\n[[component]]\nname = \"replicas\"\nservices = [\"*-replica\"]\n"
        ),
        0,
        "warning: components \"db\" and \"replicas\" are fed by overlapping service patterns",
    );
    expect(
        &format!(
            "spool = \"s.db\"\n{html}groups = [{{ name = \"Backend\", components = [\"mysql\"] }}]\n"
        ),
        0,
        "warning: backend.groups names components, but no [[component]] is configured",
    );
    // A token file saved with a byte-order mark passed check, then every request was a 401.
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let cachet = cachet_sandbox("hd-check-bom", &fake, DB);
    cachet.write("token", &format!("\u{feff}{TOKEN}\n"));
    let r = cachet.run(&["check"]);
    assert_code(&r, 78);
    assert_contains(&r.stderr, "byte-order mark");
    cachet.write("token", &format!("{TOKEN}\n"));
    // A 403 is a refused token, not an unreachable page.
    fake.push_faults([Fault::Status(403)]);
    let r = cachet.run(&["check", "--online"]);
    assert_code(&r, 69);
    assert!(
        r.stdout
            .contains("is reachable but refused the token (HTTP 403"),
        "{}",
        r.stdout
    );
    // TLS to a plain-http port: the server answers the handshake with a plain 400, as web
    // servers do.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for conn in plain.incoming().take(5) {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let cfg = std::fs::read_to_string(cachet.path("config.toml")).unwrap();
    cachet.write(
        "config.toml",
        &cfg.replace(&fake.url(), &format!("https://127.0.0.1:{plain_port}")),
    );
    let r = cachet.run(&["check", "--online"]);
    assert_code(&r, 69);
    assert!(
        r.stdout
            .contains("did not answer in TLS: is this a plain-http port?"),
        "{}",
        r.stdout
    );
    // A window so long that its end overflowed the date.
    sb.write("config.toml", &format!("spool = \"s.db\"\n{html}{DB}"));
    let r = sb.run(&[
        "maintenance",
        "start",
        "--component",
        "db cluster",
        "--for",
        "106751992d",
    ]);
    assert_code(&r, 64);
    assert_contains(&r.stderr, "at most 366 days");
    // Monit that does not answer: a timeout, said as one.
    let (port, _) = silent_server();
    sb.write(
        "config.toml",
        &format!("spool = \"s.db\"\n{html}{DB}[monit]\nurl = \"http://127.0.0.1:{port}\"\ntimeout = \"1s\"\n"),
    );
    let r = sb.run(&["resync"]);
    assert_code(&r, 69);
    assert!(
        r.stderr
            .contains("Monit did not answer within monit.timeout"),
        "{}",
        r.stderr
    );
}
