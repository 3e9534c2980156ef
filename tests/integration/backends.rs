//! Cachet 3.x, Atlassian Statuspage and status.io, each against its strict fake on loopback,
//! through the real binary: state changes, incident open/update/resolve, maintenance holds,
//! auth failures dead-lettered with the server's words, rate limits and pagination.

use std::time::Duration;

use serde_json::Value;
use statusrelay_testkit::cachet3::{C3Schedule, FakeCachet3};
use statusrelay_testkit::statusio::FakeStatusio;
use statusrelay_testkit::statuspage::FakeStatuspage;

use crate::support::*;

fn say(sb: &Sandbox, ev: &str) {
    assert_code(&monit(sb, &event("mysql", ev)), 0);
}

fn flush(sb: &Sandbox, code: i32) -> Run {
    let r = sb.run(&["flush", "--once"]);
    assert_code(&r, code);
    r
}

/// A sandbox for an API backend: `backend` is the `[backend]` body after `kind`.
fn api_sandbox(name: &str, kind: &str, backend: &str, components: &str) -> Sandbox {
    let sb = Sandbox::new(BIN, name);
    sb.write("token", &format!("{TOKEN}\n"));
    sb.write(
        "config.toml",
        &format!(
            "spool = \"spool.db\"\n[backend]\nkind = \"{kind}\"\ntoken_file = \"token\"\ntimeout = \"2s\"\n{backend}\n[delivery]\nbackoff_base = \"200ms\"\nbackoff_cap = \"1s\"\n{components}"
        ),
    );
    sb
}

