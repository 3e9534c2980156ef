//! The configuration file (TOML) and where it is found.
//!
//! Invariants:
//! - Lookup order: an explicit path (`--config` or STATUSRELAY_CONFIG) that must exist, then
//!   `/etc/statusrelay/config.toml` if it exists, then built-in defaults (the static HTML page,
//!   one component per Monit service). An explicit path that is missing is an error, never a
//!   silent fall-back to defaults.
//! - Unknown keys are errors (`deny_unknown_fields`), and every error names the file, the line
//!   where toml can tell it, and the key.
//! - Secrets are never stored here: the token is read from `token_file` or `token_env` when a
//!   backend is built, so the config can be shown and logged freely.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::CoreError;
use crate::duration::serde_human;
use crate::glob::Glob;
use crate::mapping::{Mapped, TESTS, test_spec};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/statusrelay/config.toml";
pub const DEFAULT_SPOOL: &str = "/var/lib/statusrelay/spool.db";
pub const DEFAULT_HTML_DIR: &str = "/var/lib/statusrelay/www";

/// Where the config came from, for `check` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    Defaults,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(p) => write!(f, "{}", p.display()),
            ConfigSource::Defaults => f.write_str("built-in defaults (no config file)"),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Path of the SQLite spool.
    #[serde(default = "default_spool")]
    pub spool: PathBuf,
    /// This node's name, used as the host when MONIT_HOST is absent. Defaults to the hostname.
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Global overrides of the default test -> state table.
    #[serde(default)]
    pub mapping: MappingTable,
    #[serde(default, rename = "component")]
    pub components: Vec<ComponentConfig>,
    /// Monit checks that `statusrelay monit-config` generates.
    #[serde(default, rename = "check")]
    pub checks: Vec<CheckConfig>,
    #[serde(default)]
    pub incidents: IncidentsConfig,
    /// How to read Monit's own status (for `resync`).
    #[serde(default)]
    pub monit: Option<MonitConfig>,
    #[serde(skip)]
    pub source: Option<ConfigSource>,
}

fn default_spool() -> PathBuf {
    PathBuf::from(DEFAULT_SPOOL)
}

/// Which status page to deliver to.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum BackendConfig {
    /// Cachet 2.x (`/api/v1`).
    Cachet(Remote),
    /// Cachet 3.x (cachethq/core, JSON:API under a configurable prefix).
    Cachet3(Remote),
    /// Atlassian Statuspage (api.statuspage.io/v1).
    Statuspage(Remote),
    /// status.io (api.status.io/v2).
    Statusio(Remote),
    /// The built-in static page: index.html, status.json and feed.atom written into `dir`.
    Html {
        #[serde(default = "default_html_dir")]
        dir: PathBuf,
        #[serde(default = "default_title")]
        title: String,
        /// Components grouped on the page: group name -> component names, in order.
        #[serde(default)]
        groups: Vec<HtmlGroup>,
        /// How many days of history the page shows (uptime and past incidents).
        #[serde(default = "default_history_days")]
        history_days: u32,
    },
}

/// A group of components on the built-in page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HtmlGroup {
    pub name: String,
    pub components: Vec<String>,
}

