//! The flusher against the strict fake Cachet 2.x, through the real binary.

use std::time::{Duration, Instant};

use crate::support::*;

fn puts_to(fake: &FakeCachet, id: u64) -> Vec<i64> {
    fake.puts()
        .into_iter()
        .filter(|(i, _)| *i == id)
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn an_event_recorded_while_the_api_is_down_is_delivered_when_it_returns() {
    let mut fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("down", &fake, DB);
    fake.stop();
    let t = Instant::now();
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the handler never waits for the network"
    );
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert!(
        r.stderr
            .contains("retry delivery 1 (db cluster: major_outage)")
            && r.stderr.contains("network error"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("1 deliveries still pending"),
        "{}",
        r.stderr
    );
    let q = sb.run(&["queue"]);
    assert!(
        q.stdout.contains("pending") && q.stdout.contains("major_outage"),
        "{}",
        q.stdout
    );
    fake.resume();
    assert_code(&sb.run(&["replay"]), 0);
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    assert_eq!(puts_to(&fake, 2), vec![4]);
    assert_eq!(fake.status_of(2), Some(4));
}

#[test]
fn a_401_is_dead_lettered_with_the_reason_and_replay_dead_delivers_after_the_fix() {
    let fake = FakeCachet::start("the-real-token", &[(2, "db cluster")]);
    let sb = cachet_sandbox("auth", &fake, DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    assert!(r.stdout.contains("1 dead-lettered"), "{}", r.stdout);
    assert!(
        r.stderr.contains("HTTP 401") && r.stderr.contains("You are not authorized"),
        "{}",
        r.stderr
    );
    let q = sb.run(&["queue", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&q.stdout).unwrap();
    assert_eq!(v["deliveries"][0]["status"], "dead");
    assert!(
        v["deliveries"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("HTTP 401")
    );
    assert!(fake.puts().is_empty());
    // The operator fixes the token and replays the dead letter.
    sb.write("token", "the-real-token\n");
    let r = sb.run(&["replay", "--dead", "--dry-run"]);
    assert!(
        r.stdout.contains("delivery 1: would be sent now") && r.stdout.contains("dry run"),
        "{}",
        r.stdout
    );
    assert_code(&sb.run(&["replay", "--dead"]), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    assert_eq!(puts_to(&fake, 2), vec![4]);
}

#[test]
fn the_token_never_reaches_logs_or_queue_output() {
    let fake = FakeCachet::start("other", &[(2, "db cluster")]);
    let sb = cachet_sandbox("secret", &fake, DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["flush", "--once", "--log-level", "debug"]);
    let q = sb.run(&["queue", "--json"]);
    let s = sb.run(&["status"]);
    for text in [&r.stdout, &r.stderr, &q.stdout, &s.stdout] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    let dump: String = db(&sb)
        .query_row(
            "SELECT group_concat(coalesce(last_error, '')) FROM outbox",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!dump.contains(TOKEN));
}

#[test]
fn an_unknown_component_id_is_dead_lettered_with_the_404() {
    // The config names id 9; the page has only id 2: the page's 404 is final, not retried.
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox(
        "notfound",
        &fake,
        "[[component]]\nname = \"db cluster\"\nid = 9\nservices = [\"mysql\"]\n",
    );
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["flush", "--once"]);
    assert!(
        r.stderr.contains("HTTP 404") && r.stderr.contains("dead-lettered"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("retry delivery"), "{}", r.stderr);
}

#[test]
fn superseded_states_are_coalesced_and_a_state_already_shown_is_not_resent() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("coalesce", &fake, DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_code(&monit(&sb, &ok("mysql")), 0);
    let mut conn_fail = fail("mysql");
    conn_fail[1].1 = "Connection failed".into();
    assert_code(&monit(&sb, &conn_fail), 0);
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    assert!(
        r.stdout.contains("1 sent") && r.stdout.contains("2 coalesced"),
        "{}",
        r.stdout
    );
    assert_eq!(puts_to(&fake, 2), vec![4], "only the newest state is sent");
    // The name was resolved once, without a `page` parameter.
    let lookups: Vec<String> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.url.starts_with("/api/v1/components"))
        .map(|s| s.url)
        .collect();
    assert_eq!(
        lookups,
        vec!["/api/v1/components?name=db%20cluster".to_string()]
    );
    // Monit re-fires the failure after a reload: no new delivery at all.
    assert_code(&monit(&sb, &conn_fail), 0);
    assert_eq!(count(&sb, "SELECT count(*) FROM outbox"), 3);
    // Recovery then failure again before a flush: the page already shows major_outage.
    assert_code(
        &monit(&sb, &{
            let mut v = ok("mysql");
            v[1].1 = "Connection succeeded".into();
            v
        }),
        0,
    );
    assert_code(&monit(&sb, &conn_fail), 0);
    let r = sb.run(&["flush", "--once"]);
    assert!(
        r.stdout.contains("0 sent, 1 already shown, 1 coalesced"),
        "{}",
        r.stdout
    );
    assert_eq!(puts_to(&fake, 2), vec![4]);
}

#[test]
fn server_errors_are_retried_with_backoff_until_delivered() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("retry", &fake, DB);
    // The lookup succeeds, then the PUT meets two 500s and a 503.
    // The component PUT meets two 500s and a 503 (whatever else the flusher asks first).
    for f in [Fault::Status(500), Fault::Status(500), Fault::Status(503)] {
        fake.push_fault_on("PUT", "/api/v1/components/2", f);
    }
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let mut flusher = sb.spawn_flush();
    assert!(
        fake.wait_for(Duration::from_secs(20), |s| s
            .iter()
            .any(|r| r.method == "PUT" && r.answered == 200)),
        "delivered after the faults"
    );
    let puts: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 4, "three failures, then success: {puts:?}");
    // Backoff was respected: no retry storm.
    for w in puts.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(90),
            "retries too close: {:?}",
            w[1].at - w[0].at
        );
    }
    signal(&flusher, "TERM");
    let out = flusher.wait().unwrap();
    assert!(out.success());
    assert_eq!(fake.status_of(2), Some(4));
    let _ = flusher.kill();
}

