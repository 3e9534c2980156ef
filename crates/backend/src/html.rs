//! The built-in status page: `status.json` and `index.html` in a directory any web server can
//! serve. No server, no JavaScript.
//!
//! Invariants:
//! - `status.json` is the page's own record of what it shows: a state is "confirmed" once it
//!   is in that file, exactly as a remote API confirms a PUT.
//! - Both files are replaced atomically (write a temp file in the same directory, fsync,
//!   rename, fsync the directory): a reader sees the old page or the new one, never half.
//! - Every text from Monit or the config is HTML-escaped.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use statusrelay_core::State;
use statusrelay_core::time::{Clock, rfc3339};

use crate::{Backend, BackendError, CheckLine, ComponentRef};

/// Version of the `status.json` schema (documented in the README).
pub const SCHEMA_VERSION: u32 = 2;

const DAY_MS: i64 = 86_400_000;

/// `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageDoc {
    pub schema: u32,
    pub title: String,
    /// Worst state of all components.
    pub overall: State,
    pub updated_at: String,
    /// The window the history, uptime and past incidents cover.
    #[serde(default)]
    pub history_days: u32,
    /// Groups as configured, in order; components in none are listed after them.
    #[serde(default)]
    pub groups: Vec<PageGroup>,
    pub components: Vec<PageComponent>,
    /// Outages: open ones and those resolved within the window, oldest first.
    #[serde(default)]
    pub incidents: Vec<Outage>,
}

/// A group of components.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PageGroup {
    pub name: String,
    pub components: Vec<String>,
}

/// One component in `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageComponent {
    pub name: String,
    pub state: State,
    pub label: String,
    pub updated_at: Option<String>,
    pub message: Option<String>,
    /// Percent of the known time in the window not spent in a partial or major outage
    /// (maintenance counts as up; time before the first state is not counted). None: no data.
    #[serde(default)]
    pub uptime: Option<f64>,
    /// State changes in the window, plus the last one before it, oldest first.
    #[serde(default)]
    pub history: Vec<Change>,
}

/// A state change of a component.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Change {
    pub at_ms: i64,
    pub state: State,
}

/// An outage: a component left operational (for anything but maintenance) until it came back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Outage {
    pub id: u64,
    pub component: String,
    /// The worst state during the outage.
    pub state: State,
    pub started_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub updates: Vec<OutageUpdate>,
}

/// One step of an outage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutageUpdate {
    pub at_ms: i64,
    pub state: State,
    pub message: Option<String>,
}

fn is_outage(s: State) -> bool {
    matches!(
        s,
        State::PerformanceIssues | State::PartialOutage | State::MajorOutage
    )
}

/// Less observed time than this is no data: a percentage over a few milliseconds of a
/// component's life ("0.00% uptime" a moment after its first failure) says nothing.
pub const MIN_OBSERVED_MS: i64 = 60_000;

/// Uptime percent of `history` over `[from, to)`; None when less than [`MIN_OBSERVED_MS`] of
/// it is known.
pub fn uptime(history: &[Change], from: i64, to: i64) -> Option<f64> {
    let (mut known, mut down) = (0i64, 0i64);
    for (i, c) in history.iter().enumerate() {
        let start = c.at_ms.max(from);
        let end = history.get(i + 1).map_or(to, |n| n.at_ms).min(to);
        if end <= start || c.state == State::Unknown {
            continue;
        }
        known += end - start;
        if matches!(c.state, State::PartialOutage | State::MajorOutage) {
            down += end - start;
        }
    }
    (known >= MIN_OBSERVED_MS).then(|| 100.0 * (known - down) as f64 / known as f64)
}

/// The worst state shown during `[from, to)`, if any is known.
pub fn worst_in(history: &[Change], from: i64, to: i64) -> Option<State> {
    history
        .iter()
        .enumerate()
        .filter(|(i, c)| c.at_ms < to && history.get(i + 1).is_none_or(|n| n.at_ms > from))
        .map(|(_, c)| c.state)
        .filter(|s| *s != State::Unknown)
        .reduce(State::worst)
}

