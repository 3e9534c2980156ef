//! Config parsing and validation on literal texts.

use std::time::Duration;

use super::*;
use crate::State;
use crate::mapping::Mapped;

fn parse(t: &str) -> Result<Config, CoreError> {
    Config::parse(t, Path::new("test.toml"))
}

const GOOD: &str = r#"
spool = "/var/lib/statusrelay/spool.db"
[backend]
kind = "cachet"
url = "https://status.example.com"
token_file = "/etc/statusrelay/token"
[mapping]
resource = "partial_outage"
[[component]]
name = "db cluster"
services = ["mysql", "mysql-*"]
[component.mapping]
connection = "ignore"
"#;

#[test]
fn issue_example_parses() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.backend.kind(), BackendKind::Cachet);
    assert_eq!(c.components[0].name, "db cluster");
    assert_eq!(c.mapping.0["resource"], Mapped::State(State::PartialOutage));
    assert_eq!(c.components[0].mapping.0["connection"], Mapped::Ignore);
    assert_eq!(c.route("mysql-replica").len(), 1);
    assert!(c.route("nginx").is_empty());
}

#[test]
fn unknown_key_names_line_and_key() {
    let e = parse("spool = \"x\"\n[backend]\nkind = \"html\"\ndri = \"/tmp\"\n")
        .unwrap_err()
        .to_string();
    // The key's own line and name (a tagged enum could only point at the header, line 2).
    assert!(
        e.contains("line 4: backend.dri: unknown field `dri`") && e.contains("`dir`"),
        "{e}"
    );
}

/// Issue 14, item 4: a wrong-typed key inside `[backend]` was reported at the table's
/// header without its name. Every kind now names the key's own line and the key.
#[test]
fn a_wrong_typed_key_is_named_at_its_line_for_every_backend_kind() {
    for (kind, extra, key) in [
        ("html", "", "history_days = \"ninety\""),
        ("cachet", "token_file = \"t\"\n", "url = 12"),
        (
            "cachet3",
            "url = \"https://s.example.com\"\ntoken_file = \"t\"\n",
            "api_prefix = 3",
        ),
        (
            "statuspage",
            "page_id = \"p1\"\ntoken_file = \"t\"\n",
            "timeout = true",
        ),
        (
            "statusio",
            "page_id = \"p1\"\napi_id = \"a1\"\ntoken_file = \"t\"\n",
            "schedules = \"sometimes\"",
        ),
    ] {
        let text =
            format!("spool = \"s.db\"\n[backend]\nkind = \"{kind}\"\n{extra}{key}\n[delivery]\n");
        let line = text.lines().position(|l| l == key).unwrap() + 1;
        let name = key.split(' ').next().unwrap();
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(&format!("test.toml: line {line}: backend.{name}: ")),
            "{kind}: {e}"
        );
    }
    // A key of another kind, and semantic errors, name the line too.
    let e = parse("[backend]\nkind = \"cachet\"\ntoken_file = \"t\"\nurl = \"https://s.example.com\"\ndir = \"www\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 5: backend.dir: applies only to kind = \"html\""),
        "{e}"
    );
    let e = parse("[delivery]\nbackoff_base = \"1s\"\nmax_age = \"0s\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 3: delivery.max_age: must be more than 0s"),
        "{e}"
    );
}

#[test]
fn bad_state_and_bad_test_are_named() {
    let e = parse("[mapping]\nconnection = \"down\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("\"down\""), "{e}");
    let e = parse("[mapping]\nconection = \"major_outage\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("conection") && e.contains("existence"), "{e}");
}

#[test]
fn cachet_needs_exactly_one_token_source() {
    let e = parse("[backend]\nkind = \"cachet\"\nurl = \"https://s.example.com\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("token_file"), "{e}");
}

#[test]
fn duplicate_component_names_point_at_the_second() {
    let t = "[[component]]\nname = \"a\"\n[[component]]\nname = \"a\"\n";
    let e = parse(t).unwrap_err().to_string();
    assert!(
        e.contains("component[2] (line 3).name") && e.contains("already component[1]"),
        "{e}"
    );
}

#[test]
fn names_that_differ_only_in_case_or_spaces_are_refused() {
    for (a, b) in [
        ("DB", "db"),
        ("db cluster", "db-cluster"),
        ("Web  API", "web api"),
    ] {
        let t = format!("[[component]]\nname = {a:?}\n[[component]]\nname = {b:?}\n");
        let e = parse(&t).unwrap_err().to_string();
        assert!(
            e.contains("component[2] (line 3).name") && e.contains("differ only in case"),
            "{e}"
        );
    }
    let e = parse("[[component]]\nname = \"!!\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no letter or digit"), "{e}");
}

