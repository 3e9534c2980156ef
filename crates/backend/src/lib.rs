//! Status page backends behind one trait, and the relay to an aggregator beside it: a
//! flusher delivers to a [`Sink`], one or the other.
//!
//! Invariants:
//! - [`Backend`] is a status page: it takes states. The aggregator takes a node's failing
//!   tests ([`relay::Relay`]) and is no `Backend`.
//! - A backend only talks to its page; it never touches the spool. The flusher owns retries,
//!   coalescing and bookkeeping. A new backend is one file implementing [`Backend`], one
//!   variant of `statusrelay_core::config::BackendKind`, and the match arms the compiler then
//!   asks for (the kind's config in `BackendTable::into_config`, its constructor in
//!   [`build::from_config`]).
//! - Every failure is a [`BackendError`] that answers `is_retryable()` with a reason; "when to
//!   retry" is not a backend's business (see `statusrelay_spool::retry`).
//! - The token is held only inside the client and never appears in errors or `Debug` output.

pub mod build;
pub mod cachet;
pub mod cachet3;
pub mod html;
mod html_render;
pub mod http;
mod http_text;
pub mod memory;
pub mod relay;
pub mod statusio;
pub mod statuspage;

use std::time::Duration;

use statusrelay_core::State;

/// A component as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRef {
    pub name: String,
    /// The id on the page when the config gives one (no lookup needed).
    pub id: Option<String>,
    /// status.io: the container (id or name) the component is shown in.
    pub container: Option<String>,
}

/// One line of `check --online`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub ok: bool,
    pub what: String,
}

/// An unresolved incident as the page reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageIncident {
    pub id: String,
    pub name: String,
    /// Its text as the page lists it (the message, or the updates' bodies), where the API
    /// lists one: statusrelay recognises its own incidents by the marker it writes there.
    pub text: String,
}

/// The marker statusrelay writes at the end of every incident it opens: `[statusrelay REF]`.
pub const MARKER_PREFIX: &str = "[statusrelay ";

impl PageIncident {
    /// Did a statusrelay open it (any intent)? Such an incident is never a human's.
    pub fn by_statusrelay(&self) -> bool {
        self.text.contains(MARKER_PREFIX)
    }

    /// Was it opened for this intent (`marker` as [`marker`] made it)?
    pub fn carries(&self, marker: &str) -> bool {
        self.text.contains(marker)
    }
}

/// The marker for one incident intent of statusrelay's; `reference` is unique per intent.
pub fn marker(reference: &str) -> String {
    format!("{MARKER_PREFIX}{reference}]")
}

/// A maintenance in progress on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageMaintenance {
    pub name: String,
    pub message: String,
    /// Components the page says it covers (ids or names), when it says.
    pub components: Vec<String>,
}

/// What reading a component back from the page found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBack {
    /// This page's API cannot be read back (or need not be: the built-in page is local).
    Unsupported,
    /// The page shows the state asked about.
    Shows,
    /// The page shows something else: what it shows, in the page's words.
    Differs(String),
}

/// Where a flusher delivers: a status page, which takes states, or an aggregator, which
/// takes the node's failing tests. [`build::from_config`] returns one or the other.
pub enum Sink {
    /// A status page (or the built-in one).
    Page(Box<dyn Backend>),
    /// The fleet's aggregator (`[backend] kind = "relay"`).
    Aggregator(Box<relay::Relay>),
}

impl Sink {
    /// Stable identity (see [`Backend::identity`]).
    pub fn identity(&self) -> String {
        match self {
            Sink::Page(b) => b.identity(),
            Sink::Aggregator(r) => r.identity(),
        }
    }

    /// Check reachability, write access and that every component exists.
    pub fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        match self {
            Sink::Page(b) => b.check(components),
            Sink::Aggregator(r) => r.check(components),
        }
    }

    /// The status page, when this is one.
    pub fn page(&mut self) -> Option<&mut (dyn Backend + 'static)> {
        match self {
            Sink::Page(b) => Some(b.as_mut()),
            Sink::Aggregator(_) => None,
        }
    }
}