#[test]
fn a_429_retry_after_is_honoured() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox(
        "ratelimit",
        &fake,
        "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n",
    );
    fake.push_fault_on("PUT", "/api/v1/components/2", Fault::RateLimit(2));
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let mut flusher = sb.spawn_flush();
    assert!(fake.wait_for(Duration::from_secs(15), |s| {
        s.iter().any(|r| r.method == "PUT" && r.answered == 200)
    }));
    let seen: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(seen[0].answered, 429);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "Retry-After 2 s, retried after {gap:?}"
    );
    signal(&flusher, "TERM");
    assert!(flusher.wait().unwrap().success());
}

#[test]
fn kill_9_mid_delivery_loses_nothing() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox(
        "kill9",
        &fake,
        "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n",
    );
    assert_code(&monit(&sb, &fail("mysql")), 0);
    // The PUT hangs in the server while the flusher is killed.
    fake.push_faults([Fault::Slow(Duration::from_secs(3))]);
    let mut flusher = sb.spawn_flush();
    assert!(wait_until(Duration::from_secs(10), || count(
        &sb,
        "SELECT count(*) FROM outbox WHERE status = 'sending'"
    ) == 1));
    signal(&flusher, "KILL");
    flusher.wait().unwrap();
    assert_eq!(
        count(&sb, "SELECT count(*) FROM outbox WHERE status = 'sending'"),
        1,
        "left in flight"
    );
    // A recovery arrives while no flusher runs.
    assert_code(&monit(&sb, &ok("mysql")), 0);
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    assert!(
        r.stderr.contains("in flight when the last flusher stopped"),
        "{}",
        r.stderr
    );
    // Whatever reached the page in between, it ends operational.
    assert!(wait_until(Duration::from_secs(5), || fake.status_of(2) == Some(1)));
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending', 'dead')"
        ),
        0
    );
}

#[test]
fn the_daemon_picks_up_new_events_within_a_second_and_stops_on_sigterm() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox(
        "daemon",
        &fake,
        "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n",
    );
    let mut flusher = sb.spawn_flush();
    assert!(wait_until(Duration::from_secs(10), || sb
        .spool_path()
        .exists()
        && sb.run(&["status"]).stdout.contains("running (pid")));
    let t = Instant::now();
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert!(fake.wait_for(Duration::from_secs(5), |s| {
        s.iter().any(|r| r.method == "PUT")
    }));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "picked up after {:?}",
        t.elapsed()
    );
    // A second flusher on the same spool refuses to start.
    let second = sb.run(&["flush"]);
    assert_code(&second, 75);
    assert!(
        second
            .stderr
            .contains("another statusrelay already delivers"),
        "{}",
        second.stderr
    );
    signal(&flusher, "TERM");
    let out = flusher.wait().unwrap();
    assert!(out.success(), "{out:?}");
    assert!(sb.run(&["status"]).stdout.contains("NOT RUNNING"));
}

#[test]
fn a_component_recreated_on_the_page_is_looked_up_again() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("recreate", &fake, DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    fake.remove_component(2);
    fake.add_component(7, "db cluster");
    assert_code(&monit(&sb, &ok("mysql")), 0);
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    assert!(
        r.stderr.contains("looking the name up again"),
        "{}",
        r.stderr
    );
    assert_eq!(puts_to(&fake, 7), vec![1]);
}

