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
    for i in 0..30 {
        assert_code(&monit(&sb, &fail(&format!("mysql-{i}"))), 0);
    }
    damage_btree_pages(&sb);
    let r = monit(&sb, &fail("mysql"));
    assert_code(&r, 0);
    assert!(
        r.stderr.contains("is corrupt") && r.stderr.contains("moved to"),
        "{}",
        r.stderr
    );
    assert_eq!(corrupt_files(&sb), 1);
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events"),
        1,
        "the event is in the fresh spool"
    );

    for i in 0..30 {
        assert_code(&monit(&sb, &fail(&format!("mysql-{i}"))), 0);
    }
    damage_btree_pages(&sb);
    let r = sb.run(&["flush", "--once"]);
    assert!(
        r.stderr.contains("is corrupt") && r.stderr.contains("moved to"),
        "{}",
        r.stderr
    );
    assert_code(&r, 0);
    assert_eq!(corrupt_files(&sb), 2);

    for i in 0..30 {
        assert_code(&monit(&sb, &fail(&format!("mysql-{i}"))), 0);
    }
    damage_btree_pages(&sb);
    let r = sb.run(&["status", "--json"]);
    assert!(
        r.stderr.contains("is corrupt") && r.stderr.contains("moved to"),
        "{}",
        r.stderr
    );
    assert_code(&r, 0);
    assert_eq!(corrupt_files(&sb), 3);
    assert_code(&monit(&sb, &fail("mysql")), 0);
    assert_eq!(count(&sb, "SELECT count(*) FROM events"), 1);
}
