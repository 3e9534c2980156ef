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

mod backend;
mod locate;
mod sections;

pub use backend::{
    BackendConfig, BackendKind, BackendTable, CachetVersion, HtmlGroup, MAX_MIN_INTERVAL, Remote,
    STATUSIO_URL, STATUSPAGE_URL, Schedules,
};
pub use sections::{
    CHECK_TYPES, CheckConfig, ComponentConfig, DEFAULT_INCIDENT_MESSAGE, DEFAULT_INCIDENT_NAME,
    DeliveryConfig, IncidentsConfig, MappingTable, MonitConfig, RetentionConfig, slug,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::CoreError;
use crate::glob::Glob;

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
    /// The `[backend]` table as written; [`Config::backend`] is what it means.
    #[serde(default, rename = "backend")]
    pub backend_table: BackendTable,
    #[serde(skip)]
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

impl Default for Config {
    fn default() -> Self {
        Config {
            spool: default_spool(),
            backend_table: BackendTable::default(),
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

use locate::line_of;

/// A semantic error at `key`, with the key's line when the text has it.
fn invalid_at(text: &str, path: &Path, key: String, message: String) -> CoreError {
    let key = match locate::line_of_key(text, &key) {
        Some(n) if !key.contains("(line ") => format!("line {n}: {key}"),
        _ => key,
    };
    CoreError::ConfigInvalid {
        path: path.to_path_buf(),
        key,
        message,
    }
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
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            // The line, and the key set on it when there is one: "line 4: backend.url: ...".
            let at = e
                .span()
                .map(|s| {
                    let key = locate::key_at(text, s.start)
                        .map(|k| format!("{k}: "))
                        .unwrap_or_default();
                    format!("line {}: {key}", line_of(text, s.start))
                })
                .unwrap_or_default();
            CoreError::ConfigParse {
                path: path.to_path_buf(),
                message: format!("{at}{}", e.message()),
            }
        })?;
        cfg.backend = std::mem::take(&mut cfg.backend_table)
            .into_config()
            .map_err(|(key, message)| invalid_at(text, path, key, message))?;
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), CoreError> {
        let invalid = |key: String, message: String| invalid_at(text, path, key, message);
        if self.spool.as_os_str().is_empty() {
            return Err(invalid(
                "spool".into(),
                "is empty: name the spool file, e.g. spool = \"/var/lib/statusrelay/spool.db\""
                    .into(),
            ));
        }
        if let Some(r) = self.backend.remote() {
            backend::validate_remote(r, self.backend.kind()).map_err(|(k, m)| invalid(k, m))?;
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
            if c.container.is_some() && kind != BackendKind::Statusio {
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
                && self.backend.kind().numeric_ids()
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
mod tests;
