//! Incidents, maintenance windows and human overrides, against the strict fake Cachet, through
//! the real binary.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const DBI: &str =
    "[[component]]\nname = \"db cluster\"\nid = 2\nservices = [\"mysql\"]\nincidents = true\n";

fn say(sb: &Sandbox, ev: &str) {
    assert_code(&monit(sb, &event("mysql", ev)), 0);
}

fn flush_ok(sb: &Sandbox) -> Run {
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 0);
    r
}

fn incident_rows(sb: &Sandbox) -> Vec<(String, Option<String>)> {
    let c = db(sb);
    let mut st = c
        .prepare("SELECT status, remote_id FROM incidents ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn an_outage_opens_one_incident_updates_it_and_resolves_it_on_cachet_2_4() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("inc24", &fake, DBI);
    say(&sb, "Does not exist");
    let r = flush_ok(&sb);
    assert!(
        r.stderr
            .contains("opened incident #1 \"db cluster: Major outage\""),
        "{}",
        r.stderr
    );
    let inc = fake.incidents();
    assert_eq!(inc.len(), 1);
    assert_eq!(
        (inc[0].status, inc[0].component_id, inc[0].visible),
        (1, Some(2), true)
    );
    assert!(
        inc[0].message.contains("Does not exist (test)")
            && inc[0].message.contains("mysql on node1"),
        "{}",
        inc[0].message
    );
    assert_eq!(fake.status_of(2), Some(4));
    // Still down, but milder: an update, and the component set explicitly.
    say(&sb, "Resource limit matched");
    say(&sb, "Exists");
    flush_ok(&sb);
    assert_eq!(fake.updates().len(), 1);
    assert_eq!(fake.updates()[0].1, 1);
    assert_eq!(fake.status_of(2), Some(2));
    // Recovery: the incident is fixed with the outage's duration, and the component set to
    // operational explicitly (cachet #2423).
    say(&sb, "Resource limit succeeded");
    let r = flush_ok(&sb);
    assert!(r.stderr.contains("resolved incident #1"), "{}", r.stderr);
    let u = fake.updates();
    assert_eq!(u.len(), 2);
    assert_eq!(u[1].1, 4);
    assert!(
        u[1].2
            .starts_with("Resolved: db cluster is operational again after"),
        "{}",
        u[1].2
    );
    assert_eq!(fake.incidents()[0].status, 4);
    assert_eq!(fake.status_of(2), Some(1));
    assert_eq!(
        fake.incidents().len(),
        1,
        "exactly one incident for the outage"
    );
    assert_eq!(
        incident_rows(&sb),
        vec![("resolved".to_string(), Some("1".to_string()))]
    );
    // The next outage opens a new incident.
    say(&sb, "Does not exist");
    flush_ok(&sb);
    assert_eq!(fake.incidents().len(), 2);
}

#[test]
fn cachet_2_3_is_detected_and_its_incidents_are_put_with_all_flags() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    fake.set_version("2.3.18");
    let sb = cachet_sandbox("inc23", &fake, DBI);
    say(&sb, "Does not exist");
    flush_ok(&sb);
    say(&sb, "Exists");
    say(&sb, "Connection failed");
    flush_ok(&sb);
    say(&sb, "Connection succeeded");
    flush_ok(&sb);
    assert!(fake.updates().is_empty(), "2.3 has no incident updates");
    let inc = fake.incidents();
    assert_eq!(inc.len(), 1);
    assert_eq!(inc[0].status, 4);
    assert!(
        inc[0].visible,
        "a PUT that omits visible would hide the incident"
    );
    assert_eq!(
        fake.lax_incident_puts(),
        0,
        "every incident PUT sends visible, stickied and notify"
    );
    assert_eq!(fake.status_of(2), Some(1));
}

