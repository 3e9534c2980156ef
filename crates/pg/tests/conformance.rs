//! The store's seam (`statusrelay_core::store`) held to one behaviour: every check runs on the
//! SQLite spool and on the PostgreSQL store (a real server, a cluster of the test's own), and
//! a difference between them is a failure. Without a PostgreSQL server the PostgreSQL half is
//! skipped with a message, except under `CI=true`, where that is a failure.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use statusrelay_core::store::{Credential, CredentialReads, NodeCredentials, any_reads};
use statusrelay_pg::{PgStore, migrate};
use statusrelay_testkit::postgres::Postgres;

/// What a store did, step by step, so the two can be compared whole.
type Trace = Vec<String>;

/// The nodes' credentials: add, add again, put unchanged, put changed, components kept in
/// order, and the version moving with each change and with nothing else.
fn credentials<S: NodeCredentials>(s: &mut S) -> Trace
where
    S::Error: Debug,
{
    let mut trace = Trace::new();
    let mut note = |what: &str, v: String| trace.push(format!("{what}: {v}"));
    let comps = vec!["payments".to_string(), "backend".to_string()];
    let v0 = s.credentials_version().unwrap();
    let (v, all) = s.credentials().unwrap();
    assert_eq!(v, v0);
    note("empty", format!("{}", all.len()));
    note(
        "add db1",
        format!("{:?}", s.add_node("db1", "h1", None).unwrap()),
    );
    let v1 = s.credentials_version().unwrap();
    note("version moved", format!("{}", v1 > v0));
    note(
        "add db1 again",
        format!("{:?}", s.add_node("db1", "other", None).unwrap()),
    );
    note(
        "unchanged",
        format!("{}", s.credentials_version().unwrap() == v1),
    );
    note(
        "put db1 unchanged",
        format!("{:?}", s.put_node("db1", "h1", None).unwrap()),
    );
    note(
        "unchanged",
        format!("{}", s.credentials_version().unwrap() == v1),
    );
    note(
        "put db1 with components",
        format!("{:?}", s.put_node("db1", "h1", Some(&comps)).unwrap()),
    );
    let v2 = s.credentials_version().unwrap();
    note("version moved", format!("{}", v2 > v1));
    note(
        "put web1 (new)",
        format!("{:?}", s.put_node("web1", "h2", Some(&[])).unwrap()),
    );
    note(
        "put web1 new secret",
        format!("{:?}", s.put_node("web1", "h3", Some(&[])).unwrap()),
    );
    let (v3, all) = s.credentials().unwrap();
    note("version moved", format!("{}", v3 > v2));
    assert_eq!(v3, s.credentials_version().unwrap());
    let mut names: Vec<_> = all.keys().cloned().collect();
    names.sort();
    note("nodes", names.join(","));
    let want: HashMap<String, Credential> = HashMap::from([
        (
            "db1".to_string(),
            Credential {
                secret_sha256: "h1".into(),
                components: Some(comps.clone()),
            },
        ),
        (
            "web1".to_string(),
            Credential {
                secret_sha256: "h3".into(),
                components: Some(vec![]),
            },
        ),
    ]);
    note("credentials as put", format!("{}", all == want));
    trace
}

/// A fresh SQLite spool in a directory of its own.
fn sqlite(name: &str) -> (statusrelay_spool::Spool, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("sr-conformance-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let clock: Arc<dyn statusrelay_core::time::Clock> =
        Arc::new(statusrelay_core::time::SystemClock);
    let spool = statusrelay_spool::Spool::open(&dir.join("spool.db"), clock).unwrap();
    (spool, dir)
}

/// A fresh PostgreSQL store, or None (a skip) where this machine has no server.
fn postgres(name: &str) -> Option<(PgStore, Postgres)> {
    let pg = Postgres::for_test(name)?;
    let mut c = pg.connect();
    migrate(&mut c).unwrap();
    Some((PgStore::new(c), pg))
}

#[test]
fn node_credentials_behave_the_same_on_both_stores() {
    let (mut spool, dir) = sqlite("credentials");
    let on_sqlite = credentials(&mut spool);
    // The gate's reader (a connection of its own, through the seam) reads what was written.
    let mut gate =
        any_reads(statusrelay_spool::CredentialReader::open(&dir.join("spool.db")).unwrap());
    assert_eq!(
        gate.credentials().unwrap(),
        CredentialReads::credentials(&mut spool).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
    // The SQLite spool's own behaviour, pinned: the PostgreSQL store must match it.
    assert_eq!(
        on_sqlite,
        [
            "empty: 0",
            "add db1: true",
            "version moved: true",
            "add db1 again: false",
            "unchanged: true",
            "put db1 unchanged: false",
            "unchanged: true",
            "put db1 with components: true",
            "version moved: true",
            "put web1 (new): true",
            "put web1 new secret: true",
            "version moved: true",
            "nodes: db1,web1",
            "credentials as put: true",
        ]
    );
    let Some((mut store, _pg)) = postgres("credentials") else {
        return;
    };
    assert_eq!(credentials(&mut store), on_sqlite);
    let written = CredentialReads::credentials(&mut store).unwrap();
    assert_eq!(any_reads(store).credentials().unwrap(), written);
}
