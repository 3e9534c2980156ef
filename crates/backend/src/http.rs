//! The HTTP client every API backend shares.
//!
//! Invariants:
//! - Redirects are never followed: a write that turns into a GET elsewhere would report success
//!   for nothing. A 3xx is an error naming its Location so the operator can fix `url`.
//! - TLS is always verified; `with_ca_pem` narrows the trusted roots to a private CA, and there
//!   is deliberately no way to turn verification off.
//! - Auth headers are secrets: they are sent, never shown (`Debug` redacts them) and never put
//!   into an error.
//! - Requests are paced: two requests are at least `min_interval` apart, so a page with a
//!   published rate limit never sees a burst (Statuspage answers 429 above about 1 req/s).
//!   The first request of a client waits one interval too, since the previous process talking
//!   to the same page may have just made one.
//! - Non-2xx answers carry the server's own words ([`error_text`]) and its Retry-After, with
//!   the credential redacted ([`redact`]).
//! - With a shutdown flag ([`OverHttp::stopped_by`]), pacing and a request in flight end within
//!   about 50 ms of the flag being set.
//! - Every request says who sends it in its User-Agent: `statusrelay/VERSION`, and the
//!   instance's name when the process is one of an aggregator's instances ([`set_instance`]),
//!   so the page's access log shows which instance wrote what.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::Agent;

use crate::BackendError;
use crate::http_text::parse_retry_after;
// The words of an exchange are `http_text`'s, under the names callers have always used.
pub use crate::http_text::{base64, base64_decode, error_text, redact};

/// The stack of a request's thread: a TLS handshake and a JSON parse, nothing deep (the
/// default 2 MiB of address space each is what an `ulimit -v` runs out of).
const REQUEST_STACK: usize = 512 * 1024;

/// A backend that reaches its page through an [`Api`]: pacing and trusted roots are set the
/// same way for all of them.
pub trait OverHttp: Sized {
    fn api_mut(&mut self) -> &mut Api;

    /// Keep at least `d` between two requests.
    fn paced(mut self, d: Duration) -> Self {
        self.api_mut().min_interval = d;
        self
    }

    /// Abandon pacing and a request in flight as soon as `flag` is set (SIGTERM): the
    /// request is reported as a transport error whose outcome is unknown, so the delivery is
    /// retried later and the page read back.
    fn stopped_by(mut self, flag: Arc<AtomicBool>) -> Self {
        self.api_mut().shutdown = Some(flag);
        self
    }

    /// Trust only the CA(s) in this PEM for the page's certificate (a private CA).
    fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, BackendError> {
        self.api_mut().trust_ca_pem(pem)?;
        Ok(self)
    }
}

