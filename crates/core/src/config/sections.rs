//! The config's smaller sections: delivery and retention policy, incidents, Monit, the
//! `[[check]]`s monit-config writes, and the `[[component]]`s with their mapping overrides.
//!
//! Invariants:
//! - Each is a plain struct with `deny_unknown_fields`, so serde names the line and key of
//!   anything unknown or of the wrong type.
//! - A component's slug ([`slug`]) is the only form of its name that goes into Monit's exec
//!   lines; two components may not share one (validated in `Config::validate`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::serde_human;
use crate::glob::Glob;
use crate::mapping::{Mapped, TESTS, test_spec};

/// Retry and give-up policy of the flusher.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// First retry delay (before jitter).
    #[serde(default = "d_base", with = "serde_human")]
    pub backoff_base: Duration,
    /// Longest retry delay.
    #[serde(default = "d_cap", with = "serde_human")]
    pub backoff_cap: Duration,
    /// Dead-letter after this many failed attempts (0: no limit).
    #[serde(default)]
    pub max_attempts: u32,
    /// Dead-letter an item still undelivered this long after it was queued.
    #[serde(default = "d_age", with = "serde_human")]
    pub max_age: Duration,
    /// After a write whose outcome is unknown (no answer, a server error), read the
    /// component back from the page this long later and repair it if a late write landed.
    #[serde(default = "d_verify", with = "serde_human")]
    pub verify_after: Duration,
}

fn d_verify() -> Duration {
    Duration::from_secs(120)
}

fn d_base() -> Duration {
    Duration::from_secs(1)
}
fn d_cap() -> Duration {
    Duration::from_secs(300)
}
fn d_age() -> Duration {
    Duration::from_secs(24 * 3600)
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            backoff_base: d_base(),
            backoff_cap: d_cap(),
            max_attempts: 0,
            max_age: d_age(),
            verify_after: d_verify(),
        }
    }
}

/// How long the event history is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Events older than this are pruned (unless a queued or dead item still refers to them).
    #[serde(default = "r_age", with = "serde_human")]
    pub events: Duration,
    /// At most this many events are kept.
    #[serde(default = "r_max")]
    pub max_events: u64,
}

fn r_age() -> Duration {
    Duration::from_secs(30 * 86_400)
}
fn r_max() -> u64 {
    1_000_000
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events: r_age(),
            max_events: r_max(),
        }
    }
}

/// A Monit check whose exec clauses statusrelay generates (`statusrelay monit-config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// Monit service name (letters, digits, `_`, `-`, `.`).
    pub service: String,
    /// Monit check type: process, program, host, file, filesystem, directory, fifo, network, system.
    #[serde(rename = "type")]
    pub kind: String,
    /// What follows the name in Monit's syntax, e.g. `matching "mysqld"`, `with path /usr/lib/x.sh`.
    #[serde(default)]
    pub target: String,
    /// Monit test conditions, e.g. `does not exist`, `failed port 3306 protocol mysql`.
    pub tests: Vec<String>,
    /// Monit `start program`, optional.
    #[serde(default)]
    pub start: Option<String>,
    /// Monit `stop program`, optional.
    #[serde(default)]
    pub stop: Option<String>,
    /// Route to this component instead of by service name.
    #[serde(default)]
    pub component: Option<String>,
}

pub const CHECK_TYPES: &[&str] = &[
    "process",
    "program",
    "host",
    "file",
    "filesystem",
    "directory",
    "fifo",
    "network",
    "system",
];

/// Monit's HTTP interface, as the monitrc's `set httpd` configures it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitConfig {
    /// `http://127.0.0.1:2812` (plain http: Monit's interface is local).
    #[serde(default)]
    pub url: Option<String>,
    /// Path of Monit's unix socket (`set httpd unixsocket ...`), instead of `url`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Basic-auth user from the monitrc's `allow user:password`.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Run `resync` from the flusher this often (and at its start). Off when absent.
    #[serde(default, with = "serde_human::option")]
    pub resync_interval: Option<Duration>,
    #[serde(default = "monit_timeout", with = "serde_human")]
    pub timeout: Duration,
}

fn monit_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A `[mapping]` table: test family -> state or "ignore". Keys are checked against the known
/// test families so a typo is an error, not a silently unused override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingTable(pub BTreeMap<String, Mapped>);