/// Settings of a status page reached over its HTTP API. One struct serves every API kind so
/// the shared settings are parsed and validated once; a key that does not apply to the
/// configured kind is an error naming the kinds it is for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    /// Base URL: the installation for Cachet; defaults to the public API for Statuspage and
    /// status.io.
    #[serde(default)]
    pub url: Option<String>,
    /// File holding the API token / key (first line).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the API token / key.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Timeout of each request.
    #[serde(default = "default_timeout", with = "serde_human")]
    pub timeout: Duration,
    /// PEM file of the CA(s) that sign the page's certificate (a private CA). Verification stays
    /// on: these become the only trusted roots for this page.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Which components an in-progress maintenance on the page covers: "all", "by_name" (its
    /// name or message mentions the component, or its component list has it), or "off".
    #[serde(default = "default_schedules")]
    pub schedules: String,
    /// Least time between two requests (pacing under the API's rate limit). Default per kind:
    /// Statuspage and status.io 1s, Cachet 3.x 200ms, Cachet 2.x none.
    #[serde(default, with = "serde_human::option")]
    pub min_interval: Option<Duration>,
    /// Cachet 2.x: "auto" (ask /api/v1/version), "2.3" or "2.4".
    #[serde(default)]
    pub version: Option<String>,
    /// Cachet 3.x: the API's path under `url` (default "/status/api").
    #[serde(default)]
    pub api_prefix: Option<String>,
    /// Statuspage: the page id; status.io: the status page id.
    #[serde(default)]
    pub page_id: Option<String>,
    /// status.io: the API id sent as x-api-id (the key itself comes from token_file/token_env).
    #[serde(default)]
    pub api_id: Option<String>,
}

pub const STATUSPAGE_URL: &str = "https://api.statuspage.io/v1";
pub const STATUSIO_URL: &str = "https://api.status.io/v2";

impl Remote {
    /// The base URL, with the public default of the kinds that have one.
    pub fn url_for(&self, kind: &str) -> String {
        match (&self.url, kind) {
            (Some(u), _) => u.clone(),
            (None, "statuspage") => STATUSPAGE_URL.into(),
            (None, "statusio") => STATUSIO_URL.into(),
            (None, _) => String::new(),
        }
    }

    /// Pacing between requests, per kind unless configured.
    pub fn min_interval_for(&self, kind: &str) -> Duration {
        self.min_interval.unwrap_or(match kind {
            "statuspage" | "statusio" => Duration::from_secs(1),
            "cachet3" => Duration::from_millis(200),
            _ => Duration::ZERO,
        })
    }

    /// Cachet 2.x API version pin.
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or("auto")
    }

    /// Cachet 3.x API prefix, always starting with one slash and without a trailing one.
    pub fn api_prefix(&self) -> String {
        let p = self.api_prefix.as_deref().unwrap_or("/status/api");
        format!("/{}", p.trim_matches('/'))
    }
}

fn default_history_days() -> u32 {
    90
}
fn default_schedules() -> String {
    "by_name".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_html_dir() -> PathBuf {
    PathBuf::from(DEFAULT_HTML_DIR)
}
fn default_title() -> String {
    "Service status".to_string()
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig::Html {
            dir: default_html_dir(),
            title: default_title(),
            groups: Vec::new(),
            history_days: default_history_days(),
        }
    }
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Cachet(_) => "cachet",
            BackendConfig::Cachet3(_) => "cachet3",
            BackendConfig::Statuspage(_) => "statuspage",
            BackendConfig::Statusio(_) => "statusio",
            BackendConfig::Html { .. } => "html",
        }
    }

    /// The API settings, for every kind but the built-in page.
    pub fn remote(&self) -> Option<&Remote> {
        match self {
            BackendConfig::Cachet(r)
            | BackendConfig::Cachet3(r)
            | BackendConfig::Statuspage(r)
            | BackendConfig::Statusio(r) => Some(r),
            BackendConfig::Html { .. } => None,
        }
    }

    fn remote_mut(&mut self) -> Option<&mut Remote> {
        match self {
            BackendConfig::Cachet(r)
            | BackendConfig::Cachet3(r)
            | BackendConfig::Statuspage(r)
            | BackendConfig::Statusio(r) => Some(r),
            BackendConfig::Html { .. } => None,
        }
    }
}

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