#[test]
fn a_2_3_server_pinned_as_2_4_fails_loudly_instead_of_losing_the_incident() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    fake.set_version("2.3.18");
    let sb = cachet_sandbox("inc23pinned", &fake, DBI);
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace("timeout = \"2s\"", "timeout = \"2s\"\nversion = \"2.4\""),
    );
    say(&sb, "Does not exist");
    flush_ok(&sb);
    say(&sb, "Exists");
    let r = sb.run(&["flush", "--once"]);
    assert!(
        r.stderr
            .contains("is this Cachet 2.3? set [backend] version = \"2.3\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("dead-lettered"), "{}", r.stderr);
    assert_eq!(incident_rows(&sb)[0].0, "resolving", "not recorded as lost");
}

#[test]
fn a_lost_answer_to_the_incident_post_does_not_open_a_second_incident() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("inclost", &fake, DBI);
    say(&sb, "Does not exist");
    // The POST outlives the 2 s timeout; the server creates the incident all the same.
    fake.push_fault_on(
        "POST",
        "/api/v1/incidents",
        Fault::Slow(Duration::from_secs(3)),
    );
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(
        wait_until(Duration::from_secs(5), || fake.incidents().len() == 1),
        "the server created it anyway"
    );
    assert_eq!(incident_rows(&sb), vec![("opening".to_string(), None)]);
    assert_code(&sb.run(&["replay"]), 0);
    let r = flush_ok(&sb);
    assert!(
        r.stderr
            .contains("opened by an earlier attempt whose answer was lost"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.incidents().len(), 1);
    assert_eq!(
        incident_rows(&sb),
        vec![("open".to_string(), Some("1".to_string()))]
    );
}

#[test]
fn exactly_one_incident_per_outage_when_the_flusher_is_killed_at_every_step() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("inckill", &fake, DBI);
    // Kill the flusher while each request of an outage (is a human's incident open? open ours,
    // set the component) and of its end (resolve, set the component) is in flight; the server
    // still completes the request. Then a new flusher must converge without a duplicate.
    let kill_on = |round: usize, method: &str, path: &str| {
        let base = fake.arrived(method, path);
        fake.push_fault_on(method, path, Fault::Slow(Duration::from_millis(1500)));
        let flusher = sb.spawn_flush();
        assert!(
            wait_until(Duration::from_secs(10), || fake.arrived(method, path)
                > base),
            "round {round}: {method} {path} never came"
        );
        let answered = |f: &FakeCachet| {
            f.seen()
                .iter()
                .filter(|s| s.method == method && s.url.split('?').next() == Some(path))
                .count()
        };
        let before = answered(&fake);
        signal(&flusher, "KILL");
        let _ = flusher.wait_with_output();
        // The server still completes the request the killed flusher left in flight.
        assert!(
            wait_until(Duration::from_secs(10), || answered(&fake) > before),
            "round {round}: {method} {path} was never completed"
        );
        let r = sb.run(&["flush", "--once"]);
        assert_code(&r, 0);
        r
    };
    let outage_steps = [
        ("GET", "/api/v1/incidents"),
        ("POST", "/api/v1/incidents"),
        ("PUT", "/api/v1/components/2"),
    ];
    let mut outages = 0;
    for round in 0..6 {
        say(&sb, "Does not exist");
        outages += 1;
        let (m, p) = outage_steps[round % 3];
        let r = kill_on(round, m, p);
        let open: Vec<_> = fake
            .incidents()
            .into_iter()
            .filter(|i| i.status != 4)
            .collect();
        assert_eq!(
            open.len(),
            1,
            "round {round} ({m} {p}): one open incident during the outage\n{}",
            r.stderr
        );
        assert_eq!(fake.status_of(2), Some(4));
        say(&sb, "Exists");
        let update = format!("/api/v1/incidents/{}/updates", open[0].id);
        let end_steps = [
            ("POST", update.as_str()),
            ("PUT", "/api/v1/components/2"),
            ("POST", update.as_str()),
        ];
        let (m, p) = end_steps[round % 3];
        let r = kill_on(round, m, p);
        assert!(
            fake.incidents().iter().all(|i| i.status == 4),
            "round {round} ({m} {p}): resolved\n{}",
            r.stderr
        );
        assert_eq!(fake.status_of(2), Some(1));
    }
    assert_eq!(
        fake.incidents().len(),
        outages,
        "one incident per outage, whatever was killed"
    );
    assert!(fake.incidents().iter().all(|i| i.status == 4));
    assert_eq!(fake.status_of(2), Some(1));
}

#[test]
fn an_incident_deleted_on_the_page_is_recorded_and_delivery_carries_on() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("incdeleted", &fake, DBI);
    say(&sb, "Does not exist");
    flush_ok(&sb);
    fake.delete_incident(1);
    say(&sb, "Resource limit matched");
    say(&sb, "Exists");
    let r = flush_ok(&sb);
    assert!(
        r.stderr
            .contains("was deleted on the page; recorded as lost"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.status_of(2), Some(2));
    assert!(
        fake.incidents().is_empty(),
        "not reopened for the same outage"
    );
    say(&sb, "Resource limit succeeded");
    flush_ok(&sb);
    assert_eq!(fake.status_of(2), Some(1));
    assert_eq!(incident_rows(&sb)[0].0, "lost");
}