#[test]
fn replay_since_resends_after_the_page_was_restored_from_backup() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster"), (3, "web")]);
    let comps = format!("{DB}[[component]]\nname = \"web\"\nservices = [\"nginx\"]\n");
    let sb = cachet_sandbox("since", &fake, &comps);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_code(&monit(&sb, &fail("nginx")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    // The page is restored from an old backup: both components read operational again.
    fake.set_status(2, 1);
    fake.set_status(3, 1);
    let r = sb.run(&["replay", "--since", "1h", "--component", "web"]);
    assert!(
        r.stdout.contains("web: will re-send major_outage"),
        "{}",
        r.stdout
    );
    assert_code(&sb.run(&["flush", "--once"]), 0);
    assert_eq!(
        fake.status_of(3),
        Some(4),
        "forced past the confirmed state"
    );
    assert_eq!(fake.status_of(2), Some(1), "only the named component");
    let r = sb.run(&["replay", "--since", "soon"]);
    assert_code(&r, 64);
    assert!(
        r.stderr.contains("invalid duration \"soon\""),
        "{}",
        r.stderr
    );
}

#[test]
fn check_online_verifies_api_token_and_components() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox(
        "check",
        &fake,
        &format!("{DB}[[component]]\nname = \"ghost\"\n"),
    );
    let r = sb.run(&["check", "--online"]);
    assert_code(&r, 69);
    assert!(
        r.stdout.contains("[ok] component \"db cluster\" is id 2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("[FAIL] component \"ghost\": component \"ghost\" not found"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("[ok] the token can write"),
        "{}",
        r.stdout
    );
    let sb2 = cachet_sandbox("check2", &fake, DB);
    sb2.write("token", "wrong\n");
    let r = sb2.run(&["check", "--online"]);
    assert_code(&r, 69);
    assert!(
        r.stdout.contains("[FAIL] the token cannot write: HTTP 401"),
        "{}",
        r.stdout
    );
    assert_eq!(
        fake.status_of(2),
        Some(1),
        "the write check changed nothing"
    );
}

#[test]
fn an_item_is_dead_lettered_after_max_attempts_with_the_reason() {
    let mut fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox(
        "maxattempts",
        &fake,
        "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\n",
    );
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace(
            "backoff_cap = \"1s\"",
            "backoff_cap = \"1s\"\nmax_attempts = 3",
        ),
    );
    fake.stop();
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let flusher = sb.spawn_flush();
    assert!(wait_until(Duration::from_secs(15), || count(
        &sb,
        "SELECT count(*) FROM outbox WHERE status = 'dead'"
    ) == 1));
    signal(&flusher, "TERM");
    let out = flusher.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("retry delivery 1").count(), 2, "{stderr}");
    assert!(
        stderr.contains("dead-lettered delivery 1")
            && stderr.contains("gave up after 3 attempts (delivery.max_attempts)"),
        "{stderr}"
    );
    let err: String = db(&sb)
        .query_row("SELECT last_error FROM outbox WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        err.contains("max_attempts") && err.contains("last error:"),
        "{err}"
    );
    // Back up, replayed: delivered.
    fake.resume();
    assert_code(&sb.run(&["replay", "--dead"]), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    assert_eq!(fake.status_of(2), Some(4));
}

#[test]
fn check_warns_about_plain_http_and_an_open_token_file_and_reads_the_ca_file() {
    let sb = Sandbox::new(BIN, "tlswarn");
    sb.write("token", "t0ken\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sb.path("token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = |extra: &str| {
        format!(
            "[backend]\nkind = \"cachet\"\nurl = \"http://status.example.com\"\ntoken_file = \"token\"\n{extra}"
        )
    };
    sb.write("config.toml", &cfg(""));
    // `check` without --online sends nothing anywhere.
    let r = sb.run(&["check"]);
    assert_code(&r, 0);
    assert!(
        r.stderr.contains("plain http to another host") && r.stderr.contains("use https"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("token_file") && r.stderr.contains("readable by everyone"),
        "{}",
        r.stderr
    );
    sb.write("ca.pem", "not a certificate");
    sb.write("config.toml", &cfg("ca_file = \"ca.pem\"\n"));
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert!(
        r.stderr.contains("ca_file holds no certificate"),
        "{}",
        r.stderr
    );
    sb.write(
        "ca.pem",
        include_str!("../../crates/backend/testdata/test-ca.pem"),
    );
    let r = sb.run(&["check"]);
    assert_code(&r, 0);
    assert!(r.stdout.contains("trusted CA:"), "{}", r.stdout);
}