/// The longest pacing interval: every run's first request waits one (`flush --once`,
/// `check --online`), and no status page's rate limit needs more.
pub const MAX_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Validate the API settings of `kind`; the error is (key, message).
fn validate_remote(r: &Remote, kind: &str) -> Result<(), (String, String)> {
    let only = |set: bool, key: &str, kinds: &str| {
        if set {
            Err((
                format!("backend.{key}"),
                format!("applies only to kind = {kinds}, not {kind:?}: remove it"),
            ))
        } else {
            Ok(())
        }
    };
    only(
        r.version.is_some() && kind != "cachet",
        "version",
        "\"cachet\"",
    )?;
    only(
        r.api_prefix.is_some() && kind != "cachet3",
        "api_prefix",
        "\"cachet3\"",
    )?;
    only(
        r.page_id.is_some() && !["statuspage", "statusio"].contains(&kind),
        "page_id",
        "\"statuspage\" or \"statusio\"",
    )?;
    only(
        r.api_id.is_some() && kind != "statusio",
        "api_id",
        "\"statusio\"",
    )?;
    if !["auto", "2.3", "2.4"].contains(&r.version()) {
        return Err((
            "backend.version".into(),
            format!("{:?}: use \"auto\", \"2.3\" or \"2.4\"", r.version()),
        ));
    }
    if !["all", "by_name", "off"].contains(&r.schedules.as_str()) {
        return Err((
            "backend.schedules".into(),
            format!("{:?}: use \"all\", \"by_name\" or \"off\"", r.schedules),
        ));
    }
    let url = r.url_for(kind);
    if url.is_empty() {
        return Err((
            "backend.url".into(),
            "is required: the page's base URL, e.g. url = \"https://status.example.com\"".into(),
        ));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err((
            "backend.url".into(),
            format!("{url:?} is not an http(s) URL, e.g. https://status.example.com"),
        ));
    }
    let need = |v: &Option<String>, key: &str, example: &str| match v.as_deref() {
        Some(s)
            if !s.trim().is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(())
        }
        Some(s) => Err((
            format!("backend.{key}"),
            format!("{s:?} is not an id (letters, digits, - and _ only)"),
        )),
        None => Err((
            "backend".into(),
            format!("kind = {kind:?} needs {key} = {example:?}"),
        )),
    };
    match kind {
        "statuspage" => need(&r.page_id, "page_id", "kctbh9vrtdwd")?,
        "statusio" => {
            need(&r.page_id, "page_id", "568d8a3e3cada8c2490000dd")?;
            need(&r.api_id, "api_id", "6d3f4c6e-....")?;
        }
        _ => {}
    }
    match (&r.token_file, &r.token_env) {
        (None, None) => {
            return Err((
                "backend".into(),
                format!(
                    "kind = {kind:?} needs a token: set token_file = \"/etc/statusrelay/token\" or token_env = \"STATUSRELAY_TOKEN\""
                ),
            ));
        }
        (Some(_), Some(_)) => {
            return Err((
                "backend".into(),
                "set only one of token_file and token_env".into(),
            ));
        }
        _ => {}
    }
    if r.timeout.is_zero() {
        return Err(("backend.timeout".into(), "must be more than 0s".into()));
    }
    if r.min_interval.is_some_and(|d| d > MAX_MIN_INTERVAL) {
        return Err((
            "backend.min_interval".into(),
            format!(
                "{}: at most {}s; the first request of every run waits one interval (the published rate limits are about 1 request/s)",
                crate::duration::format(r.min_interval.unwrap_or_default()),
                MAX_MIN_INTERVAL.as_secs()
            ),
        ));
    }
    Ok(())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            spool: default_spool(),
            node: None,
            backend: BackendConfig::default(),
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            mapping: MappingTable::default(),
            components: Vec::new(),
            checks: Vec::new(),
            incidents: IncidentsConfig::default(),
            monit: None,
            source: Some(ConfigSource::Defaults),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Config {
    /// Find and load the config: explicit path, then /etc/statusrelay/config.toml, then defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, CoreError> {
        match explicit {
            Some(p) => Config::from_file(p),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Config::from_file(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Ok(Config::default()),
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, CoreError> {
        let text = crate::fsutil::read_regular(path).map_err(|source| CoreError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Config::parse(&text, path)?;
        // Relative paths in a config file are relative to the file, as an operator reading it expects.
        if let Some(dir) = path.parent() {
            cfg.spool = dir.join(&cfg.spool);
            if let BackendConfig::Html { dir: d, .. } = &mut cfg.backend {
                *d = dir.join(&*d);
            }
            if let Some(r) = cfg.backend.remote_mut() {
                for p in [&mut r.token_file, &mut r.ca_file].into_iter().flatten() {
                    *p = dir.join(&*p);
                }
            }
            if let Some(m) = &mut cfg.monit {
                for p in [&mut m.socket, &mut m.password_file].into_iter().flatten() {
                    *p = dir.join(&*p);
                }
            }
        }
        cfg.source = Some(ConfigSource::File(path.to_path_buf()));
        Ok(cfg)
    }

    /// Parse and validate config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, CoreError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!("line {}: ", line_of(text, s.start)))
                .unwrap_or_default();
            CoreError::ConfigParse {
                path: path.to_path_buf(),
                message: format!("{at}{}", e.message()),
            }
        })?;
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), CoreError> {
        let invalid = |key: String, message: String| CoreError::ConfigInvalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        if self.spool.as_os_str().is_empty() {
            return Err(invalid(
                "spool".into(),
                "is empty: name the spool file, e.g. spool = \"/var/lib/statusrelay/spool.db\""
                    .into(),
            ));
        }
        if let Some(r) = self.backend.remote() {
            validate_remote(r, self.backend.kind()).map_err(|(k, m)| invalid(k, m))?;
        }
        if let BackendConfig::Html {
            dir,
            groups,
            history_days,
            ..
        } = &self.backend
        {
            if dir.as_os_str().is_empty() {
                return Err(invalid(
                    "backend.dir".into(),
                    "must name a directory".into(),
                ));
            }
            if !(1..=366).contains(history_days) {
                return Err(invalid(
                    "backend.history_days".into(),
                    format!("{history_days}: use 1 to 366"),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for g in groups {
                for n in &g.components {
                    if !seen.insert(n.as_str()) {
                        return Err(invalid(
                            format!("backend.groups {:?}", g.name),
                            format!("component {n:?} is already in a group: list it once"),
                        ));
                    }
                    if !self.components.is_empty() && !self.components.iter().any(|c| &c.name == n)
                    {
                        return Err(invalid(
                            format!("backend.groups {:?}", g.name),
                            format!("{n:?} is not a configured [[component]] name"),
                        ));
                    }
                }
            }
        }
        let kind = self.backend.kind();
        for c in &self.components {
            if c.container.is_some() && kind != "statusio" {
                return Err(invalid(
                    format!("component {:?}: container", c.name),
                    "only status.io components have a container: remove it".into(),
                ));
            }
        }
        if let Some(m) = &self.monit {
            match (&m.url, &m.socket) {
                (None, None) => {
                    return Err(invalid(
                        "monit".into(),
                        "set url = \"http://127.0.0.1:2812\" or socket = \"/run/monit.sock\""
                            .into(),
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "monit".into(),
                        "set only one of url and socket".into(),
                    ));
                }
                (Some(u), None) if !u.starts_with("http://") => {
                    return Err(invalid(
                        "monit.url".into(),
                        format!(
                            "{u:?}: Monit's interface is read over plain http://, e.g. http://127.0.0.1:2812"
                        ),
                    ));
                }
                _ => {}
            }
            if m.user.is_some() && m.password_file.is_none() && m.password_env.is_none() {
                return Err(invalid(
                    "monit".into(),
                    "user is set: also set password_file or password_env".into(),
                ));
            }
            if m.resync_interval
                .is_some_and(|d| d < Duration::from_secs(1))
            {
                return Err(invalid(
                    "monit.resync_interval".into(),
                    "must be at least 1s".into(),
                ));
            }
        }
        for (i, c) in self.checks.iter().enumerate() {
            let key = format!("check[{}] ({:?})", i + 1, c.service);
            if c.service.is_empty()
                || !c
                    .service
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
            {
                return Err(invalid(
                    format!("{key}.service"),
                    "use letters, digits, _, - and . only (a Monit service name)".into(),
                ));
            }
            if !CHECK_TYPES.contains(&c.kind.as_str()) {
                return Err(invalid(
                    format!("{key}.type"),
                    format!("{:?} is not one of {}", c.kind, CHECK_TYPES.join(", ")),
                ));
            }
            if c.tests.is_empty()
                || c.tests
                    .iter()
                    .any(|t| t.trim().is_empty() || t.contains('\n'))
            {
                return Err(invalid(
                    format!("{key}.tests"),
                    "list one or more single-line Monit conditions".into(),
                ));
            }
            for (k, v) in [
                ("start", &c.start),
                ("stop", &c.stop),
                ("target", &Some(c.target.clone())),
            ] {
                if v.as_deref()
                    .is_some_and(|v| v.contains('\n') || (k != "target" && v.contains('"')))
                {
                    return Err(invalid(
                        format!("{key}.{k}"),
                        "must be one line without double quotes".into(),
                    ));
                }
            }
            match &c.component {
                Some(name)
                    if !self.components.is_empty()
                        && !self.components.iter().any(|x| &x.name == name) =>
                {
                    return Err(invalid(
                        format!("{key}.component"),
                        format!("no [[component]] named {name:?}"),
                    ));
                }
                None if !self.components.is_empty() && self.route(&c.service).is_empty() => {
                    return Err(invalid(
                        format!("{key}.service"),
                        format!(
                            "{:?} feeds no [[component]]: add it to a component's services or set component",
                            c.service
                        ),
                    ));
                }
                _ => {}
            }
        }
        let d = &self.delivery;
        if d.backoff_base.is_zero() || d.backoff_cap < d.backoff_base {
            return Err(invalid(
                "delivery".into(),
                "need 0 < backoff_base <= backoff_cap".into(),
            ));
        }
        if d.max_age.is_zero() {
            return Err(invalid(
                "delivery.max_age".into(),
                "must be more than 0s: it is how long an undelivered state is retried before it is dead-lettered (e.g. \"24h\")".into(),
            ));
        }
        if d.verify_after < Duration::from_secs(1) {
            return Err(invalid(
                "delivery.verify_after".into(),
                "must be at least 1s: the page is read back this long after a write whose outcome is unknown".into(),
            ));
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut slugs: BTreeMap<String, usize> = BTreeMap::new();
        for (i, c) in self.components.iter().enumerate() {
            let key = format!("component[{}] (line {})", i + 1, component_line(text, i));
            if c.name.trim().is_empty() || c.name.len() > 190 {
                return Err(invalid(
                    format!("{key}.name"),
                    "must be 1 to 190 characters".into(),
                ));
            }
            if let Some(prev) = seen.insert(c.name.as_str(), i) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("{:?} is already component[{}]", c.name, prev + 1),
                ));
            }
            if c.slug().is_empty() {
                return Err(invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} has no letter or digit: Monit's exec line needs one to name it",
                        c.name
                    ),
                ));
            }
            if let Some(prev) = slugs.insert(c.slug(), i) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!(
                        "{:?} and {:?} (component[{}]) differ only in case, spaces or punctuation: Cachet on MySQL compares names without case, and Monit's exec line names both {:?}; rename one",
                        c.name,
                        self.components[prev].name,
                        prev + 1,
                        c.slug()
                    ),
                ));
            }
            if let Some(id) = &c.id
                && self.backend.kind().starts_with("cachet")
                && !id.parse::<u64>().is_ok_and(|n| n > 0)
            {
                return Err(invalid(
                    format!("{key}.id"),
                    format!("{id:?}: Cachet ids are numbers starting at 1"),
                ));
            }
            for (k, t) in [
                ("incident_name", &c.incident_name),
                ("incident_message", &c.incident_message),
            ] {
                if let Some(t) = t {
                    crate::template::validate(t).map_err(|m| invalid(format!("{key}.{k}"), m))?;
                }
            }
        }
        Ok(())
    }

    /// What is allowed but probably not meant: `check` prints these (the config still loads).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let patterns = |c: &ComponentConfig| -> Vec<Glob> {
            if c.services.is_empty() {
                Glob::new(&c.name).into_iter().collect()
            } else {
                c.services.clone()
            }
        };
        for (i, a) in self.components.iter().enumerate() {
            for b in &self.components[i + 1..] {
                for g in patterns(a) {
                    if let Some(h) = patterns(b).into_iter().find(|h| g.overlaps(h)) {
                        out.push(format!(
                            "components {:?} and {:?} are fed by overlapping service patterns ({:?} and {:?}): an event of a service both match updates both components; if that is not meant, narrow one pattern",
                            a.name,
                            b.name,
                            g.as_str(),
                            h.as_str()
                        ));
                        break;
                    }
                }
            }
        }
        if let BackendConfig::Html { groups, .. } = &self.backend
            && self.components.is_empty()
            && !groups.is_empty()
        {
            out.push(
                "backend.groups names components, but no [[component]] is configured: every Monit service is its own component, so each name in groups must be a Monit service name (they cannot be checked here)".into(),
            );
        }
        out
    }

    /// The spool path from a config that may not parse, so a handler facing a broken config can
    /// still record the raw event. Falls back to the default spool.
    pub fn spool_hint(path: Option<&Path>) -> PathBuf {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        let text = crate::fsutil::read_regular(&path).unwrap_or_default();
        let spool = match text.parse::<toml::Table>() {
            Ok(t) => t.get("spool").and_then(|v| v.as_str()).map(PathBuf::from),
            // A syntax error elsewhere in the file: the top-level `spool = "..."` line itself
            // is most likely intact, and it is the spool the fixed config will name.
            Err(_) => text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with('['))
                .find_map(|l| {
                    let v = l.strip_prefix("spool")?.trim_start().strip_prefix('=')?;
                    let v = v.trim().strip_prefix('"')?;
                    let (v, rest) = v.split_once('"')?;
                    let rest = rest.trim();
                    (rest.is_empty() || rest.starts_with('#')).then(|| PathBuf::from(v))
                }),
        };
        match spool {
            Some(s) => path.parent().map(|d| d.join(&s)).unwrap_or(s),
            None => PathBuf::from(DEFAULT_SPOOL),
        }
    }

    /// Components fed by this Monit service. With no `[[component]]` configured, each service is
    /// its own component (the zero-config default).
    pub fn route(&self, service: &str) -> Vec<ComponentConfig> {
        if self.components.is_empty() {
            return vec![ComponentConfig::auto(service)];
        }
        self.components
            .iter()
            .filter(|c| c.feeds_from(service))
            .cloned()
            .collect()
    }

    /// A configured component by name or slug (or, with no components configured, a
    /// synthesised one).
    pub fn component(&self, name: &str) -> Result<ComponentConfig, CoreError> {
        if self.components.is_empty() {
            return Ok(ComponentConfig::auto(name));
        }
        // The exact name first, then the slug monit-config writes into Monit's exec lines.
        self.components
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.components.iter().find(|c| c.slug() == name))
            .cloned()
            .ok_or_else(|| CoreError::UnknownComponent(name.to_string()))
    }

    /// This node's name: `node` from the config, else the kernel's hostname.
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.node {
            return n.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    }
}

/// Line of the i-th `[[component]]` header, for messages about semantic errors.
fn component_line(text: &str, i: usize) -> usize {
    text.match_indices("[[component]]")
        .nth(i)
        .map(|(off, _)| line_of(text, off))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;

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
        assert_eq!(c.backend.kind(), "cachet");
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
        // toml reports an internally tagged table at its header line.
        assert!(
            e.contains("line 2") && e.contains("unknown field `dri`") && e.contains("`dir`"),
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
        assert_eq!(c.backend.kind(), "html");
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
        let dir = std::env::temp_dir().join(format!("sr-hint-{}", std::process::id()));
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
}