#[test]
fn a_humans_incident_pins_the_component_until_they_close_it() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let human = fake.add_incident(2, "Database degraded, we are on it");
    let sb = cachet_sandbox("incmanual", &fake, DBI);
    say(&sb, "Does not exist");
    let r = flush_ok(&sb);
    assert!(
        r.stderr
            .contains("not opening an incident for db cluster: #1"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fake.incidents().len(),
        1,
        "no second incident beside the human's"
    );
    assert_eq!(fake.status_of(2), Some(4));
    say(&sb, "Exists");
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert!(
        r.stderr.contains("held: manual incident #1"),
        "{}",
        r.stderr
    );
    let q = sb.run(&["queue"]);
    assert!(
        q.stdout.contains("held") && q.stdout.contains("held: manual incident #1"),
        "{}",
        q.stdout
    );
    assert_eq!(
        fake.status_of(2),
        Some(4),
        "automation does not flip it back"
    );
    assert_eq!(
        fake.incidents()[0].status,
        2,
        "nor close the human's incident"
    );
    // The human closes it: the held state goes out.
    fake.set_incident_status(human, 4);
    assert_code(&sb.run(&["replay"]), 0);
    flush_ok(&sb);
    assert_eq!(fake.status_of(2), Some(1));
}

#[test]
fn respect_manual_can_be_turned_off() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    fake.add_incident(2, "ops note");
    let sb = cachet_sandbox(
        "incmanualoff",
        &fake,
        &format!("[incidents]\nrespect_manual = false\n{DBI}"),
    );
    say(&sb, "Does not exist");
    flush_ok(&sb);
    assert_eq!(fake.incidents().len(), 2, "statusrelay opens its own");
    say(&sb, "Exists");
    flush_ok(&sb);
    assert_eq!(fake.status_of(2), Some(1));
    assert_eq!(
        fake.incidents()[0].status,
        2,
        "the human's incident is never closed by automation"
    );
}

#[test]
fn page_maintenance_holds_updates_and_the_end_delivers_only_the_newest_state() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    fake.add_schedule(json!({"id": 1, "name": "db cluster upgrade", "message": "", "status": 1, "scheduled_at": "2026-11-22 00:00", "completed_at": null, "components": []}));
    let sb = cachet_sandbox("incschedule", &fake, DBI);
    say(&sb, "Does not exist");
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert!(
        r.stderr
            .contains("held: maintenance on the page (\"db cluster upgrade\")"),
        "{}",
        r.stderr
    );
    assert!(
        fake.incidents().is_empty() && fake.puts().is_empty(),
        "no incident, no update, no notification"
    );
    say(&sb, "Exists");
    say(&sb, "Connection failed");
    fake.clear_schedules();
    assert_code(&sb.run(&["replay"]), 0);
    let r = flush_ok(&sb);
    assert!(
        r.stdout.contains("1 sent") && r.stdout.contains("2 coalesced"),
        "{}",
        r.stdout
    );
    assert_eq!(fake.incidents().len(), 1);
    assert_eq!(fake.status_of(2), Some(4));
}

