//! A real PostgreSQL made highly available by Patroni (Debian's `patroni`) over a real etcd
//! (Debian's `etcd-server`), for a test: one etcd and a Patroni member per PostgreSQL
//! server, each with its own data directory and ports on 127.0.0.1, in a temp dir of its
//! own; never the system's etcd or clusters. As root, everything runs as the `postgres` user
//! (PostgreSQL refuses root).
//!
//! Invariants:
//! - Synchronous replication (`synchronous_mode`): a commit the primary acknowledged is on
//!   the standby, so a failover Patroni makes loses nothing acknowledged.
//! - Everything it starts is killed when it is dropped (each member's Patroni, then its
//!   PostgreSQL by its pid file, then etcd), and its directory removed.
//! - [`Patroni::start`] says why it cannot run (a program missing, no `postgres` user as
//!   root) instead of failing; [`Patroni::for_test`] makes that a skip, or under CI a
//!   failure.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::{free_port, server_bin};
use crate::sandbox::{can_run, is_root};

/// The superuser the tests connect as (trusted from 127.0.0.1).
pub const USER: &str = "postgres";

/// One Patroni member: its PostgreSQL's port, its REST API's, its process.
pub struct Member {
    pub name: String,
    pub pg_port: u16,
    pub api_port: u16,
    child: Option<Child>,
}

/// A running Patroni cluster.
pub struct Patroni {
    pub dir: PathBuf,
    etcd: Option<Child>,
    pub members: Vec<Member>,
    /// (uid, gid) everything runs as, when the test runs as root.
    run_as: Option<(u32, u32)>,
}

/// The postgres user's uid and gid.
fn postgres_ids() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

impl Patroni {
    /// Start etcd and `members` Patroni members; returns once one leads and every other
    /// streams from it synchronously or asynchronously. Err says why this machine cannot.
    pub fn start(name: &str, members: usize) -> Result<Patroni, String> {
        for (program, package) in [("patroni", "patroni"), ("etcd", "etcd-server")] {
            if !on_path(program) {
                return Err(format!("no {program}: apt-get install {package}"));
            }
        }
        let bin = server_bin().ok_or("no PostgreSQL server: apt-get install postgresql")?;
        let run_as = if is_root() {
            Some(
                postgres_ids()
                    .ok_or("running as root and there is no postgres user to run the cluster as")?,
            )
        } else {
            None
        };
        let dir =
            std::env::temp_dir().join(format!("statusrelay-patroni-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut p = Patroni {
            dir,
            etcd: None,
            members: Vec::new(),
            run_as,
        };
        p.own(&p.dir.clone())?;
        let (client, peer) = (free_port(), free_port());
        p.etcd = Some(p.spawn(
            "etcd",
            &[
                "--name",
                "etcd1",
                "--data-dir",
                &p.dir.join("etcd").to_string_lossy(),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("etcd1=http://127.0.0.1:{peer}"),
            ],
            "etcd.log",
        )?);
        for i in 0..members {
            let m = Member {
                name: format!("pg{i}"),
                pg_port: free_port(),
                api_port: free_port(),
                child: None,
            };
            let conf = p.dir.join(format!("{}.yml", m.name));
            std::fs::write(&conf, member_yaml(&p.dir, &bin, client, &m))
                .map_err(|e| format!("{}: {e}", conf.display()))?;
            p.own(&conf)?;
            let home = p.dir.join(&m.name);
            std::fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
            p.own(&home)?;
            let child = p.spawn(
                "patroni",
                &[&conf.to_string_lossy()],
                &format!("{}.log", m.name),
            )?;
            p.members.push(Member {
                child: Some(child),
                ..m
            });
            // The first bootstraps the cluster; each other is made from it and follows it.
            let ready = |p: &Patroni| match i {
                0 => p.count_role("leader") == 1,
                _ => p.standbys() >= i,
            };
            p.until(Duration::from_secs(60), ready)
                .map_err(|e| format!("member {i} never ready: {e}"))?;
        }
        // Synchronous replication is in place once a standby is the synchronous one.
        if members > 1 {
            p.until(Duration::from_secs(30), |p| {
                p.count_role("sync_standby") >= 1
            })
            .map_err(|e| format!("no synchronous standby: {e}"))?;
        }
        Ok(p)
    }

    /// A test's cluster, or None where this machine has none to give: the test is then
    /// skipped with a message, except under `CI=true`, where it fails ([`can_run`]).
    pub fn for_test(name: &str, members: usize) -> Option<Patroni> {
        match Patroni::start(name, members) {
            Ok(p) => Some(p),
            Err(why) => {
                can_run(Some(&why));
                None
            }
        }
    }

    /// A connection string naming every member, for the read-write one.
    pub fn url(&self) -> String {
        let ports: Vec<String> = self.members.iter().map(|m| m.pg_port.to_string()).collect();
        let hosts: Vec<&str> = self.members.iter().map(|_| "127.0.0.1").collect();
        format!(
            "host={} port={} user={USER} dbname=postgres target_session_attrs=read-write sslmode=disable connect_timeout=2",
            hosts.join(","),
            ports.join(",")
        )
    }

    /// The member that leads now, as Patroni's REST API says.
    pub fn leader(&self) -> Option<usize> {
        let roles = self.roles();
        self.members
            .iter()
            .position(|m| roles.iter().any(|(n, r, _)| *n == m.name && r == "leader"))
    }

    /// Kill a member as a machine dies: its Patroni and its PostgreSQL, with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        let m = &mut self.members[i];
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_postmaster(&self.dir.join(&m.name).join("data"));
    }

