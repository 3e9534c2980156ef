//! Issue 15, the per-component rule across nodes: a component fed by several nodes (Monit
//! hosts, or `event --source`s) shows one state, by `[component.nodes]`.

use crate::support::*;

fn on(node: &str, ev: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    ev.into_iter()
        .map(|(k, v)| {
            if k == "MONIT_HOST" {
                (k, node.to_string())
            } else {
                (k, v)
            }
        })
        .collect()
}

fn shows(sb: &Sandbox) -> String {
    db(sb)
        .query_row(
            "SELECT state FROM desired WHERE component = 'db cluster'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn counting_nodes_makes_one_of_three_down_a_partial_outage() {
    let sb = html_sandbox(
        "nodes-count",
        &format!("{DB}[component.nodes]\nrule = \"count\"\nmajor_at = 2\n"),
    );
    for n in ["db1", "db2", "db3"] {
        assert_code(&monit(&sb, &on(n, ok("mysql"))), 0);
    }
    assert_eq!(shows(&sb), "operational");
    assert_code(&monit(&sb, &on("db1", fail("mysql"))), 0);
    assert_eq!(shows(&sb), "partial_outage", "one of three nodes down");
    assert_code(&monit(&sb, &on("db2", fail("mysql"))), 0);
    assert_eq!(shows(&sb), "major_outage", "two of three");
    // One node's recovery never hides the other's outage.
    assert_code(&monit(&sb, &on("db1", ok("mysql"))), 0);
    assert_eq!(shows(&sb), "partial_outage");
    assert_code(&monit(&sb, &on("db2", ok("mysql"))), 0);
    assert_eq!(shows(&sb), "operational");
    assert_code(&sb.run(&["flush", "--once"]), 0);
    let page: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("www/status.json")).unwrap())
            .unwrap();
    assert_eq!(page["components"][0]["state"], "operational", "{page}");
}

#[test]
fn worst_of_is_the_default_and_a_bad_count_rule_is_a_config_error() {
    let sb = html_sandbox("nodes-worst", DB);
    assert_code(&monit(&sb, &on("db1", fail("mysql"))), 0);
    assert_code(&monit(&sb, &on("db2", fail("mysql"))), 0);
    assert_code(&monit(&sb, &on("db1", ok("mysql"))), 0);
    assert_eq!(shows(&sb), "major_outage", "db2 is still down");
    sb.write(
        "config.toml",
        &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}[component.nodes]\nrule = \"count\"\npartial_at = 3\nmajor_at = 2\n"),
    );
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert_contains(&r.stderr, "nodes: major_at = 2 is below partial_at = 3");
    sb.write(
        "config.toml",
        &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{DB}[component.nodes]\nrule = \"most\"\n"),
    );
    let r = sb.run(&["check"]);
    assert_code(&r, 78);
    assert_contains(&r.stderr, "unknown variant `most`");
}

/// Issue 15, `statusrelay nodes`: a node's credential is shown once and kept only as its hash;
/// forgetting a decommissioned node clears what it reported, so it no longer holds a
/// component down.
#[test]
fn nodes_are_added_with_a_secret_shown_once_and_forgotten_with_their_failures() {
    let sb = html_sandbox("nodes-cli", DB);
    let r = sb.run(&["nodes", "add", "db1"]);
    assert_code(&r, 0);
    let secret = r
        .stdout
        .lines()
        .find(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no secret in {}", r.stdout))
        .to_string();
    assert_contains(&r.stdout, &format!("set mmonit https://db1:{secret}@"));
    let stored = std::fs::read(sb.spool_path()).unwrap();
    let wal = std::fs::read(sb.path("spool.db-wal")).unwrap_or_default();
    for bytes in [stored, wal] {
        assert!(
            !bytes.windows(64).any(|w| w == secret.as_bytes()),
            "the secret is stored"
        );
    }
    let again = sb.run(&["nodes", "add", "db1"]);
    assert_code(&again, 64);
    assert_contains(&again.stderr, "exists already");
    assert_code(&sb.run(&["nodes", "add", "db 2"]), 64);
    let r = sb.run(&["nodes", "add", "db2", "--component", "nope"]);
    assert_code(&r, 64);
    assert_contains(&r.stderr, "no component named \"nope\"");
    assert_code(
        &sb.run(&["nodes", "add", "db2", "--component", "db-cluster"]),
        0,
    );
    let list = sb.run(&["nodes"]);
    assert_contains(&list.stdout, "db2: never seen, feeds only db cluster");
    // db1 fails, db2 is fine: db1 holds the component down until it is forgotten.
    assert_code(&monit(&sb, &on("db1", fail("mysql"))), 0);
    assert_code(&monit(&sb, &on("db2", ok("mysql"))), 0);
    assert_eq!(shows(&sb), "major_outage");
    let r = sb.run(&["nodes", "forget", "db1"]);
    assert_code(&r, 0);
    assert_contains(
        &r.stdout,
        "db cluster: major_outage -> operational without db1",
    );
    assert_eq!(shows(&sb), "operational");
    assert_eq!(
        count(&sb, "SELECT count(*) FROM tests WHERE host = 'db1'"),
        0
    );
    let json: serde_json::Value =
        serde_json::from_str(&sb.run(&["nodes", "--json"]).stdout).unwrap();
    assert_eq!(json["nodes"].as_array().unwrap().len(), 1, "{json}");
    assert_code(&sb.run(&["nodes", "forget", "db1"]), 64);
}
