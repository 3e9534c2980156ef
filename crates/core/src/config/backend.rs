//! The `[backend]` table: which status page, and how to reach it.
//!
//! Invariants:
//! - The table is read as one plain struct ([`BackendTable`]), never as a serde-tagged enum:
//!   a tagged enum buffers the table and toml can then only point at its header, so a
//!   wrong-typed `url = 12` on line 4 was reported at line 2 without the key. Read plainly, every
//!   key's error names its own line. The table then becomes a [`BackendConfig`].
//! - A key that does not apply to the configured kind is an error naming the kinds it is for.
//! - Every fact that depends on the kind (its default URL, its pacing, its name for people) is a
//!   method of [`BackendKind`]; every API kind shares [`Remote`]. A new kind is one variant of
//!   [`BackendKind`] (the compiler then asks for its answers in those methods) and one file in
//!   the backend crate.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::DEFAULT_HTML_DIR;
use crate::duration::serde_human;

/// The kinds of status page, as `kind = "..."` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The built-in static page: index.html, status.json and feed.atom written into `dir`.
    #[default]
    Html,
    /// Cachet 2.x (`/api/v1`).
    Cachet,
    /// Cachet 3.x (cachethq/core, JSON:API under a configurable prefix).
    Cachet3,
    /// Atlassian Statuspage (api.statuspage.io/v1).
    Statuspage,
    /// status.io (api.status.io/v2).
    Statusio,
    /// An aggregator (`statusrelay serve`) that alone writes to the page for every node.
    Relay,
}

impl BackendKind {
    /// The word in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Html => "html",
            BackendKind::Cachet => "cachet",
            BackendKind::Cachet3 => "cachet3",
            BackendKind::Statuspage => "statuspage",
            BackendKind::Statusio => "statusio",
            BackendKind::Relay => "relay",
        }
    }

    /// The page's name for people (`check`).
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::Html => "the built-in static page",
            BackendKind::Cachet => "Cachet 2.x",
            BackendKind::Cachet3 => "Cachet 3.x",
            BackendKind::Statuspage => "Atlassian Statuspage",
            BackendKind::Statusio => "status.io",
            BackendKind::Relay => "a statusrelay aggregator",
        }
    }

    /// The public API's URL, for the kinds that are a hosted service.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            BackendKind::Statuspage => Some(STATUSPAGE_URL),
            BackendKind::Statusio => Some(STATUSIO_URL),
            _ => None,
        }
    }

    /// Pacing between requests unless configured: the hosted APIs publish about 1 request/s,
    /// Cachet 3.x throttles its API, Cachet 2.x does not.
    pub fn default_min_interval(self) -> Duration {
        match self {
            BackendKind::Statuspage | BackendKind::Statusio => Duration::from_secs(1),
            BackendKind::Cachet3 => Duration::from_millis(200),
            BackendKind::Cachet | BackendKind::Html | BackendKind::Relay => Duration::ZERO,
        }
    }

    /// Are component ids numbers on this page (Cachet), rather than strings?
    pub fn numeric_ids(self) -> bool {
        matches!(self, BackendKind::Cachet | BackendKind::Cachet3)
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which components an in-progress maintenance on the page covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedules {
    /// Every component.
    All,
    /// Those its name or message mentions, or its component list has.
    #[default]
    ByName,
    /// None: the page's maintenance is not read.
    Off,
}

/// Which Cachet 2.x API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum CachetVersion {
    /// Ask `/api/v1/version` on first need.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// 2.3: no incident updates, no schedules.
    #[serde(rename = "2.3")]
    V2_3,
    /// 2.4.
    #[serde(rename = "2.4")]
    V2_4,
}

impl CachetVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CachetVersion::Auto => "auto",
            CachetVersion::V2_3 => "2.3",
            CachetVersion::V2_4 => "2.4",
        }
    }
}

