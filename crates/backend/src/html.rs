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
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use statusrelay_core::State;
use statusrelay_core::time::{Clock, rfc3339};

use crate::{Backend, BackendError, CheckLine, ComponentRef};

/// Version of the `status.json` schema (documented in the README).
pub const SCHEMA_VERSION: u32 = 1;

/// `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PageDoc {
    pub schema: u32,
    pub title: String,
    /// Worst state of all components.
    pub overall: State,
    pub updated_at: String,
    pub components: Vec<PageComponent>,
}

/// One component in `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PageComponent {
    pub name: String,
    pub state: State,
    pub label: String,
    pub updated_at: Option<String>,
    pub message: Option<String>,
}

/// The static page writer.
pub struct Html {
    dir: PathBuf,
    title: String,
    /// Configured components, shown even before their first event.
    configured: Vec<String>,
    clock: Arc<dyn Clock>,
}

impl Html {
    pub fn new(dir: &Path, title: &str, configured: Vec<String>, clock: Arc<dyn Clock>) -> Html {
        Html {
            dir: dir.to_path_buf(),
            title: title.to_string(),
            configured,
            clock,
        }
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
            components: vec![],
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
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(self.io(&tmp))?;
        f.write_all(bytes).map_err(self.io(&tmp))?;
        f.sync_all().map_err(self.io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(self.io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(self.io(&self.dir))
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
                });
            }
        }
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
        doc.updated_at = rfc3339(self.clock.now_ms());
        let json =
            serde_json::to_vec_pretty(&doc).map_err(|e| BackendError::Protocol(e.to_string()))?;
        self.write_atomic("status.json", &json)?;
        self.write_atomic("index.html", render(&doc).as_bytes())
    }
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn render(doc: &PageDoc) -> String {
    let mut rows = String::new();
    for c in &doc.components {
        rows.push_str(&format!(
            "<li class=\"component\" data-state=\"{st}\"><span class=\"name\">{name}</span> <span class=\"state {st}\">{label}</span>{msg}{when}</li>\n",
            st = c.state.as_str(),
            name = escape(&c.name),
            label = escape(c.state.label()),
            msg = c.message.as_deref().filter(|m| !m.is_empty() && c.state != State::Operational)
                .map(|m| format!("<p class=\"message\">{}</p>", escape(m.lines().next().unwrap_or("")))).unwrap_or_default(),
            when = c.updated_at.as_deref().map(|t| format!(" <time datetime=\"{t}\">{t}</time>", t = escape(t))).unwrap_or_default(),
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
:root {{ color-scheme: light dark; font-family: system-ui, sans-serif; }}
body {{ max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }}
ul {{ list-style: none; padding: 0; }}
li.component {{ display: flex; flex-wrap: wrap; gap: .5rem; justify-content: space-between; padding: .75rem 0; border-bottom: 1px solid #8884; }}
.message {{ flex-basis: 100%; margin: 0; font-size: .9rem; opacity: .8; }}
.state {{ font-weight: 600; }}
.operational {{ color: #1a7f37; }} .performance_issues {{ color: #9a6700; }}
.partial_outage {{ color: #bc4c00; }} .major_outage {{ color: #cf222e; }}
.under_maintenance {{ color: #0969da; }} .unknown {{ color: #6e7781; }}
time {{ flex-basis: 100%; font-size: .8rem; opacity: .7; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="overall" data-state="{ost}">Overall: <strong class="state {ost}">{olabel}</strong></p>
<ul>
{rows}</ul>
<p><small>Last updated <time datetime="{upd}">{upd}</time>. Machine-readable: <a href="status.json">status.json</a>.</small></p>
</body>
</html>
"#,
        title = escape(&doc.title),
        ost = doc.overall.as_str(),
        olabel = escape(doc.overall.label()),
        upd = escape(&doc.updated_at),
    )
}

impl Backend for Html {
    fn identity(&self) -> String {
        format!("html {}", self.dir.display())
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
        let now = rfc3339(self.clock.now_ms());
        let entry = PageComponent {
            name: remote_id.to_string(),
            state,
            label: state.label().to_string(),
            updated_at: Some(now),
            message: message.map(str::to_string),
        };
        match doc.components.iter_mut().find(|c| c.name == remote_id) {
            Some(c) => *c = entry,
            None => doc.components.push(entry),
        }
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
}