/// The static page writer.
pub struct Html {
    dir: PathBuf,
    title: String,
    /// Configured components, shown even before their first event.
    configured: Vec<String>,
    groups: Vec<PageGroup>,
    history_days: u32,
    clock: Arc<dyn Clock>,
}

impl Html {
    pub fn new(dir: &Path, title: &str, configured: Vec<String>, clock: Arc<dyn Clock>) -> Html {
        Html {
            dir: dir.to_path_buf(),
            title: title.to_string(),
            configured,
            groups: Vec::new(),
            history_days: 90,
            clock,
        }
    }

    /// Group components on the page, and keep `days` of history.
    pub fn with_layout(mut self, groups: Vec<PageGroup>, days: u32) -> Html {
        self.groups = groups;
        self.history_days = days.max(1);
        self
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> BackendError + '_ {
        let path = path.to_path_buf();
        move |source| BackendError::Io {
            path: path.clone(),
            source,
        }
    }

    /// The page as it is on disk (or empty). A corrupt file is moved aside, never deleted.
    pub fn load(&self) -> Result<PageDoc, BackendError> {
        let path = self.dir.join("status.json");
        let empty = PageDoc {
            schema: SCHEMA_VERSION,
            title: self.title.clone(),
            overall: State::Unknown,
            updated_at: String::new(),
            history_days: self.history_days,
            groups: Vec::new(),
            components: vec![],
            incidents: vec![],
        };
        match fs::read_to_string(&path) {
            Ok(text) => match serde_json::from_str::<PageDoc>(&text) {
                Ok(doc) => Ok(doc),
                Err(_) => {
                    let aside = self
                        .dir
                        .join(format!("status.json.corrupt-{}", self.clock.now_ms()));
                    fs::rename(&path, &aside).map_err(self.io(&path))?;
                    Ok(empty)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty),
            Err(e) => Err(self.io(&path)(e)),
        }
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        statusrelay_core::fsutil::write_atomic(&self.dir, name, bytes, 0o644)
            .map_err(self.io(&self.dir.join(name)))
    }

    fn save(&self, mut doc: PageDoc) -> Result<(), BackendError> {
        fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        for name in &self.configured {
            if !doc.components.iter().any(|c| &c.name == name) {
                doc.components.push(PageComponent {
                    name: name.clone(),
                    state: State::Unknown,
                    label: State::Unknown.label().into(),
                    updated_at: None,
                    message: None,
                    uptime: None,
                    history: Vec::new(),
                });
            }
        }
        let now = self.clock.now_ms();
        let from = now - i64::from(self.history_days) * DAY_MS;
        for c in &mut doc.components {
            // Keep the last change before the window: it says what was shown at its start.
            let keep_from = c.history.iter().rposition(|h| h.at_ms <= from).unwrap_or(0);
            c.history.drain(..keep_from);
            c.uptime = uptime(&c.history, from, now);
        }
        doc.incidents
            .retain(|o| o.resolved_at_ms.is_none_or(|t| t >= from));
        doc.groups = self.groups.clone();
        doc.history_days = self.history_days;
        // Configured order first, then the rest by name: a stable page.
        let pos = |n: &str| {
            self.configured
                .iter()
                .position(|c| c == n)
                .unwrap_or(usize::MAX)
        };
        doc.components
            .sort_by(|a, b| pos(&a.name).cmp(&pos(&b.name)).then(a.name.cmp(&b.name)));
        doc.overall = doc
            .components
            .iter()
            .fold(State::Operational, |w, c| w.worst(c.state));
        doc.title = self.title.clone();
        doc.schema = SCHEMA_VERSION;
        doc.updated_at = rfc3339(now);
        let json =
            serde_json::to_vec_pretty(&doc).map_err(|e| BackendError::Protocol(e.to_string()))?;
        self.write_atomic("status.json", &json)?;
        self.write_atomic("feed.atom", crate::html_render::atom(&doc, now).as_bytes())?;
        self.write_atomic("index.html", crate::html_render::page(&doc, now).as_bytes())
    }
}

pub use crate::html_render::escape;

/// Open, extend or resolve the component's outage for a new state.
fn record_outage(
    outages: &mut Vec<Outage>,
    component: &str,
    state: State,
    message: Option<String>,
    now: i64,
    changed: bool,
) {
    let open = outages
        .iter_mut()
        .find(|o| o.component == component && o.resolved_at_ms.is_none());
    let update = OutageUpdate {
        at_ms: now,
        state,
        message,
    };
    match open {
        Some(o) if state == State::Operational => {
            o.resolved_at_ms = Some(now);
            o.updates.push(update);
        }
        Some(o) if is_outage(state) && changed => {
            o.state = o.state.worst(state);
            o.updates.push(update);
        }
        None if is_outage(state) => {
            let id = outages.iter().map(|o| o.id).max().unwrap_or(0) + 1;
            outages.push(Outage {
                id,
                component: component.to_string(),
                state,
                started_at_ms: now,
                resolved_at_ms: None,
                updates: vec![update],
            });
        }
        _ => {}
    }
}

impl Backend for Html {
    /// The page's canonical directory: the same page whether the config (or `--config`) was
    /// spelled relative or absolute, through a symlink or not. A directory not made yet is
    /// made absolute as written.
    fn identity(&self) -> String {
        let dir = fs::canonicalize(&self.dir)
            .or_else(|_| std::path::absolute(&self.dir))
            .unwrap_or_else(|_| self.dir.clone());
        format!("html {}", dir.display())
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        Ok(component.name.clone())
    }