/// A status page.
pub trait Backend {
    /// Stable identity (`cachet https://status.example.com`): cached ids and confirmed states
    /// are keyed by it, so pointing the config at another page starts from a clean slate.
    fn identity(&self) -> String;

    /// The page's id for a component (looked up by name unless the config gives it).
    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError>;

    /// Show `state` on the component; returns the state the page confirms it now shows.
    fn set_state(
        &mut self,
        remote_id: &str,
        component: &ComponentRef,
        state: State,
        message: Option<&str>,
    ) -> Result<State, BackendError>;

    /// Check reachability, write access and that every component exists.
    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine>;

    /// Does the page show `state` on the component now? Asked after a write whose outcome was
    /// unknown (the server may carry it out late, over a newer one).
    fn read_back(&mut self, _remote_id: &str, _state: State) -> Result<ReadBack, BackendError> {
        Ok(ReadBack::Unsupported)
    }

    /// Does this page have incidents? The methods below are only called when it does.
    fn supports_incidents(&self) -> bool {
        false
    }

    /// Open an incident for the component (also setting its state, where the API does both).
    fn open_incident(
        &mut self,
        _remote_id: &str,
        _state: State,
        _name: &str,
        _message: &str,
        _notify: bool,
    ) -> Result<String, BackendError> {
        Err(BackendError::Protocol(
            "this status page has no incidents".into(),
        ))
    }

    /// Unresolved incidents of the component, newest first.
    fn open_incidents(&mut self, _remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        Ok(Vec::new())
    }

    /// Say on the incident that the component's state changed.
    fn update_incident(
        &mut self,
        _incident: &str,
        _remote_id: &str,
        _state: State,
        _message: &str,
    ) -> Result<(), BackendError> {
        Err(BackendError::Protocol(
            "this status page has no incidents".into(),
        ))
    }

    /// Resolve the incident.
    fn resolve_incident(
        &mut self,
        _incident: &str,
        _remote_id: &str,
        _message: &str,
        _notify: bool,
    ) -> Result<(), BackendError> {
        Err(BackendError::Protocol(
            "this status page has no incidents".into(),
        ))
    }

    /// Maintenance in progress on the page now.
    fn active_maintenance(&mut self) -> Result<Vec<PageMaintenance>, BackendError> {
        Ok(Vec::new())
    }
}

