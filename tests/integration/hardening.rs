//! Issue 13: the defects found by attacking the shipped binary from the outside. Each test
//! failed against the product before its fix; the item number is in the test's doc line.

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
    assert!(
        r.stderr.contains("regenerate the exec lines"),
        "{}",
        r.stderr
    );
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
    assert!(r.stderr.contains("unexpected arguments"), "{}", r.stderr);
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
    assert!(r.stderr.contains("without spaces"), "{}", r.stderr);
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
    assert!(r.stderr.contains("config path"), "{}", r.stderr);
}