fn dead_error(sb: &Sandbox) -> String {
    let q = sb.run(&["queue", "--json"]);
    let v: Value = serde_json::from_str(&q.stdout).unwrap();
    assert_eq!(v["deliveries"][0]["status"], "dead", "{}", q.stdout);
    v["deliveries"][0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

const DB_INCIDENTS: &str =
    "[[component]]\nname = \"db cluster\"\nservices = [\"mysql\"]\nincidents = true\n";

// ---- Atlassian Statuspage ----

/// At the default pacing (1 request/s) against a fake that answers 429 to anything faster:
/// the component is found on the third page of the listing, an incident opens, is updated and
/// resolved, and the fake never had to refuse a request.
#[test]
fn statuspage_at_one_request_per_second_sees_no_429_and_finds_page_three() {
    let mut comps: Vec<(String, String)> = (0..240)
        .map(|i| (format!("c{i:03}"), format!("web {i}")))
        .collect();
    comps.push(("dbc1".into(), "db cluster".into()));
    let refs: Vec<(&str, &str)> = comps
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let fake = FakeStatuspage::statuspage(TOKEN, "pg1", &refs);
    let sb = api_sandbox(
        "sp-rate",
        "statuspage",
        &format!("url = \"{}\"\npage_id = \"pg1\"", fake.api_url()),
        DB_INCIDENTS,
    );
    say(&sb, "Does not exist");
    let r = flush(&sb, 0);
    assert!(r.stderr.contains("opened incident #inc1"), "{}", r.stderr);
    assert_eq!(
        fake.component_status("dbc1").as_deref(),
        Some("major_outage")
    );
    {
        let api = fake.api();
        let i = &api.incidents[0];
        assert_eq!(
            (
                i.status.as_str(),
                i.components.clone(),
                i.deliver_notifications
            ),
            ("investigating", vec!["dbc1".to_string()], Some(true))
        );
    }
    // Three pages of 100 were read, each with page and per_page.
    let listings: Vec<String> = fake
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.url.contains("/components?"))
        .map(|s| s.url.clone())
        .collect();
    assert_eq!(listings.len(), 3, "{listings:?}");
    assert!(
        listings.iter().all(|u| u.contains("per_page=100")),
        "{listings:?}"
    );
    say(&sb, "Resource limit matched");
    say(&sb, "Exists");
    flush(&sb, 0);
    assert_eq!(
        fake.component_status("dbc1").as_deref(),
        Some("degraded_performance")
    );
    say(&sb, "Resource limit succeeded");
    let r = flush(&sb, 0);
    assert!(r.stderr.contains("resolved incident #inc1"), "{}", r.stderr);
    assert_eq!(
        fake.component_status("dbc1").as_deref(),
        Some("operational")
    );
    {
        let api = fake.api();
        let i = &api.incidents[0];
        assert_eq!(i.status, "resolved");
        assert_eq!(i.updates.len(), 3, "{:?}", i.updates);
        assert_eq!(api.rate_limited, 0, "the pacing kept under the limit");
    }
    // Arrivals were at least a second apart.
    let seen = fake.seen();
    for w in seen.windows(2) {
        assert!(
            w[1].at - w[0].at >= Duration::from_millis(990),
            "{} then {} only {:?} apart",
            w[0].url,
            w[1].url,
            w[1].at - w[0].at
        );
    }
}

#[test]
fn statuspage_maintenance_holds_and_a_bad_key_is_dead_lettered_with_its_message() {
    let fake = FakeStatuspage::statuspage(TOKEN, "pg1", &[("dbc1", "db cluster")]);
    fake.api().min_gap = Duration::from_millis(50);
    let backend = format!(
        "url = \"{}\"\npage_id = \"pg1\"\nmin_interval = \"60ms\"",
        fake.api_url()
    );
    let sb = api_sandbox("sp-maint", "statuspage", &backend, DB_INCIDENTS);
    fake.add_maintenance("switch firmware", &["dbc1"]);
    say(&sb, "Does not exist");
    let r = flush(&sb, 75);
    assert!(
        r.stderr
            .contains("held: maintenance on the page (\"switch firmware\")"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fake.component_status("dbc1").as_deref(),
        Some("operational")
    );
    assert!(fake.api().incidents.iter().all(|i| i.scheduled));
    // The maintenance ends; the operator releases the hold now rather than in 30s.
    fake.end_maintenance();
    assert_code(&sb.run(&["replay"]), 0);
    flush(&sb, 0);
    assert_eq!(
        fake.component_status("dbc1").as_deref(),
        Some("major_outage")
    );
    assert_eq!(fake.api().rate_limited, 0);

    let other = api_sandbox(
        "sp-auth",
        "statuspage",
        &backend,
        "[[component]]\nname = \"db cluster\"\nid = \"dbc1\"\nservices = [\"mysql\"]\n",
    );
    other.write("token", "wrong-key\n");
    say(&other, "Exists");
    let r = flush(&other, 0);
    assert!(r.stdout.contains("1 dead-lettered"), "{}", r.stdout);
    let e = dead_error(&other);
    assert!(
        e.contains("HTTP 401") && e.contains("Could not authenticate"),
        "{e}"
    );
}

// ---- Cachet 3.x ----

#[test]
fn cachet3_sets_states_and_runs_an_incident_through_updates_to_fixed() {
    // 150 components whose names contain "db cluster": the partial filter returns two pages.
    let mut comps: Vec<(u64, String)> = (1..=150).map(|i| (i, format!("db cluster {i}"))).collect();
    comps.push((200, "db cluster".into()));
    let refs: Vec<(u64, &str)> = comps.iter().map(|(i, n)| (*i, n.as_str())).collect();
    let fake = FakeCachet3::cachet3(TOKEN, "/status/api", &refs);
    let sb = api_sandbox(
        "c3",
        "cachet3",
        &format!("url = \"{}\"\nmin_interval = \"10ms\"", fake.url()),
        DB_INCIDENTS,
    );
    let c = sb.run(&["check"]);
    assert!(
        c.stdout.contains("Cachet 3.x at") && c.stdout.contains("one request per 10ms"),
        "{}",
        c.stdout
    );
    let c = sb.run(&["check", "--online"]);
    assert_code(&c, 0);
    assert!(
        c.stdout.contains("component \"db cluster\" is id 200"),
        "{}",
        c.stdout
    );
    say(&sb, "Does not exist");
    let r = flush(&sb, 0);
    assert!(r.stderr.contains("opened incident #1"), "{}", r.stderr);
    assert_eq!(fake.component_status(200), Some(4));
    {
        let api = fake.api();
        let i = &api.incidents[0];
        assert!(i.visible, "created visible: the server's default hides it");
        assert!(i.notifications);
        assert_eq!((i.status, i.components.clone()), (1, vec![(200, 4)]));
    }
    say(&sb, "Resource limit matched");
    say(&sb, "Exists");
    flush(&sb, 0);
    assert_eq!(fake.component_status(200), Some(2));
    say(&sb, "Resource limit succeeded");
    let r = flush(&sb, 0);
    assert!(r.stderr.contains("resolved incident #1"), "{}", r.stderr);
    assert_eq!(fake.component_status(200), Some(1));
    let api = fake.api();
    assert_eq!(api.incidents.len(), 1);
    assert_eq!(api.incidents[0].status, 4);
    let statuses: Vec<i64> = api.updates.iter().map(|u| u.1).collect();
    assert_eq!(statuses, vec![2, 4]);
}

#[test]
fn cachet3_maintenance_holds_and_a_token_without_the_ability_is_dead_lettered() {
    let fake = FakeCachet3::cachet3(TOKEN, "/api", &[(7, "db cluster")]);
    fake.api().schedules.push(C3Schedule {
        id: 1,
        name: "storage migration".into(),
        status: 1,
        components: vec![7],
    });
    let backend = format!(
        "url = \"{}\"\napi_prefix = \"/api\"\nmin_interval = \"10ms\"",
        fake.url()
    );
    let sb = api_sandbox("c3m", "cachet3", &backend, DB_INCIDENTS);
    say(&sb, "Does not exist");
    let r = flush(&sb, 75);
    assert!(
        r.stderr
            .contains("held: maintenance on the page (\"storage migration\")"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.component_status(7), Some(1));
    // A component a human set to Under maintenance (6) holds too.
    fake.api().schedules.clear();
    fake.api().components[0].status = 6;
    let sb2 = api_sandbox("c3m2", "cachet3", &backend, DB_INCIDENTS);
    say(&sb2, "Does not exist");
    let r = flush(&sb2, 75);
    assert!(r.stderr.contains("Under maintenance"), "{}", r.stderr);
    assert_eq!(fake.component_status(7), Some(6));

    fake.api().components[0].status = 1;
    fake.api().abilities.clear();
    let sb3 = api_sandbox(
        "c3auth",
        "cachet3",
        &backend,
        "[[component]]\nname = \"db cluster\"\nid = 7\nservices = [\"mysql\"]\n",
    );
    say(&sb3, "Does not exist");
    flush(&sb3, 0);
    let e = dead_error(&sb3);
    assert!(
        e.contains("HTTP 403") && e.contains("This action is unauthorized."),
        "{e}"
    );
    assert_eq!(fake.component_status(7), Some(1));
}

// ---- status.io ----

const SIO_PAGE: &str = "568d8a3e3cada8c2490000dd";

fn sio_fake() -> FakeStatusio {
    FakeStatusio::statusio(
        "api-id-1",
        TOKEN,
        SIO_PAGE,
        &[(
            "5a1b",
            "db cluster",
            &[("c0eu", "eu-west"), ("c0us", "us-east")],
        )],
    )
}

fn sio_backend(fake: &FakeStatusio, api_id: &str) -> String {
    format!(
        "url = \"{}\"\npage_id = \"{SIO_PAGE}\"\napi_id = \"{api_id}\"\nmin_interval = \"10ms\"",
        fake.api_url()
    )
}

#[test]
fn statusio_sets_the_container_and_runs_an_incident_to_resolved() {
    let fake = sio_fake();
    let comps = "[[component]]\nname = \"db cluster\"\ncontainer = \"eu-west\"\nservices = [\"mysql\"]\nincidents = true\n";
    let sb = api_sandbox("sio", "statusio", &sio_backend(&fake, "api-id-1"), comps);
    say(&sb, "Does not exist");
    let r = flush(&sb, 0);
    assert!(r.stderr.contains("opened incident #"), "{}", r.stderr);
    assert_eq!(fake.status_of("5a1b-c0eu"), Some(500));
    assert_eq!(
        fake.status_of("5a1b-c0us"),
        Some(100),
        "the other container untouched"
    );
    {
        let api = fake.api();
        let i = &api.incidents[0];
        assert_eq!(i.affected, vec!["5a1b-c0eu".to_string()]);
        assert_eq!(i.notify_email, "1");
        assert_eq!(i.messages[0].1, 100, "investigating");
    }
    say(&sb, "Resource limit matched");
    say(&sb, "Exists");
    flush(&sb, 0);
    assert_eq!(fake.status_of("5a1b-c0eu"), Some(300));
    say(&sb, "Resource limit succeeded");
    let r = flush(&sb, 0);
    assert!(r.stderr.contains("resolved incident #"), "{}", r.stderr);
    assert_eq!(fake.status_of("5a1b-c0eu"), Some(100));
    let api = fake.api();
    assert!(!api.incidents[0].active);
    assert_eq!(api.incidents[0].messages.len(), 3);
}

#[test]
fn statusio_errors_inside_http_200_are_errors_and_ambiguity_is_named() {
    let fake = sio_fake();
    // No container named: the component is in two, so the operator is told to pick one.
    let sb = api_sandbox(
        "sio-amb",
        "statusio",
        &sio_backend(&fake, "api-id-1"),
        "[[component]]\nname = \"db cluster\"\nservices = [\"mysql\"]\n",
    );
    say(&sb, "Does not exist");
    flush(&sb, 0);
    let e = dead_error(&sb);
    assert!(
        e.contains("set `container`") && e.contains("eu-west") && e.contains("us-east"),
        "{e}"
    );
    // A wrong API id: HTTP 200, error "yes"; dead-lettered with status.io's words.
    let sb = api_sandbox(
        "sio-auth",
        "statusio",
        &sio_backend(&fake, "wrong-id"),
        "[[component]]\nname = \"db cluster\"\nid = \"5a1b-c0eu\"\nservices = [\"mysql\"]\n",
    );
    say(&sb, "Does not exist");
    flush(&sb, 0);
    let e = dead_error(&sb);
    assert!(
        e.contains("error \"yes\"") && e.contains("Authentication failed"),
        "{e}"
    );
    assert_eq!(fake.status_of("5a1b-c0eu"), Some(100));
    // A maintenance in progress on the container holds the update.
    fake.api()
        .maintenances
        .push(("db failover test".into(), vec!["5a1b-c0eu".into()]));
    let sb = api_sandbox(
        "sio-maint",
        "statusio",
        &sio_backend(&fake, "api-id-1"),
        "[[component]]\nname = \"db cluster\"\nid = \"5a1b-c0eu\"\nservices = [\"mysql\"]\n",
    );
    say(&sb, "Does not exist");
    let r = flush(&sb, 75);
    assert!(
        r.stderr
            .contains("held: maintenance on the page (\"db failover test\")"),
        "{}",
        r.stderr
    );
}

#[test]
fn keys_of_another_kind_are_refused_by_check() {
    let sb = api_sandbox(
        "kinds",
        "statuspage",
        "url = \"http://127.0.0.1:9/v1\"\npage_id = \"pg1\"\napi_prefix = \"/api\"",
        "",
    );
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert!(
        r.stderr.contains("backend.api_prefix") && r.stderr.contains("\"cachet3\""),
        "{}",
        r.stderr
    );
    let sb = api_sandbox("kinds2", "statusio", "page_id = \"p\"", "");
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert!(r.stderr.contains("needs api_id"), "{}", r.stderr);
}

// ---- Read-back after an unknown outcome ----

/// A write that outlives the client's timeout and lands late, over the newer one: the flusher
/// reads the component back after `verify_after` and repairs it, on Statuspage and status.io
/// as on Cachet. (1 s client timeout, writes held 4 s, read back after 6 s.)
fn late(sb: &Sandbox) {
    let cfg = std::fs::read_to_string(sb.path("config.toml")).unwrap();
    sb.write(
        "config.toml",
        &cfg.replace("timeout = \"2s\"", "timeout = \"1s\"")
            .replace("[delivery]\n", "[delivery]\nverify_after = \"6s\"\n"),
    );
}

#[test]
fn statuspage_reads_back_a_late_write_and_repairs_it() {
    let fake = FakeStatuspage::statuspage(TOKEN, "pg1", &[("dbc1", "db cluster")]);
    fake.api().min_gap = Duration::from_millis(0);
    let backend = format!(
        "url = \"{}\"\npage_id = \"pg1\"\nmin_interval = \"10ms\"",
        fake.api_url()
    );
    let sb = api_sandbox(
        "sp-late",
        "statuspage",
        &backend,
        "[[component]]\nname = \"db cluster\"\nid = \"dbc1\"\nservices = [\"mysql\"]\n",
    );
    late(&sb);
    fake.push_fault_on(
        "PATCH",
        "/v1/pages/pg1/components/dbc1",
        Fault::Slow(Duration::from_secs(4)),
    );
    let flusher = LiveFlusher::start(&sb);
    say(&sb, "Does not exist");
    flusher.wait_log("retry delivery", Duration::from_secs(10));
    say(&sb, "Exists");
    // The recovery lands, then the late outage over it; the read-back finds and repairs it.
    flusher.wait_log("was carried out late", Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(10), || fake
            .component_status("dbc1")
            .as_deref()
            == Some("operational")),
        "{:?}\n{}",
        fake.component_status("dbc1"),
        flusher.log()
    );
    let (code, _, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
}

#[test]
fn statusio_reads_back_a_late_write_and_repairs_it() {
    let fake = sio_fake();
    let sb = api_sandbox(
        "sio-late",
        "statusio",
        &sio_backend(&fake, "api-id-1"),
        "[[component]]\nname = \"db cluster\"\nid = \"5a1b-c0eu\"\nservices = [\"mysql\"]\n",
    );
    late(&sb);
    fake.push_fault_on(
        "POST",
        "/v2/component/status/update",
        Fault::Slow(Duration::from_secs(4)),
    );
    let flusher = LiveFlusher::start(&sb);
    say(&sb, "Does not exist");
    flusher.wait_log("retry delivery", Duration::from_secs(10));
    say(&sb, "Exists");
    flusher.wait_log("was carried out late", Duration::from_secs(30));
    assert!(
        wait_until(Duration::from_secs(10), || fake.status_of("5a1b-c0eu")
            == Some(100)),
        "{:?}\n{}",
        fake.status_of("5a1b-c0eu"),
        flusher.log()
    );
    let (code, _, log) = flusher.stop();
    assert_eq!(code, 0, "{log}");
}