/// Which status page to deliver to, with its settings: a page reached over its HTTP API (one
/// settings struct for every API kind), or the built-in static page.
#[derive(Debug, Clone)]
pub enum BackendConfig {
    /// A status page's HTTP API (never [`BackendKind::Html`]).
    Api { kind: BackendKind, remote: Remote },
    /// The built-in static page: index.html, status.json and feed.atom written into `dir`.
    Html {
        dir: PathBuf,
        title: String,
        /// Components grouped on the page: group name -> component names, in order.
        groups: Vec<HtmlGroup>,
        /// How many days of history the page shows (uptime and past incidents).
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
/// the shared settings are parsed and validated once.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Base URL: the installation for Cachet; defaults to the public API for Statuspage and
    /// status.io.
    pub url: Option<String>,
    /// File holding the API token / key (first line).
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the API token / key.
    pub token_env: Option<String>,
    /// Timeout of each request.
    pub timeout: Duration,
    /// PEM file of the CA(s) that sign the page's certificate (a private CA). Verification stays
    /// on: these become the only trusted roots for this page.
    pub ca_file: Option<PathBuf>,
    /// Which components an in-progress maintenance on the page covers.
    pub schedules: Schedules,
    /// Least time between two requests (pacing under the API's rate limit); the kind's default
    /// when absent ([`BackendKind::default_min_interval`]).
    pub min_interval: Option<Duration>,
    /// Cachet 2.x: which API version.
    pub version: CachetVersion,
    /// Cachet 3.x: the API's path under `url` (default "/status/api").
    pub api_prefix: Option<String>,
    /// Statuspage: the page id; status.io: the status page id.
    pub page_id: Option<String>,
    /// status.io: the API id sent as x-api-id (the key itself comes from token_file/token_env).
    pub api_id: Option<String>,
    /// Relay: how often the node sends the aggregator its whole state when nothing changes
    /// (its period: the aggregator finds it stale after `[serve] stale_after` of them).
    pub heartbeat: Duration,
    /// Relay: aggregators to try, in order, when the one in use (first `url`) cannot be
    /// reached. For a standby that takes over the primary's role (and spool), not a second
    /// writer to the page.
    pub fallback_urls: Vec<String>,
}

/// The relay's default heartbeat: Monit's usual poll cycle.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

pub const STATUSPAGE_URL: &str = "https://api.statuspage.io/v1";
pub const STATUSIO_URL: &str = "https://api.status.io/v2";

/// The longest pacing interval: every run's first request waits one (`flush --once`,
/// `check --online`), and no status page's rate limit needs more.
pub const MAX_MIN_INTERVAL: Duration = Duration::from_secs(60);

impl Remote {
    /// The base URL, with the public default of the kinds that have one.
    pub fn url_for(&self, kind: BackendKind) -> String {
        self.url
            .clone()
            .or_else(|| kind.default_url().map(str::to_string))
            .unwrap_or_default()
    }

    /// Pacing between requests, per kind unless configured.
    pub fn min_interval_for(&self, kind: BackendKind) -> Duration {
        self.min_interval
            .unwrap_or_else(|| kind.default_min_interval())
    }

    /// Cachet 3.x API prefix, always starting with one slash and without a trailing one.
    pub fn api_prefix(&self) -> String {
        let p = self.api_prefix.as_deref().unwrap_or("/status/api");
        format!("/{}", p.trim_matches('/'))
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig::Html {
            dir: PathBuf::from(DEFAULT_HTML_DIR),
            title: "Service status".to_string(),
            groups: Vec::new(),
            history_days: 90,
        }
    }
}

impl BackendConfig {
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendConfig::Api { kind, .. } => *kind,
            BackendConfig::Html { .. } => BackendKind::Html,
        }
    }

    /// The API settings, for every kind but the built-in page.
    pub fn remote(&self) -> Option<&Remote> {
        match self {
            BackendConfig::Api { remote, .. } => Some(remote),
            BackendConfig::Html { .. } => None,
        }
    }

    pub(super) fn remote_mut(&mut self) -> Option<&mut Remote> {
        match self {
            BackendConfig::Api { remote, .. } => Some(remote),
            BackendConfig::Html { .. } => None,
        }
    }
}

/// The `[backend]` table as written: every key of every kind, each with its own type, so a
/// wrong-typed key is reported at its own line. [`BackendTable::into_config`] makes it a
/// [`BackendConfig`] and refuses keys that do not apply to the kind.
#[derive(Debug, Clone, Default, Deserialize)]
// Every key is optional: a missing one takes the Default (None), then the kind's default.
#[serde(default, deny_unknown_fields)]
pub struct BackendTable {
    pub kind: BackendKind,
    // Every API kind.
    pub url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    #[serde(with = "serde_human::option")]
    pub timeout: Option<Duration>,
    pub ca_file: Option<PathBuf>,
    pub schedules: Option<Schedules>,
    #[serde(with = "serde_human::option")]
    pub min_interval: Option<Duration>,
    // One API kind each.
    pub version: Option<CachetVersion>,
    pub api_prefix: Option<String>,
    pub page_id: Option<String>,
    pub api_id: Option<String>,
    #[serde(with = "serde_human::option")]
    pub heartbeat: Option<Duration>,
    pub fallback_urls: Option<Vec<String>>,
    // The built-in page.
    pub dir: Option<PathBuf>,
    pub title: Option<String>,
    pub groups: Option<Vec<HtmlGroup>>,
    pub history_days: Option<u32>,
    // Every page kind (not the relay): an aggregator's page names the nodes a failure is on.
    pub show_nodes: Option<bool>,
}

