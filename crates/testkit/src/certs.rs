//! Certificates made as an operator makes them (Debian's openssl), for the tests of TLS:
//! `serve`'s listener, and the aggregator's connection to PostgreSQL.

/// A private CA (NAME-ca.crt) and a server certificate it signed for localhost and 127.0.0.1
/// (NAME.crt, NAME.key) in `dir`, made with openssl as an operator would.
pub fn self_signed(dir: &std::path::Path, name: &str) {
    let openssl = |args: &[&str]| {
        let r = std::process::Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl (Debian's openssl package; .ci/run installs it)");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    let (ca, key, csr, crt) = (
        format!("{name}-ca"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509", "-days", "2", "-subj", "/CN=test CA"];
    a.extend(ec);
    let (cak, cac) = (format!("{ca}.key"), format!("{ca}.crt"));
    a.extend(["-keyout", &cak, "-out", &cac]);
    openssl(&a);
    let mut a = vec!["req", "-subj", "/CN=localhost"];
    a.extend(ec);
    a.extend(["-keyout", &key, "-out", &csr]);
    openssl(&a);
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    let ext = format!("{name}.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &cac,
        "-CAkey",
        &cak,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
}
