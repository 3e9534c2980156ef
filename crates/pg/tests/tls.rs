//! TLS to the database, on a real PostgreSQL serving TLS with a private CA (certificates made
//! with openssl, as an operator makes them): the connection is encrypted and the server's
//! certificate verified against `ca_file`; a certificate from another CA, or none trusted,
//! is refused; `sslmode=disable` stays plain. Without a PostgreSQL server the test is skipped
//! with a message, except under `CI=true`, where that is a failure.

use std::time::Duration;

use statusrelay_core::config::StoreConfig;
use statusrelay_pg::Target;
use statusrelay_testkit::postgres::Postgres;

fn store(url: String, ca_file: Option<std::path::PathBuf>) -> StoreConfig {
    StoreConfig {
        url,
        password_file: None,
        instance: None,
        ca_file,
        lease: Duration::from_secs(15),
    }
}

/// Is this connection encrypted, as the server sees it?
fn encrypted(c: &mut postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn the_database_is_reached_over_tls_verified_against_the_configured_ca() {
    let Some(pg) = Postgres::for_test("tls") else {
        return;
    };
    let ca = pg.with_tls().unwrap();
    let url = |mode: &str| format!("{} sslmode={mode}", pg.url());
    let connect = |st: StoreConfig| Target::new(&st, "a").and_then(|t| t.connect());

    let mut c = connect(store(url("require"), Some(ca.clone()))).unwrap();
    assert!(encrypted(&mut c), "sslmode=require with the CA: encrypted");
    // The default (prefer) uses TLS when the server offers it.
    let mut c = connect(store(pg.url(), Some(ca.clone()))).unwrap();
    assert!(encrypted(&mut c), "sslmode=prefer: encrypted when offered");
    let mut c = connect(store(url("disable"), None)).unwrap();
    assert!(!encrypted(&mut c), "sslmode=disable: plain");

    // A certificate another CA signed is refused, and so is one no public CA signed.
    let other = pg.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    statusrelay_testkit::certs::self_signed(&other, "x");
    let e = connect(store(url("require"), Some(other.join("x-ca.crt"))))
        .err()
        .expect("refused: signed by another CA");
    assert!(e.to_string().contains("certificate"), "{e}");
    let e = connect(store(url("require"), None))
        .err()
        .expect("refused: no public CA signed it");
    assert!(e.to_string().contains("certificate"), "{e}");
    // A ca_file that holds no certificate is said as such, before any connection.
    std::fs::write(other.join("empty.pem"), "nothing here\n").unwrap();
    let e = Target::new(&store(url("require"), Some(other.join("empty.pem"))), "a")
        .expect_err("refused: no certificate in it");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}