#[test]
fn a_component_is_found_by_its_slug() {
    let c = parse("[[component]]\nname = \"DB \\\"main\\\" cluster\"\n").unwrap();
    assert_eq!(c.components[0].slug(), "db-main-cluster");
    assert_eq!(
        c.component("db-main-cluster").unwrap().name,
        "DB \"main\" cluster"
    );
    assert!(c.component("db").is_err());
}

#[test]
fn defaults_route_each_service_to_its_own_component() {
    let c = parse("").unwrap();
    assert_eq!(c.backend.kind(), BackendKind::Html);
    assert_eq!(c.route("nginx")[0].name, "nginx");
}

#[test]
fn incident_templates_are_checked_at_load() {
    let e = parse(
        "[[component]]\nname = \"db\"\nincidents = true\nincident_name = \"{compnent} down\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("incident_name") && e.contains("unknown variable {compnent}"),
        "{e}"
    );
    let c = parse(
        "[incidents]\nrespect_manual = false\n[[component]]\nname = \"db\"\nincidents = true\n",
    )
    .unwrap();
    assert!(c.components[0].incidents && !c.incidents.respect_manual && c.incidents.notify);
}

#[test]
fn monit_section_is_validated() {
    let ok = parse("[monit]\nurl = \"http://127.0.0.1:2812\"\nuser = \"admin\"\npassword_env = \"MONIT_PW\"\nresync_interval = \"5m\"\n").unwrap();
    assert_eq!(
        ok.monit.unwrap().resync_interval,
        Some(Duration::from_secs(300))
    );
    let e = parse("[monit]\nuser = \"admin\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("set url"), "{e}");
    let e = parse("[monit]\nurl = \"https://x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("plain http"), "{e}");
    let e = parse("[monit]\nurl = \"http://127.0.0.1:2812\"\nuser = \"admin\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("password_file"), "{e}");
}

#[test]
fn a_config_path_that_is_a_fifo_is_an_error_not_a_hang() {
    // Issue 13, item 13: the handler read a FIFO config forever; Monit piled up handlers.
    let dir = std::env::temp_dir().join(format!("sr-cfgfifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("config.toml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&p)
            .status()
            .unwrap()
            .success()
    );
    let e = Config::from_file(&p).unwrap_err();
    assert!(e.is_config() && e.to_string().contains("a FIFO"), "{e}");
    // The handler's fallback lookup of the spool does not block either.
    assert_eq!(Config::spool_hint(Some(&p)), PathBuf::from(DEFAULT_SPOOL));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spool_hint_reads_the_spool_line_of_a_config_with_a_syntax_error() {
    let dir = std::env::temp_dir().join(format!("sr-hint-line-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    std::fs::write(
        &p,
        "# x\nspool = \"state/s.db\" # here\n[backend\nkind = 3\n",
    )
    .unwrap();
    assert_eq!(Config::spool_hint(Some(&p)), dir.join("state/s.db"));
    std::fs::write(&p, "[backend\nspool = \"x.db\"\n").unwrap();
    assert_eq!(Config::spool_hint(Some(&p)), PathBuf::from(DEFAULT_SPOOL));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn spool_hint_survives_a_broken_config() {
    let dir = std::env::temp_dir().join(format!("sr-hint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    std::fs::write(&p, "spool = \"s.db\"\n[backend]\nkind = 7\n").unwrap();
    assert_eq!(Config::spool_hint(Some(&p)), dir.join("s.db"));
    std::fs::write(&p, "spool = [[[").unwrap();
    assert_eq!(Config::spool_hint(Some(&p)), PathBuf::from(DEFAULT_SPOOL));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn show_nodes_is_for_a_page_and_off_by_default() {
    assert!(!parse(GOOD).unwrap().show_nodes);
    let c = parse(
        "[backend]\nkind = \"html\"\nshow_nodes = true\n[serve]\nlisten = \"127.0.0.1:8731\"\nallow_plain_http = true\n",
    );
    let c = c.unwrap();
    assert!(c.show_nodes);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // On a single node it does nothing: said by `check`.
    let c = parse("[backend]\nkind = \"html\"\nshow_nodes = true\n").unwrap();
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.contains("show_nodes is for an aggregator"))
    );
    // A relaying node writes no page.
    let e = parse("[backend]\nkind = \"relay\"\nurl = \"http://agg.example:8731\"\ntoken_file = \"t\"\nshow_nodes = false\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 5: backend.show_nodes: applies only to kind = \"html\""),
        "{e}"
    );
}

#[test]
fn a_relay_url_is_the_aggregators_base_not_an_endpoint() {
    for url in [
        "https://agg.example:8731/collector",
        "https://agg.example:8731/v1/reports/",
    ] {
        let e = parse(&format!(
            "[backend]\nkind = \"relay\"\nurl = \"{url}\"\ntoken_file = \"t\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 3: backend.url"), "{e}");
        assert!(e.contains("names an endpoint"), "{e}");
    }
    assert!(
        parse(
            "[backend]\nkind = \"relay\"\nurl = \"https://agg.example:8731/\"\ntoken_file = \"t\"\n"
        )
        .is_ok()
    );
}

#[test]
fn the_postgresql_store_takes_no_password_in_its_url_and_a_lease_that_outlasts_a_request() {
    let with = |store: &str| parse(&format!("{GOOD}[store]\n{store}\n"));
    let c = with("url = \"postgresql://statusrelay@db1,db2/statusrelay?target_session_attrs=read-write\"\npassword_file = \"/etc/statusrelay/pg-password\"").unwrap();
    let st = c.store.unwrap();
    assert_eq!(st.lease, Duration::from_secs(15), "the default lease");
    assert_eq!(st.instance, None);
    with("url = \"host=db1,db2 dbname=statusrelay user=statusrelay\"\nlease = \"20s\"\ninstance = \"agg1\"")
        .unwrap();
    let said = |r: Result<Config, CoreError>| r.unwrap_err().to_string();
    let e = said(with(
        "url = \"postgresql://statusrelay:hunter2@db1/statusrelay\"",
    ));
    assert!(
        e.contains("line 15: store.url") && e.contains("password_file"),
        "{e}"
    );
    assert!(
        !e.contains("hunter2"),
        "the password is never said back: {e}"
    );
    let e = said(with("url = \"host=db1 password=hunter2\""));
    assert!(e.contains("store.url") && !e.contains("hunter2"), "{e}");
    let e = said(with("url = \"db1\""));
    assert!(e.contains("not a PostgreSQL connection string"), "{e}");
    // The page's requests take up to 10 s (the default timeout): a 12 s lease cannot cover
    // one with a renewal and the margin.
    let e = said(with("url = \"host=db1\"\nlease = \"12s\""));
    assert!(
        e.contains("store.lease") && e.contains("make it longer than"),
        "{e}"
    );
    let e = said(with("url = \"host=db1\"\nleas = \"20s\""));
    assert!(e.contains("leas"), "{e}");
}

#[test]
fn the_store_may_be_its_connection_string_alone() {
    // (Before GOOD's tables: a bare key after a table header would belong to that table.)
    let c = parse(&format!(
        "store = \"postgresql://statusrelay@db1,db2/statusrelay\"\n{GOOD}"
    ))
    .unwrap();
    let st = c.store.unwrap();
    assert_eq!(st.url, "postgresql://statusrelay@db1,db2/statusrelay");
    assert_eq!(st.lease, Duration::from_secs(15));
    assert_eq!(
        (st.password_file, st.instance, st.ca_file),
        (None, None, None)
    );
    // Checked as the table is: no password in it, and a clear word on anything else.
    let e = parse(&format!(
        "store = \"postgresql://statusrelay:hunter2@db1/statusrelay\"\n{GOOD}"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("store.url") && !e.contains("hunter2"), "{e}");
    let e = parse(&format!("store = 5\n{GOOD}"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store") && e.contains("a connection string") && e.contains("[store] table"),
        "{e}"
    );
}