/// A paced JSON client for one API base URL.
pub struct Api {
    base: String,
    agent: Agent,
    timeout: Duration,
    /// Header name and value; the values are secrets.
    auth: Vec<(&'static str, String)>,
    min_interval: Duration,
    last: Cell<Option<Instant>>,
    /// Set by SIGTERM: pacing and a request in flight are abandoned at once.
    shutdown: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field(
                "auth",
                &self
                    .auth
                    .iter()
                    .map(|(k, _)| (k, "<redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("min_interval", &self.min_interval)
            .finish()
    }
}

impl Api {
    /// `base` is the API root every path is appended to (e.g. `https://s.example.com/api/v1`).
    pub fn new(base: &str, auth: Vec<(&'static str, String)>, timeout: Duration) -> Api {
        Api {
            base: base.trim_end_matches('/').to_string(),
            agent: build_agent(timeout, None),
            timeout,
            auth,
            min_interval: Duration::ZERO,
            // As if a request had just ended: another process (an earlier `flush --once`, a
            // `check --online`) may have made one a moment ago, so the first one waits too.
            last: Cell::new(Some(Instant::now())),
            shutdown: None,
        }
    }

    /// Keep at least `d` between two requests.
    pub fn paced(mut self, d: Duration) -> Api {
        self.min_interval = d;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Trust only the CA(s) in this PEM for the page's certificate (a private CA).
    pub fn trust_ca_pem(&mut self, pem: &[u8]) -> Result<(), BackendError> {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| BackendError::Config(format!("ca_file is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(BackendError::Config(
                "ca_file holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        self.agent = build_agent(self.timeout, Some(certs));
        Ok(())
    }

    /// One request; returns the parsed JSON body of a 2xx answer (`Null` when it is empty).
    /// The pacing interval runs from the end of the previous exchange, so the server sees
    /// arrivals at least `min_interval` apart whatever the network's latency did.
    /// Send the following requests to another base URL (a relay's next aggregator).
    pub fn set_base(&mut self, base: &str) {
        self.base = base.trim_end_matches('/').to_string();
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, BackendError> {
        if let Some(since) = self.last.get().map(|l| l.elapsed())
            && since < self.min_interval
        {
            self.pause(self.min_interval - since)?;
        }
        let answer = match &self.shutdown {
            None => exchange(
                &self.agent,
                &self.base,
                &self.auth,
                method,
                path,
                query,
                body,
            ),
            Some(flag) => self.abandonable(flag, method, path, query, body),
        };
        self.last.set(Some(Instant::now()));
        // A server may echo the credential (a framework's debug page, a 401 body, a redirect's
        // Location): nothing a server says is stored, logged or printed before this.
        answer.map_err(|e| e.map_text(|t| redact(t, &self.auth)))
    }

    /// Sleep for pacing, in short steps, unless shutdown is asked for.
    fn pause(&self, d: Duration) -> Result<(), BackendError> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stopping() {
                return Err(BackendError::Transport(
                    "shutting down: not sent (it is retried at the next start)".into(),
                ));
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// The exchange on a thread of its own, waited for in short steps: SIGTERM abandons it
    /// (the thread ends with its timeout; the process does not wait for it).
    fn abandonable(
        &self,
        flag: &Arc<AtomicBool>,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, BackendError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (agent, base, auth) = (self.agent.clone(), self.base.clone(), self.auth.clone());
        let (m, p) = (method.to_string(), path.to_string());
        let q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // A thread that cannot be made (a memory limit, too many threads) is a failure to
        // send, retried like a network error: never an abort. Its stack is small (the
        // exchange is shallow), so an address-space limit leaves room for it.
        std::thread::Builder::new()
            .name("http".into())
            .stack_size(REQUEST_STACK)
            .spawn(move || {
                let q: Vec<(&str, &str)> =
                    q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let _ = tx.send(exchange(&agent, &base, &auth, &m, &p, &q, body));
            })
            .map_err(|e| {
                BackendError::Transport(format!(
                    "could not start a thread for {method} {path} ({e}): nothing was sent; retried (is the process's memory limited, `ulimit -v`?)"
                ))
            })?;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(answer) => return answer,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(BackendError::Transport("the request thread ended".into()));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if flag.load(Ordering::SeqCst) => {
                    return Err(BackendError::Transport(format!(
                        "shutting down: {method} {path} abandoned in flight (the page may still apply it; it is retried at the next start and read back)"
                    )));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// One HTTP exchange; returns the parsed JSON body of a 2xx answer (`Null` when empty).
fn exchange(
    agent: &Agent,
    base: &str,
    auth: &[(&'static str, String)],
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<Value>,
) -> Result<Value, BackendError> {
    {
        let url = format!("{base}{path}");
        let resp = match method {
            "GET" | "DELETE" => {
                let mut rb = if method == "GET" {
                    agent.get(&url)
                } else {
                    agent.delete(&url)
                }
                .header("Accept", "application/json");
                for (k, v) in auth {
                    rb = rb.header(*k, v);
                }
                for (k, v) in query {
                    rb = rb.query(*k, *v);
                }
                rb.call()
            }
            "PUT" | "POST" | "PATCH" => {
                let mut rb = match method {
                    "PUT" => agent.put(&url),
                    "POST" => agent.post(&url),
                    _ => agent.patch(&url),
                }
                .header("Accept", "application/json");
                for (k, v) in auth {
                    rb = rb.header(*k, v);
                }
                for (k, v) in query {
                    rb = rb.query(*k, *v);
                }
                rb.send_json(body.unwrap_or(Value::Null))
            }
            other => {
                return Err(BackendError::Protocol(format!(
                    "unsupported method {other}"
                )));
            }
        }
        .map_err(transport)?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = parse_retry_after(header("retry-after").as_deref());
        let location = header("location");
        let text = resp
            .into_body()
            .with_config()
            .limit(4 * 1024 * 1024)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(transport)?;
        if (300..400).contains(&status) {
            return Err(BackendError::Http {
                status,
                message: format!(
                    "redirected to {} : set backend.url to the final address",
                    location.unwrap_or_default()
                ),
                retry_after: None,
            });
        }
        if !(200..300).contains(&status) {
            return Err(BackendError::Http {
                status,
                message: error_text(&text),
                retry_after,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| BackendError::Protocol(format!("{method} {path}: body is not JSON ({e})")))
    }
}

/// `check --online`'s proof that the token can write: send a component's current status back
/// (`first` is its id, status code and name), a no-op only a valid token may make.
pub(crate) fn write_proof(
    api: &Api,
    method: &str,
    first: Option<(String, i64, String)>,
) -> crate::CheckLine {
    let (ok, what) = match first {
        Some((id, code, name)) => match api.call(
            method,
            &format!("/components/{id}"),
            &[],
            Some(serde_json::json!({ "status": code })),
        ) {
            Ok(_) => (
                true,
                format!("the token can write (re-sent {name:?}'s current status)"),
            ),
            Err(e) => (false, format!("the token cannot write: {e}")),
        },
        None => (false, "token unverified: no component to write to".into()),
    };
    crate::CheckLine { ok, what }
}

fn transport(e: ureq::Error) -> BackendError {
    // rustls's error can come wrapped in an I/O error: recognise it by its words.
    let text = e.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        return BackendError::Tls(tls_words(&text));
    }
    match e {
        ureq::Error::Tls(m) => BackendError::Tls(m.to_string()),
        ureq::Error::Rustls(r) => BackendError::Tls(r.to_string()),
        ureq::Error::Timeout(t) => BackendError::Transport(format!("timed out ({t})")),
        ureq::Error::Io(io) => BackendError::Transport(io.to_string()),
        ureq::Error::HostNotFound => BackendError::Transport("host not found".into()),
        ureq::Error::ConnectionFailed => BackendError::Transport("connection failed".into()),
        other => BackendError::Transport(other.to_string()),
    }
}

/// rustls's words for a server that does not speak TLS at all ("received corrupt message of
/// type InvalidContentType") tell an operator nothing: say what it means.
fn tls_words(m: &str) -> String {
    if m.contains("InvalidContentType") || m.contains("corrupt message") {
        format!(
            "the server did not answer in TLS: is this a plain-http port? Use http:// for it, or the page's https port ({m})"
        )
    } else {
        m.to_string()
    }
}

/// This process's name among an aggregator's instances, set once when it starts.
static INSTANCE: OnceLock<String> = OnceLock::new();

/// Say `name` (this process's `[store] instance`) in the User-Agent of every request made
/// from now on: `statusrelay/VERSION (instance NAME)`. Set once; a second call changes
/// nothing.
pub fn set_instance(name: &str) {
    let _ = INSTANCE.set(name.to_string());
}

/// `statusrelay/VERSION`, with the instance's name when there is one.
pub fn user_agent() -> String {
    let base = concat!("statusrelay/", env!("CARGO_PKG_VERSION"));
    match INSTANCE.get() {
        Some(name) => format!("{base} (instance {name})"),
        None => base.to_string(),
    }
}

fn build_agent(timeout: Duration, roots: Option<Vec<ureq::tls::Certificate<'static>>>) -> Agent {
    let mut b = Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        // Statuspage and status.io take a body on PATCH/POST only; ureq would refuse a body
        // on DELETE anyway, and GETs carry none.
        .user_agent(user_agent());
    if let Some(certs) = roots {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
            .build();
        b = b.tls_config(tls);
    }
    b.build().into()
}

/// Warnings about how an API URL and token are set up; empty when all is well.
pub fn transport_warnings(url: &str, token_file: Option<&std::path::Path>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        if !loopback {
            out.push(format!("backend.url {url} is plain http to another host: the token crosses the network in clear; use https"));
        }
    }
    if let Some(p) = token_file {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            out.push(format!("token_file {} is readable by everyone: chmod 0600 (owner statusrelay) or 0640 root:statusrelay", p.display()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_credential_is_redacted() {
        let auth = vec![("Authorization", "OAuth s3cr3t-key/+x".to_string())];
        for echoed in [
            "s3cr3t-key/+x",
            "OAuth s3cr3t-key/+x",
            "s3cr3t-key%2F%2Bx",
            "czNjcjN0LWtleS8reA==",
        ] {
            let t = redact(&format!("debug: header {echoed} end"), &auth);
            assert!(!t.contains("s3cr3t") && !t.contains(echoed), "{t}");
            assert!(t.contains("<redacted>") && t.ends_with(" end"), "{t}");
        }
        assert_eq!(base64(b"ab"), "YWI=");
        for s in ["", "a", "ab", "abc", "abcd", "hello world"] {
            assert_eq!(
                base64_decode(&base64(s.as_bytes())).unwrap(),
                s.as_bytes(),
                "{s:?}"
            );
        }
        assert_eq!(base64_decode("!!!"), None);
        assert_eq!(redact("nothing here", &auth), "nothing here");
    }

    #[test]
    fn error_text_prefers_the_servers_words() {
        let body = r#"{"errors":[{"id":"x","status":400,"title":"Bad Request","detail":"The request cannot be fulfilled due to bad syntax.","meta":{"details":["The status format is invalid."]}}]}"#;
        assert_eq!(
            error_text(body),
            "The request cannot be fulfilled due to bad syntax. The status format is invalid."
        );
        // Cachet 3 / Laravel validation.
        assert_eq!(
            error_text(
                r#"{"message":"The status field is invalid.","errors":{"status":["The selected status is invalid."]}}"#
            ),
            "The status field is invalid. status: The selected status is invalid."
        );
        // Statuspage uses either key.
        assert_eq!(error_text(r#"{"error":"Unauthorized"}"#), "Unauthorized");
        assert_eq!(error_text(r#"{"message":"Not found"}"#), "Not found");
        // status.io's envelope.
        assert_eq!(
            error_text(r#"{"status":{"error":"yes","message":"Invalid API key"}}"#),
            "Invalid API key"
        );
        assert_eq!(error_text("<html>oops</html>"), "<html>oops</html>");
        assert_eq!(error_text(""), "(empty body)");
        assert!(error_text(&"x".repeat(10_000)).len() <= 300);
    }

    #[test]
    fn a_private_ca_is_accepted_and_garbage_is_a_clear_error() {
        let pem = include_bytes!("../testdata/test-ca.pem");
        let mut api = Api::new("https://127.0.0.1:9", vec![], Duration::from_secs(1));
        assert!(api.trust_ca_pem(pem).is_ok());
        let e = api.trust_ca_pem(b"not a pem").err().unwrap().to_string();
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn plain_http_to_another_host_is_warned_about() {
        assert!(transport_warnings("http://127.0.0.1:8080", None).is_empty());
        assert!(transport_warnings("http://localhost", None).is_empty());
        assert!(transport_warnings("https://status.example.com", None).is_empty());
        let w = transport_warnings("http://status.example.com", None);
        assert!(
            w[0].contains("plain http") && w[0].contains("use https"),
            "{w:?}"
        );
    }

    #[test]
    fn debug_never_shows_the_secrets() {
        let api = Api::new(
            "http://127.0.0.1:9",
            vec![("X-Cachet-Token", "s3cret-token".into())],
            Duration::from_secs(1),
        );
        let d = format!("{api:?}");
        assert!(!d.contains("s3cret") && d.contains("X-Cachet-Token"), "{d}");
    }

    #[test]
    fn pacing_spaces_requests() {
        // Nothing listens on port 9 of loopback: each call fails fast, after pacing.
        let api = Api::new("http://127.0.0.1:9", vec![], Duration::from_secs(1))
            .paced(Duration::from_millis(150));
        let t = Instant::now();
        for _ in 0..3 {
            let _ = api.call("GET", "/x", &[], None);
        }
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }
}