impl<'de> Deserialize<'de> for MappingTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<String, Mapped>::deserialize(d)?;
        for k in m.keys() {
            if test_spec(k).is_none() || k.contains(':') {
                let known: Vec<&str> = TESTS.iter().map(|t| t.key).collect();
                return Err(serde::de::Error::custom(format!(
                    "unknown test {k:?} in mapping: expected one of {}",
                    known.join(", ")
                )));
            }
        }
        Ok(MappingTable(m))
    }
}

/// One component on the status page and the Monit services that feed it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentConfig {
    /// Name on the status page (resolved to its id unless `id` is given).
    pub name: String,
    /// The component's id on the status page, to skip name resolution (a number for Cachet,
    /// a string for Statuspage and status.io).
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
    /// status.io: the container (id or name) the component is shown in; needed when the
    /// component is in more than one.
    #[serde(default)]
    pub container: Option<String>,
    /// Monit service names (globs) that feed this component. Default: the component's name.
    #[serde(default)]
    pub services: Vec<Glob>,
    /// Per-component overrides of the test -> state table.
    #[serde(default)]
    pub mapping: MappingTable,
    /// Open an incident when the component leaves operational; resolve it on recovery.
    #[serde(default)]
    pub incidents: bool,
    /// Incident name template (default: "{component}: {state_label}").
    #[serde(default)]
    pub incident_name: Option<String>,
    /// Incident message template.
    #[serde(default)]
    pub incident_message: Option<String>,
    /// How the states of the nodes feeding it make one (`[component.nodes]`).
    #[serde(default)]
    pub nodes: crate::nodes::NodeRule,
}

/// An id written as a number (`id = 7`) or a string (`id = "ftgks51sfs2d"`).
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Num(u64),
        Text(String),
    }
    Ok(match Option::<Id>::deserialize(d)? {
        Some(Id::Num(n)) => Some(n.to_string()),
        Some(Id::Text(t)) if !t.trim().is_empty() => Some(t),
        Some(Id::Text(_)) => return Err(serde::de::Error::custom("id is empty")),
        None => None,
    })
}

pub const DEFAULT_INCIDENT_NAME: &str = "{component}: {state_label}";
pub const DEFAULT_INCIDENT_MESSAGE: &str =
    "{state_label} since {time}: {description} ({service} on {host})";
/// An aggregator's: `{description}` already names the services (and the nodes, with
/// `[backend] show_nodes`), in Monit's words.
pub const DEFAULT_FLEET_INCIDENT_MESSAGE: &str = "{state_label} since {time}: {description}";

/// How incidents are handled for components with `incidents = true`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Ask the page to notify subscribers when an incident opens or resolves.
    #[serde(default = "yes")]
    pub notify: bool,
    /// An open incident statusrelay did not create pins the component: automation does not
    /// flip it to operational nor close that incident.
    #[serde(default = "yes")]
    pub respect_manual: bool,
}

fn yes() -> bool {
    true
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            notify: true,
            respect_manual: true,
        }
    }
}

impl ComponentConfig {
    /// A component synthesised for a service when the config lists none (built-in defaults).
    pub fn auto(service: &str) -> ComponentConfig {
        ComponentConfig {
            name: service.to_string(),
            id: None,
            container: None,
            services: Vec::new(),
            mapping: MappingTable::default(),
            incidents: false,
            incident_name: None,
            incident_message: None,
            nodes: crate::nodes::NodeRule::default(),
        }
    }

    /// The name as one plain token, for Monit's exec line, which Monit splits on whitespace
    /// and does not unquote: lowercase ASCII letters and digits, every other run of characters
    /// one `-` (`"DB Cluster"` -> `db-cluster`). `--component` takes the name or this slug;
    /// two components may not share one (validated at load).
    pub fn slug(&self) -> String {
        slug(&self.name)
    }

    pub fn feeds_from(&self, service: &str) -> bool {
        if self.services.is_empty() {
            return self.name == service;
        }
        self.services.iter().any(|g| g.matches(service))
    }
}

