//! A real PostgreSQL server (Debian's `postgresql` package) for a test: its own cluster in a
//! temp dir (`initdb`), started with `pg_ctl` on 127.0.0.1 and a port of its own, never the
//! system's cluster. As root the server runs as the `postgres` user (PostgreSQL refuses root);
//! otherwise as the current user.
//!
//! Invariants:
//! - Everything it starts is stopped when it is dropped (`pg_ctl stop -m immediate`), and its
//!   directory removed.
//! - [`Postgres::start`] says why it cannot run (no server binaries, no `postgres` user as
//!   root) instead of failing; [`Postgres::for_test`] makes that a skip, or under CI a
//!   failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sandbox::{can_run, is_root};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The database and role every test cluster has.
pub const DB: &str = "statusrelay";

/// A running test cluster.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    /// The user the server runs as, when the test runs as root.
    run_as: Option<String>,
}

/// The newest PostgreSQL server's binaries on this machine.
pub(crate) fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Postgres {
    /// Make a cluster and start it; Err says why this machine cannot.
    pub fn start(name: &str) -> Result<Postgres, String> {
        let bin = server_bin().ok_or(
            "no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql",
        )?;
        let run_as = if is_root() {
            let ok = Command::new("id")
                .arg("postgres")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(
                    "running as root and there is no postgres user to run the server as".into(),
                );
            }
            Some("postgres".to_string())
        } else {
            None
        };
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("statusrelay-pg-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let pg = Postgres {
            dir,
            port: free_port(),
            bin,
            run_as,
        };
        if let Some(user) = &pg.run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(&pg.dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!("could not give {} to {user}", pg.dir.display()));
            }
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().to_string_lossy(),
                "-U",
                DB,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
        )?;
        pg.start_again()?;
        pg.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", DB, DB],
        )?;
        Ok(pg)
    }

    /// A test's cluster, or None where this machine has none to give: the test is then
    /// skipped with a message, except under `CI=true`, where it fails ([`can_run`]).
    pub fn for_test(name: &str) -> Option<Postgres> {
        match Postgres::start(name) {
            Ok(pg) => Some(pg),
            Err(why) => {
                can_run(Some(&why));
                None
            }
        }
    }

    /// Another database on this cluster (`name` in letters, digits and `_`), empty: the
    /// connection string of it, for a test that needs a store of its own.
    pub fn database(&self, name: &str) -> String {
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "a database name of letters, digits and _: {name}"
        );
        self.connect()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}\n{}", self.log()));
        self.url()
            .replace(&format!("dbname={DB}"), &format!("dbname={name}"))
    }

    /// A connection to the test database whose statements fail after 20 s instead of
    /// waiting on a lock forever.
    pub fn connect(&self) -> postgres::Client {
        client(&self.url()).unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Run one of the server's programs (as the server's user), its output kept for an error.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{}: {e}", exe.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {}: {}\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Start the server (again, after [`Postgres::stop`]); returns once it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-l",
                &self.dir.join("server.log").to_string_lossy(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        )
    }

    /// A streaming standby of this server (`pg_basebackup -R`), started on a port of its own:
    /// it follows this one until it is promoted ([`Postgres::promote`]).
    pub fn standby(&self, name: &str) -> Result<Postgres, String> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "statusrelay-pg-{}-{n}-{name}-standby",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let standby = Postgres {
            dir,
            port: free_port(),
            bin: self.bin.clone(),
            run_as: self.run_as.clone(),
        };
        if let Some(user) = &standby.run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(&standby.dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!(
                    "could not give {} to {user}",
                    standby.dir.display()
                ));
            }
        }
        standby.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                DB,
                "-D",
                &standby.data().to_string_lossy(),
                "-R",
                "-X",
                "stream",
                // A fast checkpoint: the default spreads it over minutes.
                "-c",
                "fast",
            ],
        )?;
        standby.start_again()?;
        Ok(standby)
    }

    /// Make this standby the primary (`pg_ctl promote`); returns once it is.
    pub fn promote(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &["-D", &self.data().to_string_lossy(), "-w", "promote"],
        )
    }

    /// Add these lines to the server's configuration and restart it.
    pub fn configure(&self, lines: &str) -> Result<(), String> {
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
        text.push('\n');
        text.push_str(lines);
        text.push('\n');
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        self.stop()?;
        self.start_again()
    }

    /// Serve TLS from now on: a private CA and a certificate for 127.0.0.1 and localhost
    /// (made with openssl), the server restarted with `ssl = on`. The CA's PEM file, for the
    /// client to trust.
    pub fn with_tls(&self) -> Result<PathBuf, String> {
        let dir = self.dir.join("tls");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        crate::certs::self_signed(&dir, "pg");
        let key = dir.join("pg.key");
        // The server reads its key only when it is its own and no one else's.
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| format!("{}: {e}", key.display()))?;
        if let Some(user) = &self.run_as {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!("could not give {} to {user}", dir.display()));
            }
        }
        self.configure(&format!(
            "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
            dir.join("pg.crt").display(),
            key.display()
        ))?;
        Ok(dir.join("pg-ca.crt"))
    }

    /// Stop the server at once (`-m immediate`: as a crash would, no checkpoint).
    pub fn stop(&self) -> Result<(), String> {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data().to_string_lossy(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    /// A connection string for the test database (no password: the cluster trusts loopback).
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={DB} dbname={DB} connect_timeout=5",
            self.port
        )
    }

    /// The server's log, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection to a test's database at `url` (a libpq connection string) whose statements
/// fail after 20 s instead of waiting on a lock forever.
pub fn client(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    c.batch_execute("SET statement_timeout = 20000")?;
    Ok(c)
}