    fn set_state(
        &mut self,
        remote_id: &str,
        _component: &ComponentRef,
        state: State,
        message: Option<&str>,
    ) -> Result<State, BackendError> {
        let mut doc = self.load()?;
        let now = self.clock.now_ms();
        let message = message.map(str::to_string);
        let pos = match doc.components.iter().position(|c| c.name == remote_id) {
            Some(p) => p,
            None => {
                doc.components.push(PageComponent {
                    name: remote_id.to_string(),
                    state,
                    label: String::new(),
                    updated_at: None,
                    message: None,
                    uptime: None,
                    history: Vec::new(),
                });
                doc.components.len() - 1
            }
        };
        let c = &mut doc.components[pos];
        let changed = c.history.last().is_none_or(|h| h.state != state);
        if changed {
            c.history.push(Change { at_ms: now, state });
        }
        c.state = state;
        c.label = state.label().to_string();
        c.updated_at = Some(rfc3339(now));
        c.message = message.clone();
        record_outage(&mut doc.incidents, remote_id, state, message, now, changed);
        self.save(doc)?;
        // Read back: the file is the page's confirmation.
        let confirmed = self
            .load()?
            .components
            .into_iter()
            .find(|c| c.name == remote_id)
            .map(|c| c.state);
        confirmed.ok_or_else(|| {
            BackendError::Protocol(format!(
                "{remote_id:?} missing from status.json after writing it"
            ))
        })
    }

