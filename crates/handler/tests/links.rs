//! What Monit execs per event links no async runtime, HTTP server or TLS: the handler's crate
//! depends on core and the spool alone. Read from Cargo's own resolution of the lock file.

#[test]
fn the_handler_links_no_runtime_no_http_and_no_tls() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "statusrelay-handler",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        crates.contains(&"statusrelay-spool") && crates.contains(&"rusqlite"),
        "not the handler's tree: {tree}"
    );
    for banned in [
        "tokio",
        "axum",
        "hyper",
        "rustls",
        "tokio-rustls",
        "ureq",
        "ring",
        "statusrelay-backend",
        "statusrelay-serve",
    ] {
        assert!(
            !crates.contains(&banned),
            "the handler links {banned}: {tree}"
        );
    }
}