    /// Wait until `ok`, or Err with what every member logged.
    pub fn until(&self, deadline: Duration, ok: impl Fn(&Patroni) -> bool) -> Result<(), String> {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if ok(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "after {deadline:?}: roles {:?}\n{}",
            self.roles(),
            self.logs()
        ))
    }

    /// Every member's (name, role, state) as the cluster's REST API lists them (roles:
    /// `leader`, `sync_standby`, `replica`).
    pub fn roles(&self) -> Vec<(String, String, String)> {
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            if let Some(v) = get_json(m.api_port, "/cluster") {
                let s = |m: &serde_json::Value, k: &str| m[k].as_str().unwrap_or("").to_string();
                return v["members"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|m| (s(m, "name"), s(m, "role"), s(m, "state")))
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        Vec::new()
    }

    /// How many members have this role and run (or stream, for a standby).
    fn count_role(&self, role: &str) -> usize {
        self.roles()
            .iter()
            .filter(|(_, r, st)| r == role && (st == "running" || st == "streaming"))
            .count()
    }

    /// How many standbys run, synchronous or not.
    fn standbys(&self) -> usize {
        self.count_role("replica") + self.count_role("sync_standby")
    }

    /// What etcd and every member logged.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for f in std::iter::once("etcd.log".to_string())
            .chain(self.members.iter().map(|m| format!("{}.log", m.name)))
        {
            let text = std::fs::read_to_string(self.dir.join(&f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {f}:\n"));
            for l in tail.iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    fn own(&self, path: &Path) -> Result<(), String> {
        let Some((uid, gid)) = self.run_as else {
            return Ok(());
        };
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("could not give {} to postgres: {e}", path.display()))
    }

    /// A program of the cluster's, as the cluster's user, its output in `log`.
    fn spawn(&self, program: &str, args: &[&str], log: &str) -> Result<Child, String> {
        let out = std::fs::File::create(self.dir.join(log)).map_err(|e| format!("{log}: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("{log}: {e}"))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn().map_err(|e| format!("{program}: {e}"))
    }
}

impl Drop for Patroni {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if let Some(mut e) = self.etcd.take() {
            let _ = e.kill();
            let _ = e.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILL the PostgreSQL server of a data directory (its pid file's first line).
fn kill_postmaster(data: &Path) {
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
    if let Some(pid) = pid {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// A GET of Patroni's REST API on 127.0.0.1, as JSON.
fn get_json(port: u16, path: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()
}

/// A member's configuration: the DCS settings a test wants (a 10 s TTL, a 1 s loop,
/// synchronous replication), trust from 127.0.0.1, its own ports and data directory.
fn member_yaml(dir: &Path, bin: &Path, etcd: u16, m: &Member) -> String {
    let d = dir.display();
    format!(
        "scope: statusrelay-test
name: {name}
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        max_wal_senders: 5
        max_replication_slots: 5
  initdb:
  - encoding: UTF8
  - auth: trust
  pg_hba:
  - host replication replicator 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
  - local all all trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {d}/{name}/data
  bin_dir: {bin}
  pgpass: {d}/{name}.pgpass
  authentication:
    replication:
      username: replicator
      password: replicator
    superuser:
      username: {USER}
      password: {USER}
  parameters:
    unix_socket_directories: {d}
",
        name = m.name,
        api = m.api_port,
        pg = m.pg_port,
        bin = bin.display(),
    )
}
