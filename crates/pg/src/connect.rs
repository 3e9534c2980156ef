//! Reaching the PostgreSQL store as `[store]` says: the connection string parsed by the
//! client (URL or key=value, several hosts, `target_session_attrs`), the password from a file
//! or the environment, the schema migrated, the session prepared for the lease.
//!
//! Invariants:
//! - The password is read from `password_file` (its first line) or `PGPASSWORD`, never from
//!   the connection string (`check` refuses one there) and never said in an error or a log.
//! - Every connection names itself (`application_name`: statusrelay and the instance), has a
//!   connect timeout, and ends any transaction left idle past a quarter of the lease
//!   (`Lease::prepare_session`).

use std::sync::Arc;
use std::time::Duration;

use statusrelay_core::config::StoreConfig;
use statusrelay_core::time::Clock;

use crate::{Lease, PgError, PgStore};

/// The TLS connector: the CA(s) in `ca_file`, else the public ones; the server's certificate
/// and name always verified (rustls has no mode that skips it).
fn tls(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| {
                    PgError::Config(format!(
                        "ca_file {}: {e}: a PEM file of the CA certificate(s) that sign the database's certificate",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(PgError::Config(format!(
                    "ca_file {}: holds no certificate (expected -----BEGIN CERTIFICATE-----)",
                    path.display()
                )));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| PgError::Config(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// How long a connection attempt to one host may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The aggregator's database as `[store]` says, for `instance`.
#[derive(Clone)]
pub struct Target {
    pub config: postgres::Config,
    pub lease: Lease,
    /// TLS, unless the connection string says `sslmode=disable`.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl std::fmt::Debug for Target {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("instance", &self.lease.instance)
            .finish()
    }
}

impl Target {
    /// The config's PostgreSQL store, resolved for this instance (named by `[store] instance`,
    /// else `node`, else the hostname); None without `[store]`: the SQLite spool.
    pub fn of(config: &statusrelay_core::Config) -> Result<Option<Target>, PgError> {
        let Some(st) = &config.store else {
            return Ok(None);
        };
        let instance = st.instance.clone().unwrap_or_else(|| config.node_name());
        Target::new(st, &instance).map(Some)
    }

    /// Resolve `[store]` for `instance`: the string parsed, the password read.
    pub fn new(st: &StoreConfig, instance: &str) -> Result<Target, PgError> {
        let mut config: postgres::Config = st.url.trim().parse().map_err(|e| {
            PgError::Config(format!(
                "url: {e}: write a URL (postgresql://USER@HOST[,HOST2]/DBNAME) or key=value words (host=HOST dbname=DBNAME user=USER)"
            ))
        })?;
        let password = match &st.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    PgError::Config(format!(
                        "password_file {}: {e}: create it with the database password on its first line, readable by statusrelay only",
                        path.display()
                    ))
                })?;
                Some(text.lines().next().unwrap_or_default().to_string())
            }
            None => std::env::var("PGPASSWORD").ok(),
        };
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            config.password(p);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name(&format!("statusrelay {instance}"));
        let tls = match config.get_ssl_mode() {
            postgres::config::SslMode::Disable => None,
            _ => Some(tls(st.ca_file.as_deref())?),
        };
        Ok(Target {
            config,
            lease: Lease {
                instance: instance.to_string(),
                duration: st.lease,
            },
            tls,
        })
    }

    /// A new connection, its session prepared for the lease.
    pub fn connect(&self) -> Result<postgres::Client, PgError> {
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(postgres::NoTls)?,
        };
        self.lease.prepare_session(&mut client)?;
        Ok(client)
    }

    /// Where it points, in words (never the password): hosts, database, user, instance.
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        format!(
            "PostgreSQL {} db {} as {}, instance {}, lease {}, {}",
            hosts.join(","),
            self.config.get_dbname().unwrap_or("(default)"),
            self.config.get_user().unwrap_or("(default)"),
            self.lease.instance,
            statusrelay_core::duration::format(self.lease.duration),
            if self.tls.is_some() {
                "TLS verified"
            } else {
                "no TLS"
            }
        )
    }

    /// Ask the database, changing nothing: its schema version (None: never migrated) and
    /// who writes (`check --online`).
    pub fn probe(&self) -> Result<(Option<i32>, Option<crate::WriterRow>), PgError> {
        let mut c = self.connect()?;
        let has_schema: bool = c
            .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
            .get(0);
        if !has_schema {
            return Ok((None, None));
        }
        let schema: i32 = c
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
            .get(0);
        let writer = if schema >= 1 {
            crate::lease::writer(&mut c)?
        } else {
            None
        };
        Ok((Some(schema), writer))
    }

    /// The store on a new connection, its schema brought up to date first.
    pub fn open(&self, clock: Arc<dyn Clock>) -> Result<PgStore, PgError> {
        let mut client = self.connect()?;
        crate::migrate(&mut client)?;
        Ok(PgStore::new(client, clock).for_instance(&self.lease.instance))
    }
}