const API_KINDS: &str = "\"cachet\", \"cachet3\", \"statuspage\", \"statusio\" or \"relay\"";

impl BackendTable {
    /// A key set for another kind of page is an error naming the kinds it applies to.
    fn refuse_foreign_keys(&self) -> Result<(), (String, String)> {
        let kind = self.kind;
        let only = |set: bool, key: &str, kinds: &str| {
            if set {
                Err((
                    format!("backend.{key}"),
                    format!(
                        "applies only to kind = {kinds}, not {:?}: remove it",
                        kind.as_str()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        let api = kind != BackendKind::Html;
        only(self.dir.is_some() && api, "dir", "\"html\"")?;
        only(self.title.is_some() && api, "title", "\"html\"")?;
        only(self.groups.is_some() && api, "groups", "\"html\"")?;
        only(
            self.history_days.is_some() && api,
            "history_days",
            "\"html\"",
        )?;
        for (set, key) in [
            (self.url.is_some(), "url"),
            (self.token_file.is_some(), "token_file"),
            (self.token_env.is_some(), "token_env"),
            (self.timeout.is_some(), "timeout"),
            (self.ca_file.is_some(), "ca_file"),
            (self.schedules.is_some(), "schedules"),
            (self.min_interval.is_some(), "min_interval"),
        ] {
            only(set && !api, key, API_KINDS)?;
        }
        only(
            self.version.is_some() && kind != BackendKind::Cachet,
            "version",
            "\"cachet\"",
        )?;
        only(
            self.api_prefix.is_some() && kind != BackendKind::Cachet3,
            "api_prefix",
            "\"cachet3\"",
        )?;
        only(
            self.page_id.is_some()
                && !matches!(kind, BackendKind::Statuspage | BackendKind::Statusio),
            "page_id",
            "\"statuspage\" or \"statusio\"",
        )?;
        only(
            self.api_id.is_some() && kind != BackendKind::Statusio,
            "api_id",
            "\"statusio\"",
        )?;
        only(
            self.show_nodes.is_some() && kind == BackendKind::Relay,
            "show_nodes",
            "\"html\", \"cachet\", \"cachet3\", \"statuspage\" or \"statusio\" (a relaying node writes no page)",
        )?;
        only(
            self.heartbeat.is_some() && kind != BackendKind::Relay,
            "heartbeat",
            "\"relay\"",
        )?;
        only(
            self.fallback_urls.is_some() && kind != BackendKind::Relay,
            "fallback_urls",
            "\"relay\"",
        )?;
        Ok(())
    }

    /// The settings of the configured kind; the error is (key, message) for a key that does not
    /// apply to it.
    pub fn into_config(self) -> Result<BackendConfig, (String, String)> {
        self.refuse_foreign_keys()?;
        let kind = self.kind;
        for u in self.fallback_urls.iter().flatten() {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains('@') {
                return Err((
                    "backend.fallback_urls".into(),
                    format!(
                        "{u:?} is not an aggregator's http(s) URL without credentials, e.g. \"https://aggregator2.example.com:8731\""
                    ),
                ));
            }
        }
        if let Some(h) = self.heartbeat
            && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&h)
        {
            return Err((
                "backend.heartbeat".into(),
                format!("= {:?} is out of range: between 1s and 1h (default 30s)", h),
            ));
        }
        let remote = Remote {
            url: self.url,
            token_file: self.token_file,
            token_env: self.token_env,
            timeout: self.timeout.unwrap_or_else(default_timeout),
            ca_file: self.ca_file,
            schedules: self.schedules.unwrap_or_default(),
            min_interval: self.min_interval,
            version: self.version.unwrap_or_default(),
            api_prefix: self.api_prefix,
            page_id: self.page_id,
            api_id: self.api_id,
            heartbeat: self.heartbeat.unwrap_or(DEFAULT_HEARTBEAT),
            fallback_urls: self.fallback_urls.unwrap_or_default(),
        };
        Ok(match kind {
            BackendKind::Html => {
                let BackendConfig::Html {
                    dir,
                    title,
                    groups,
                    history_days,
                } = BackendConfig::default()
                else {
                    unreachable!("the default backend is the built-in page")
                };
                BackendConfig::Html {
                    dir: self.dir.unwrap_or(dir),
                    title: self.title.unwrap_or(title),
                    groups: self.groups.unwrap_or(groups),
                    history_days: self.history_days.unwrap_or(history_days),
                }
            }
            kind => BackendConfig::Api { kind, remote },
        })
    }
}