/// The one error type of the backend crate.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No answer: connection refused, DNS, timeout, connection dropped.
    #[error("{0}")]
    Transport(String),
    /// TLS handshake or certificate verification failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The API answered with an error status; `message` is the server's own text.
    #[error("HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The component does not exist on the page.
    #[error(
        "component {0:?} not found on the status page: create it there, or set its `id` in the config"
    )]
    NotFound(String),
    /// More than one component on the page has this name.
    #[error(
        "{count} components on the status page are named {name:?} (ids {ids}): set `id` in the config"
    )]
    Ambiguous {
        name: String,
        count: usize,
        ids: String,
    },
    /// The server answered, but not as the API contract says.
    #[error("unexpected answer from the status page: {0}")]
    Protocol(String),
    /// The API token could not be read.
    #[error("API token: {0}")]
    Token(String),
    /// A local setting of the backend is unusable (a CA file that holds no certificate...).
    #[error("{0}")]
    Config(String),
    /// Writing the static page failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    /// Should the same request be tried again later? With the reason, for the decision log.
    pub fn retry_decision(&self) -> (bool, String) {
        match self {
            BackendError::Transport(_) => (true, "network error".into()),
            BackendError::Tls(_) => (
                true,
                "TLS failure (retrying in case the certificate is being renewed)".into(),
            ),
            BackendError::Http { status: 429, .. } => (true, "rate limited (HTTP 429)".into()),
            BackendError::Http { status: 408, .. } => (true, "request timeout (HTTP 408)".into()),
            BackendError::Http { status, .. } if *status >= 500 => {
                (true, format!("server error (HTTP {status})"))
            }
            BackendError::Http { status, .. } => {
                (false, format!("rejected by the API (HTTP {status})"))
            }
            BackendError::NotFound(_) => (false, "component does not exist on the page".into()),
            BackendError::Ambiguous { .. } => {
                (false, "component name is ambiguous on the page".into())
            }
            BackendError::Protocol(_) => {
                (false, "the server does not follow the API contract".into())
            }
            BackendError::Token(_) => (false, "no usable API token".into()),
            BackendError::Config(_) => (false, "the backend's local settings are unusable".into()),
            BackendError::Io { .. } => (true, "local write failed".into()),
        }
    }

    /// Should the same request be tried again later?
    pub fn is_retryable(&self) -> bool {
        self.retry_decision().0
    }

    /// The server's Retry-After, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The same error with every text the server or the network supplied passed through `f`
    /// (to redact secrets a server echoed).
    pub fn map_text(self, f: impl Fn(&str) -> String) -> BackendError {
        match self {
            BackendError::Transport(m) => BackendError::Transport(f(&m)),
            BackendError::Tls(m) => BackendError::Tls(f(&m)),
            BackendError::Http {
                status,
                message,
                retry_after,
            } => BackendError::Http {
                status,
                message: f(&message),
                retry_after,
            },
            BackendError::Protocol(m) => BackendError::Protocol(f(&m)),
            other => other,
        }
    }

    /// Is the outcome of the write unknown: no answer (a timeout, a dropped connection) or a
    /// server error, after which the server may still carry the request out, late? Cachet sends
    /// notification mail inside the request, so a slow or failing mailer does exactly that.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            BackendError::Transport(m) => {
                !(m.contains("connection failed")
                    || m.contains("host not found")
                    || m.contains("refused"))
            }
            BackendError::Http { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// Was the component's id unknown to the page (so a cached id may be stale)?
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            BackendError::NotFound(_) | BackendError::Http { status: 404, .. }
        )
    }
}

/// `check --online`'s line when the page's first answer is an error: a server that answered
/// is reachable, and a refused token is said so, not "not reachable".
pub(crate) fn probe_failure(base: &str, e: &BackendError) -> String {
    match e {
        BackendError::Http {
            status: 401 | 403, ..
        } => format!(
            "{base} is reachable but refused the token ({e}): check the token and its permissions on the page"
        ),
        BackendError::Http { .. } | BackendError::Protocol(_) => {
            format!("{base} is reachable but answered an error: {e}")
        }
        _ => format!("{base} is not reachable: {e}"),
    }
}

/// The one id among the page's components named `name`: none is `NotFound`, several are
/// `Ambiguous` (the operator must set `id`).
pub(crate) fn unique_id(name: &str, ids: Vec<String>) -> Result<String, BackendError> {
    match ids.len() {
        0 => Err(BackendError::NotFound(name.to_string())),
        1 => Ok(ids.into_iter().next().unwrap_or_default()),
        n => Err(BackendError::Ambiguous {
            name: name.to_string(),
            count: n,
            ids: ids.join(", "),
        }),
    }
}

/// `check` for a page whose key one read proves: the probe's line (`Err` ends the check there,
/// with the server's words), then one line per component, the id it resolves to (`suffix` says
/// what kind of id) or why not.
pub(crate) fn probed_check(
    backend: &mut dyn Backend,
    probe: Result<String, String>,
    components: &[ComponentRef],
    suffix: &str,
) -> Vec<CheckLine> {
    let what = match probe {
        Ok(what) => what,
        Err(what) => return vec![CheckLine { ok: false, what }],
    };
    let mut out = vec![CheckLine { ok: true, what }];
    out.extend(components.iter().map(|c| match backend.resolve(c) {
        Ok(id) => CheckLine {
            ok: true,
            what: format!("component {:?} is id {id}{suffix}", c.name),
        },
        Err(e) => CheckLine {
            ok: false,
            what: format!("component {:?}: {e}", c.name),
        },
    }));
    out
}