/// See [`ComponentConfig::slug`].
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// `[collector]`: this node has no statusrelay flusher; its Monit pushes its status to the
/// aggregator's collector (`set mmonit`), a line `statusrelay monit-config` writes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// The aggregator's collector, e.g. `https://aggregator.example.com:8731/collector`
    /// (no credentials in it: they come from `node` and `secret_file`).
    pub url: String,
    /// The file holding this node's secret (`statusrelay nodes add` on the aggregator).
    pub secret_file: PathBuf,
    /// A PEM CA file Monit verifies the aggregator's certificate with (a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[store]`: the aggregator's store on PostgreSQL, shared by several `serve` instances of
/// which one, elected, writes the page. Without it, the aggregator's store is its SQLite
/// spool (`spool`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The database, as libpq takes it: a URL (`postgresql://statusrelay@db1,db2/statusrelay?target_session_attrs=read-write`)
    /// or `key=value` words. Never a password: that comes from `password_file` or the
    /// environment (`PGPASSWORD`), so it is in no config file shown and no process list.
    pub url: String,
    /// A file whose first line is the database password (readable by statusrelay only).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// This instance's name among the aggregator's instances; by default `node`, else the
    /// hostname.
    #[serde(default)]
    pub instance: Option<String>,
    /// A PEM file of the CA(s) that sign the database's certificate (a private CA); without
    /// it, the public CAs. Used whenever the connection is TLS (`sslmode=prefer`, the
    /// default, or `require`): the certificate and the host name are always verified.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long the writer's lease lasts: another instance takes over within this (plus one
    /// renewal, a fifth of it) after the writer dies or freezes. It must outlast a page
    /// request (`[backend] timeout`), a renewal and a margin.
    #[serde(default = "d_lease", with = "serde_human")]
    pub lease: Duration,
}

fn d_lease() -> Duration {
    Duration::from_secs(15)
}

impl StoreConfig {
    /// `store = "..."`: the connection string alone, everything else by default.
    pub fn of_url(url: &str) -> StoreConfig {
        StoreConfig {
            url: url.to_string(),
            password_file: None,
            instance: None,
            ca_file: None,
            lease: d_lease(),
        }
    }
}

/// `store = "postgresql://..."` (the connection string alone) or a `[store]` table: the
/// table read as itself, so a wrong key in it is named as in any table.
pub(super) fn store_form<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<StoreConfig>, D::Error> {
    struct Form;
    impl<'de> serde::de::Visitor<'de> for Form {
        type Value = StoreConfig;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a connection string (store = \"postgresql://...\") or a [store] table")
        }
        fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<StoreConfig, E> {
            Ok(StoreConfig::of_url(url))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<StoreConfig, A::Error> {
            StoreConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(Form).map(Some)
}

/// `[serve]`: how the aggregator (`statusrelay serve`) listens for its nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// PEM certificate chain served over TLS (with `tls_key`); reloaded when it changes.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP anywhere but loopback needs this, by name: node credentials would cross the
    /// network in the clear (a TLS-terminating proxy in front).
    pub allow_plain_http: bool,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body: usize,
    /// How long one request may take, headers and body, before it is cut off (408), and a
    /// TLS handshake.
    #[serde(with = "serde_human")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Connections one peer address (an IPv6 /64) may hold at once; its next is closed.
    /// Behind a TLS-terminating proxy every node has the proxy's address: raise it to
    /// `max_connections` there.
    pub max_connections_per_peer: usize,
    /// Request bodies held in memory at once, all requests together, in bytes: a request
    /// waits for room (503 with `Retry-After` after `request_timeout`), so a flood of large
    /// bodies costs this much memory at most. At least `max_body`.
    pub body_budget: usize,
    /// Failed authentications one peer address may make in a minute; beyond, its failing
    /// requests are answered 429 until the minute is over (a valid credential still passes).
    pub max_failed_auth: u32,
    /// Requests a second one node may make, after a burst of `node_burst` (429 beyond).
    pub node_rate: u32,
    pub node_burst: u32,
    /// A node not heard from for this many of its periods (Monit's poll cycle, the relay's
    /// heartbeat) is stale; what that means per component is `[component.nodes] stale`.
    pub stale_after: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 8731)),
            allow_plain_http: false,
            max_body: 1 << 20,
            request_timeout: Duration::from_secs(10),
            tls_cert: None,
            tls_key: None,
            max_connections: 512,
            max_connections_per_peer: 256,
            body_budget: 32 << 20,
            max_failed_auth: 60,
            node_rate: 20,
            node_burst: 200,
            stale_after: 3,
        }
    }
}
