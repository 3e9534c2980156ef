//! Helpers shared by the integration tests.

use std::time::Duration;

pub use statusrelay_testkit::sandbox::{Run, Sandbox, signal, wait_until};
pub use statusrelay_testkit::{FakeCachet, Fault};

pub const TOKEN: &str = "t0ken-for-tests-only";
pub const BIN: &str = env!("CARGO_BIN_EXE_statusrelay");

/// A sandbox whose config points at the static page backend.
pub fn html_sandbox(name: &str, components: &str) -> Sandbox {
    let sb = Sandbox::new(BIN, name);
    sb.write(
        "config.toml",
        &format!("spool = \"spool.db\"\n[backend]\nkind = \"html\"\ndir = \"www\"\n{components}"),
    );
    sb
}

/// A sandbox whose config points at `fake`, with fast retries so tests stay short.
pub fn cachet_sandbox(name: &str, fake: &FakeCachet, components: &str) -> Sandbox {
    let sb = Sandbox::new(BIN, name);
    sb.write("token", &format!("{TOKEN}\n"));
    sb.write(
        "config.toml",
        &format!(
            "spool = \"spool.db\"\n[backend]\nkind = \"cachet\"\nurl = \"{}\"\ntoken_file = \"token\"\ntimeout = \"2s\"\n[delivery]\nbackoff_base = \"200ms\"\nbackoff_cap = \"1s\"\n{components}",
            fake.url()
        ),
    );
    sb
}

pub const DB: &str = "[[component]]\nname = \"db cluster\"\nservices = [\"mysql\", \"mysql-*\"]\n";

pub fn fail(service: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONIT_SERVICE", service.to_string()),
        ("MONIT_EVENT", "Does not exist".into()),
        ("MONIT_DESCRIPTION", "process is not running".into()),
        ("MONIT_HOST", "node1".into()),
    ]
}

pub fn ok(service: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONIT_SERVICE", service.to_string()),
        ("MONIT_EVENT", "Exists".into()),
        ("MONIT_DESCRIPTION", "process is running with pid 42".into()),
        ("MONIT_HOST", "node1".into()),
    ]
}

/// One Monit event of `service` on node1, described by the event name.
pub fn event(service: &str, ev: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MONIT_SERVICE", service.into()),
        ("MONIT_EVENT", ev.into()),
        ("MONIT_DESCRIPTION", format!("{ev} (test)")),
        ("MONIT_HOST", "node1".into()),
    ]
}

/// Run `monit` with owned vars.
pub fn monit(sb: &Sandbox, vars: &[(&str, String)]) -> Run {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.monit(&v, &[])
}

/// Open the spool for assertions (a second connection, as an operator's sqlite3 would).
pub fn db(sb: &Sandbox) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(sb.spool_path()).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

pub fn count(sb: &Sandbox, sql: &str) -> i64 {
    db(sb).query_row(sql, [], |r| r.get(0)).unwrap()
}

pub fn assert_code(r: &Run, code: i32) {
    assert_eq!(
        r.code, code,
        "exit code; stdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
}

/// Run every exec call of the real Monit corpus (shared/specs) through `statusrelay monit`,
/// asserting each exits 0. Returns how many were run.
pub fn replay_corpus(sb: &Sandbox) -> usize {
    let corpus = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/specs/monit-exec-events.jsonl"
    ))
    .expect("shared/specs/monit-exec-events.jsonl beside the repository");
    let mut n = 0;
    for line in corpus.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap();
        // One record is the recorder's own end-of-run marker, not an exec call.
        let Some(env) = rec.get("monit_env").and_then(serde_json::Value::as_object) else {
            continue;
        };
        let vars: Vec<(&str, String)> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap().to_string()))
            .collect();
        assert_code(&monit(sb, &vars), 0);
        n += 1;
    }
    n
}