/// The ids and names of a JSON list of components (objects with `id`/`name`, or bare ids), as
/// maintenance windows list what they cover.
pub(crate) fn component_keys(list: Option<&serde_json::Value>) -> Vec<String> {
    use serde_json::Value;
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| match c {
            Value::Object(_) => [
                c.get("id")
                    .map(|i| i.to_string().trim_matches('"').to_string()),
                c.get("name").and_then(Value::as_str).map(str::to_string),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            other => vec![other.to_string().trim_matches('"').to_string()],
        })
        .collect()
}

/// The `key` string of every object in a JSON list, one per line ("" when there is none).
pub(crate) fn texts_of(list: Option<&serde_json::Value>, key: &str) -> String {
    list.and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| text(v, key))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A JSON string field, or "" when absent.
pub(crate) fn text(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Read a token from a file (first line) or an environment variable; never from argv.
pub fn read_token(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<String, BackendError> {
    let token = match (file, env) {
        (Some(p), _) => statusrelay_core::fsutil::read_regular(p)
            .map_err(|e| {
                BackendError::Token(format!("cannot read token_file {}: {e}", p.display()))
            })?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| {
                BackendError::Token(format!("environment variable {var} (token_env) is not set"))
            })?
            .trim()
            .to_string(),
        (None, None) => {
            return Err(BackendError::Token(
                "set token_file or token_env in [backend]".into(),
            ));
        }
    };
    if token.starts_with('\u{feff}') {
        return Err(BackendError::Token(
            "the token file starts with a UTF-8 byte-order mark (saved by a Windows editor?): the page would refuse the token (401); save the file without one, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE".into(),
        ));
    }
    if token.is_empty() {
        return Err(BackendError::Token("the token is empty".into()));
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(BackendError::Token(
            "the token contains spaces or control characters".into(),
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_split_follows_the_contract() {
        let http = |status| BackendError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        for s in [429, 500, 502, 503, 504, 408] {
            assert!(http(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 406, 422] {
            assert!(!http(s).is_retryable(), "{s}");
        }
        assert!(BackendError::Transport("refused".into()).is_retryable());
        assert!(!BackendError::NotFound("x".into()).is_retryable());
        assert!(!BackendError::Protocol("x".into()).is_retryable());
    }

    #[test]
    fn a_write_without_an_answer_or_with_a_server_error_has_an_unknown_outcome() {
        let http = |status| BackendError::Http {
            status,
            message: String::new(),
            retry_after: None,
        };
        assert!(BackendError::Transport("timed out (Global)".into()).outcome_unknown());
        assert!(BackendError::Transport("connection reset by peer".into()).outcome_unknown());
        assert!(http(500).outcome_unknown() && http(504).outcome_unknown());
        assert!(
            !BackendError::Transport("Connection refused (os error 111)".into()).outcome_unknown()
        );
        assert!(!BackendError::Transport("connection failed".into()).outcome_unknown());
        assert!(!http(422).outcome_unknown() && !http(429).outcome_unknown());
    }

    #[test]
    fn token_comes_from_file_first_line_or_env() {
        let p = std::env::temp_dir().join(format!("sr-token-{}", std::process::id()));
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(read_token(Some(&p), None).unwrap(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(
            read_token(Some(&p), None)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        std::fs::remove_file(&p).unwrap();
        let e = read_token(Some(&p), None).unwrap_err().to_string();
        assert!(e.contains("token_file"), "{e}");
        let e = read_token(None, Some("STATUSRELAY_SURELY_UNSET_VAR"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("STATUSRELAY_SURELY_UNSET_VAR"), "{e}");
    }
}
