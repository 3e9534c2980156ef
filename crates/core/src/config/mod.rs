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
mod validate;
mod validate_store;

pub use backend::{
    BackendConfig, BackendKind, BackendTable, CachetVersion, DEFAULT_HEARTBEAT, HtmlGroup,
    MAX_MIN_INTERVAL, Remote, STATUSIO_URL, STATUSPAGE_URL, Schedules,
};
pub use sections::{
    CHECK_TYPES, CheckConfig, CollectorConfig, ComponentConfig, DEFAULT_FLEET_INCIDENT_MESSAGE,
    DEFAULT_INCIDENT_MESSAGE, DEFAULT_INCIDENT_NAME, DeliveryConfig, IncidentsConfig, MappingTable,
    MonitConfig, RetentionConfig, ServeConfig, StoreConfig, slug,
};

use std::path::{Path, PathBuf};

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
    /// `[backend] show_nodes`: an aggregator's page names the nodes a failure is on (by
    /// default it says what fails, never where: node names are internal).
    #[serde(skip)]
    pub show_nodes: bool,
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
    /// How `statusrelay serve` listens for its nodes.
    #[serde(default)]
    pub serve: Option<ServeConfig>,
    /// The aggregator's store on PostgreSQL (several instances); None: the SQLite spool.
    /// A `[store]` table, or `store = "..."`, the connection string alone.
    #[serde(default, deserialize_with = "sections::store_form")]
    pub store: Option<StoreConfig>,
    /// This node's Monit pushes to an aggregator's collector (`set mmonit`).
    #[serde(default)]
    pub collector: Option<CollectorConfig>,
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
            show_nodes: false,
            delivery: DeliveryConfig::default(),
            retention: RetentionConfig::default(),
            mapping: MappingTable::default(),
            components: Vec::new(),
            checks: Vec::new(),
            incidents: IncidentsConfig::default(),
            monit: None,
            serve: None,
            store: None,
            collector: None,
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
        cfg.show_nodes = cfg.backend_table.show_nodes.unwrap_or(false);
        cfg.backend = std::mem::take(&mut cfg.backend_table)
            .into_config()
            .map_err(|(key, message)| invalid_at(text, path, key, message))?;
        cfg.validate(text, path)?;
        Ok(cfg)
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
        if self.show_nodes && self.serve.is_none() {
            out.push(
                "backend.show_nodes is for an aggregator's page ([serve]); a single node's page already says the host through {host} in incident_message".into(),
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
    /// How a component combines its nodes (`[component.nodes]`); the default for a component
    /// the config does not name. Found without copying the component: the aggregator asks for
    /// every component of every report.
    pub fn node_rule(&self, name: &str) -> crate::nodes::NodeRule {
        self.components
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.components.iter().find(|c| c.slug() == name))
            .map(|c| c.nodes)
            .unwrap_or_default()
    }

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