#[test]
fn a_schedule_for_another_component_holds_nothing_unless_schedules_is_all() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    fake.add_schedule(json!({"id": 1, "name": "web deploy", "message": "", "status": 1, "scheduled_at": "2026-11-22 00:00", "completed_at": null}));
    let sb = cachet_sandbox("incschedule2", &fake, DBI);
    say(&sb, "Does not exist");
    flush_ok(&sb);
    assert_eq!(fake.status_of(2), Some(4));
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace("timeout = \"2s\"", "timeout = \"2s\"\nschedules = \"all\""),
    );
    say(&sb, "Exists");
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert!(
        r.stderr
            .contains("held: maintenance on the page (\"web deploy\")"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_local_window_wraps_a_deploy_so_restarts_page_nobody() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("incwindow", &fake, DBI);
    let r = sb.run(&[
        "maintenance",
        "start",
        "--component",
        "db cluster",
        "--for",
        "1h",
        "--reason",
        "deploy 1.2.3",
    ]);
    assert_code(&r, 0);
    assert!(
        r.stdout.contains("until") && r.stdout.contains("updates are held"),
        "{}",
        r.stdout
    );
    // The deploy restarts mysql: Monit's events are recorded, nothing is sent.
    say(&sb, "Does not exist");
    say(&sb, "Exists");
    say(&sb, "Connection failed");
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, 75);
    assert!(
        r.stderr.contains("held: maintenance until") && r.stderr.contains("deploy 1.2.3"),
        "{}",
        r.stderr
    );
    let q = sb.run(&["queue"]);
    assert!(
        q.stdout.contains("held") && q.stdout.contains("held: maintenance until"),
        "{}",
        q.stdout
    );
    assert!(
        sb.run(&["maintenance", "list"])
            .stdout
            .contains("db cluster")
    );
    assert!(fake.incidents().is_empty() && fake.puts().is_empty());
    say(&sb, "Connection succeeded");
    let r = sb.run(&["maintenance", "stop", "--component", "db cluster"]);
    assert!(
        r.stdout
            .contains("ended maintenance 1 of db cluster; 1 held deliveries released"),
        "{}",
        r.stdout
    );
    let r = flush_ok(&sb);
    assert!(
        r.stdout.contains("1 sent") && r.stdout.contains("1 coalesced"),
        "only the newest state: {}",
        r.stdout
    );
    assert_eq!(
        fake.puts(),
        vec![(2, 1)],
        "the deploy's restarts never reached the page"
    );
    assert!(fake.incidents().is_empty(), "and opened no incident");
    assert!(
        sb.run(&["maintenance", "list"])
            .stdout
            .contains("no maintenance windows")
    );
}

#[test]
fn a_shown_window_puts_the_component_under_maintenance_without_an_incident() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("incshow", &fake, DBI);
    let r = sb.run(&[
        "maintenance",
        "start",
        "--component",
        "db cluster",
        "--for",
        "1h",
        "--show",
    ]);
    assert!(
        r.stdout.contains("the page shows under_maintenance"),
        "{}",
        r.stdout
    );
    flush_ok(&sb);
    assert_eq!(
        fake.status_of(2),
        Some(2),
        "under_maintenance (Cachet 2.x has no such status: Performance Issues)"
    );
    // under_maintenance outranks failures: Monit's restart events change nothing visible.
    say(&sb, "Does not exist");
    let r = flush_ok(&sb);
    assert!(r.stdout.contains("0 sent"), "{}", r.stdout);
    // Stopped while mysql is still down: now it is a real outage, with its incident.
    sb.run(&["maintenance", "stop"]);
    flush_ok(&sb);
    assert_eq!(fake.status_of(2), Some(4));
    assert_eq!(fake.incidents().len(), 1);
}

#[test]
fn a_window_ends_by_itself_and_a_real_outage_then_opens_its_incident() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("incexpire", &fake, DBI);
    assert_code(
        &sb.run(&[
            "maintenance",
            "start",
            "--component",
            "db cluster",
            "--for",
            "2s",
        ]),
        0,
    );
    say(&sb, "Does not exist");
    let flusher = sb.spawn_flush();
    assert!(wait_until(Duration::from_secs(1), || count(
        &sb,
        "SELECT count(*) FROM outbox WHERE held IS NOT NULL"
    ) == 1));
    assert!(fake.incidents().is_empty());
    assert!(
        wait_until(Duration::from_secs(10), || fake.incidents().len() == 1),
        "the outage outlived the window"
    );
    assert_eq!(fake.status_of(2), Some(4));
    signal(&flusher, "TERM");
    let out = flusher.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("maintenance of db cluster ended"));
}

#[test]
fn maintenance_commands_validate_their_input() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let sb = cachet_sandbox("incmaintargs", &fake, DBI);
    let r = sb.run(&["maintenance", "start", "--component", "nope", "--for", "5m"]);
    assert_code(&r, 64);
    assert!(
        r.stderr.contains("no component named \"nope\""),
        "{}",
        r.stderr
    );
    let r = sb.run(&[
        "maintenance",
        "start",
        "--component",
        "db cluster",
        "--for",
        "5",
    ]);
    assert_code(&r, 64);
    assert!(r.stderr.contains("invalid duration \"5\""), "{}", r.stderr);
    assert!(
        sb.run(&["maintenance", "stop"])
            .stdout
            .contains("no active maintenance window")
    );
}
