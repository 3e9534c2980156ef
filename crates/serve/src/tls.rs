//! TLS for `serve` (rustls): the certificate chain and key from PEM files, reloaded when the
//! files change, so a renewed certificate (certbot, an internal CA's agent) is served without
//! a restart.
//!
//! Invariants:
//! - The files are looked at, at most once a second, when a connection arrives; a change
//!   (either file's modification time or size) is loaded for the next handshake on.
//! - A reload that fails (a half-written file, a key that does not match) keeps the working
//!   certificate, and is logged once per change of the files, with the reason.
//! - Only TLS 1.2 and 1.3 with rustls' safe defaults; no client certificates (nodes
//!   authenticate with their credential, inside the connection).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::{error, info};

/// What identifies a version of the two files.
type Stamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    [one(cert), one(key)]
}

/// The server's certificate, reloaded on change.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    stamp: Stamp,
    checked: Instant,
}

/// What is wrong with a PEM file, in words (the library prints byte lists for a cut file).
fn pem_problem(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { end_marker } => format!(
            "cut short: no \"-----END {}-----\" line (half written? renew it again)",
            String::from_utf8_lossy(end_marker)
        ),
        E::IllegalSectionStart { line } => format!(
            "a damaged \"-----BEGIN\" line: {:?}",
            String::from_utf8_lossy(line)
        ),
        E::Base64Decode(m) => format!("damaged base64 inside a PEM block ({m})"),
        E::Io(e) => e.to_string(),
        E::NoItemsFound => "nothing of the expected kind in it".into(),
        other => other.to_string(),
    }
}

/// Read and check the chain and key: an error names the file and what is wrong with it.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {}", cert.display(), pem_problem(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "{}: not a PEM certificate chain: {}",
                cert.display(),
                pem_problem(&e)
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "{}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {}",
            key.display(),
            pem_problem(&e)
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            format!(
                "{} and {}: the key does not fit the certificate, or is unusable: {e}",
                cert.display(),
                key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

impl Tls {
    /// Load the files now (an error stops `serve` and fails `check`).
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        let s = stamp(cert, key);
        let config = server_config(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(Loaded {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                stamp: s,
                checked: Instant::now(),
            }),
        })
    }

    /// The acceptor for a new connection, reloaded first if the files changed.
    pub fn acceptor(&self) -> TlsAcceptor {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.checked.elapsed().as_millis() >= 1000 {
            st.checked = Instant::now();
            let now = stamp(&self.cert, &self.key);
            if now != st.stamp {
                // Whatever the outcome, this version of the files is dealt with once.
                st.stamp = now;
                match server_config(&self.cert, &self.key) {
                    Ok(c) => {
                        st.acceptor = TlsAcceptor::from(Arc::new(c));
                        info!(
                            "TLS certificate reloaded from {} (it changed on disk)",
                            self.cert.display()
                        );
                    }
                    Err(e) => error!(
                        "TLS certificate not reloaded, the previous one is still served: {e}"
                    ),
                }
            }
        }
        st.acceptor.clone()
    }
}