    fn check(&mut self, _components: &[ComponentRef]) -> Vec<CheckLine> {
        let probe = self
            .dir
            .join(format!(".statusrelay-check-{}", std::process::id()));
        let res = fs::create_dir_all(&self.dir)
            .and_then(|_| fs::write(&probe, b"ok"))
            .and_then(|_| fs::remove_file(&probe));
        vec![match res {
            Ok(()) => CheckLine {
                ok: true,
                what: format!("{} is writable", self.dir.display()),
            },
            Err(e) => CheckLine {
                ok: false,
                what: format!("{} is not writable: {e}", self.dir.display()),
            },
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statusrelay_core::time::SystemClock;

    /// Issue 20: the page's identity (what `status` checks confirmations against) is the same
    /// however its directory was spelled, relative or absolute.
    #[test]
    fn the_identity_is_the_canonical_directory() {
        let base = std::env::temp_dir().join(format!("sr-html-id-{}", std::process::id()));
        fs::create_dir_all(base.join("www")).unwrap();
        fs::create_dir_all(base.join("x")).unwrap();
        let _ = std::os::unix::fs::symlink(base.join("www"), base.join("link"));
        let clock = Arc::new(SystemClock);
        let abs = Html::new(&base.join("www"), "t", vec![], clock.clone());
        let dotted = Html::new(&base.join("./x/../www"), "t", vec![], clock.clone());
        let linked = Html::new(&base.join("link"), "t", vec![], clock.clone());
        // Relative to the working directory, as `--config conf/config.toml` resolves it.
        let cwd = std::env::current_dir().unwrap();
        let up = cwd.components().count() - 1;
        let rel = std::path::PathBuf::from("../".repeat(up))
            .join(base.strip_prefix("/").unwrap().join("www"));
        let relative = Html::new(&rel, "t", vec![], clock);
        assert_eq!(abs.identity(), dotted.identity());
        assert_eq!(abs.identity(), linked.identity());
        assert_eq!(abs.identity(), relative.identity());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn writes_both_files_escaped_and_confirms_from_disk() {
        let dir = std::env::temp_dir().join(format!("sr-html-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut h = Html::new(
            &dir,
            "Our <status>",
            vec!["db".into(), "web".into()],
            Arc::new(SystemClock),
        );
        let c = ComponentRef {
            name: "db".into(),
            id: None,
            container: None,
        };
        let got = h
            .set_state(
                "db",
                &c,
                State::MajorOutage,
                Some("<script>alert(1)</script>"),
            )
            .unwrap();
        assert_eq!(got, State::MajorOutage);
        let html = fs::read_to_string(dir.join("index.html")).unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>")
        );
        assert!(html.contains("Our &lt;status&gt;"));
        let doc = h.load().unwrap();
        assert_eq!(doc.overall, State::MajorOutage);
        assert_eq!(
            doc.components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["db", "web"]
        );
        assert_eq!(doc.components[1].state, State::Unknown);
        // A corrupt status.json is moved aside, not deleted.
        fs::write(dir.join("status.json"), "{not json").unwrap();
        h.set_state("web", &c, State::Operational, None).unwrap();
        assert!(fs::read_dir(&dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("status.json.corrupt-")
        }));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 14, item 6: a component seen for a moment (its first failure a few milliseconds
    /// ago) showed "0.00% uptime"; less than a minute of observed time is no data.
    #[test]
    fn uptime_needs_a_minute_of_observed_time() {
        let h = |at, state| Change { at_ms: at, state };
        let now = 10 * 86_400_000;
        assert_eq!(uptime(&[h(now - 5, State::MajorOutage)], 0, now), None);
        assert_eq!(uptime(&[h(now - 59_999, State::MajorOutage)], 0, now), None);
        assert_eq!(
            uptime(&[h(now - 60_000, State::MajorOutage)], 0, now),
            Some(0.0)
        );
        let half = [
            h(now - 120_000, State::Operational),
            h(now - 60_000, State::MajorOutage),
        ];
        assert_eq!(uptime(&half, 0, now), Some(50.0));
        // Unknown time is not observed time.
        assert_eq!(uptime(&[h(now - 3_600_000, State::Unknown)], 0, now), None);
    }

    /// Issue 13, item 10: the page's temporary files had a predictable name and were opened
    /// with O_CREAT|O_TRUNC, so a symlink planted in the page directory made the flusher
    /// overwrite another file.
    #[test]
    fn planted_symlinks_in_the_page_directory_redirect_nothing() {
        let dir = std::env::temp_dir().join(format!("sr-html-link-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        for name in ["index.html", "status.json", "feed.atom"] {
            std::os::unix::fs::symlink(
                &victim,
                dir.join(format!(".{name}.tmp-{}", std::process::id())),
            )
            .unwrap();
        }
        let mut h = Html::new(&dir, "t", vec!["db".into()], Arc::new(SystemClock));
        let c = ComponentRef {
            name: "db".into(),
            id: None,
            container: None,
        };
        h.set_state("db", &c, State::MajorOutage, None).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            fs::read_to_string(dir.join("index.html"))
                .unwrap()
                .contains("db")
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
