//! The embedded default (static page) end to end, and operator views.

use crate::support::*;

#[test]
fn the_static_page_follows_monit_end_to_end() {
    let sb = html_sandbox("html", DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("www/status.json")).unwrap())
            .unwrap();
    assert_eq!(doc["components"][0]["name"], "db cluster");
    assert_eq!(doc["components"][0]["state"], "major_outage");
    assert_eq!(doc["overall"], "major_outage");
    let html = std::fs::read_to_string(sb.path("www/index.html")).unwrap();
    assert!(html.contains("data-state=\"major_outage\"") && html.contains("Major outage"));
    assert_code(&monit(&sb, &ok("mysql")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("www/status.json")).unwrap())
            .unwrap();
    assert_eq!(doc["components"][0]["state"], "operational");
}

#[test]
fn two_hosts_feeding_one_component_the_page_stays_down_until_both_recover() {
    let sb = html_sandbox("twohosts", DB);
    let on = |mut v: Vec<(&'static str, String)>, host: &str| {
        v[3].1 = host.to_string();
        v
    };
    assert_code(&monit(&sb, &on(fail("mysql"), "node1")), 0);
    assert_code(&monit(&sb, &on(fail("mysql"), "node2")), 0);
    assert_code(&monit(&sb, &on(ok("mysql"), "node1")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let state = || -> String {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(sb.path("www/status.json")).unwrap())
                .unwrap();
        doc["components"][0]["state"].as_str().unwrap().to_string()
    };
    assert_eq!(state(), "major_outage");
    assert_code(&monit(&sb, &on(ok("mysql"), "node2")), 0);
    assert_code(&sb.run(&["flush", "--once"]), 0);
    assert_eq!(state(), "operational");
}

#[test]
fn status_and_queue_describe_an_empty_and_a_busy_spool() {
    let sb = html_sandbox("views", DB);
    let r = sb.run(&["queue"]);
    assert!(r.stdout.contains("no spool at"), "{}", r.stdout);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["pending"], 1);
    assert_eq!(v["flusher"]["alive"], false);
    assert_eq!(v["components"][0]["desired"], "major_outage");
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let r = sb.run(&["status"]);
    assert!(
        r.stdout.contains("db cluster: major_outage") && r.stdout.contains("shown on the page"),
        "{}",
        r.stdout
    );
    assert!(sb.run(&["queue"]).stdout.contains("nothing queued"));
}

#[test]
fn replay_of_unknown_ids_is_a_usage_error() {
    let sb = html_sandbox("badids", DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["replay", "99"]);
    assert_code(&r, 64);
    assert!(
        r.stderr.contains("99: no such pending or dead delivery"),
        "{}",
        r.stderr
    );
    let r = sb.run(&["replay", "x1"]);
    assert_code(&r, 64);
    let r = sb.run(&["replay", "1"]);
    assert_code(&r, 0);
    assert!(
        r.stdout.contains("delivery 1: will be sent now"),
        "{}",
        r.stdout
    );
}

#[test]
fn usage_errors_exit_64() {
    let sb = html_sandbox("usage", DB);
    let r = sb.run(&["frobnicate"]);
    assert_code(&r, 64);
    let r = sb.run(&["--log-level", "loud", "queue"]);
    assert_code(&r, 64);
    let r = sb.run(&["--version"]);
    assert_code(&r, 0);
}

#[test]
fn the_flusher_writes_prometheus_metrics_atomically() {
    let sb = html_sandbox("metrics", DB);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_code(&monit(&sb, &ok("mysql")), 0);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    let r = sb.run(&["flush", "--once", "--metrics-file", "metrics.prom"]);
    assert_code(&r, 0);
    let text = std::fs::read_to_string(sb.path("metrics.prom")).unwrap();
    for want in [
        "statusrelay_flusher_up 0",
        "statusrelay_queue_pending 0",
        "statusrelay_queue_dead 0",
        "statusrelay_deliveries_total{outcome=\"sent\"} 1",
        "statusrelay_deliveries_total{outcome=\"coalesced\"} 2",
        "statusrelay_delivery_duration_seconds_count 1",
        "# TYPE statusrelay_deliveries_total counter",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    // Every sample line is `name{labels} value` with a number, as the text format wants.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("statusrelay_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(!sb.path("metrics.prom.tmp").exists(), "written by rename");
    let v: serde_json::Value = serde_json::from_str(&sb.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(v["held"], 0);
}

/// docs/architecture.md walks the code as `file: function` lists: every file it names exists
/// and defines every function named for it, so the page stays true through renames.
#[test]
fn the_architecture_walks_name_functions_that_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let page = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let mut checked = 0;
    let mut file: Option<String> = None;
    let mut in_item = false;
    for line in page.lines() {
        let starts_item = line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if starts_item {
            in_item = true;
            file = None;
        } else if !line.starts_with("   ") {
            in_item = false;
        }
        if !in_item {
            continue;
        }
        for quoted in line.split('`').skip(1).step_by(2) {
            let name = match quoted.split_once(": ") {
                Some((path, name)) => {
                    assert!(
                        root.join(path).is_file(),
                        "docs/architecture.md: no file {path}"
                    );
                    file = Some(path.to_string());
                    name
                }
                None => quoted,
            };
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let Some(path) = &file else { continue };
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            let defined = text
                .match_indices(&format!("fn {name}"))
                .any(|(at, m)| text[at + m.len()..].starts_with(['(', '<']));
            assert!(defined, "docs/architecture.md: {path} defines no fn {name}");
            checked += 1;
        }
    }
    assert!(
        checked >= 40,
        "only {checked} functions found: is the page's format intact?"
    );
}
